"""Device rules on cgroup v2: an eBPF program attached to the container's cgroup.

cgroup v2 has no ``devices.allow``/``devices.deny`` files. The kernel instead
runs the BPF_PROG_TYPE_CGROUP_DEVICE programs attached to a process's cgroup
(and, with BPF_F_ALLOW_MULTI, its ancestors') whenever the process opens or
makes a device node; the access is allowed only if every program returns 1.
This module assembles that program from ``devices.DEFAULT_ALLOWED_DEVICES``
(the same list the v1 rules use, so both hosts allow the same devices), loads
it with bpf(2) through ctypes and attaches it::

    attach_device_program("/sys/fs/cgroup/minipod/pod-x/app")

The program sees ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major;
u32 minor;}``; the low 16 bits of ``access_type`` are the device type, the
high 16 the requested access. Each allow rule becomes one block of
instructions that jumps to the next block on the first mismatch and returns
1 when everything matched; after the last block the program returns 0.

Choices (see ``attach_device_program`` for the attach flags):

* license "Apache-2.0", minipod's own: the program calls no helper at all,
  so it needs none of the GPL-only ones and the license string is only
  informative;
* the program is loaded without a verifier log first (the log costs time and
  the program is known to verify); only when the kernel refuses it is it
  loaded again with a log, whose last lines go into the error;
* ctypes rather than the native module: the calls are four fixed-layout
  structs, nothing needs to happen between fork and exec, and the program
  is attached by the supervisor before any process joins the cgroup.
"""

from __future__ import annotations

import errno
import functools
import os
import struct

from .errors import CgroupError

# linux/bpf.h
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 1 << 1

# struct bpf_cgroup_dev_ctx: access_type's halves.
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4
DEVICE_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
ALL_ACCESS = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE

# The few eBPF opcodes the program uses (class | op | source).
LDX_MEM_W = 0x61    # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54  # dst &= imm (32-bit: the upper half is zeroed)
ALU32_RSH_K = 0x74  # dst >>= imm
ALU32_MOV_K = 0xb4  # dst = imm
ALU32_MOV_X = 0xbc  # dst = src
JMP_JNE_K = 0x55    # if dst != imm: pc += off
JMP_EXIT = 0x95     # return r0

# Registers: r1 is the context on entry; the rest are the program's own.
R0, R1, R2, R3, R4, R5 = range(6)
TYPE, ACCESS, MAJOR, MINOR, SCRATCH = R2, R3, R4, R5, R1

LICENSE = b"Apache-2.0"
PROG_NAME = b"minipod_devices"  # what bpftool shows; at most 15 characters
_INSN = struct.Struct("<BBhi")   # struct bpf_insn, little-endian (x86_64, aarch64)
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_LOG_SIZE = 1 << 16


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One encoded ``struct bpf_insn`` (dst in the low nibble of the register byte)."""
    return _INSN.pack(code, (src << 4) | dst, off, imm)


def _number(text: str, what: str) -> int | None:
    if text == "*":
        return None
    try:
        value = int(text)
    except ValueError:
        raise CgroupError(f"device rule: {what} {text!r} is not a number or '*'") from None
    if not 0 <= value < 1 << 31:
        raise CgroupError(f"device rule: {what} {value} is out of range")
    return value


def _rule_block(kind: str, major: str, minor: str, access: str) -> list[bytes]:
    """The instructions of one allow rule. A jump's offset is counted from
    the instruction after it, so each mismatch jumps past the rest of the
    block, onto the first instruction of the next one."""
    if kind not in DEVICE_TYPES:
        raise CgroupError(f"device rule: type {kind!r} is not 'b' or 'c'")
    if not access or any(ch not in ACCESS_BITS for ch in access):
        raise CgroupError(f"device rule: access {access!r} is not made of 'r', 'w' and 'm'")
    allowed = 0
    for ch in access:
        allowed |= ACCESS_BITS[ch]
    # Each check: (instructions before its jump, register compared, value it must equal).
    checks: list[tuple[list[bytes], int, int]] = [([], TYPE, DEVICE_TYPES[kind])]
    if allowed != ALL_ACCESS:
        # Every requested bit must be one of the allowed ones (v1's rule too:
        # "r" does not allow an open for reading and writing).
        checks.append(([insn(ALU32_MOV_X, SCRATCH, ACCESS),
                        insn(ALU32_AND_K, SCRATCH, imm=~allowed & ALL_ACCESS)], SCRATCH, 0))
    for register, value in ((MAJOR, _number(major, "major")), (MINOR, _number(minor, "minor"))):
        if value is not None:
            checks.append(([], register, value))
    tail = [insn(ALU32_MOV_K, R0, imm=1), insn(JMP_EXIT)]
    block: list[bytes] = []
    remaining = sum(len(pre) + 1 for pre, _r, _v in checks) + len(tail)
    for pre, register, value in checks:
        block += pre
        remaining -= len(pre) + 1
        block.append(insn(JMP_JNE_K, register, off=remaining, imm=value))
    return block + tail


def assemble(rules) -> bytes:
    """The whole program for ``rules`` — (type, major, minor, access) tuples,
    "*" for any number — as the bytes BPF_PROG_LOAD takes."""
    program = [
        insn(LDX_MEM_W, TYPE, R1, off=0),      # access_type
        insn(ALU32_MOV_X, ACCESS, TYPE),
        insn(ALU32_AND_K, TYPE, imm=0xFFFF),   # low half: block or char
        insn(ALU32_RSH_K, ACCESS, imm=16),     # high half: mknod/read/write
        insn(LDX_MEM_W, MAJOR, R1, off=4),
        insn(LDX_MEM_W, MINOR, R1, off=8),
    ]
    for rule in rules:
        program += _rule_block(*rule)
    program += [insn(ALU32_MOV_K, R0, imm=0), insn(JMP_EXIT)]  # nothing matched: deny
    return b"".join(program)


@functools.cache
def default_program() -> bytes:
    """The program for minipod's default device list, assembled once per process."""
    from .devices import DEFAULT_ALLOWED_DEVICES

    return assemble(DEFAULT_ALLOWED_DEVICES)


