"""Safe layer unpacking: traversal, symlink and hard link escapes, whiteouts,
attributes. Runs with or without root; the parts only root can do (owners,
device nodes, trusted xattrs) are checked as root and skipped otherwise."""

import errno
import hashlib
import io
import os
import stat
import tarfile

import pytest

from minipod.errors import ImageError
from minipod.images.unpack import OPAQUE_XATTR, split_member_path, unpack_layer

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (owners, device nodes, trusted.* xattrs)")
MTIME = 1_600_000_000


def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, linkname="", uid=0, gid=0,
           xattrs=None, dev=(0, 0), mtime=MTIME):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.devmajor, info.devminor = dev
    info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in (xattrs or {}).items()}
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def file(name, data=b"", **kw):
    return member(name, tarfile.REGTYPE, data, **kw)


def directory(name, mode=0o755, **kw):
    return member(name, tarfile.DIRTYPE, mode=mode, **kw)


def symlink(name, target, **kw):
    return member(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **kw)


def hardlink(name, target, **kw):
    return member(name, tarfile.LNKTYPE, linkname=target, **kw)


def tar_bytes(*entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


@pytest.fixture
def layer(tmp_path):
    path = tmp_path / "layer"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path):
    """A directory next to the layer that no entry may ever touch."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_text("host file\n")
    return path


_workers = {"count": 0}


@pytest.fixture(autouse=True, params=[0, 3], ids=["one-thread", "file-writer-threads"])
def writer_threads(request):
    """Every test runs twice: files written by the unpacking thread, and by
    the writer threads (whose ordering must give the same result)."""
    _workers["count"] = request.param
    yield request.param


def unpack(layer, *entries):
    return unpack_layer(io.BytesIO(tar_bytes(*entries)), str(layer), what="test layer",
                        workers=_workers["count"])


def test_files_dirs_symlinks_and_modes_are_kept(layer):
    unpack(layer,
           directory("etc/", mode=0o750),
           file("etc/hostname", b"pod\n", mode=0o640),
           file("bin/tool", b"#!/bin/sh\n", mode=0o4755),
           symlink("etc/mtab", "/proc/self/mounts"),
           symlink("bin/sh", "tool"))
    assert (layer / "etc/hostname").read_bytes() == b"pod\n"
    assert stat.S_IMODE(os.lstat(layer / "etc").st_mode) == 0o750
    assert stat.S_IMODE(os.lstat(layer / "etc/hostname").st_mode) == 0o640
    assert stat.S_IMODE(os.lstat(layer / "bin/tool").st_mode) == 0o4755
    # Symlinks are made as they are, never resolved on the host.
    assert os.readlink(layer / "etc/mtab") == "/proc/self/mounts"
    assert os.readlink(layer / "bin/sh") == "tool"
    for path in ("etc", "etc/hostname", "bin/tool", "etc/mtab"):
        assert os.lstat(layer / path).st_mtime == MTIME, path
    # "bin" had no entry of its own: made 0755, like Docker does.
    assert stat.S_IMODE(os.lstat(layer / "bin").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(layer).st_mode) == 0o755


def test_root_entry_sets_the_layer_root_attributes(layer):
    unpack(layer, directory("./", mode=0o700), file("./a", b"x"))
    assert stat.S_IMODE(os.lstat(layer).st_mode) == 0o700
    assert (layer / "a").read_bytes() == b"x"


def test_read_only_directory_still_receives_its_children(layer):
    unpack(layer, directory("ro/", mode=0o555), file("ro/inside", b"data"), directory("ro/sub/", mode=0o500),
           file("ro/sub/deep", b"deep"))
    assert (layer / "ro/inside").read_bytes() == b"data"
    assert stat.S_IMODE(os.lstat(layer / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(layer / "ro/sub").st_mode) == 0o500
    # Children were created after the directory entry, yet its mtime is the tar's.
    assert os.lstat(layer / "ro").st_mtime == MTIME


@pytest.mark.parametrize("name", ["/abs-victim", "/etc/../abs-victim"])
def test_absolute_paths_are_refused(layer, name):
    with pytest.raises(ImageError, match="absolute path"):
        unpack(layer, file(name, b"evil"))


@pytest.mark.parametrize("name", ["../victim", "a/../../victim", "a/b/../../../victim", ".."])
def test_dotdot_components_are_refused(layer, outside, name):
    with pytest.raises(ImageError, match=r"'\.\.'"):
        unpack(layer, directory("a/"), directory("a/b/"), file(name, b"evil"))
    assert not (layer.parent / "victim").exists()


def test_split_member_path():
    assert split_member_path("./a//b/./c") == ["a", "b", "c"]
    assert split_member_path("./") == []
    assert split_member_path(".") == []
    with pytest.raises(ImageError):
        split_member_path("a/..")


@pytest.mark.parametrize("target", ["ABS", "../outside", "../../layer/../outside"])
def test_symlink_in_the_layer_cannot_redirect_a_later_entry(layer, outside, target):
    target = str(outside) if target == "ABS" else target
    with pytest.raises(ImageError, match="symbolic link"):
        unpack(layer, symlink("etc", target), file("etc/secret", b"overwritten"))
    assert (outside / "secret").read_text() == "host file\n"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_directory_replaced_by_a_symlink_is_not_written_through(layer, outside):
    # "a" is first a real directory (its fd gets cached), then the layer
    # replaces it with a symlink to the outside: a later a/x must be refused.
    with pytest.raises(ImageError, match="symbolic link"):
        unpack(layer, directory("a/"), file("a/first", b"1"), symlink("a", str(outside)), file("a/secret", b"evil"))
    assert (outside / "secret").read_text() == "host file\n"


def test_deep_symlink_parent_is_refused(layer, outside):
    with pytest.raises(ImageError, match="symbolic link"):
        unpack(layer, directory("usr/"), symlink("usr/lib", str(outside)), file("usr/lib/x/y", b"evil"))
    assert sorted(os.listdir(outside)) == ["secret"]


def test_entry_under_a_file_is_refused(layer):
    with pytest.raises(ImageError, match="not a directory"):
        unpack(layer, file("a", b"file"), file("a/b", b"x"))


def test_hardlink_inside_the_layer(layer):
    unpack(layer, file("bin/busybox", b"ELF", mode=0o755), hardlink("bin/ls", "bin/busybox"),
           hardlink("sbin/init", "./bin/busybox"))
    original = os.lstat(layer / "bin/busybox")
    assert os.lstat(layer / "bin/ls").st_ino == original.st_ino
    assert os.lstat(layer / "sbin/init").st_ino == original.st_ino
    assert original.st_nlink == 3


@pytest.mark.parametrize("target,reason", [
    ("../outside/secret", r"'\.\.'"),
    ("ABS", "absolute path"),
    ("not-in-layer", "not in this layer"),
    ("missing-dir/file", "not in this layer"),
])
def test_hardlink_escapes_are_refused(layer, outside, target, reason):
    target = str(outside / "secret") if target == "ABS" else target
    with pytest.raises(ImageError, match=reason):
        unpack(layer, hardlink("stolen", target))
    assert not (layer / "stolen").exists()
    assert os.lstat(outside / "secret").st_nlink == 1


def test_hardlink_through_a_symlinked_parent_is_refused(layer, outside):
    with pytest.raises(ImageError, match="symbolic link"):
        unpack(layer, symlink("s", str(outside)), hardlink("stolen", "s/secret"))
    assert os.lstat(outside / "secret").st_nlink == 1


def test_hardlink_to_a_symlink_links_the_symlink_not_its_target(layer, outside):
    unpack(layer, symlink("l", str(outside / "secret")), hardlink("h", "l"))
    assert stat.S_ISLNK(os.lstat(layer / "h").st_mode)
    assert os.lstat(outside / "secret").st_nlink == 1


def test_later_entries_replace_earlier_ones(layer):
    unpack(layer, file("a", b"one"), file("a", b"two"),
           directory("d/"), file("d/x", b"x"), file("d", b"now a file"),
           symlink("s", "x"), directory("s/"))
    assert (layer / "a").read_bytes() == b"two"
    assert (layer / "d").read_bytes() == b"now a file"
    assert os.path.isdir(layer / "s") and not os.path.islink(layer / "s")


def test_implicit_parent_directories_can_be_replaced_too(layer):
    # "x" and "p/q" are made on the way to their children, never named by an entry.
    unpack(layer, file("x/y", b"y"), file("x", b"now a file"), file("p/q/r", b"r"), symlink("p/q", "elsewhere"),
           file("p/q2", b"q2"))
    assert (layer / "x").read_bytes() == b"now a file"
    assert os.readlink(layer / "p/q") == "elsewhere"
    assert (layer / "p/q2").read_bytes() == b"q2"


def test_nested_directory_replaced_while_its_parent_is_in_use(layer):
    # "a" is the (cached) parent while its child directory "a/d" is replaced.
    result = unpack(layer, directory("a/"), directory("a/d/"), file("a/d/x", b"x"), file("a/d", b"file now"),
                    directory("a/e/"), file("a/e/y", b"y"), symlink("a/e", "d"), file("a/z", b"z"),
                    directory("b/"), directory("b/c/"), file("b/.wh.c"), file("b/after", b"after"))
    assert (layer / "a/d").read_bytes() == b"file now"
    assert os.readlink(layer / "a/e") == "d"
    assert (layer / "a/z").read_bytes() == b"z"
    assert (layer / "b/after").read_bytes() == b"after"
    if not result.whiteout_fallback:
        assert stat.S_ISCHR(os.lstat(layer / "b/c").st_mode)


def test_hardlink_that_replaces_its_own_target_directory(layer):
    with pytest.raises(ImageError, match="not in this layer"):
        unpack(layer, directory("x/"), file("x/y", b"y"), hardlink("x", "x/y"))


def test_whiteout_becomes_a_0_0_character_device(layer):
    result = unpack(layer, directory("etc/"), file("etc/.wh.motd"), file(".wh.tmp"))
    assert not (layer / "etc/.wh.motd").exists()
    for path in ("etc/motd", "tmp"):
        if path in result.whiteout_fallback:
            pytest.skip("this kernel refuses the 0/0 device without root")
        st = os.lstat(layer / path)
        assert stat.S_ISCHR(st.st_mode), path
        assert os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert result.whiteout_fallback == []


def test_whiteout_replaces_an_entry_of_the_same_layer(layer):
    result = unpack(layer, directory("d/"), file("d/x", b"x"), file(".wh.d"))
    if result.whiteout_fallback:
        pytest.skip("this kernel refuses the 0/0 device without root")
    assert stat.S_ISCHR(os.lstat(layer / "d").st_mode)


@pytest.mark.parametrize("name", [".wh.", ".wh..", ".wh..."])
def test_invalid_whiteout_names_are_refused(layer, name):
    with pytest.raises(ImageError, match="invalid whiteout"):
        unpack(layer, file(name))


def test_aufs_metadata_entries_are_ignored(layer):
    unpack(layer, directory(".wh..wh.plnk/"), file(".wh..wh.plnk/123.456", b"x"), file("kept", b"k"))
    assert sorted(os.listdir(layer)) == ["kept"]


def test_opaque_marker_becomes_the_overlay_xattr(layer):
    result = unpack(layer, directory("var/"), directory("var/cache/"), file("var/cache/.wh..wh..opq"),
                    file("var/cache/new", b"n"), file(".wh..wh..opq"))
    assert sorted(os.listdir(layer / "var/cache")) == ["new"]
    if ROOT:
        assert os.getxattr(layer / "var/cache", OPAQUE_XATTR) == b"y"
        assert os.getxattr(layer, OPAQUE_XATTR) == b"y"
        assert result.opaque_fallback == []
    else:
        # Without root the trusted xattr cannot be set: it is reported.
        assert sorted(result.opaque_fallback) == [".", "var/cache"]


def test_overlay_xattrs_in_the_tar_are_dropped(layer):
    unpack(layer, directory("d/", xattrs={"trusted.overlay.opaque": b"y", "user.overlay.opaque": b"y"}),
           file("f", b"x", xattrs={"trusted.overlay.redirect": b"/etc", "user.keep": b"kept"}))
    for path in ("d", "f"):
        names = os.listxattr(layer / path)
        assert not [n for n in names if ".overlay." in n], (path, names)
    try:
        assert os.getxattr(layer / "f", "user.keep") == b"kept"
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA):
            raise
        pytest.skip("filesystem without user xattrs")


@needs_root
def test_owner_setuid_and_capabilities_are_kept(layer):
    # security.capability v2 for cap_net_raw (bit 13) permitted+effective.
    cap = b"\x01\x00\x00\x02" + (1 << 13).to_bytes(4, "little") + b"\x00" * 12
    unpack(layer, directory("home/", uid=1000, gid=1000, mode=0o700),
           file("bin/su", b"ELF", mode=0o4755, uid=0, gid=0),
           file("bin/ping", b"ELF", mode=0o755, uid=1234, gid=5678, xattrs={"security.capability": cap}),
           symlink("home/link", "x", uid=1000, gid=1001))
    home = os.lstat(layer / "home")
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o700)
    ping = os.lstat(layer / "bin/ping")
    assert (ping.st_uid, ping.st_gid) == (1234, 5678)
    assert os.getxattr(layer / "bin/ping", "security.capability") == cap
    assert stat.S_IMODE(os.lstat(layer / "bin/su").st_mode) == 0o4755
    link = os.lstat(layer / "home/link")
    assert (link.st_uid, link.st_gid) == (1000, 1001)


@needs_root
def test_device_nodes_and_fifos_as_root(layer):
    unpack(layer, member("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
           member("dev/loop0", tarfile.BLKTYPE, mode=0o660, dev=(7, 0), gid=6),
           member("run/fifo", tarfile.FIFOTYPE, mode=0o620))
    null = os.lstat(layer / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(layer / "dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_gid == 6
    assert stat.S_ISFIFO(os.lstat(layer / "run/fifo").st_mode)


@pytest.mark.skipif(ROOT, reason="checks the unprivileged behaviour")
def test_device_nodes_are_skipped_without_root(layer):
    result = unpack(layer, member("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)), file("ok", b"x"))
    assert result.skipped == ["dev/null"]
    assert not (layer / "dev/null").exists()
    assert (layer / "ok").exists()


def test_diff_id_is_the_sha256_of_the_whole_tar(layer):
    data = tar_bytes(file("a", b"x" * 5000), directory("d/"))
    result = unpack_layer(io.BytesIO(data), str(layer))
    assert result.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(data)  # the end blocks and record padding included


def test_garbage_is_not_a_tar(layer):
    with pytest.raises(ImageError, match="not a valid tar"):
        unpack_layer(io.BytesIO(b"this is not a tar archive" * 40), str(layer), what="layer 1")


def test_truncated_tar_is_refused(layer):
    data = tar_bytes(file("big", b"y" * 100_000))
    with pytest.raises(ImageError, match="not a valid tar"):
        unpack_layer(io.BytesIO(data[:50_000]), str(layer))
