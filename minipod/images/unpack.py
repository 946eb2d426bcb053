"""Unpack one layer tar into a directory that overlayfs can use as a lower dir.

A layer comes from anyone (a registry, a file a user was sent), so nothing in
it is trusted: ``tarfile.extractall`` is never used and every entry is made
here by hand, relative to directory file descriptors:

* names that are absolute or contain ``..`` are refused;
* each parent directory is opened one component at a time with
  ``O_NOFOLLOW``, so a symlink planted by the layer itself (``etc -> /``)
  cannot redirect a later entry (``etc/passwd``) out of the layer: such an
  entry is refused;
* hard links may only point at entries inside the layer and never follow a
  symlink; symlinks are created as they are, since they are resolved inside
  the container later, never on the host;
* overlay metadata xattrs in the tar are dropped: only the whiteouts below
  may make overlay hide anything.

Whiteouts become overlay's own form: ``.wh.NAME`` -> a 0/0 character device
named NAME; ``.wh..wh..opq`` -> xattr ``trusted.overlay.opaque=y`` on its
directory. Without root the trusted xattr (and, on old kernels, the 0/0
device) cannot be made; such paths are listed in the UnpackResult so that a
caller can record them (the store keeps them in the layer's marker).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from typing import BinaryIO

from minipod.errors import ImageError
from minipod.images.compression import CHUNK, is_decompression_error
from minipod.images.filewriter import MAX_FILE_BYTES, FileWriter, worker_count, write_file
from minipod.images.streams import TarSource



class _LazyLog:
    """The module's logger, made on first use: logging is not imported
    unless something is logged."""

    def __getattr__(self, name):
        import logging

        return getattr(logging.getLogger("minipod.images.unpack"), name)


log = _LazyLog()

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# What rootless overlay (mount option "userxattr") reads instead.
USER_OPAQUE_XATTR = "user.overlay.opaque"
PAX_XATTR_PREFIX = "SCHILY.xattr."
# A layer must not smuggle in overlay's own metadata (redirects, metacopy,
# opaque flags): only whiteouts may make overlay hide lower content.
FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_DIR_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_CACHE_MAX = 256
_FILE_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_UNSUPPORTED_XATTR_ERRNOS = (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL)


class UnpackResult:
    """What unpack_layer() did. ``diff_id`` is the sha256 of the whole
    uncompressed tar stream (the OCI diff ID); the lists name what could not
    be made in overlay's form without root, and what was skipped. (A plain
    class: dataclasses and logging cost the unpack's process 20 ms to import.)"""

    __slots__ = ("diff_id", "size", "opaque_fallback", "whiteout_fallback", "skipped")

    def __init__(self, diff_id: str, size: int, opaque_fallback: list[str] | None = None,
                 whiteout_fallback: list[str] | None = None, skipped: list[str] | None = None):
        self.diff_id = diff_id
        self.size = size
        self.opaque_fallback = opaque_fallback or []
        self.whiteout_fallback = whiteout_fallback or []
        self.skipped = skipped or []

    def __eq__(self, other):
        if not isinstance(other, UnpackResult):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None

    def __repr__(self) -> str:
        return "UnpackResult(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def split_member_path(name: str, what: str = "layer") -> list[str]:
    """Split a tar member name into safe path components ([] for the root).

    Raises ImageError for absolute names and for any '..' component."""
    if name.startswith("/"):
        raise ImageError(f"{what}: entry {name!r} has an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"{what}: entry {name!r} has a '..' component (it would escape the layer)")
    return parts


def _mtime_ns(member: tarfile.TarInfo) -> int:
    mtime = member.mtime
    return mtime * 1_000_000_000 if isinstance(mtime, int) else int(mtime * 1_000_000_000)


def _member_xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    xattrs = []
    for key, value in sorted(member.pax_headers.items()):
        if not key.startswith(PAX_XATTR_PREFIX):
            continue
        name = key[len(PAX_XATTR_PREFIX):]
        if name.startswith(FORBIDDEN_XATTR_PREFIXES):
            log.debug("dropping xattr %s on %s: overlay metadata is not taken from layers", name, member.name)
            continue
        # tarfile decodes PAX values as UTF-8 with surrogateescape: undo that
        # to get the exact bytes (security.capability is binary).
        xattrs.append((name, value.encode("utf-8", "surrogateescape")))
    return xattrs


class _Unpacker:
    """Creates the entries of one tar stream under ``root_fd``."""

    def __init__(self, root_fd: int, what: str, workers: int):
        self.root_fd = root_fd
        self.what = what
        self.privileged = os.geteuid() == 0
        self.dir_cache: dict[tuple[str, ...], int] = {}
        # Fds dropped from the cache while an entry may still use them; closed
        # once that entry is done (closing earlier could let the number be
        # reused for another directory).
        self.stale_fds: list[int] = []
        self.deferred_dirs: dict[tuple[str, ...], tarfile.TarInfo] = {}
        self.opaque_fallback: list[str] = []
        self.whiteout_fallback: list[str] = []
        self.skipped: list[str] = []
        self.writer = FileWriter(workers) if workers else None
        # Every path this layer has made (the target starts empty).
        self.created: set[tuple[str, ...]] = set()

    # ----- directories, walked one component at a time without following symlinks

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()  # no worker may use a directory fd once it is closed
        self._forget_dirs()
        self.close_stale()

    def close_stale(self) -> None:
        if self.stale_fds and self.writer is not None:
            self.writer.flush()  # files in flight may be written through them
        for fd in self.stale_fds:
            os.close(fd)
        self.stale_fds.clear()

    def _forget_dirs(self, under: tuple[str, ...] = ()) -> None:
        """Drop cached directory fds at or below ``under`` (all by default)."""
        for key in [k for k in self.dir_cache if k[:len(under)] == under]:
            self.stale_fds.append(self.dir_cache.pop(key))

    def _fail(self, relpath: str, why: str) -> ImageError:
        return ImageError(f"{self.what}: entry {relpath!r}: {why}")

    def open_dir(self, parts: list[str], *, create: bool) -> int:
        """An fd (owned by the cache) for the directory ``parts`` inside the
        layer, refusing any component that is a symlink or not a directory.
        Missing directories are made (mode 0755) when ``create``."""
        key = tuple(parts)
        if not key:
            return self.root_fd
        cached = self.dir_cache.get(key)
        if cached is not None:
            return cached
        parent = self.open_dir(parts[:-1], create=create)
        name = parts[-1]
        relpath = "/".join(parts)
        try:
            fd = os.open(name, _DIR_OPEN_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o755, dir_fd=parent)
                self.created.add(key)
                fd = os.open(name, _DIR_OPEN_FLAGS, dir_fd=parent)
                os.fchmod(fd, 0o755)  # whatever the umask
            except OSError as exc:
                raise self._fail(relpath, f"cannot create directory: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise self._fail(relpath, "is a symbolic link inside the layer; "
                                              "refusing to write through it") from None
                raise self._fail(relpath, "is not a directory") from None
            raise self._fail(relpath, f"cannot open directory: {exc.strerror}") from None
        self.dir_cache[key] = fd
        return fd

    def parent_of(self, parts: list[str], relpath: str) -> int:
        try:
            return self.open_dir(parts[:-1], create=True)
        except ImageError as exc:
            raise ImageError(f"{exc} (parent of {relpath!r})") from None

    def remove_existing(self, parent: int, parts: list[str], *, keep_dir: bool = False) -> bool:
        """Remove what is at ``parts`` (in ``parent``, its directory's fd): a
        later tar entry replaces an earlier one, as with tar. Returns True
        when a directory was kept. Callers create an entry at ``parts``
        right after: it is remembered, so that only a path this layer made
        before is looked at (a stat per entry, contending with the writer
        threads for the directory's lock, was a quarter of a pull's unpack)."""
        key = tuple(parts)
        if key not in self.created:
            self.created.add(key)
            return False
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            if self.writer is not None:
                self.writer.flush()  # files in flight may be under it
            # Cached fds below it would point into a deleted tree.
            self._forget_dirs(tuple(parts))
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
        return False

    # ----- attributes

    def apply_attributes(self, member: tarfile.TarInfo, fd: int | None, parent: int, name: str, relpath: str) -> None:
        """Owner, mode, xattrs, then times: chown clears setuid bits and file
        capabilities, so it goes first; times go last as the rest touches ctime
        only. ``fd`` is an open fd of the entry, or None for symlinks and
        device nodes, which are never opened."""
        is_link = member.issym()
        if self.privileged:
            if fd is not None:
                os.fchown(fd, member.uid, member.gid)
            else:
                os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        if not is_link:
            mode = member.mode & 0o7777
            if fd is not None:
                os.fchmod(fd, mode)
            else:
                os.chmod(name, mode, dir_fd=parent)
        for xname, value in _member_xattrs(member):
            try:
                if fd is not None:
                    os.setxattr(fd, xname, value)
                else:
                    # setxattr has no dir_fd: go through the parent's fd
                    # link, without following the entry itself.
                    os.setxattr(f"/proc/self/fd/{parent}/{name}", xname, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED_XATTR_ERRNOS:
                    raise
                log.debug("xattr %s on %s not kept: %s", xname, relpath, exc.strerror)
        times = (_mtime_ns(member), _mtime_ns(member))
        if fd is not None:
            os.utime(fd, ns=times)
        else:
            os.utime(name, ns=times, dir_fd=parent, follow_symlinks=False)

    # ----- entries

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = split_member_path(member.name, self.what)
        relpath = "/".join(parts) or "."
        if not parts:
            if not member.isdir():
                raise self._fail(member.name, "the layer root can only be a directory")
            self.deferred_dirs[()] = member
            return
        if len(self.dir_cache) > _DIR_CACHE_MAX:
            self._forget_dirs()
        if self.writer is not None:
            self.writer.settle(tuple(parts))  # a file in flight there (or above) must exist first
        name = parts[-1]
        if parts[0].startswith(WHITEOUT_META_PREFIX) and parts != [WHITEOUT_OPAQUE]:
            # aufs bookkeeping (.wh..wh.plnk/…, .wh..wh.aufs): not content.
            log.debug("%s: ignoring whiteout metadata entry %s", self.what, relpath)
            return
        if name.startswith(WHITEOUT_PREFIX):
            try:
                self.whiteout(parts, relpath)
            finally:
                self.close_stale()
            return
        parent = self.parent_of(parts, relpath)
        try:
            self.create(tar, member, parts, parent, name, relpath)
        except OSError as exc:
            raise self._fail(relpath, f"cannot create: {exc.strerror or exc}") from None
        finally:
            self.close_stale()

    def create(self, tar, member, parts, parent, name, relpath) -> None:
        if member.isdir():
            if not self.remove_existing(parent, parts, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=parent)
            # Mode and times wait for the end: a read-only directory must
            # still take its children, and children change its mtime.
            self.deferred_dirs[tuple(parts)] = member
        elif member.isreg():
            self.remove_existing(parent, parts)
            if self.writer is not None and not member.issparse() and member.size <= MAX_FILE_BYTES:
                self.file_in_background(tar, member, parts, parent, relpath)
                return
            fd = os.open(name, _FILE_CREATE_FLAGS, 0o600, dir_fd=parent)
            try:
                _copy_data(tar, member, fd)
                self.apply_attributes(member, fd, parent, name, relpath)
            finally:
                os.close(fd)
        elif member.issym():
            self.remove_existing(parent, parts)
            os.symlink(member.linkname, name, dir_fd=parent)
            self.apply_attributes(member, None, parent, name, relpath)
        elif member.islnk():
            self.hardlink(member, parent, parts, relpath)
        elif member.ischr() or member.isblk():
            self.device(member, parent, parts, relpath)
        elif member.isfifo():
            self.remove_existing(parent, parts)
            os.mkfifo(name, 0o600, dir_fd=parent)
            self.apply_attributes(member, None, parent, name, relpath)
        else:
            log.warning("%s: skipping %s: unsupported tar entry type %r", self.what, relpath, member.type)
            self.skipped.append(relpath)

    def file_in_background(self, tar, member, parts, parent, relpath) -> None:
        """Hand a regular file to the writer's threads, with its data as
        views of the stream's chunks (read now: the stream moves on)."""
        source = tar.fileobj
        source.seek(member.offset_data)
        views = source.views(member.size)
        if sum(len(v) for v in views) != member.size:
            raise tarfile.ReadError("unexpected end of data")
        name = parts[-1]

        def job() -> None:
            try:
                write_file(parent, name, views, lambda fd: self.apply_attributes(member, fd, parent, name, relpath))
            except OSError as exc:
                raise self._fail(relpath, f"cannot create: {exc.strerror or exc}") from None

        self.writer.submit(tuple(parts), member.size, job)

    def hardlink(self, member, parent, parts, relpath) -> None:
        name = parts[-1]
        target_parts = split_member_path(member.linkname, self.what)
        target = "/".join(target_parts)
        if not target_parts:
            raise self._fail(relpath, "hard link to the layer root")
        if target_parts == parts:
            return  # a link to itself: already there
        if self.writer is not None:
            self.writer.settle(tuple(target_parts))
        try:
            target_parent = self.open_dir(target_parts[:-1], create=False)
        except FileNotFoundError:
            raise self._fail(relpath, f"hard link target {target!r} is not in this layer") from None
        except ImageError as exc:
            raise self._fail(relpath, f"hard link target {target!r}: {exc}") from None
        self.remove_existing(parent, parts)
        try:
            # follow_symlinks=False: a link to a symlink links the symlink itself.
            os.link(target_parts[-1], name, src_dir_fd=target_parent, dst_dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise self._fail(relpath, f"hard link target {target!r} is not in this layer") from None

    def device(self, member, parent, parts, relpath) -> None:
        name = parts[-1]
        is_whiteout = member.ischr() and member.devmajor == 0 and member.devminor == 0
        if not self.privileged and not is_whiteout:
            log.debug("%s: skipping device node %s: needs root", self.what, relpath)
            self.skipped.append(relpath)
            return
        self.remove_existing(parent, parts)
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        self.apply_attributes(member, None, parent, name, relpath)

    def whiteout(self, parts: list[str], relpath: str) -> None:
        name = parts[-1]
        parent = self.parent_of(parts, relpath)
        dir_relpath = "/".join(parts[:-1]) or "."
        if name == WHITEOUT_OPAQUE:
            self.make_opaque(parent, dir_relpath)
            return
        if name.startswith(WHITEOUT_META_PREFIX):
            log.debug("%s: ignoring whiteout metadata entry %s", self.what, relpath)
            return
        hidden = name[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise self._fail(relpath, "invalid whiteout name")
        hidden_relpath = "/".join(parts[:-1] + [hidden])
        if self.writer is not None:
            self.writer.settle(tuple(parts[:-1] + [hidden]))
        try:
            self.remove_existing(parent, parts[:-1] + [hidden])
            os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        except PermissionError:
            # Old kernels (< 5.8) allow the 0/0 device to root only.
            self.whiteout_fallback.append(hidden_relpath)
        except OSError as exc:
            raise self._fail(relpath, f"cannot make whiteout: {exc.strerror}") from None

    def make_opaque(self, dir_fd: int, dir_relpath: str) -> None:
        try:
            os.setxattr(dir_fd, OPAQUE_XATTR, b"y")
            return
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED_XATTR_ERRNOS:
                raise self._fail(dir_relpath, f"cannot mark opaque: {exc.strerror}") from None
        # Not root: keep what a rootless overlay ("userxattr") understands, and
        # report it so the store can record it.
        self.opaque_fallback.append(dir_relpath)
        try:
            os.setxattr(dir_fd, USER_OPAQUE_XATTR, b"y")
        except OSError as exc:
            log.debug("%s: cannot set %s on %s: %s", self.what, USER_OPAQUE_XATTR, dir_relpath, exc.strerror)

    def finish_dirs(self) -> None:
        """Apply directory modes, owners and times, deepest first, so that
        no directory loses its write or search bit before its children are
        done."""
        if self.writer is not None:
            self.writer.flush()  # every file written: their directories' times go last
        self._forget_dirs()
        for parts, member in sorted(self.deferred_dirs.items(), key=lambda item: -len(item[0])):
            relpath = "/".join(parts) or "."
            if not parts:
                self.apply_attributes(member, self.root_fd, self.root_fd, ".", relpath)
                continue
            try:
                parent = self.open_dir(list(parts[:-1]), create=False)
                fd = os.open(parts[-1], _DIR_OPEN_FLAGS, dir_fd=parent)
            except (OSError, ImageError):
                continue  # replaced by a later entry: that one's attributes stand
            try:
                self.apply_attributes(member, fd, parent, parts[-1], relpath)
            finally:
                os.close(fd)


def _copy_data(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
    """Write ``member``'s content to ``fd``, straight from the chunks the
    TarSource holds (no copy, no per-10-kB Python call). Sparse members keep
    tarfile's reader, which knows their holes."""
    source = tar.fileobj
    if member.issparse():
        reader = tar.extractfile(member)
        while chunk := reader.read(CHUNK):
            _write_all(fd, chunk)
        return
    source.seek(member.offset_data)  # where it is already; tarfile skips the padding after
    if source.copy_to(lambda view: os.write(fd, view), member.size) != member.size:
        raise tarfile.ReadError("unexpected end of data")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def unpack_layer(stream: BinaryIO, target: str, *, what: str = "layer", workers: int | None = None) -> UnpackResult:
    """Unpack the uncompressed tar ``stream`` into the existing, empty
    directory ``target`` and return what was done, with the diff ID computed
    from the stream on the way. ``what`` names the layer in errors;
    ``workers``: threads that write regular files (default: by CPU count).

    Raises ImageError for unsafe or invalid content; ``target`` is then left
    partly filled for the caller to remove."""
    reader = TarSource(stream)
    try:
        root_fd = os.open(target, _DIR_OPEN_FLAGS)
    except OSError as exc:
        raise ImageError(f"cannot open layer directory {target}: {exc.strerror}") from None
    unpacker = _Unpacker(root_fd, what, worker_count() if workers is None else workers)
    try:
        # A layer root is world-readable unless the tar says otherwise.
        os.fchmod(root_fd, 0o755)
        with tarfile.open(fileobj=reader, mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
            for member in tar:
                unpacker.entry(tar, member)
        reader.drain()
        unpacker.finish_dirs()
    except tarfile.TarError as exc:
        raise ImageError(f"{what}: not a valid tar archive: {exc}") from None
    except ImageError:
        raise
    except Exception as exc:
        if is_decompression_error(exc):
            raise ImageError(f"{what}: corrupt compressed data: {exc}") from None
        if isinstance(exc, OSError):
            raise ImageError(f"{what}: cannot unpack: {exc.strerror or exc}") from None
        raise
    finally:
        unpacker.close()
        os.close(root_fd)
    return UnpackResult(
        diff_id=reader.digest,
        size=reader.size,
        opaque_fallback=unpacker.opaque_fallback,
        whiteout_fallback=unpacker.whiteout_fallback,
        skipped=unpacker.skipped,
    )
