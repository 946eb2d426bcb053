"""libseccomp through ctypes: a checked ``Localhost`` profile → the bytes of
a classic-BPF program, which the spawn plan's ``Seccomp`` step installs
exactly as it installs RuntimeDefault's.

Why libseccomp (Debian's libseccomp2, the library runc, crun and systemd
use) rather than growing the RuntimeDefault assembler of ``seccomp.py``: a
profile may name any of ~450 syscalls, on several ABIs at once (Docker's
default profile filters x86_64, x86 and x32 together), and compare
arguments, 64-bit ones on 32-bit ABIs included. libseccomp carries the
syscall table of every architecture and emits correct programs for all of
that; a hand-written table would be wrong the day a kernel adds a syscall.
Through ctypes rather than cffi: only the runtime library (libseccomp.so.2,
present on every host with systemd) is needed, no headers, nothing to
build; the few calls are declared below, as ``network/nft.py`` does for
libnftables. The library is loaded only when a container uses a Localhost
profile, and ``seccomp_localhost.py`` caches what it compiles.

As runc and crun do: a syscall name libseccomp does not know is skipped
(a profile lists names of newer kernels and other ABIs); a rule whose
action is the default action is left out (libseccomp refuses it, and it
changes nothing); a rule with two conditions on the same argument becomes
one rule per condition (libseccomp allows one condition per argument per
rule; Docker's profile relies on this to mean "any of these values").
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys

from .errors import MinipodError
from .record import Record
from .seccomp_profile import OPERATORS, Profile, ProfileError, kernel_version

BPF_MAXINSNS = 4096  # linux/bpf_common.h: the kernel refuses longer programs
SOCK_FILTER_SIZE = 8
NR_SCMP_ERROR = -1   # seccomp_syscall_resolve_name: a name libseccomp does not know
# enum scmp_filter_attr: SCMP_FLTATR_CTL_OPTIMIZE, level 2 = a binary tree
# of syscall numbers instead of a linear chain. As runc does, only for
# filters with a few rules or more (libseccomp before 2.5.4 mishandled a
# tree with none). Measured here with a Docker-like profile (~330 names,
# 3 ABIs): /bin/true starts 1.6 ms slower than unfiltered with the chain,
# 0.6 ms with the tree.
ATTR_OPTIMIZE, OPTIMIZE_BINARY_TREE, TREE_FROM_NAMES = 8, 2, 8


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class Compiled(Record):
    """A compiled profile: the ``struct sock_filter`` array, and the syscall
    names libseccomp did not know (skipped)."""

    program: bytes
    skipped: tuple = ()

    @property
    def instructions(self) -> int:
        return len(self.program) // SOCK_FILTER_SIZE


class _Library:
    def __init__(self, lib: ctypes.CDLL):
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.restype = None
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        self.lib = lib

    def compile(self, profile: Profile, caps: int, machine: str, kernel: tuple) -> Compiled:
        lib = self.lib
        default = profile.default_value()
        ctx = lib.seccomp_init(default)
        if not ctx:
            raise ProfileError(profile.source, "defaultAction",
                               f"libseccomp refused {profile.default_action} (not supported by this kernel?)")
        try:
            rules = profile.rules_for(caps, machine, kernel)
            if sum(len(rule.names) for rule in rules) >= TREE_FROM_NAMES:
                # An older libseccomp without the attribute keeps the chain: slower, same result.
                lib.seccomp_attr_set(ctx, ATTR_OPTIMIZE, OPTIMIZE_BINARY_TREE)
            self._add_architectures(ctx, profile, machine)
            skipped = self._add_rules(ctx, profile, rules, default)
            program = self._export(ctx, profile.source)
        finally:
            lib.seccomp_release(ctx)
        return Compiled(program, tuple(skipped))

    def _add_architectures(self, ctx, profile: Profile, machine: str) -> None:
        """The native architecture is always in the filter; these come on top."""
        where = "archMap" if profile.arch_map and not profile.architectures else "architectures"
        for name in profile.architectures_for(machine):
            token = self.lib.seccomp_arch_resolve_name(name.removeprefix("SCMP_ARCH_").lower().encode())
            if not token:
                raise ProfileError(profile.source, where, f"architecture {name} is unknown to libseccomp")
            rc = self.lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -errno.EEXIST:
                raise ProfileError(profile.source, where, f"cannot filter {name}: {os.strerror(-rc)}")

    def _add_rules(self, ctx, profile: Profile, rules, default: int) -> list[str]:
        skipped: list[str] = []
        for rule in rules:
            action = rule.action_value()
            if action == default:
                continue
            conditions = [_ArgCmp(a.index, OPERATORS[a.op], a.value, a.value_two) for a in rule.args]
            indexes = [a.index for a in rule.args]
            if len(set(indexes)) == len(indexes):
                groups = [conditions]
            else:
                groups = [[c] for c in conditions]
            for name in rule.names:
                nr = self.lib.seccomp_syscall_resolve_name(name.encode())
                if nr == NR_SCMP_ERROR:
                    skipped.append(name)
                    continue
                for group in groups:
                    array = (_ArgCmp * len(group))(*group) if group else None
                    rc = self.lib.seccomp_rule_add_array(ctx, action, nr, len(group), array)
                    if rc < 0:
                        raise ProfileError(profile.source, rule.where,
                                           f"libseccomp refused the rule for {name}: {os.strerror(-rc)}")
        return skipped

    def _export(self, ctx, source: str) -> bytes:
        fd = os.memfd_create("minipod-seccomp", os.MFD_CLOEXEC)
        try:
            rc = self.lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise ProfileError(source, "", f"libseccomp could not export the filter: {os.strerror(-rc)}")
            size = os.fstat(fd).st_size
            program = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        if len(program) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
            raise ProfileError(source, "", f"compiles to {len(program) // SOCK_FILTER_SIZE} BPF instructions, "
                                           f"more than the kernel's limit of {BPF_MAXINSNS}")
        return program


@functools.lru_cache(maxsize=1)
def library() -> _Library:
    """libseccomp, loaded once per process."""
    try:
        return _Library(ctypes.CDLL("libseccomp.so.2"))
    except OSError:
        raise MinipodError("seccomp Localhost profiles need libseccomp (libseccomp.so.2), which is not installed",
                           hint="apt-get install libseccomp2") from None


def compile_profile(profile: Profile, caps: int, machine: str | None = None,
                    kernel: tuple | None = None) -> Compiled:
    """The BPF program of ``profile`` for a container whose capability
    (bounding) set is ``caps``; ``machine`` and ``kernel`` default to this
    host's (they choose which ``includes``/``excludes`` rules apply)."""
    machine = machine or os.uname().machine
    kernel = kernel if kernel is not None else kernel_version()
    compiled = library().compile(profile, caps, machine, kernel)
    if compiled.skipped and "logging" in sys.modules:  # else nothing configured it: the line would be dropped
        sys.modules["logging"].getLogger(__name__).debug(
            "%s: syscalls unknown to libseccomp, skipped: %s", profile.source, ", ".join(compiled.skipped))
    return compiled
