"""seccomp ``Localhost`` profiles: the OCI / Docker JSON format, read and
checked into plain records. Pure: no file, no libseccomp (``libseccomp.py``
compiles a profile, ``seccomp_localhost.py`` finds and caches it).

The format is the OCI runtime spec's ``linux.seccomp`` with Docker's
additions, which CRI-O and containerd read too::

    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
     "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],  (or Docker's "archMap")
     "flags": ["SECCOMP_FILTER_FLAG_LOG"],
     "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                   "args": [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
                   "includes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["amd64"], "minKernel": "4.8"},
                   "excludes": {}}]}

Choices, each as the runtime spec, runc or Docker make it: ``errnoRet``
defaults to EPERM and is an error on an action that returns none;
``SCMP_ACT_NOTIFY`` is refused (it hands syscalls to a listening agent, and
minipod runs none); unknown keys are ignored with a warning (Go's JSON
decoding ignores them, so profiles written for other runtimes carry some);
``includes``/``excludes`` select rules by the container's capability
(bounding) set, this machine's architecture (Go names: ``amd64``) and the
running kernel.
"""

from __future__ import annotations

import errno
import json
import os
import re

from .capabilities import CAPABILITIES
from .errors import MinipodError
from .record import Record

# seccomp.h (libseccomp): the action values, before an errno/trace datum is or'ed in.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,          # = KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
WITH_DATUM = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # the actions errnoRet applies to
NOTIFY = "SCMP_ACT_NOTIFY"
# enum scmp_compare
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
             "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# seccomp(2) filter flags. The spawn step installs its filter with
# prctl(PR_SET_SECCOMP), which takes none: TSYNC changes nothing for the
# single-threaded child; the others are warned about.
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
HARMLESS_FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC",)
MAX_DATUM = 0xFFFF  # the 16 bits SECCOMP_RET_DATA leaves an errno or a trace message
MAX_ARG = (1 << 64) - 1
ARG_COUNT = 6

# uname's machine → (the profile's SCMP_ARCH_ name, Docker's Go name in includes.arches)
MACHINES = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"),
    "i686": ("SCMP_ARCH_X86", "386"),
    "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "armv7l": ("SCMP_ARCH_ARM", "arm"),
    "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
    "s390x": ("SCMP_ARCH_S390X", "s390x"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"),
}

TOP_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "archMap", "flags", "syscalls",
            "listenerPath", "listenerMetadata")
SYSCALL_KEYS = ("names", "name", "action", "errnoRet", "args", "includes", "excludes", "comment")
ARG_KEYS = ("index", "value", "valueTwo", "op")
FILTER_KEYS = ("caps", "arches", "minKernel")
ARCH_MAP_KEYS = ("architecture", "subArchitectures")


class ProfileError(MinipodError):
    """A Localhost profile that cannot be used: names the file and the field."""

    def __init__(self, source: str, where: str, problem: str):
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"seccomp profile {source}: {where + ': ' if where else ''}{problem}")


class ArgCheck(Record):
    """One ``args`` entry: compare syscall argument ``index`` with ``value``
    (for SCMP_CMP_MASKED_EQ, ``value`` is the mask and ``value_two`` the datum)."""

    index: int
    op: str
    value: int
    value_two: int = 0


class Selector(Record):
    """An ``includes`` or ``excludes``: capability names (``CAP_…``), Go
    architecture names, and a minimum kernel (a tuple of ints)."""

    caps: tuple = ()
    arches: tuple = ()
    min_kernel: tuple = ()

    @property
    def empty(self) -> bool:
        return not (self.caps or self.arches or self.min_kernel)


class SyscallRule(Record):
    where: str          # its place in the file, "syscalls[3]", for messages
    names: tuple
    action: str
    errno_ret: int | None = None
    args: tuple = ()
    includes: Selector = Selector()
    excludes: Selector = Selector()

    def action_value(self) -> int:
        return action_value(self.action, self.errno_ret)


