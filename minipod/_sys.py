"""System calls Python 3.11 lacks, and the native spawn of a plan.

The only module that imports the cffi extension ``minipod._native`` (built
from native/spawn.c by native/build_ffi.py). It loads it on first use, so
importing this module costs nothing on paths that never spawn (``minipod ps``).
Every failure is a ``KernelError`` that names the operation; a failed spawn
step is a ``SpawnError`` naming the step.
"""

from __future__ import annotations

import functools
import os
import sys

from minipod.errors import KernelError, MinipodError, SpawnError

from minipod.capabilities import CAPABILITIES  # noqa: F401  (re-exported)

_BUILD_HINT = "build the native parts with `make` (or `pip install -e .`)"


@functools.lru_cache(maxsize=None)
def _native():
    """The cffi module, loaded once, on first use."""
    try:
        from minipod import _native as native
    except ImportError as exc:
        raise MinipodError(f"the native module minipod._native is not built ({exc})",
                           hint=_BUILD_HINT) from None
    return native


def _check(rc: int, operation: str, path: str | None = None) -> None:
    if rc < 0:
        raise KernelError(operation, _native().ffi.errno, path)


def _c(value) -> bytes:
    """str/bytes/PathLike → bytes for C, refusing NUL (C would cut there)."""
    data = os.fsencode(value)
    if b"\0" in data:
        raise MinipodError(f"value contains a NUL byte: {value!r}")
    return data


# ---------------------------------------------------------------- syscalls

