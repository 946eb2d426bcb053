"""What a pod or container cgroup can do, whatever the cgroup version.

A ``Cgroup`` is one node of minipod's tree, ``<parent>/<pod-id>`` for a pod
and ``<parent>/<pod-id>/<name>`` for the pause process and each container,
present in one directory per hierarchy it lives in (one for cgroup v2,
several for v1). The version-specific parts — which directories, how they are
prepared, how a tree is frozen or killed, where OOM kills are counted — are
in ``v1.py`` and ``v2.py``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
from abc import ABC, abstractmethod
from typing import Iterator

from ..errors import CgroupError
from . import fs


class _Log:
    """The ``minipod.cgroups`` logger, without importing logging up front:
    that costs ~5 ms, which ``minipod rm`` would pay to log nothing. Only a
    logging configuration can show a debug line, and none can exist before
    something imports logging, so until then debug lines are dropped exactly
    as logging itself would drop them. Warnings always go through logging."""

    name = "minipod.cgroups"

    def debug(self, msg: str, *args) -> None:
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.getLogger(self.name).debug(msg, *args)

    def warning(self, msg: str, *args) -> None:
        import logging

        logging.getLogger(self.name).warning(msg, *args)


log = _Log()

# Polling while the kernel tears processes down: start fast, back off a bit.
_FIRST_POLL = 0.002
_MAX_POLL = 0.05


def cgroup_error(operation: str, path: str, exc: OSError) -> CgroupError:
    """``CgroupError`` for a failed kernel call, naming what and where, e.g.
    ``create cgroup /sys/fs/cgroup/memory/minipod/x: Permission denied``."""
    err = CgroupError(f"{operation} {path}: {exc.strerror or os.strerror(exc.errno or 0)}")
    err.errno = exc.errno
    return err


def check_name(name: str, what: str) -> str:
    """A single cgroup directory name: no slash, not ``.``/``..``, not empty."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name:
        raise CgroupError(f"{what} {name!r} is not a valid cgroup name")
    return name


def check_relpath(path: str, what: str) -> str:
    """A relative cgroup path (``minipod`` or ``a/b``), normalised."""
    parts = [p for p in str(path).strip("/").split("/") if p]
    if not parts:
        raise CgroupError(f"{what} {path!r} is not a valid cgroup path")
    for part in parts:
        check_name(part, what)
    return "/".join(parts)


