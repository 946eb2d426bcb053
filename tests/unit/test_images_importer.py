"""``image import``: a directory or a tar file becomes an image; the same
tree always gives the same image ID; what a root filesystem holds survives."""

import bz2
import gzip
import io
import lzma
import os
import shutil
import socket
import stat
import subprocess
import tarfile

import pytest

from minipod.errors import ImageError
from minipod.images import ImageStore
from minipod.images import importer
from minipod.images.importer import host_platform, import_rootfs, write_rootfs_tar

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (owners, device nodes)")
T0 = 1_600_000_000


@pytest.fixture(autouse=True)
def no_source_date_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


def make_rootfs(base) -> str:
    """A tiny root filesystem with the kinds of entries images have."""
    root = base / "rootfs"
    for d in ("bin", "etc", "tmp", "root", "empty"):
        (root / d).mkdir(parents=True)
    # Small stand-in for a binary; the integration test runs a real busybox.
    (root / "bin/busybox").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    os.chmod(root / "bin/busybox", 0o755)
    os.symlink("busybox", root / "bin/sh")
    os.symlink("/proc/self/mounts", root / "etc/mtab")
    os.link(root / "bin/busybox", root / "bin/ls")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/shadow").write_text("root:*::0:::::\n")
    os.chmod(root / "etc/shadow", 0o600)
    (root / "bin/su").write_bytes(b"su")
    os.chmod(root / "bin/su", 0o4755)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    os.mkfifo(root / "tmp/fifo")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (T0, T0), follow_symlinks=False)
    os.utime(root, (T0, T0))
    return str(root)


def test_import_a_directory_keeps_what_a_rootfs_holds(tmp_path):
    src = make_rootfs(tmp_path)
    image = import_rootfs(ImageStore(tmp_path / "images"), src, "busybox")
    assert image.ref == "docker.io/library/busybox:latest"
    (layer,) = image.layer_dirs
    for rel in ("bin/busybox", "bin/su", "etc/shadow", "tmp", "root", "empty", "tmp/fifo", "bin/sh", "etc/mtab"):
        want, got = os.lstat(os.path.join(src, rel)), os.lstat(os.path.join(layer, rel))
        assert stat.S_IFMT(got.st_mode) == stat.S_IFMT(want.st_mode), rel
        assert stat.S_IMODE(got.st_mode) == stat.S_IMODE(want.st_mode), rel
        assert got.st_mtime == T0, rel
    assert os.readlink(os.path.join(layer, "bin/sh")) == "busybox"
    assert os.readlink(os.path.join(layer, "etc/mtab")) == "/proc/self/mounts"
    assert os.lstat(os.path.join(layer, "bin/ls")).st_ino == os.lstat(os.path.join(layer, "bin/busybox")).st_ino
    with open(os.path.join(layer, "etc/passwd")) as f:
        assert f.read().startswith("root:x:0:0")
    assert os.listdir(os.path.join(layer, "empty")) == []


def test_import_is_deterministic(tmp_path):
    src = make_rootfs(tmp_path)
    first = import_rootfs(ImageStore(tmp_path / "one"), src, "x")
    os.utime(os.path.join(src, "etc/passwd"), (T0 + 999, T0))  # atime is not part of an image
    second = import_rootfs(ImageStore(tmp_path / "two"), src, "x")
    again = import_rootfs(ImageStore(tmp_path / "one"), src, "y")
    assert first.id == second.id == again.id
    assert first.digest == second.digest
    # And it is content: a changed file is another image.
    (tmp_path / "rootfs/etc/passwd").write_text("changed\n")
    os.utime(os.path.join(src, "etc/passwd"), (T0, T0))
    assert import_rootfs(ImageStore(tmp_path / "three"), src, "x").id != first.id


def test_config_is_empty_with_host_platform_and_content_time(tmp_path, monkeypatch):
    src = make_rootfs(tmp_path)
    os.utime(os.path.join(src, "etc/passwd"), (T0, T0 + 3600))
    image = import_rootfs(ImageStore(tmp_path / "images"), src, "x")
    doc = image.config_document
    assert image.config == {} and doc["config"] == {}
    assert doc["architecture"] == host_platform()[0] and doc["os"] == "linux"
    assert doc["created"] == image.created == "2020-09-13T13:26:40Z"  # the newest mtime
    assert doc["history"] == [{"created": image.created, "created_by": "minipod image import"}]
    assert doc["rootfs"] == {"type": "layers", "diff_ids": image.diff_ids}

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert import_rootfs(ImageStore(tmp_path / "images"), src, "y").created == "1970-01-01T00:00:00Z"


def test_host_platform_names_architectures_as_oci_does(monkeypatch):
    for machine, expected in (("x86_64", ("amd64", None)), ("aarch64", ("arm64", None)),
                              ("armv7l", ("arm", "v7")), ("i686", ("386", None)), ("ppc64le", ("ppc64le", None))):
        monkeypatch.setattr(importer.platform, "machine", lambda m=machine: m)
        assert host_platform() == expected


