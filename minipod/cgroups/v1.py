"""cgroup v1 (legacy and hybrid hosts): one directory per controller hierarchy.

The same tree is made in each hierarchy minipod uses, so a process joins a
cgroup by writing to one ``cgroup.procs`` per hierarchy. Controllers mounted
together (``cpu,cpuacct``) share one hierarchy and are handled once.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

from ..errors import CgroupError
from . import fs
from .base import Cgroup, cgroup_error, log, make_dir, read_int, read_key_values, read_text, working_set
from .detect import Layout

# The hierarchies minipod makes its tree in, in this order.
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "cpuset", "devices")
# Where pids are counted: freezer first, as kill_all freezes that hierarchy.
_PIDS_PREFERENCE = ("freezer", "pids", "memory", "cpu", "cpuacct", "blkio", "cpuset")
# A new cpuset starts with no CPUs and no memory nodes, and no process can
# join it until both are set; they are copied from the parent.
_CPUSET_FILES = ("cpuset.cpus", "cpuset.mems")
# Freezing normally takes microseconds; a task stuck in the kernel can keep
# the state at FREEZING, in which case the kill goes ahead anyway.
_FREEZE_WAIT = 1.0
# A memory limit at or above this is the kernel's "unlimited".
_UNLIMITED = 2**62


def hierarchy_roots(layout: Layout) -> list[str]:
    """The mount point of each v1 hierarchy minipod uses, without duplicates."""
    roots: list[str] = []
    for controller in CONTROLLERS:
        mountpoint = layout.mounts.get(controller)
        if mountpoint and mountpoint not in roots:
            roots.append(mountpoint)
    if not roots:
        raise CgroupError("no cgroup v1 controller that minipod uses is mounted "
                          f"(looked for {', '.join(CONTROLLERS)})")
    return roots


class V1Cgroup(Cgroup):
    """A cgroup made in every v1 hierarchy of ``layout``."""

    kind = "v1"

    def __init__(self, layout: Layout, relpath: str, *, delegate: bool = False):
        super().__init__(relpath, delegate=delegate)
        self.layout = layout
        self._roots = hierarchy_roots(layout)

    def _with_path(self, relpath: str, *, delegate: bool) -> "V1Cgroup":
        return V1Cgroup(self.layout, relpath, delegate=delegate)

    def roots(self) -> list[str]:
        return list(self._roots)

    def pids_root(self) -> str:
        for controller in _PIDS_PREFERENCE:
            if controller in self.layout.mounts:
                return self.layout.mounts[controller]
        return self._roots[0]

    def controller_dir(self, controller: str) -> str | None:
        mountpoint = self.layout.mounts.get(controller)
        # Only the hierarchies minipod makes its tree in hold this cgroup.
        if not mountpoint or mountpoint not in self._roots:
            return None
        return os.path.join(mountpoint, self.relpath)

    def missing_controller(self, controller: str) -> str:
        return f"no cgroup v1 {controller} hierarchy is mounted"

    def stats(self) -> dict:
        def path(controller, name):
            directory = self.controller_dir(controller)
            return os.path.join(directory, name) if directory else ""

        cpu = read_key_values(path("cpu", "cpu.stat"))
        memory = read_key_values(path("memory", "memory.stat"))
        usage = read_int(path("memory", "memory.usage_in_bytes"))
        limit = read_int(path("memory", "memory.limit_in_bytes"))
        throttled = cpu.get("throttled_time")
        return {
            "cpu_usage_ns": read_int(path("cpuacct", "cpuacct.usage")),
            "cpu_periods": cpu.get("nr_periods"),
            "cpu_throttled_periods": cpu.get("nr_throttled"),
            "cpu_throttled_ns": throttled,
            "memory_usage_bytes": usage,
            "memory_working_set_bytes": working_set(usage, memory.get("total_inactive_file")),
            # No limit reads back as the page counter's maximum, ~2^63.
            "memory_limit_bytes": limit if limit is not None and limit < _UNLIMITED else None,
            "pids": read_int(path("pids", "pids.current")),
        }

    def create(self) -> None:
        cpuset_root = self.layout.mounts.get("cpuset")
        parts = self.relpath.split("/")
        for root in self._roots:
            parent = root
            for part in parts:
                path = os.path.join(parent, part)
                make_dir(path)
                if root == cpuset_root:
                    _inherit_cpuset(path, parent)
                parent = path

    def memory_events(self) -> dict[str, int]:
        memory = self.controller_dir("memory")
        return read_key_values(os.path.join(memory, "memory.oom_control")) if memory else {}

    @contextlib.contextmanager
    def _frozen(self, deadline: float) -> Iterator[None]:
        freezer = self.controller_dir("freezer")
        state = os.path.join(freezer, "freezer.state") if freezer else None
        if not state or not os.path.exists(state):
            yield
            return
        try:
            _write_state(state, "FROZEN")
            _wait_frozen(state, min(deadline, time.monotonic() + _FREEZE_WAIT))
            yield
        finally:
            # Always thaw: a SIGKILLed task only dies once it runs again.
            _write_state(state, "THAWED")


def _inherit_cpuset(path: str, parent: str) -> None:
    for name in _CPUSET_FILES:
        mine = read_text(os.path.join(path, name))
        if mine is None or mine.strip():
            continue  # not a cpuset file here, or already set
        inherited = (read_text(os.path.join(parent, name)) or "").strip()
        if not inherited:
            continue
        target = os.path.join(path, name)
        try:
            fs.write(target, inherited)
        except OSError as exc:
            raise cgroup_error(f"set {name} of", path, exc) from None
        log.debug("%s -> %s", inherited, target)


def _write_state(state_file: str, value: str) -> None:
    try:
        fs.write(state_file, value)
        log.debug("%s -> %s", value, state_file)
    except FileNotFoundError:
        pass  # removed meanwhile: nothing left to freeze or thaw
    except OSError as exc:
        # Killing without freezing still works; it only races with forks.
        log.warning("cgroup: cannot write %s to %s: %s", value, state_file, exc.strerror)


def _wait_frozen(state_file: str, until: float) -> None:
    while (read_text(state_file) or "FROZEN").strip() == "FREEZING" and time.monotonic() < until:
        time.sleep(0.001)