# -- bpf(2) ---------------------------------------------------------------


class _Bpf:
    """The bpf(2) system call through libc's ``syscall``."""

    def __init__(self):
        import ctypes

        number = _SYS_BPF.get(os.uname().machine)
        if number is None:
            raise CgroupError(f"cgroup v2 device rules: no bpf(2) syscall number known for "
                              f"{os.uname().machine}")
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
        self._number = number
        self.ctypes = ctypes

    def call(self, command: int, attr) -> int:
        """bpf(command, attr); the result, or OSError with the kernel's errno."""
        ctypes = self.ctypes
        rc = self._syscall(self._number, command, ctypes.addressof(attr), ctypes.sizeof(attr))
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return rc

    def buffer(self, data: bytes):
        return self.ctypes.create_string_buffer(data, len(data))


@functools.cache
def _bpf() -> _Bpf:
    return _Bpf()


def _prog_load_attr(ctypes, insns, license_buf, log_buf, log_size: int):
    class ProgLoad(ctypes.Structure):  # the BPF_PROG_LOAD part of union bpf_attr
        _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                    ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                    ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                    ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                    ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                    ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]

    attr = ProgLoad()
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE
    attr.insn_cnt = len(insns.raw) // _INSN.size
    attr.insns = ctypes.addressof(insns)
    attr.license = ctypes.addressof(license_buf)
    attr.prog_name = PROG_NAME
    attr.expected_attach_type = BPF_CGROUP_DEVICE
    if log_buf is not None:
        attr.log_level, attr.log_size, attr.log_buf = 1, log_size, ctypes.addressof(log_buf)
    return attr


def load_program(program: bytes) -> int:
    """Load ``program`` as a cgroup device program; its fd. On refusal the
    error carries the last lines of the verifier's log."""
    bpf = _bpf()
    ctypes = bpf.ctypes
    insns = bpf.buffer(program)
    license_buf = ctypes.create_string_buffer(LICENSE)
    try:
        return bpf.call(BPF_PROG_LOAD, _prog_load_attr(ctypes, insns, license_buf, None, 0))
    except OSError as exc:
        first = exc
    if first.errno in (errno.EPERM, errno.ENOSYS):
        raise _load_error(first, "") from None  # a log would not say more
    log_buf = ctypes.create_string_buffer(_LOG_SIZE)
    try:
        fd = bpf.call(BPF_PROG_LOAD, _prog_load_attr(ctypes, insns, license_buf, log_buf, _LOG_SIZE))
    except OSError as exc:
        raise _load_error(exc, log_buf.value.decode(errors="replace")) from None
    return fd  # refused once, accepted now: use it all the same


def _load_error(exc: OSError, log: str) -> CgroupError:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    detail = f" (verifier: {' | '.join(lines[-3:])})" if lines else ""
    hint = {
        errno.EPERM: "needs root (CAP_SYS_ADMIN or CAP_BPF) and no kernel lockdown of bpf",
        errno.ENOSYS: "this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL)",
        errno.EINVAL: "the kernel may lack cgroup BPF support (CONFIG_CGROUP_BPF)",
    }.get(exc.errno)
    err = CgroupError(f"load the cgroup v2 device program: {exc.strerror}{detail}", hint=hint)
    err.errno = exc.errno
    return err


