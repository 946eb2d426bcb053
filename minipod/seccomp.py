"""seccomp ``RuntimeDefault``: the classic-BPF filter a container gets.

What it refuses is what containerd's and Docker's default profiles refuse
to a container that does not hold the matching capability: mounting and
pivoting (``mount``, the new mount API, ``umount2``, ``pivot_root``), new
namespaces and joining others (``unshare``, ``setns``, ``clone`` with
``CLONE_NEW*``; ``clone3`` answers ENOSYS so libc falls back to ``clone``,
whose flags a filter can read), kernel modules, kexec and reboot, the
kernel keyring (``keyctl``, ``add_key``, ``request_key``: keys are not
namespaced), ``bpf`` and ``perf_event_open``, ``open_by_handle_at`` (the
"shocker" escape), clock setting, ``syslog``, ``acct``, swap, quotas,
``iopl``/``ioperm``, ``userfaultfd``, io_uring, and obsolete calls. Each
answers EPERM (so programs see an ordinary "Operation not permitted").
Syscalls of another ABI (i386 or x32 on x86_64) are refused as a whole:
a deny list keyed by number is only sound for the numbers it was written
for.

Why a deny list built here rather than libseccomp: the filter is ~60
instructions of plain data, so Python assembles it once per process
(cached per capability set), a unit test can read it instruction by
instruction without root, and minipod gains no C library dependency; the
native spawn only hands the bytes to ``prctl(PR_SET_SECCOMP)`` as the last
step before ``execve``. An allow list like Docker's (~350 names) would need
a full syscall table per architecture, which is what libseccomp is for:
``Localhost`` profiles in the OCI/Docker JSON format are compiled with it
(``libseccomp.py``) and installed by the same plan step.

Kubernetes' default when nothing is set is ``Unconfined``; a privileged
container is never filtered.
"""

from __future__ import annotations

import errno
import functools
import os
import struct

from .capabilities import cap_number
from .errors import MinipodError

# linux/audit.h
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# linux/filter.h and linux/seccomp.h
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6] (little-endian low word first)
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0_LOW = 0, 4, 16

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000

# Refused syscalls, grouped by the capability that lifts the refusal
# (None: always refused), as Docker's default profile groups them.
DENIED = {
    "SYS_ADMIN": ("mount", "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
                  "fspick", "open_tree", "move_mount", "mount_setattr", "bpf", "perf_event_open",
                  "fanotify_init", "lookup_dcookie", "quotactl", "quotactl_fd", "swapon", "swapoff",
                  "name_to_handle_at"),
    "SYS_BOOT": ("reboot", "kexec_load", "kexec_file_load"),
    "SYS_MODULE": ("init_module", "finit_module", "delete_module", "create_module", "query_module",
                   "get_kernel_syms"),
    "SYS_TIME": ("settimeofday", "clock_settime", "clock_adjtime"),
    "SYSLOG": ("syslog",),
    "SYS_PACCT": ("acct",),
    "SYS_RAWIO": ("iopl", "ioperm"),
    "SYS_PTRACE": ("kcmp",),
    "SYS_TTY_CONFIG": ("vhangup",),
    "DAC_READ_SEARCH": ("open_by_handle_at",),
    None: ("keyctl", "add_key", "request_key", "userfaultfd", "uselib", "ustat", "sysfs", "_sysctl",
           "nfsservctl", "io_uring_setup", "io_uring_enter", "io_uring_register"),
}