@pytest.mark.parametrize("compress", [None, gzip.compress, lzma.compress, bz2.compress])
def test_import_a_tar_file_in_any_compression(tmp_path, compress):
    src = make_rootfs(tmp_path)
    buf = io.BytesIO()
    write_rootfs_tar(src, buf)
    data = buf.getvalue() if compress is None else compress(buf.getvalue())
    path = tmp_path / "rootfs.image"  # no telling extension: detection is by content
    path.write_bytes(data)
    os.utime(path, (T0, T0))
    image = import_rootfs(ImageStore(tmp_path / "images"), str(path), "x")
    layer = image.layer_dirs[0]
    assert os.readlink(os.path.join(layer, "bin/sh")) == "busybox"
    assert stat.S_IMODE(os.lstat(os.path.join(layer, "bin/su")).st_mode) == 0o4755
    assert image.created == "2020-09-13T12:26:40Z"
    # Same content, whichever the wrapping: same layer.
    direct = import_rootfs(ImageStore(tmp_path / "images"), src, "y")
    assert image.diff_ids == direct.diff_ids


def test_import_a_zstd_tar_file(tmp_path):
    src = make_rootfs(tmp_path)
    plain = tmp_path / "rootfs.tar"
    with open(plain, "wb") as f:
        write_rootfs_tar(src, f)
    store = ImageStore(tmp_path / "images")
    if not shutil.which("zstd"):
        pytest.skip("no zstd command to make a test file")
    subprocess.run(["zstd", "-q", str(plain), "-o", str(tmp_path / "rootfs.tar.zst")], check=True)
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(ImageError, match="'zstandard' is not installed"):
            import_rootfs(store, str(tmp_path / "rootfs.tar.zst"), "z")
        return
    image = import_rootfs(store, str(tmp_path / "rootfs.tar.zst"), "z")
    assert os.readlink(os.path.join(image.layer_dirs[0], "bin/sh")) == "busybox"


def test_the_tar_of_a_directory_is_sorted_and_anonymous(tmp_path):
    src = make_rootfs(tmp_path)
    buf = io.BytesIO()
    newest = write_rootfs_tar(src, buf)
    assert newest == T0
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "."
    assert names[1:4] == ["bin", "bin/busybox", "bin/ls"]
    assert names.index("bin/ls") < names.index("bin/sh") < names.index("bin/su") < names.index("empty")
    assert {(m.uname, m.gname) for m in members} == {("", "")}
    link = next(m for m in members if m.name == "bin/ls")
    assert link.islnk() and link.linkname == "bin/busybox"


@needs_root
def test_owners_devices_and_xattrs_survive_import(tmp_path):
    src = make_rootfs(tmp_path)
    os.chown(os.path.join(src, "root"), 1234, 5678)
    os.lchown(os.path.join(src, "bin/sh"), 42, 43)
    os.mknod(os.path.join(src, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.setxattr(os.path.join(src, "bin/busybox"), "user.origin", b"\x00\xffbinary")
    image = import_rootfs(ImageStore(tmp_path / "images"), src, "x")
    layer = image.layer_dirs[0]
    assert (os.lstat(os.path.join(layer, "root")).st_uid, os.lstat(os.path.join(layer, "root")).st_gid) == (1234, 5678)
    assert os.lstat(os.path.join(layer, "bin/sh")).st_uid == 42
    null = os.lstat(os.path.join(layer, "null"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert os.getxattr(os.path.join(layer, "bin/busybox"), "user.origin") == b"\x00\xffbinary"


def test_sockets_are_left_out(tmp_path):
    src = make_rootfs(tmp_path)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(src, "tmp/sock"))
        image = import_rootfs(ImageStore(tmp_path / "images"), src, "x")
    finally:
        sock.close()
    assert sorted(os.listdir(os.path.join(image.layer_dirs[0], "tmp"))) == ["fifo"]


def test_the_store_inside_the_source_is_not_imported(tmp_path):
    src = make_rootfs(tmp_path)
    image = import_rootfs(ImageStore(os.path.join(src, "var/lib/images")), src, "x")
    assert os.listdir(os.path.join(image.layer_dirs[0], "var/lib")) == []


def test_bad_inputs_fail_clearly_and_create_nothing(tmp_path):
    src = make_rootfs(tmp_path)
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ImageError, match="No such file"):
        import_rootfs(store, str(tmp_path / "missing"), "x")
    with pytest.raises(ImageError, match="invalid reference format"):
        import_rootfs(store, src, "bad name")
    with pytest.raises(ImageError, match="neither a directory nor a tar file"):
        import_rootfs(store, os.path.join(src, "tmp/fifo"), "x")
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello\n" * 200)
    assert not os.path.exists(store.images_dir)
    with pytest.raises(ImageError, match="not a valid tar"):
        import_rootfs(store, str(not_tar), "x")
    assert store.images() == []