def setns(fd: int, nstype: int) -> None:
    """Join the namespace open at ``fd`` (``nstype`` 0 accepts any kind)."""
    from minipod.plan import ns_flag_names
    _check(_native().lib.setns(fd, nstype), f"setns {ns_flag_names(nstype)} from fd {fd}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces ``flags``."""
    from minipod.plan import ns_flag_names
    _check(_native().lib.unshare(flags), f"unshare {ns_flag_names(flags)}")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    """``mount(2)``; ``None`` passes NULL."""
    from minipod.plan import MS_BIND
    ffi, lib = _native().ffi, _native().lib
    what = f"bind {source}" if flags & MS_BIND else " ".join(x for x in (fstype, source) if x)
    args = [ffi.NULL if v is None else _c(v) for v in (source, target, fstype, data)]
    rc = lib.mount(args[0], args[1], args[2], flags, args[3])
    _check(rc, f"mount {what} on" if what else "mount on", target)


def umount2(target: str, flags: int = 0) -> None:
    """``umount2(2)``."""
    _check(_native().lib.umount2(_c(target), flags), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """``pivot_root(2)`` (glibc has no wrapper)."""
    _check(_native().lib.mp_pivot_root(_c(new_root), _c(put_old)), f"pivot_root (old root to {put_old}) into",
           new_root)


def sethostname(name: str) -> None:
    """Set the hostname of the current UTS namespace."""
    data = _c(name)
    _check(_native().lib.sethostname(data, len(data)), f"sethostname {name}")


@functools.lru_cache(maxsize=None)
def cap_last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


def pause_binary() -> str:
    """Absolute path of ``minipod-pause``: ``$MINIPOD_PAUSE`` if set, else
    the one installed inside the package (``minipod/bin/``)."""
    path = os.environ.get("MINIPOD_PAUSE") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "bin", "minipod-pause")
    path = os.path.abspath(path)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise MinipodError(f"pause program not found or not executable: {path}", hint=_BUILD_HINT)
    return path


# ------------------------------------------------------------------- spawn

class _Encoder:
    """Fills the flat C records (``struct mp_op``, native/spawn.h) from plan
    steps, keeping every buffer it hands to C alive until the spawn returns."""

    def __init__(self, native):
        self.ffi = native.ffi
        self.lib = native.lib
        self.keep: list = []

    def string(self, value):
        if value is None:
            return self.ffi.NULL
        buf = self.ffi.new("char[]", _c(value))
        self.keep.append(buf)
        return buf

    def string_array(self, values):
        items = [self.string(v) for v in values]
        array = self.ffi.new("char *[]", items + [self.ffi.NULL])
        self.keep.append(array)
        return array

    def root(self, root, path):
        """The ``root`` of a step, checked here so that a plan whose path
        lies outside its root fails with a clear message, not EINVAL."""
        if root is None:
            return self.ffi.NULL
        base = os.path.normpath(root)
        norm = os.path.normpath(path)
        if norm != base and not norm.startswith(base.rstrip("/") + "/"):
            raise MinipodError(f"spawn plan: {path} is not inside the root {root}")
        return self.string(root)

    def fill(self, rec, op) -> None:
        from minipod import plan as p
        lib = self.lib
        rec.optional = 1 if getattr(op, "optional", False) else 0
        path = getattr(op, "target" if isinstance(op, p.Mount) else "path", None)
        rec.root = self.root(getattr(op, "root", None), path)
        if isinstance(op, p.SetNs):
            rec.kind, rec.fd, rec.flags = lib.MP_SETNS, op.fd, op.nstype
        elif isinstance(op, p.Clone):
            rec.kind, rec.flags = lib.MP_CLONE, op.flags
        elif isinstance(op, p.Unshare):
            rec.kind, rec.flags = lib.MP_UNSHARE, op.flags
        elif isinstance(op, p.Mount):
            rec.kind, rec.flags = lib.MP_MOUNT, op.flags
            rec.a, rec.b = self.string(op.source), self.string(op.target)
            rec.c, rec.d = self.string(op.fstype), self.string(op.data)
        elif isinstance(op, p.Umount):
            rec.kind, rec.b, rec.flags = lib.MP_UMOUNT, self.string(op.target), op.flags
        elif isinstance(op, p.MkDir):
            rec.kind, rec.b, rec.mode = lib.MP_MKDIR, self.string(op.path), op.mode
        elif isinstance(op, p.MkFile):
            rec.kind, rec.b, rec.mode = lib.MP_MKFILE, self.string(op.path), op.mode
        elif isinstance(op, p.MkNod):
            rec.kind, rec.b, rec.mode = lib.MP_MKNOD, self.string(op.path), op.mode
            rec.major, rec.minor = op.major, op.minor
        elif isinstance(op, p.Symlink):
            rec.kind, rec.a, rec.b = lib.MP_SYMLINK, self.string(op.target), self.string(op.path)
        elif isinstance(op, p.WriteFile):
            rec.kind, rec.b, rec.a = lib.MP_WRITEFILE, self.string(op.path), self.string(op.content)
        elif isinstance(op, p.PivotRoot):
            rec.kind, rec.b = lib.MP_PIVOTROOT, self.string(op.new_root)
        elif isinstance(op, p.SetHostname):
            rec.kind, rec.a = lib.MP_SETHOSTNAME, self.string(op.hostname)
        elif isinstance(op, p.LinkUp):
            rec.kind, rec.a = lib.MP_LINKUP, self.string(op.ifname)
        elif isinstance(op, p.SetSid):
            rec.kind = lib.MP_SETSID
        elif isinstance(op, p.SetCtty):
            rec.kind, rec.fd = lib.MP_SETCTTY, op.fd
        elif isinstance(op, p.Dup2):
            rec.kind, rec.fd, rec.target = lib.MP_DUP2, op.fd, op.target
        elif isinstance(op, p.ChDir):
            rec.kind, rec.b = lib.MP_CHDIR, self.string(op.path)
        elif isinstance(op, p.Identity):
            self.fill_identity(rec, op)
        elif isinstance(op, p.NoNewPrivs):
            rec.kind = lib.MP_NONEWPRIVS
        elif isinstance(op, p.Seccomp):
            # Not self.string: the program holds NUL bytes; cffi copies them all.
            program = self.ffi.new("char[]", bytes(op.program))
            self.keep.append(program)
            rec.kind, rec.a, rec.flags = lib.MP_SECCOMP, program, len(op.program) // 8
        elif isinstance(op, p.Exec):
            rec.kind, rec.b = lib.MP_EXEC, self.string(op.path)
            rec.argv, rec.envp = self.string_array(op.argv), self.string_array(op.envp)
            rec.a = self.string(op.search_path)
        else:
            raise MinipodError(f"spawn plan: unknown step {op!r}")

    def fill_identity(self, rec, op) -> None:
        lib = self.lib
        rec.kind, rec.uid, rec.gid = lib.MP_IDENTITY, op.uid, op.gid
        groups = self.ffi.new("unsigned int[]", list(op.groups) or [0])
        self.keep.append(groups)
        rec.groups, rec.ngroups = groups, len(op.groups)
        rec.last_cap = cap_last_cap()
        rec.caps[lib.MP_CAP_BOUNDING] = op.bounding
        rec.caps[lib.MP_CAP_EFFECTIVE] = op.effective
        rec.caps[lib.MP_CAP_PERMITTED] = op.permitted
        rec.caps[lib.MP_CAP_INHERITABLE] = op.inheritable
        rec.caps[lib.MP_CAP_AMBIENT] = op.ambient


def _check_shape(ops) -> None:
    """A plan runs to one Exec at its end and clones at most once; anything
    else would leave steps that never run or processes nobody reaps."""
    from minipod.plan import Clone, Exec
    if not ops or not isinstance(ops[-1], Exec):
        raise MinipodError("spawn plan must end with an Exec step")
    if any(isinstance(op, Exec) for op in ops[:-1]):
        raise MinipodError("spawn plan has an Exec step before its end")
    if sum(isinstance(op, Clone) for op in ops) > 1:
        raise MinipodError("spawn plan has more than one Clone step")


def _logger():
    """The spawn logger, or None while nothing has imported logging: then
    nothing can have configured it either, so its debug lines would be
    dropped anyway, and ``rm`` and ``exec`` need not pay ~5 ms to import it."""
    logging = sys.modules.get("logging")
    return logging.getLogger("minipod.spawn") if logging is not None else None


def spawn(plan) -> int:
    """Carry out ``plan`` (a ``minipod.plan.Plan``) in a new process and
    return the pid of the process that exec'd — a direct child of the
    caller, to be reaped with ``os.waitpid``.

    Raises ``SpawnError(step, op, errno)`` when a step fails in the child
    (nothing is left running), ``KernelError("fork", errno)`` when the
    process could not be created."""
    return start_spawn(plan).finish()


def start_spawn(plan) -> "Spawning":
    """``spawn`` in steps: fork now and return at once, while the child
    carries out the plan. See ``Spawning``."""
    ops = list(plan.ops)
    _check_shape(ops)
    log = _logger()
    if log is not None and log.isEnabledFor(10):  # 10 is logging.DEBUG
        for line in plan.describe():
            log.debug("spawn %s", line)

    native = _native()
    ffi = native.ffi
    encoder = _Encoder(native)
    records = ffi.new("struct mp_op[]", len(ops))
    for i, op in enumerate(ops):
        encoder.fill(records[i], op)
    report_fd = ffi.new("int *")
    failed_errno = ffi.new("int *")
    pid1 = native.lib.mp_spawn_start(records, len(ops), report_fd, failed_errno)
    if pid1 < 0:
        raise KernelError("fork", failed_errno[0])
    # The child has its own copy of the records: the buffers may go now.
    return Spawning(native, ops, pid1, report_fd[0], log)


class Spawning:
    """A plan being carried out by a child. ``clone_pid()`` gives the pid
    of the Clone step's child as soon as it exists, before the plan's later
    steps and its exec: the caller can open that process's new namespaces
    and work in them meanwhile. ``finish()`` must always be called: it
    waits for the exec (or the failure), reaps what must be reaped and
    returns the pid that exec'd."""

    def __init__(self, native, ops, pid1: int, report_fd: int, log):
        self._native, self._ops, self._log = native, ops, log
        self._pid1, self._fd = pid1, report_fd
        self._pid2 = 0
        self._step = native.ffi.new("int *", -1)
        self._errno = native.ffi.new("int *", 0)
        self._read_pid = False
        self._outcome = -1

    def clone_pid(self) -> int:
        """The Clone step's child; raises ``SpawnError`` (after reaping)
        if a step before the clone failed, or one after it whose failure
        the child reported before its parent reported the clone (they
        share the report pipe: either may come first)."""
        from minipod.plan import Clone

        if not any(isinstance(op, Clone) for op in self._ops):
            raise MinipodError("spawn plan: clone_pid() of a plan without a Clone step")
        if not self._read_pid:
            self._read_pid = True
            pid = self._native.lib.mp_spawn_read_pid(self._fd, self._step, self._errno)
            if pid > 0:
                self._pid2 = pid
        if self._pid2:
            return self._pid2
        pid = self.finish()  # raises the failed step's error, if one was reported
        try:  # else it was killed before its Clone step (the plan's Exec comes after): reap it
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise MinipodError("the spawned process died before its Clone step")

    def finish(self) -> int:
        """The pid that exec'd; raises the failure. Calling it again gives
        the same outcome."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._outcome = self._native.lib.mp_spawn_finish(fd, self._pid1, self._pid2, self._step,
                                                             self._errno)
            if self._outcome >= 0 and self._log is not None:
                self._log.debug("spawned pid %d", self._outcome)
        if self._outcome >= 0:
            return self._outcome
        step, err = self._step[0], self._errno[0]
        if 0 <= step < len(self._ops):
            raise SpawnError(step, self._ops[step], err)
        raise KernelError("fork", err)
