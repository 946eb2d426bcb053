"""Undo everything a pod made on the host, from its record alone.

The same function serves the supervisor at the end of a pod's life and
``minipod rm -f`` after a supervisor died (even by SIGKILL): it needs only
the pod's state on disk. Each step is idempotent and tolerates what is
already gone, so it can run twice, or after a start that failed half-way.
"""

from __future__ import annotations

import os
import signal
import sys


def _debug(msg: str, *args) -> None:
    # Not a module-level logger: importing logging costs ~5 ms of every
    # ``rm``, and before something imports it (``--debug``, the supervisor)
    # nothing can have configured it, so a debug line would be dropped anyway.
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("minipod.teardown").debug(msg, *args)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts_under(directory: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below ``directory``, deepest first."""
    directory = os.path.realpath(directory)
    found = []
    try:
        with open(mountinfo) as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point == directory or point.startswith(directory + "/"):
                    found.append(point)
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def unmount_all_under(directory: str) -> None:
    from . import _sys
    from .errors import KernelError

    # A path can be mounted over more than once; repeat until none is left.
    for _ in range(8):
        points = mounts_under(directory)
        if not points:
            return
        for point in points:
            _debug("umount %s", point)
            try:
                _sys.umount2(point, 2)  # MNT_DETACH: a busy mount must not stop the teardown
            except KernelError as exc:
                _debug("umount %s: %s", point, exc)


def remove_tree(path: str) -> None:
    """``rm -rf`` that refuses to cross into a mount point (a volume still
    mounted must never have the host's files under it deleted): every
    directory is checked before anything is deleted. Not ``shutil.rmtree``:
    importing shutil costs ~5 ms of every ``rm`` here, and the walk that
    checks the mounts is needed anyway."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    root_dev = os.lstat(path).st_dev
    for current, dirs, _files in os.walk(path):
        for d in dirs:
            full = os.path.join(current, d)
            if os.path.ismount(full) or os.lstat(full).st_dev != root_dev:
                from .errors import StateError

                raise StateError(f"refusing to delete {path}: {full} is still a mount point")
    # Deepest first; os.walk does not follow symbolic links to directories,
    # which are listed among ``dirs`` and removed as the links they are.
    for current, dirs, files in os.walk(path, topdown=False):
        for name in files:
            _remove(os.unlink, os.path.join(current, name))
        for name in dirs:
            full = os.path.join(current, name)
            _remove(os.unlink if os.path.islink(full) else os.rmdir, full)
    _remove(os.rmdir, path)


def _remove(remove, path: str) -> None:
    try:
        remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # go on: remove as much as can be removed
        _debug("remove %s: %s", path, exc)


SUPERVISOR_NAME = "minipod-superv"  # its comm (15 characters at most), set with prctl


def is_supervisor(pid: int | None) -> bool:
    """Checked by process name, so a reused pid of some other program is
    never signalled."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == SUPERVISOR_NAME
    except OSError:
        return False


def kill_supervisor(pid: int | None) -> None:
    if is_supervisor(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def release_host_resources(config, state: dict) -> None:
    """Kill every process of the pod (they are all in its cgroup: pause,
    containers, exec'd commands), unmount what is mounted under its data
    directory, remove its cgroups, and disconnect it from the network.
    ``config`` gives the paths; the names the pod was made with (cgroup
    parent, bridge, subnet) come from its record, so a later command with
    other flags still cleans up the right things."""
    cgroup_parent = state.get("cgroupParent") or config.cgroup_parent
    cg = None
    processes_gone = False
    if state.get("cgroupId"):
        from .cgroups import open_pod_cgroup

        cg = open_pod_cgroup(parent=cgroup_parent, pod_id=state["cgroupId"])
        if cg.exists():
            # Every process first, the network after: the pod's network
            # namespace ends with its last process, and the kernel then
            # unlinks the veth pair by itself within ~1-2 ms here, whereas
            # deleting a veth whose namespace is alive waits for RCU grace
            # periods (16-40 ms). The veth is deleted below only if
            # something still holds the namespace.
            processes_gone = cg.kill_all(signal.SIGKILL)
        else:
            cg = None
    release_network(config, state, namespace_ended=processes_gone)
    if cg is not None:
        cg.destroy()
    if state.get("dataDir"):
        unmount_all_under(state["dataDir"])


def pod_network_config(config, state: dict):
    from .network import PodNetworkConfig

    return PodNetworkConfig(bridge=state.get("bridge") or config.bridge,
                            subnet=state.get("subnet") or config.subnet,
                            state_dir=os.path.join(config.run_dir, "net"))


def release_network(config, state: dict, namespace_ended: bool = False) -> None:
    """The pod's veth, address, hostPort claims and rules; the record may
    lack what a dead supervisor never wrote: the names are derived."""
    pod = state.get("pod")
    if not pod:
        return
    from .network import teardown_pod_network

    meta = pod["metadata"]
    teardown_pod_network(pod_network_config(config, state), f"{meta['namespace']}_{meta['name']}",
                         state.get("network"), namespace_ended=namespace_ended)
