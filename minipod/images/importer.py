"""``minipod image import SRC NAME``: an image from a root filesystem.

SRC is a directory or a tar file (plain, gzip, xz, bzip2, or zstd when the
``zstandard`` module is there). A directory is turned into a tar here,
deterministically: entries sorted by name, owner and mode and mtime taken
from the files, no user or group names, hard links and device nodes kept,
and nothing else that changes between runs; so importing the same tree twice
gives the same layer, the same config and so the same image ID.

For the same reason the image's creation time is a fact about the content,
not the clock: ``SOURCE_DATE_EPOCH`` when set (the reproducible-builds
convention), else the newest mtime in the tree (or of the tar file).
"""

from __future__ import annotations

import datetime
import os
import platform
import stat
import tarfile
import tempfile

from minipod.errors import ImageError
from minipod.images.reference import normalize_reference
from minipod.images.store import Image, ImageStore

CREATED_BY = "minipod image import"
# Host xattrs that describe the host, not the image: SELinux labels, and
# overlay's own metadata when SRC is itself an overlay layer or upper dir.
_SKIPPED_XATTR_PREFIXES = ("security.selinux", "trusted.overlay.", "user.overlay.")

# platform.machine() -> (GOARCH, variant), as OCI configs name architectures.
_GOARCH = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", None),
    "i486": ("386", None),
    "i586": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "ppc64": ("ppc64", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64": ("mips64", None),
    "loongarch64": ("loong64", None),
}


def host_platform() -> tuple[str, str | None]:
    """This host's (GOARCH, variant): ("amd64", None), ("arm", "v7")..."""
    machine = platform.machine()
    return _GOARCH.get(machine, (machine.lower(), None))


def rfc3339(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def import_rootfs(store: ImageStore, src: str, ref: str) -> Image:
    """Make the image ``ref`` from ``src`` (a root filesystem directory or a
    tar file) with an empty config; see the module docstring."""
    normalize_reference(ref)  # a bad name fails before any work
    try:
        st = os.stat(src)
    except OSError as exc:
        raise ImageError(f"image import: {src}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        with store.writing():
            fd, tar_path = tempfile.mkstemp(prefix="import-", suffix=".tar", dir=store.temp_dir())
            try:
                with os.fdopen(fd, "wb") as out:
                    newest = write_rootfs_tar(src, out, exclude=[store.images_dir])
                config = _config(_created(newest))
                return store.add_image(config, [tar_path], ref, consume=True)
            finally:
                if os.path.lexists(tar_path):
                    os.unlink(tar_path)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"image import: {src} is neither a directory nor a tar file")
    return store.add_image(_config(_created(int(st.st_mtime))), [src], ref)


def _created(newest_mtime: int) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return rfc3339(int(epoch))
        except ValueError:
            raise ImageError(f"SOURCE_DATE_EPOCH must be a number of seconds, not {epoch!r}") from None
    return rfc3339(newest_mtime)


def _config(created: str) -> dict:
    architecture, variant = host_platform()
    config = {
        "architecture": architecture,
        "os": "linux",
        "created": created,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created": created, "created_by": CREATED_BY}],
    }
    if variant:
        config["variant"] = variant
    return config


# ----- a directory as a deterministic tar


def write_rootfs_tar(src: str, out, *, exclude: list[str] = ()) -> int:
    """Write the tree at ``src`` as a PAX tar to the binary file ``out``.
    Returns the newest mtime seen (whole seconds).

    Like ``tar --one-file-system``, directories that are mount points of
    another filesystem (a /proc left mounted in a chroot) are stored empty;
    sockets are left out, as tar cannot hold them."""
    src = os.path.realpath(src)  # a symlink to the tree means the tree
    excluded = {os.path.realpath(path) for path in exclude}
    writer = _TreeWriter(src, excluded)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        writer.write(tar)
    return writer.newest


class _TreeWriter:
    def __init__(self, root: str, excluded: set[str]):
        self.root = root
        self.excluded = excluded
        self.root_dev = os.lstat(root).st_dev
        self.newest = 0
        self.first_paths: dict[tuple[int, int], str] = {}  # (dev, ino) -> tar name, for hard links

    def write(self, tar: tarfile.TarFile) -> None:
        self._add(tar, self.root, "./", os.lstat(self.root))
        self._walk(tar, self.root, "")

    def _walk(self, tar: tarfile.TarFile, directory: str, prefix: str) -> None:
        try:
            names = os.listdir(directory)
        except OSError as exc:
            raise ImageError(f"image import: cannot read {directory}: {exc.strerror}") from None
        # Sort by bytes, not by locale, so every host writes the same order.
        for name in sorted(names, key=os.fsencode):
            path = os.path.join(directory, name)
            if path in self.excluded:
                continue
            st = os.lstat(path)
            arcname = prefix + name
            if stat.S_ISSOCK(st.st_mode):
                continue
            self._add(tar, path, arcname, st)
            if stat.S_ISDIR(st.st_mode) and st.st_dev == self.root_dev:
                self._walk(tar, path, arcname + "/")

    def _add(self, tar: tarfile.TarFile, path: str, arcname: str, st: os.stat_result) -> None:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime)
        self.newest = max(self.newest, info.mtime)
        info.pax_headers = _xattrs(path)
        fmt = stat.S_IFMT(st.st_mode)
        inode = (st.st_dev, st.st_ino)
        if fmt != stat.S_IFDIR and st.st_nlink > 1 and inode in self.first_paths:
            info.type = tarfile.LNKTYPE
            info.linkname = self.first_paths[inode]
            tar.addfile(info)
            return
        if fmt != stat.S_IFDIR and st.st_nlink > 1:
            self.first_paths[inode] = arcname
        if fmt == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif fmt == stat.S_IFLNK:
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        elif fmt == stat.S_IFREG:
            self._add_file(tar, path, info, st)
            return
        tar.addfile(info)

    @staticmethod
    def _add_file(tar: tarfile.TarFile, path: str, info: tarfile.TarInfo, st: os.stat_result) -> None:
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ImageError(f"image import: cannot read {path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            try:
                tar.addfile(info, f)
            except OSError as exc:
                # tarfile reads exactly st_size bytes: a shorter file changed under us.
                raise ImageError(
                    f"image import: cannot read {path} (did it change during the import?): {exc}"
                ) from None


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    headers = {}
    for name in sorted(names):
        if name.startswith(_SKIPPED_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        # Binary values (security.capability) survive as surrogates; tarfile
        # then writes the header with hdrcharset=BINARY.
        headers["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return headers