class Profile(Record):
    source: str                 # the file, for messages
    default_action: str
    default_errno: int | None = None
    architectures: tuple = ()   # SCMP_ARCH_* names as written
    arch_map: tuple = ()        # Docker's ((architecture, (sub, …)), …)
    flags: tuple = ()
    rules: tuple = ()
    warnings: tuple = ()

    def default_value(self) -> int:
        return action_value(self.default_action, self.default_errno)

    def architectures_for(self, machine: str) -> tuple[str, ...]:
        """The SCMP_ARCH_* names to filter on ``machine``: ``architectures``,
        or Docker's ``archMap`` entry for it and its sub-architectures."""
        if self.architectures or not self.arch_map:
            return self.architectures
        native = MACHINES.get(machine, ("", ""))[0]
        for arch, subs in self.arch_map:
            if arch == native:
                return (arch, *subs)
        return ()

    def unapplied_flags(self) -> tuple[str, ...]:
        return tuple(f for f in self.flags if f not in HARMLESS_FLAGS)

    def rules_for(self, caps: int, machine: str, kernel: tuple) -> list[SyscallRule]:
        """The rules that apply to a container with capability (bounding) set
        ``caps``, on ``machine`` running ``kernel``, as Docker selects them."""
        go_arch = MACHINES.get(machine, ("", machine))[1]
        return [rule for rule in self.rules
                if _matches_all(rule.includes, caps, go_arch, kernel)
                and not _matches_any(rule.excludes, caps, go_arch, kernel)]


def action_value(action: str, errno_ret: int | None) -> int:
    value = ACTIONS[action]
    if action in WITH_DATUM:
        value |= (errno.EPERM if errno_ret is None else errno_ret) & MAX_DATUM
    return value


def _has_cap(caps: int, name: str) -> bool:
    return bool(caps & (1 << CAPABILITIES[name]))


def _matches_all(sel: Selector, caps: int, go_arch: str, kernel: tuple) -> bool:
    """``includes``: every condition given holds."""
    return (all(_has_cap(caps, c) for c in sel.caps)
            and (not sel.arches or go_arch in sel.arches)
            and (not sel.min_kernel or kernel >= sel.min_kernel))


def _matches_any(sel: Selector, caps: int, go_arch: str, kernel: tuple) -> bool:
    """``excludes``: any condition given holds."""
    return (any(_has_cap(caps, c) for c in sel.caps)
            or go_arch in sel.arches
            or bool(sel.min_kernel and kernel >= sel.min_kernel))


def kernel_version(release: str | None = None) -> tuple[int, ...]:
    """``6.18.0-amd64`` → (6, 18, 0): what ``minKernel`` is compared with."""
    release = release if release is not None else os.uname().release
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not found:
        return ()
    return tuple(int(part) for part in found.groups(default="0"))


