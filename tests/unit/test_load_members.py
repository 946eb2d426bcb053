"""image load's own entry checks, for Pythons without tarfile's filters
(before 3.11.4): the same refusals as the ``data`` filter."""

import io
import tarfile

import pytest

from minipod.errors import ImageError
from minipod.images.load import _members_inside


def _archive(*members: tarfile.TarInfo) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r")


def _entry(name, kind=tarfile.REGTYPE, linkname="", mode=0o644, size=0):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.size = kind, linkname, mode, size
    info.uid = info.gid = 1234
    return info


@pytest.mark.parametrize("bad", [
    _entry("../escape", size=1),
    _entry("/etc/evil", size=1),
    _entry("a/../../escape", size=1),
    _entry("link", tarfile.SYMTYPE, "../../etc/passwd"),
    _entry("link", tarfile.SYMTYPE, "/etc/passwd"),
    _entry("hard", tarfile.LNKTYPE, "../outside"),
    _entry("dev", tarfile.CHRTYPE),
    _entry("fifo", tarfile.FIFOTYPE),
], ids=["dotdot", "absolute", "dotdot-inside", "symlink-out", "symlink-absolute", "hardlink-out", "device", "fifo"])
def test_entries_that_leave_the_archive_or_are_devices_are_refused(bad):
    with pytest.raises(ImageError, match="image load: x.tar: entry"):
        _members_inside(_archive(_entry("ok", size=1), bad), "x.tar")


def test_ordinary_entries_pass_without_owner_or_special_bits():
    tar = _archive(_entry("blobs", tarfile.DIRTYPE, mode=0o777), _entry("blobs/f", mode=0o4777, size=1),
                   _entry("blobs/l", tarfile.SYMTYPE, "f"), _entry("blobs/h", tarfile.LNKTYPE, "blobs/f"))
    members = _members_inside(tar, "x.tar")
    assert [m.name for m in members] == ["blobs", "blobs/f", "blobs/l", "blobs/h"]
    assert members[0].mode == 0o755 and members[1].mode == 0o755
    assert all(m.uid == 0 and m.gid == 0 for m in members)
