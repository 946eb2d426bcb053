"""cgroup v2 (unified hosts): one tree, controllers enabled down the path.

A v2 cgroup with controllers enabled for its children may not hold
processes itself ("no internal processes"), which is why the pod cgroup
holds only child cgroups: ``pause`` and one per container.
"""

from __future__ import annotations

import errno
import os

from ..errors import CgroupError
from . import fs
from .base import Cgroup, cgroup_error, log, make_dir, read_int, read_key_values, read_text, working_set
from .detect import Layout

# Controllers a pod's children get, when the host offers them.
CONTROLLERS = ("cpu", "memory", "pids", "io")
# Enabling can fail for reasons that do not stop a pod from running (a
# process already in that cgroup, a controller gone meanwhile, a threaded
# subtree); the pod then runs without that controller, with a warning.
_TOLERATED = {errno.EBUSY, errno.ENOENT, errno.EINVAL, errno.EOPNOTSUPP}


class V2Cgroup(Cgroup):
    """A cgroup in the unified hierarchy of ``layout``."""

    kind = "v2"

    def __init__(self, layout: Layout, relpath: str, *, delegate: bool = False):
        super().__init__(relpath, delegate=delegate)
        if not layout.unified:
            raise CgroupError("no cgroup2 filesystem is mounted")
        self.layout = layout
        self.root = layout.unified

    def _with_path(self, relpath: str, *, delegate: bool) -> "V2Cgroup":
        return V2Cgroup(self.layout, relpath, delegate=delegate)

    def roots(self) -> list[str]:
        return [self.root]

    def pids_root(self) -> str:
        return self.root

    def create(self) -> None:
        # Every ancestor (the mount root included) hands controllers down;
        # the cgroup itself only when it will have children (the pod).
        enable_controllers(self.root)
        path = self.root
        parts = self.relpath.split("/")
        for i, part in enumerate(parts):
            path = os.path.join(path, part)
            make_dir(path)
            if i < len(parts) - 1 or self.delegate:
                enable_controllers(path)

    def controller_dir(self, controller: str) -> str | None:
        # One tree: a controller's files appear once the parent enables it.
        return os.path.join(self.root, self.relpath)

    def missing_controller(self, controller: str) -> str:
        offered = (read_text(os.path.join(self.root, "cgroup.controllers")) or "").split()
        if controller not in offered:
            return f"the host's cgroup2 tree offers no {controller} controller"
        parent = "/" + self.relpath.rsplit("/", 1)[0] if "/" in self.relpath else "/"
        return f"the {controller} controller is not delegated to {parent}'s children"

    def stats(self) -> dict:
        directory = os.path.join(self.root, self.relpath)
        cpu = read_key_values(os.path.join(directory, "cpu.stat"))
        memory = read_key_values(os.path.join(directory, "memory.stat"))
        usage = read_int(os.path.join(directory, "memory.current"))

        def ns(usec):
            return usec * 1000 if usec is not None else None

        return {
            "cpu_usage_ns": ns(cpu.get("usage_usec")),
            "cpu_periods": cpu.get("nr_periods"),
            "cpu_throttled_periods": cpu.get("nr_throttled"),
            "cpu_throttled_ns": ns(cpu.get("throttled_usec")),
            "memory_usage_bytes": usage,
            "memory_working_set_bytes": working_set(usage, memory.get("inactive_file")),
            "memory_limit_bytes": read_int(os.path.join(directory, "memory.max")),
            "pids": read_int(os.path.join(directory, "pids.current")),
        }

    def memory_events(self) -> dict[str, int]:
        return read_key_values(os.path.join(self.root, self.relpath, "memory.events"))

    def _kill_file(self) -> str | None:
        # cgroup.kill (Linux 5.14) kills the subtree atomically, forks included.
        path = os.path.join(self.root, self.relpath, "cgroup.kill")
        return path if os.path.exists(path) else None


def enable_controllers(path: str) -> None:
    """Enable the wanted controllers the cgroup at ``path`` offers but has
    not yet enabled for its children."""
    available = set((read_text(os.path.join(path, "cgroup.controllers")) or "").split())
    subtree = os.path.join(path, "cgroup.subtree_control")
    enabled = set((read_text(subtree) or "").split())
    for controller in CONTROLLERS:
        if controller not in available or controller in enabled:
            continue
        # One write per controller so that one refusal does not cost the others.
        try:
            fs.write(subtree, f"+{controller}")
            log.debug("+%s -> %s", controller, subtree)
        except OSError as exc:
            if exc.errno not in _TOLERATED:
                raise cgroup_error(f"enable {controller} in", subtree, exc) from None
            log.warning("cgroup: cannot enable %s in %s: %s", controller, subtree, exc.strerror)
