"""Find how this host mounts cgroups: unified (v2), hybrid or legacy (v1).

Everything comes from ``/proc/self/mountinfo``: the mount points of type
``cgroup`` (v1, whose super options name the controllers bound to that
hierarchy) and ``cgroup2``. Passing another mountinfo file and root lets unit
tests describe any host with a temp dir.
"""

from __future__ import annotations

import os
import re

from ..errors import CgroupError
from ..record import Record

UNIFIED = "unified"
HYBRID = "hybrid"
LEGACY = "legacy"

DEFAULT_MOUNTINFO = "/proc/self/mountinfo"
DEFAULT_ROOT = "/sys/fs/cgroup"

# v1 super options that name a controller. Everything else in those options
# (rw, noprefix, clone_children, name=systemd, release_agent=…) is not one.
V1_CONTROLLER_NAMES = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
    "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc", "debug",
})

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class Layout:
    """How cgroups are mounted.

    ``kind`` is ``"unified"``, ``"hybrid"`` or ``"legacy"``. ``mounts`` maps each
    controller minipod may use to the mount point of its hierarchy: the v1
    hierarchies on hybrid and legacy hosts, the cgroup2 root (for the
    controllers it offers) on unified ones. ``unified`` is the cgroup2 mount
    point, or None when there is none. (A plain class, not a dataclass: it is
    on the path of every ``run`` and ``rm``.)
    """

    __slots__ = ("kind", "mounts", "unified")

    def __init__(self, kind: str, mounts: dict[str, str] | None = None, unified: str | None = None):
        self.kind = kind
        self.mounts = {} if mounts is None else mounts
        self.unified = unified

    def __eq__(self, other):
        if not isinstance(other, Layout):
            return NotImplemented
        return (self.kind, self.mounts, self.unified) == (other.kind, other.mounts, other.unified)

    __hash__ = None  # ``mounts`` is a dict

    def __repr__(self) -> str:
        return f"Layout(kind={self.kind!r}, mounts={self.mounts!r}, unified={self.unified!r})"


class CgroupMount(Record):
    """One cgroup or cgroup2 mount line of mountinfo."""

    mountpoint: str
    fstype: str
    controllers: tuple = ()


def _unescape(field_text: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \040-style octal.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup mounts in mountinfo ``text``, in mount order. A mount point
    that is mounted over keeps only its last (visible) mount."""
    found: dict[str, CgroupMount] = {}
    for line in text.splitlines():
        tokens = line.split()
        try:
            # Optional fields (shared:N, master:N…) end at a lone "-".
            sep = tokens.index("-", 6)
            fstype = tokens[sep + 1]
        except (ValueError, IndexError):
            continue
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mountpoint = _unescape(tokens[4])
        controllers: tuple[str, ...] = ()
        if fstype == "cgroup" and len(tokens) > sep + 3:
            options = tokens[sep + 3].split(",")
            controllers = tuple(o for o in options if o in V1_CONTROLLER_NAMES)
        found.pop(mountpoint, None)
        found[mountpoint] = CgroupMount(mountpoint, fstype, controllers)
    return list(found.values())


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _read_controllers(unified: str) -> list[str]:
    try:
        with open(os.path.join(unified, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []


# The host's layout, once per process: it does not change while minipod runs,
# and ``rm`` and the supervisor would otherwise parse mountinfo several times.
_host_layouts: dict[str, Layout] = {}


def detect_layout(mountinfo_path: str = DEFAULT_MOUNTINFO, root: str = DEFAULT_ROOT) -> Layout:
    """Detect the cgroup layout from ``mountinfo_path``.

    Mounts at or under ``root`` are preferred; cgroups mounted elsewhere are
    used only when nothing is mounted under ``root`` (old hosts with
    ``/cgroup``). Any v1 controller hierarchy makes the host hybrid (when a
    cgroup2 is mounted too) or legacy; otherwise it is unified. The host's
    own layout (the default ``mountinfo_path``) is remembered per process.
    """
    if mountinfo_path != DEFAULT_MOUNTINFO:
        return _detect(mountinfo_path, root)
    layout = _host_layouts.get(root)
    if layout is None:
        layout = _host_layouts[root] = _detect(mountinfo_path, root)
    return layout


def _detect(mountinfo_path: str, root: str) -> Layout:
    try:
        with open(mountinfo_path) as f:
            text = f.read()
    except OSError as exc:
        raise CgroupError(f"read {mountinfo_path}: {exc.strerror}") from None
    root = os.path.normpath(root)
    mounts = parse_mountinfo(text)
    preferred = [m for m in mounts if _under(m.mountpoint, root)]
    candidates = preferred or mounts

    v1: dict[str, str] = {}
    for m in candidates:
        if m.fstype == "cgroup":
            for controller in m.controllers:
                v1.setdefault(controller, m.mountpoint)
    v2 = [m.mountpoint for m in candidates if m.fstype == "cgroup2"]
    # The cgroup2 mounted at root itself is the real unified tree; others
    # (e.g. /sys/fs/cgroup/unified on hybrid hosts) come after it.
    v2.sort(key=lambda mp: mp != root)
    unified = v2[0] if v2 else None

    if v1:
        return Layout(kind=HYBRID if unified else LEGACY, mounts=v1, unified=unified)
    if unified:
        return Layout(kind=UNIFIED, mounts={c: unified for c in _read_controllers(unified)},
                      unified=unified)
    raise CgroupError(f"no cgroup filesystem is mounted (read {mountinfo_path})",
                      hint="mount cgroup2 on /sys/fs/cgroup")