def read_text(path: str) -> str | None:
    """The contents of a cgroup file, or None when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return None  # the cgroup was removed while the file was open
        raise cgroup_error("read", path, exc) from None


def read_pids(procs_file: str) -> list[int]:
    """The pids listed in a ``cgroup.procs`` file (empty when it is gone)."""
    text = read_text(procs_file)
    return [int(tok) for tok in text.split()] if text else []


def read_key_values(path: str) -> dict[str, int]:
    """A flat-keyed cgroup file (``oom_kill 2`` lines) as a dict; {} when absent."""
    values: dict[str, int] = {}
    for line in (read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def read_int(path: str) -> int | None:
    """A one-number cgroup file (``memory.current``, ``pids.max``…); None
    when it is absent or says ``max``."""
    text = (read_text(path) or "").strip()
    try:
        return int(text)
    except ValueError:
        return None


# What ``Cgroup.stats()`` returns; a value is None where the host does not count it.
STAT_KEYS = (
    "cpu_usage_ns",           # CPU time used since the cgroup was made
    "cpu_periods",            # CFS periods with a quota in force
    "cpu_throttled_periods",  # ... of which the quota ran out
    "cpu_throttled_ns",       # time spent throttled
    "memory_usage_bytes",     # everything charged, page cache included
    "memory_working_set_bytes",  # usage - inactive file cache: what kubelet reports and evicts on
    "memory_limit_bytes",     # None when unlimited
    "pids",                   # tasks in the cgroup (threads count)
)


def working_set(usage: int | None, inactive_file: int | None) -> int | None:
    """kubelet's (cAdvisor's) working set: usage minus the inactive file
    cache, which the kernel can drop at once; never below 0."""
    if usage is None:
        return None
    return max(usage - (inactive_file or 0), 0)


def make_dir(path: str) -> bool:
    """Create one cgroup directory; False if it already existed."""
    try:
        fs.mkdir(path)
        log.debug("mkdir %s", path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise cgroup_error("create cgroup", path, exc) from None


def wait_for_exits(pids: list[int], timeout: float) -> bool:
    """Wait until every process of ``pids`` has exited, at most ``timeout``
    seconds. A pidfd turns readable when its process exits, so the caller
    wakes the moment the last one goes instead of at its next poll (a killed
    process can take a dozen milliseconds to leave its cgroup: the last one
    out of a mount namespace waits for an RCU grace period). Returns False
    when there was nothing to wait on — no pidfds (Linux < 5.3), or every
    process had exited already — and the caller should sleep instead."""
    import select

    fds = []
    try:
        for pid in pids:
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                continue
            except (AttributeError, OSError):
                return False
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        pending = set(fds)
        for fd, _ in poller.poll(0):
            poller.unregister(fd)
            pending.discard(fd)
        if not pending:
            return False
        end = time.monotonic() + timeout
        while pending:
            left = end - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                pending.discard(fd)
        return True
    finally:
        for fd in fds:
            os.close(fd)


def signal_pids(pids: list[int], sig: int) -> None:
    """Send ``sig`` to each pid; ones that already exited are fine."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class Cgroup(ABC):
    """One cgroup of minipod's tree (a pod, its pause, or a container).

    ``relpath`` is relative to each hierarchy's mount point. ``delegate`` marks
    a cgroup that will hold child cgroups rather than processes (the pod),
    which on v2 means enabling controllers for its children.
    """

    kind: str

    def __init__(self, relpath: str, *, delegate: bool = False):
        self.relpath = check_relpath(relpath, "cgroup path")
        self.delegate = delegate

    # -- version specific -------------------------------------------------

    @abstractmethod
    def roots(self) -> list[str]:
        """The mount point of every hierarchy this cgroup lives in."""

    @abstractmethod
    def pids_root(self) -> str:
        """The one hierarchy whose ``cgroup.procs`` files are read for pids."""

    @abstractmethod
    def create(self) -> None:
        """Create this cgroup (and its missing ancestors) in every hierarchy;
        idempotent."""

    @abstractmethod
    def memory_events(self) -> dict[str, int]:
        """Memory event counters (``oom_kill`` among them); {} without the
        memory controller."""

    @abstractmethod
    def _with_path(self, relpath: str, *, delegate: bool) -> "Cgroup":
        """The same kind of cgroup at another path."""

    @abstractmethod
    def controller_dir(self, controller: str) -> str | None:
        """This cgroup's directory in the hierarchy of ``controller``; None
        when the host has no such hierarchy."""

    @abstractmethod
    def missing_controller(self, controller: str) -> str:
        """Why ``controller``'s files are not there, for a warning."""

    @abstractmethod
    def stats(self) -> dict:
        """What this cgroup uses now (see ``STAT_KEYS``); None for what the
        host does not count."""

    def _kill_file(self) -> str | None:
        """A file that SIGKILLs the whole subtree when "1" is written to it."""
        return None

    @contextlib.contextmanager
    def _frozen(self, deadline: float) -> Iterator[None]:
        """Hold the subtree still (no forks) while it is signalled."""
        yield

    # -- common -----------------------------------------------------------

    @property
    def path(self) -> str:
        """Display path, e.g. ``/minipod/default_web_1a2b3c4d``."""
        return "/" + self.relpath

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    def dirs(self) -> list[str]:
        """This cgroup's directory in every hierarchy."""
        return [os.path.join(root, self.relpath) for root in self.roots()]

    def child(self, name: str) -> "Cgroup":
        """A cgroup below this one (``pause`` or a container name); not created."""
        return self._with_path(f"{self.relpath}/{check_name(name, 'cgroup name')}", delegate=False)

    def exists(self) -> bool:
        """True if the cgroup exists in any hierarchy (so half-made ones count)."""
        return any(os.path.isdir(d) for d in self.dirs())

    def procs_files(self) -> list[str]:
        """Every ``cgroup.procs`` a process writes "0" into to join this cgroup."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs()]

    def add(self, pid: int) -> None:
        """Move the running process ``pid`` into this cgroup."""
        for procs in self.procs_files():
            try:
                fs.write(procs, str(pid))
            except OSError as exc:
                raise cgroup_error(f"move pid {pid} into", procs, exc) from None
            log.debug("pid %d -> %s", pid, procs)

    def pids(self) -> list[int]:
        """Every pid in this cgroup and the cgroups below it, sorted."""
        top = os.path.join(self.pids_root(), self.relpath)
        found: set[int] = set()
        for dirpath, _dirnames, _files in os.walk(top):
            found.update(read_pids(os.path.join(dirpath, "cgroup.procs")))
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes of this cgroup the kernel OOM-killed so far."""
        return self.memory_events().get("oom_kill", 0)

    def oom_killed(self, since: int = 0) -> bool:
        """True when the kernel OOM-killed a process of this cgroup (after
        ``since`` kills: a restarted container reuses its cgroup, and the
        counter never goes down)."""
        return self.oom_kills() > since

    def apply(self, writes) -> list[str]:
        """Write resource limits — ``(controller, file, value)`` triples such
        as ``limits.container_limits`` makes — in order, before any process
        joins. A controller the host lacks or did not delegate here does not
        fail the pod: its writes are skipped and reported in ONE warning,
        logged and returned (empty list when everything was written)."""
        from .limits import OPTIONAL_FILES

        skipped: dict[str, list[str]] = {}
        for controller, name, value in writes:
            directory = self.controller_dir(controller)
            if directory is None:
                skipped.setdefault(controller, []).append(f"{name}={value}")
                continue
            target = os.path.join(directory, name)
            try:
                fs.write(target, value)
            except FileNotFoundError:
                if not os.path.isdir(directory):
                    raise CgroupError(f"set {name}: cgroup {directory} does not exist") from None
                if name not in OPTIONAL_FILES:
                    skipped.setdefault(controller, []).append(f"{name}={value}")
                continue
            except OSError as exc:
                raise cgroup_error(f"set {name} to {value} in", directory, exc) from None
            log.debug("%s -> %s", value, target)
        if not skipped:
            return []
        reasons = "; ".join(self.missing_controller(c) for c in skipped)
        values = ", ".join(v for vs in skipped.values() for v in vs)
        warning = f"cgroup {self.path}: not enforced: {values} ({reasons})"
        log.warning("%s", warning)
        return [warning]

    def kill_all(self, sig: int = signal.SIGKILL, timeout: float = 5.0, wait: bool = True) -> bool:
        """Signal every process of the subtree.

        With SIGKILL (and ``wait``), wait (up to ``timeout``) until the cgroup
        is empty, killing again whatever appears meanwhile; other signals are
        sent once and not waited for. Returns True when the cgroup is empty
        afterwards (without waiting: when it was found empty).
        """
        deadline = time.monotonic() + timeout
        kill_file = self._kill_file() if sig == signal.SIGKILL else None
        if kill_file:
            try:
                fs.write(kill_file, "1")
                log.debug("1 -> %s", kill_file)
            except FileNotFoundError:
                kill_file = None  # the cgroup is already gone
            except OSError as exc:
                raise cgroup_error("kill cgroup", kill_file, exc) from None
        if not kill_file and not self._signal_once(sig, deadline):
            return True  # nobody there, so nothing to wait for (``rm`` asks again and again)
        if sig != signal.SIGKILL or not wait:
            return not self.pids()
        return self._wait_empty(deadline)

    def _signal_once(self, sig: int, deadline: float) -> bool:
        """Signal every process (frozen, where the version can). False when
        the cgroup held none."""
        pids = self.pids()
        if pids:
            with self._frozen(deadline):
                signal_pids(self.pids(), sig)
        return bool(pids)

    def _wait_empty(self, deadline: float) -> bool:
        pause = _FIRST_POLL
        while True:
            pids = self.pids()
            if not pids:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not wait_for_exits(pids, min(left, _MAX_POLL)):
                time.sleep(min(left, pause))
                pause = min(pause * 2, _MAX_POLL)
            # Whatever is still there was forked after the first pass, or
            # is a process the kill file missed: kill it directly.
            self._signal_once(signal.SIGKILL, deadline)

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left and remove this cgroup and every cgroup below it,
        in every hierarchy. Idempotent; touches nothing outside this cgroup."""
        if not self.exists():
            return
        deadline = time.monotonic() + timeout
        self.kill_all(signal.SIGKILL, timeout=timeout)
        for top in self.dirs():
            # Deepest first: a cgroup with children cannot be removed.
            below = [dirpath for dirpath, _d, _f in os.walk(top, topdown=False) if dirpath != top]
            for path in below + [top]:
                self._remove_dir(path, deadline)

    def _remove_dir(self, path: str, deadline: float) -> None:
        pause = _FIRST_POLL
        while True:
            try:
                fs.rmdir(path)
                log.debug("rmdir %s", path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                # EBUSY: exiting processes are still being torn down.
                if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                    raise cgroup_error("remove cgroup", path, exc) from None
            signal_pids(read_pids(os.path.join(path, "cgroup.procs")), signal.SIGKILL)
            time.sleep(pause)
            pause = min(pause * 2, _MAX_POLL)