def _attach_attr(ctypes, target_fd: int, prog_fd: int, flags: int):
    class Attach(ctypes.Structure):  # the BPF_PROG_ATTACH/DETACH part of union bpf_attr
        _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                    ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                    ("replace_bpf_fd", ctypes.c_uint32)]

    return Attach(target_fd, prog_fd, BPF_CGROUP_DEVICE, flags, 0)


def _query_ids(bpf: _Bpf, cgroup_fd: int) -> list[int]:
    ctypes = bpf.ctypes

    class Query(ctypes.Structure):  # the BPF_PROG_QUERY part of union bpf_attr
        _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                    ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                    ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32)]

    ids = (ctypes.c_uint32 * 64)()  # BPF_CGROUP_MAX_PROGS
    # query_flags 0: the programs attached to this cgroup itself, not its ancestors'.
    attr = Query(cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), len(ids))
    bpf.call(BPF_PROG_QUERY, attr)
    return list(ids[:attr.prog_cnt])


def _open_dir(cgroup_dir: str) -> int:
    try:
        return os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"open cgroup {cgroup_dir}: {exc.strerror}") from None


def attached_program_ids(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to the cgroup ``cgroup_dir`` itself."""
    fd = _open_dir(cgroup_dir)
    try:
        return _query_ids(_bpf(), fd)
    except OSError as exc:
        raise CgroupError(f"list the device programs of cgroup {cgroup_dir}: {exc.strerror}") from None
    finally:
        os.close(fd)


def attach_device_program(cgroup_dir: str, program: bytes | None = None) -> None:
    """Allow the processes of the v2 cgroup ``cgroup_dir`` only the default
    devices (or ``program``'s), replacing the program an earlier start of the
    same container attached.

    Attached with BPF_F_ALLOW_MULTI, as crun does: a program of an ancestor
    (systemd's, for a slice) still runs, and one attached below or beside ours
    later can only deny more, never replace ours — with flags 0 anyone able to
    attach to this cgroup could swap our program for an allow-all one. A
    restarted container reuses its cgroup, so the programs that were attached
    to it before are detached once the new one is in place: the cgroup is
    never without one, and they do not pile up (the kernel allows 64).
    """
    program = default_program() if program is None else program
    bpf = _bpf()
    ctypes = bpf.ctypes
    cgroup_fd = _open_dir(cgroup_dir)
    try:
        try:
            earlier = _query_ids(bpf, cgroup_fd)
        except OSError as exc:
            raise _attach_error("list the device programs of", cgroup_dir, exc) from None
        prog_fd = load_program(program)
        try:
            bpf.call(BPF_PROG_ATTACH, _attach_attr(ctypes, cgroup_fd, prog_fd, BPF_F_ALLOW_MULTI))
        except OSError as exc:
            raise _attach_error("attach the device program to", cgroup_dir, exc) from None
        finally:
            os.close(prog_fd)  # the attachment holds the program now
        for prog_id in earlier:
            _detach(bpf, cgroup_fd, cgroup_dir, prog_id)
    finally:
        os.close(cgroup_fd)


def _detach(bpf: _Bpf, cgroup_fd: int, cgroup_dir: str, prog_id: int) -> None:
    ctypes = bpf.ctypes

    class ById(ctypes.Structure):  # the BPF_*_GET_FD_BY_ID part of union bpf_attr
        _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32),
                    ("open_flags", ctypes.c_uint32)]

    try:
        prog_fd = bpf.call(BPF_PROG_GET_FD_BY_ID, ById(prog_id, 0, 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return  # detached and freed meanwhile
        raise _attach_error(f"open device program {prog_id} of", cgroup_dir, exc) from None
    try:
        bpf.call(BPF_PROG_DETACH, _attach_attr(ctypes, cgroup_fd, prog_fd, 0))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise _attach_error(f"detach device program {prog_id} from", cgroup_dir, exc) from None
    finally:
        os.close(prog_fd)


def _attach_error(what: str, cgroup_dir: str, exc: OSError) -> CgroupError:
    hint = None
    if exc.errno == errno.EPERM:
        hint = "an ancestor cgroup may hold a device program that forbids more below it"
    elif exc.errno == errno.EINVAL:
        hint = "the kernel may lack cgroup BPF support (CONFIG_CGROUP_BPF)"
    err = CgroupError(f"{what} cgroup {cgroup_dir}: {exc.strerror}", hint=hint)
    err.errno = exc.errno
    return err