# Syscall numbers of the names above (asm/unistd_64.h, asm-generic/unistd.h).
# A name an architecture lacks is simply absent.
_COMMON_NEW = {"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
               "fspick": 433, "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
               "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427}
SYSCALLS = {
    "x86_64": {
        "acct": 163, "add_key": 248, "bpf": 321, "clock_adjtime": 305, "clock_settime": 227,
        "create_module": 174, "delete_module": 176, "finit_module": 313, "get_kernel_syms": 177,
        "init_module": 175, "ioperm": 173, "iopl": 172, "kcmp": 312, "kexec_file_load": 320,
        "kexec_load": 246, "keyctl": 250, "lookup_dcookie": 212, "mount": 165, "name_to_handle_at": 303,
        "nfsservctl": 180, "open_by_handle_at": 304, "perf_event_open": 298, "pivot_root": 155,
        "query_module": 178, "quotactl": 179, "reboot": 169, "request_key": 249, "setns": 308,
        "settimeofday": 164, "swapoff": 168, "swapon": 167, "_sysctl": 156, "sysfs": 139, "syslog": 103,
        "umount2": 166, "unshare": 272, "uselib": 134, "userfaultfd": 323, "ustat": 136, "vhangup": 153,
        "fanotify_init": 300, "clone": 56, **_COMMON_NEW,
    },
    "aarch64": {
        "acct": 89, "add_key": 217, "bpf": 280, "clock_adjtime": 266, "clock_settime": 112,
        "delete_module": 106, "finit_module": 273, "init_module": 105, "kcmp": 272, "kexec_file_load": 294,
        "kexec_load": 104, "keyctl": 219, "lookup_dcookie": 18, "mount": 40, "name_to_handle_at": 264,
        "nfsservctl": 42, "open_by_handle_at": 265, "perf_event_open": 241, "pivot_root": 41,
        "quotactl": 60, "reboot": 142, "request_key": 218, "setns": 268, "settimeofday": 170,
        "swapoff": 225, "swapon": 224, "syslog": 116, "umount2": 39, "unshare": 97, "userfaultfd": 282,
        "vhangup": 58, "fanotify_init": 262, "clone": 220, **_COMMON_NEW,
    },
}
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}

def instruction(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    """One ``struct sock_filter`` (u16 code, u8 jt, u8 jf, u32 k), native order."""
    return struct.pack("=HBBI", code, jt, jf, k)


def denied_syscalls(caps: int) -> list[str]:
    """The names RuntimeDefault refuses to a container whose capability
    (bounding) set is ``caps``."""
    names: list[str] = []
    for cap, group in DENIED.items():
        if cap is None or not caps & (1 << cap_number(cap)):
            names.extend(group)
    return names


def _assemble(arch: str, caps: int) -> list[bytes]:
    """The program as (code, k, jump-if-true label, jump-if-false label)
    lines, then resolved: a label is the name of a later line, None the
    next line."""
    numbers = SYSCALLS[arch]
    denied = sorted({numbers[name] for name in denied_syscalls(caps) if name in numbers})
    lines: list[tuple[str | None, int, int, str | None, str | None]] = []  # (name, code, k, jt, jf)

    def emit(code: int, k: int, jt: str | None = None, jf: str | None = None, name: str | None = None):
        lines.append((name, code, k, jt, jf))

    emit(BPF_LD_W_ABS, OFFSET_ARCH)
    emit(BPF_JEQ_K, AUDIT_ARCH[arch], None, "eperm")  # another ABI: refused as a whole
    emit(BPF_LD_W_ABS, OFFSET_NR)
    if arch == "x86_64":
        emit(BPF_JGE_K, X32_SYSCALL_BIT, "eperm")      # the x32 ABI
    for number in denied:
        emit(BPF_JEQ_K, number, "eperm")
    if not caps & (1 << cap_number("SYS_ADMIN")):
        emit(BPF_JEQ_K, numbers["clone3"], "enosys")   # its flags sit in memory a filter cannot read
        emit(BPF_JEQ_K, numbers["clone"], None, "allow")
        emit(BPF_LD_W_ABS, OFFSET_ARG0_LOW)
        emit(BPF_JSET_K, CLONE_NAMESPACE_FLAGS, "eperm")
    emit(BPF_RET_K, SECCOMP_RET_ALLOW, name="allow")
    emit(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EPERM, name="eperm")
    emit(BPF_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS, name="enosys")

    where = {name: i for i, (name, *_rest) in enumerate(lines) if name}
    program = []
    for i, (_name, code, k, jt, jf) in enumerate(lines):
        offsets = [where[label] - i - 1 if label else 0 for label in (jt, jf)]
        if max(offsets) > 255:
            raise MinipodError("seccomp filter too long for 8-bit jump offsets")
        program.append(instruction(code, k, *offsets))
    return program


@functools.lru_cache(maxsize=None)
def runtime_default_filter(caps: int, arch: str | None = None) -> bytes:
    """The RuntimeDefault program for a container with capability set
    ``caps``, as the bytes of a ``struct sock_filter`` array; built once per
    (caps, arch) in a process. ``arch`` defaults to this machine's."""
    arch = arch or os.uname().machine
    if arch not in SYSCALLS:
        raise MinipodError(f"seccomp RuntimeDefault is not available on {arch} "
                           f"(minipod knows {', '.join(SYSCALLS)})")
    return b"".join(_assemble(arch, caps))
