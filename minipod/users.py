"""Who a container runs as: uid, gid, supplementary groups and home.

The image's ``User`` may be a name (``nobody``), a number, or ``user:group``;
names are looked up in the image's own ``/etc/passwd`` and ``/etc/group``
(the topmost layer that has the file wins), never in the host's.
"""

from __future__ import annotations

import os

from .errors import MinipodError
from .record import Record


class User(Record):
    """A uid, a primary gid, supplementary groups and a home directory."""

    uid: int = 0
    gid: int = 0
    groups: tuple = ()
    home: str = "/"


def _image_file(layer_dirs: list[str], path: str) -> list[list[str]]:
    """Rows of a colon-separated file from the topmost layer holding it. A
    symlink in a layer is not followed: it would resolve on the host."""
    for layer in reversed(layer_dirs):
        full = os.path.join(layer, path.lstrip("/"))
        if os.path.islink(full) or not os.path.realpath(full).startswith(os.path.realpath(layer) + os.sep):
            return []  # a symlink on the way (say /etc -> /) would lead to the host's file
        if os.path.isfile(full):
            with open(full, errors="replace") as f:
                return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    return []


def _lookup_group(groups: list[list[str]], spec: str) -> int:
    if spec.isdigit():
        return int(spec)
    for row in groups:
        if row[0] == spec and len(row) > 2 and row[2].isdigit():
            return int(row[2])
    raise MinipodError(f"unable to find group {spec}: no matching entries in the image's /etc/group")


def resolve_user(layer_dirs: list[str], image_user: str | None, run_as_user: int | None = None,
                 run_as_group: int | None = None, supplemental: list[int] | None = None,
                 image_groups: bool = True) -> User:
    """The securityContext's runAsUser/runAsGroup win over the image's User.
    ``image_groups=False`` is supplementalGroupsPolicy Strict: the groups the
    image's /etc/group gives the user are left out."""
    passwd = _image_file(layer_dirs, "/etc/passwd")
    groups = _image_file(layer_dirs, "/etc/group")
    user_part, _, group_part = (image_user or "").partition(":")
    uid, gid, home = 0, None, None
    if user_part:
        if user_part.isdigit():
            uid = int(user_part)
        else:
            row = next((r for r in passwd if r[0] == user_part and len(r) > 3), None)
            if row is None:
                raise MinipodError(f"unable to find user {user_part}: no matching entries in the image's /etc/passwd")
            uid, gid = int(row[2]), int(row[3])
            home = row[5] if len(row) > 5 else None
    if run_as_user is not None:
        uid, gid, home = run_as_user, None, None
    row = next((r for r in passwd if len(r) > 3 and r[2] == str(uid)), None)
    if gid is None:
        gid = int(row[3]) if row and row[3].isdigit() else 0
    if home is None:
        home = row[5] if row and len(row) > 5 and row[5] else "/"
    if group_part:
        gid = _lookup_group(groups, group_part)
    if run_as_group is not None:
        gid = run_as_group
    # Supplementary groups the image's /etc/group lists the user in, as Docker does.
    name = row[0] if row and image_groups else None
    extra = [int(r[2]) for r in groups if name and len(r) > 3 and r[2].isdigit()
             and name in r[3].split(",")]
    extra += list(supplemental or [])
    return User(uid=uid, gid=gid, groups=tuple(dict.fromkeys(g for g in extra if g != gid)), home=home)
