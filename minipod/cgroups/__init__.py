"""minipod's cgroup tree: ``<parent>/<pod-id>/{pause,<container>…}``.

Works on unified (v2), hybrid and legacy (v1) hosts::

    pod = open_pod_cgroup(parent="minipod", pod_id="default_web_1a2b3c4d")
    pod.create()
    app = pod.child("app"); app.create()
    app.procs_files()        # cgroup.procs files a spawn plan writes "0" into
    pod.destroy()
"""

from __future__ import annotations

import errno
import os

from .base import Cgroup, check_name, check_relpath, cgroup_error
from .detect import HYBRID, LEGACY, UNIFIED, Layout, detect_layout
from . import fs

__all__ = [
    "Cgroup", "Layout", "UNIFIED", "HYBRID", "LEGACY", "detect_layout", "open_pod_cgroup",
    "open_cgroup", "list_pod_cgroups", "remove_parent_if_empty", "hierarchy_roots",
]


def hierarchy_roots(layout: Layout) -> list[str]:
    """The mount point of every hierarchy minipod makes its tree in."""
    if layout.kind == UNIFIED:
        return [layout.unified]
    from .v1 import hierarchy_roots as v1_roots
    return v1_roots(layout)


def open_cgroup(relpath: str, *, layout: Layout | None = None, delegate: bool = False) -> Cgroup:
    """The cgroup at ``relpath`` (relative to each hierarchy root); not created."""
    layout = layout or detect_layout()
    if layout.kind == UNIFIED:
        from .v2 import V2Cgroup
        return V2Cgroup(layout, relpath, delegate=delegate)
    from .v1 import V1Cgroup
    return V1Cgroup(layout, relpath, delegate=delegate)


def open_pod_cgroup(parent: str, pod_id: str, layout: Layout | None = None) -> Cgroup:
    """The pod cgroup ``<parent>/<pod_id>`` (not created: call ``create()``).
    ``layout`` None detects the host's layout."""
    parent = check_relpath(parent, "cgroup parent")
    check_name(pod_id, "pod id")
    return open_cgroup(f"{parent}/{pod_id}", layout=layout, delegate=True)


def list_pod_cgroups(parent: str = "minipod", layout: Layout | None = None) -> list[str]:
    """Pod ids that have a cgroup under ``parent`` in any hierarchy (so
    half-made pods are found too), sorted."""
    parent = check_relpath(parent, "cgroup parent")
    layout = layout or detect_layout()
    found: set[str] = set()
    for root in hierarchy_roots(layout):
        top = os.path.join(root, parent)
        try:
            found.update(e.name for e in os.scandir(top) if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise cgroup_error("list cgroup", top, exc) from None
    return sorted(found)


def remove_parent_if_empty(parent: str = "minipod", layout: Layout | None = None) -> bool:
    """Remove the ``parent`` cgroup from every hierarchy where it holds no
    pod. Only the last component of a nested parent is removed: the ones
    above may belong to someone else. True when it is gone everywhere."""
    parent = check_relpath(parent, "cgroup parent")
    layout = layout or detect_layout()
    gone = True
    for root in hierarchy_roots(layout):
        path = os.path.join(root, parent)
        try:
            fs.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # Holds pods (ENOTEMPTY) or processes (EBUSY): it stays.
            if exc.errno not in (errno.ENOTEMPTY, errno.EBUSY, errno.EEXIST):
                raise cgroup_error("remove cgroup", path, exc) from None
            gone = False
    return gone
