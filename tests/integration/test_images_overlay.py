"""Layers from the store, stacked by the real kernel's overlayfs: whiteouts
hide files and opaque directories hide lower content, as in a container."""

import ctypes
import ctypes.util
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from minipod.images import ImageStore
from minipod.images.importer import import_rootfs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts overlayfs and makes whiteout devices"),
]

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MNT_DETACH = 2


def mount_overlay(lower_dirs_bottom_first, target):
    # overlayfs lists the top layer first; with only lower dirs it is read-only.
    options = "lowerdir=" + ":".join(reversed(lower_dirs_bottom_first))
    if _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        if err == 19:  # ENODEV
            pytest.skip("this kernel has no overlayfs")
        raise OSError(err, f"mount overlay on {target}: {os.strerror(err)}")


def umount(target):
    if _libc.umount2(os.fsencode(target), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def tar_file(path, entries):
    """entries: (name, data or None for a directory)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return str(path)


@pytest.fixture
def merged(tmp_path):
    target = tmp_path / "merged"
    target.mkdir()
    yield target
    if os.path.ismount(target):
        umount(target)
    assert mounts_under(tmp_path) == [], "a mount leaked"


def test_whiteouts_and_opaque_dirs_work_in_a_real_overlay(tmp_path, merged):
    lower = tar_file(tmp_path / "lower.tar", [
        ("etc", None), ("etc/motd", b"lower motd\n"), ("etc/hostname", b"lower\n"),
        ("var", None), ("var/cache", None), ("var/cache/old", b"old cache\n"),
        ("var/cache/sub", None), ("var/cache/sub/deep", b"deep\n"),
    ])
    upper = tar_file(tmp_path / "upper.tar", [
        ("etc", None), ("etc/.wh.motd", b""),  # deletes a file
        ("var", None), ("var/cache", None), ("var/cache/.wh..wh..opq", b""),  # hides the lower dir's content
        ("var/cache/new", b"new cache\n"),
    ])
    store = ImageStore(tmp_path / "images")
    image = store.add_image({"architecture": "amd64", "os": "linux", "config": {}}, [lower, upper], "test/overlay")
    assert len(image.layer_dirs) == 2

    mount_overlay(image.layer_dirs, merged)
    try:
        assert not (merged / "etc/motd").exists()
        assert (merged / "etc/hostname").read_text() == "lower\n"
        assert sorted(os.listdir(merged / "etc")) == ["hostname"]
        assert sorted(os.listdir(merged / "var/cache")) == ["new"]
        assert (merged / "var/cache/new").read_text() == "new cache\n"
        assert not (merged / "var/cache/sub").exists()
    finally:
        umount(merged)
    # The lower layer itself still holds what the upper one hides.
    assert os.path.exists(os.path.join(image.layer_dirs[0], "etc/motd"))
    store.remove("test/overlay")
    assert store.layers.diff_ids() == []


@pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static is not installed")
def test_an_imported_busybox_runs_from_its_overlay(tmp_path, merged):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin/busybox")
    os.symlink("busybox", rootfs / "bin/sh")
    image = import_rootfs(ImageStore(tmp_path / "images"), str(rootfs), "busybox")
    extra = tar_file(tmp_path / "app.tar", [("app", None), ("app/hello", b"hello from a layer\n")])
    config = {"architecture": image.architecture, "os": "linux", "config": {"Cmd": ["/bin/sh"]}}
    app = ImageStore(tmp_path / "images").add_image(config, [
        os.path.join(tmp_path / "images", "blobs", "sha256", image.diff_ids[0][7:]), extra], "app")

    mount_overlay(app.layer_dirs, merged)
    try:
        out = subprocess.run(["chroot", str(merged), "/bin/sh", "-c", "/bin/busybox cat /app/hello; echo $((6*7))"],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "hello from a layer\n42\n"
    finally:
        umount(merged)