# ------------------------------------------------------------------ parsing
class _Reader:
    """Field-path-aware checks over the decoded JSON of one file."""

    def __init__(self, source: str):
        self.source = source
        self.warnings: list[str] = []

    def fail(self, where: str, problem: str):
        raise ProfileError(self.source, where, problem)

    def obj(self, value, where: str, known: tuple) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"must be an object, not {_kind(value)}")
        for key in value:
            if key not in known:
                self.warnings.append(f"seccomp profile {self.source}: {_join(where, key)}: unknown field, ignored")
        return value

    def array(self, value, where: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(where, f"must be a list, not {_kind(value)}")
        return value

    def string(self, value, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"must be a non-empty string, not {_kind(value)}")
        return value

    def integer(self, value, where: str, top: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            self.fail(where, f"must be a whole number from 0 to {top}, not {json.dumps(value)}")
        return value

    def action(self, value, where: str) -> str:
        name = self.string(value, where)
        if name == NOTIFY:
            self.fail(where, f"{NOTIFY} is not supported: it hands syscalls to a seccomp agent "
                             "listening on a socket, and minipod runs none")
        if name not in ACTIONS:
            self.fail(where, f'unsupported action "{name}" (one of {", ".join(ACTIONS)})')
        return name

    def errno_ret(self, value, where: str, action: str) -> int | None:
        if value is None:
            return None
        if action not in WITH_DATUM:
            self.fail(where, f"only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return a value, not {action}")
        return self.integer(value, where, MAX_DATUM)


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _join(where: str, key) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def parse_profile(text: str | bytes, source: str) -> Profile:
    """Check a profile's JSON text; ``source`` names it in messages.
    Raises ProfileError at the first problem."""
    r = _Reader(source)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProfileError(source, "", f"not valid JSON: {exc}") from None
    top = r.obj(data, "", TOP_KEYS)
    if "defaultAction" not in top:
        r.fail("defaultAction", "required")
    default = r.action(top["defaultAction"], "defaultAction")
    default_errno = r.errno_ret(top.get("defaultErrnoRet"), "defaultErrnoRet", default)
    if top.get("architectures") and top.get("archMap"):
        r.fail("archMap", "give either architectures or archMap, not both")
    arches = tuple(_arch_name(r, a, _join("architectures", i))
                   for i, a in enumerate(r.array(top.get("architectures"), "architectures")))
    arch_map = tuple(_arch_map_entry(r, e, _join("archMap", i))
                     for i, e in enumerate(r.array(top.get("archMap"), "archMap")))
    flags = []
    for i, flag in enumerate(r.array(top.get("flags"), "flags")):
        flags.append(r.string(flag, _join("flags", i)))
        if flag not in FLAGS:
            r.fail(_join("flags", i), f'unknown flag "{flag}" (one of {", ".join(FLAGS)})')
    if top.get("listenerPath"):
        r.warnings.append(f"seccomp profile {source}: listenerPath: ignored, minipod runs no seccomp agent")
    rules = tuple(_rule(r, entry, _join("syscalls", i))
                  for i, entry in enumerate(r.array(top.get("syscalls"), "syscalls")))
    return Profile(source=source, default_action=default, default_errno=default_errno,
                   architectures=arches, arch_map=arch_map, flags=tuple(flags), rules=rules,
                   warnings=tuple(r.warnings))


def _arch_name(r: _Reader, value, where: str) -> str:
    name = r.string(value, where)
    if not name.startswith("SCMP_ARCH_"):
        r.fail(where, f'"{name}" is not an architecture (SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, …)')
    return name


def _arch_map_entry(r: _Reader, value, where: str) -> tuple:
    entry = r.obj(value, where, ARCH_MAP_KEYS)
    arch = _arch_name(r, entry.get("architecture"), _join(where, "architecture"))
    subs = tuple(_arch_name(r, s, _join(_join(where, "subArchitectures"), i))
                 for i, s in enumerate(r.array(entry.get("subArchitectures"), _join(where, "subArchitectures"))))
    return (arch, subs)


def _rule(r: _Reader, value, where: str) -> SyscallRule:
    entry = r.obj(value, where, SYSCALL_KEYS)
    if "names" in entry and "name" in entry:
        r.fail(_join(where, "name"), "give either name or names, not both")
    if "name" in entry:  # Docker's older, one-name form
        names = [r.string(entry["name"], _join(where, "name"))]
    else:
        names = [r.string(n, _join(_join(where, "names"), i))
                 for i, n in enumerate(r.array(entry.get("names"), _join(where, "names")))]
        if not names:
            r.fail(_join(where, "names"), "required: at least one syscall name")
    if "action" not in entry:
        r.fail(_join(where, "action"), "required")
    action = r.action(entry["action"], _join(where, "action"))
    errno_ret = r.errno_ret(entry.get("errnoRet"), _join(where, "errnoRet"), action)
    args = tuple(_arg(r, a, _join(_join(where, "args"), i))
                 for i, a in enumerate(r.array(entry.get("args"), _join(where, "args"))))
    return SyscallRule(where=where, names=tuple(names), action=action, errno_ret=errno_ret, args=args,
                       includes=_selector(r, entry.get("includes"), _join(where, "includes")),
                       excludes=_selector(r, entry.get("excludes"), _join(where, "excludes")))


def _arg(r: _Reader, value, where: str) -> ArgCheck:
    arg = r.obj(value, where, ARG_KEYS)
    index = r.integer(arg.get("index"), _join(where, "index"), ARG_COUNT - 1)
    op = r.string(arg.get("op"), _join(where, "op"))
    if op not in OPERATORS:
        r.fail(_join(where, "op"), f'unsupported operator "{op}" (one of {", ".join(OPERATORS)})')
    return ArgCheck(index=index, op=op, value=r.integer(arg.get("value", 0), _join(where, "value"), MAX_ARG),
                    value_two=r.integer(arg.get("valueTwo", 0), _join(where, "valueTwo"), MAX_ARG))


def _selector(r: _Reader, value, where: str) -> Selector:
    if value is None:
        return Selector()
    sel = r.obj(value, where, FILTER_KEYS)
    caps = []
    for i, cap in enumerate(r.array(sel.get("caps"), _join(where, "caps"))):
        name = r.string(cap, _join(_join(where, "caps"), i)).upper()
        name = name if name.startswith("CAP_") else "CAP_" + name
        if name not in CAPABILITIES:
            r.fail(_join(_join(where, "caps"), i), f'unknown capability "{cap}"')
        caps.append(name)
    arches = tuple(r.string(a, _join(_join(where, "arches"), i))
                   for i, a in enumerate(r.array(sel.get("arches"), _join(where, "arches"))))
    min_kernel: tuple = ()
    if sel.get("minKernel") is not None:
        text = r.string(sel["minKernel"], _join(where, "minKernel"))
        if not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
            r.fail(_join(where, "minKernel"), f'"{text}" is not a kernel version like "4.8"')
        min_kernel = tuple(int(p) for p in text.split("."))
        min_kernel += (0,) * (3 - len(min_kernel))
    return Selector(caps=tuple(caps), arches=arches, min_kernel=min_kernel)
