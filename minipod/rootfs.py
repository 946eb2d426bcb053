"""The steps that build a container's root filesystem in its own mount namespace.

Everything here happens *inside* the container's new mount namespace (the
child has cloned with ``CLONE_NEWNS`` and made ``/`` private first), so the
overlay, ``/proc``, ``/dev`` and ``/sys`` mounts never appear on the host and
vanish with the namespace: there is nothing to unmount at teardown. Only the
pod-wide mounts that containers share (``/dev/shm``, memory-backed volumes)
live on the host; see ``sandbox.py`` and ``volumes.py``.

These steps run before ``pivot_root``, while the process's root is still
the host's ``/``: every path inside the container is given with
``root=rootfs`` so that the native spawn resolves it inside the rootfs
(``openat2`` ``RESOLVE_IN_ROOT``, see ``minipod.plan``) and a symlink in the
image (``/etc -> /``) cannot lead a mkdir, touch or mount onto the host.

The layout follows what runc and crun give a container by default (the OCI
runtime spec's "default filesystems" and "default devices"), so programs
find what they expect.
"""

from __future__ import annotations

import os
import stat

from .plan import (
    MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
    MS_STRICTATIME, MkDir, MkFile, MkNod, Mount, Op, PivotRoot, Symlink,
)
from .record import Record

# Paths hidden from containers, as containerd's and Docker's defaults: they
# leak host information or offer a way to attack the kernel.
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)

# Paths a container may read but not write.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# (name, major, minor): the OCI runtime spec's default devices.
DEFAULT_DEVICES = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
    ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)

DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"),
)


class BindMount(Record):
    """A host path to appear at ``target`` (absolute, inside the container).
    ``source`` may be a staging path holding a checked subPath."""

    source: str
    target: str
    readonly: bool = False
    is_dir: bool = True


def inside(rootfs: str, path: str) -> str:
    """The host-side path of ``path`` in a container whose root is ``rootfs``."""
    return os.path.join(rootfs, path.lstrip("/"))


def overlay_options(lower_dirs: list[str], upper: str, work: str) -> str:
    """overlayfs wants the topmost lower layer first; images list them
    bottom first."""
    lower = ":".join(reversed(lower_dirs))
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def root_steps(rootfs: str, lower_dirs: list[str], upper: str, work: str) -> list[Op]:
    """Stop mount events from leaking to the host, then mount the overlay."""
    return [
        Mount(None, "/", None, MS_REC | MS_PRIVATE),
        Mount("overlay", rootfs, "overlay", 0, overlay_options(lower_dirs, upper, work)),
    ]


def proc_sys_steps(rootfs: str) -> list[Op]:
    proc, sys = inside(rootfs, "/proc"), inside(rootfs, "/sys")
    return [
        MkDir(proc, 0o555, root=rootfs),
        Mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, root=rootfs),
        MkDir(sys, 0o555, root=rootfs),
        Mount("sysfs", sys, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, root=rootfs),
    ]


def dev_steps(rootfs: str, shm_source: str | None) -> list[Op]:
    """A fresh tmpfs ``/dev`` with only the default devices, a private devpts
    (so a container cannot reach the host's terminals), the pod's shared
    ``/dev/shm`` and an mqueue of the pod's IPC namespace."""
    dev = inside(rootfs, "/dev")
    steps: list[Op] = [
        MkDir(dev, root=rootfs),
        Mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k", root=rootfs),
    ]
    for name, major, minor in DEFAULT_DEVICES:
        steps.append(MkNod(f"{dev}/{name}", stat.S_IFCHR | 0o666, major, minor, root=rootfs))
    for target, name in DEV_SYMLINKS:
        steps.append(Symlink(target, f"{dev}/{name}", root=rootfs))
    steps += [
        MkDir(f"{dev}/pts", root=rootfs),
        Mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620,gid=5", root=rootfs),
        MkDir(f"{dev}/mqueue", root=rootfs),
        Mount("mqueue", f"{dev}/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, root=rootfs),
        MkDir(f"{dev}/shm", 0o1777, root=rootfs),
    ]
    if shm_source:
        steps.append(Mount(shm_source, f"{dev}/shm", None, MS_BIND | MS_REC, root=rootfs))
    else:
        steps.append(Mount("shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           "mode=1777,size=65536k", root=rootfs))
    return steps


def bind_steps(rootfs: str, mount: BindMount) -> list[Op]:
    """Bind a host path into the container; read-only needs a second,
    remounting step because the kernel ignores MS_RDONLY on the first.
    The target is resolved inside ``rootfs`` (``root=``): the image's
    symlinks must not lead the mkdir, touch or mount onto the host."""
    target = inside(rootfs, mount.target)
    make = MkDir(target, root=rootfs) if mount.is_dir else MkFile(target, root=rootfs)
    steps: list[Op] = [make, Mount(mount.source, target, None, MS_BIND | MS_REC, root=rootfs)]
    if mount.readonly:
        steps.append(Mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                           root=rootfs))
    return steps


def mask_steps(rootfs: str, masked=MASKED_PATHS, readonly=READONLY_PATHS) -> list[Op]:
    """Hide or freeze kernel interfaces. The kernel inside is the host's, so
    whether a path is a directory is read from the host's /proc and /sys.
    Paths a kernel lacks are skipped (optional steps). Targets are
    resolved inside ``rootfs``, like the /proc and /sys mounts they cover:
    an image whose /proc is a symlink gets its masks where its proc is."""
    steps: list[Op] = []
    for path in masked:
        target = inside(rootfs, path)
        if os.path.isdir(path):
            steps.append(Mount("tmpfs", target, "tmpfs", MS_RDONLY, None, optional=True, root=rootfs))
        else:
            steps.append(Mount("/dev/null", target, None, MS_BIND, optional=True, root=rootfs))
    for path in readonly:
        target = inside(rootfs, path)
        steps.append(Mount(target, target, None, MS_BIND | MS_REC, optional=True, root=rootfs))
        steps.append(Mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
                           | MS_NODEV | MS_NOEXEC, optional=True, root=rootfs))
    return steps


def pivot_steps(rootfs: str, readonly_root: bool) -> list[Op]:
    steps: list[Op] = [PivotRoot(rootfs)]
    if readonly_root:
        steps.append(Mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY))
    return steps


def container_rootfs_steps(
    *,
    rootfs: str,
    lower_dirs: list[str],
    upper: str,
    work: str,
    binds: list[BindMount],
    shm_source: str | None,
    privileged: bool = False,
    readonly_root: bool = False,
) -> list[Op]:
    """Every mount step of a container, in the order they must happen:
    overlay root, /proc, /sys, /dev, the pod's files and volumes, masks,
    then pivot_root. Masks come after the volumes so that a volume mounted
    over /proc cannot undo them."""
    steps = root_steps(rootfs, lower_dirs, upper, work)
    steps += proc_sys_steps(rootfs)
    steps += dev_steps(rootfs, shm_source)
    for bind in binds:
        steps += bind_steps(rootfs, bind)
    if not privileged:
        steps += mask_steps(rootfs)
    steps += pivot_steps(rootfs, readonly_root)
    return steps
