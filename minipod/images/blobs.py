"""Content-addressed blobs: ``blobs/sha256/<hex>``.

A blob is written to a temporary file in the same directory, its digest is
computed while writing and checked, and only then is it renamed into place.
Rename is atomic, so a reader never sees half a blob, and two processes
writing the same blob at once both succeed (the second rename replaces the
first file with identical bytes).
"""

from __future__ import annotations

import errno
import os
import re
from typing import BinaryIO

from minipod.errors import ImageError
from minipod.images.compression import CHUNK

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
TEMP_PREFIX = ".tmp-"


def _sha256(data: bytes = b""):
    """A sha256 hasher. hashlib is imported here, not at the top: it costs
    milliseconds, and ``run`` only reads the store (no hashing)."""
    import hashlib

    return hashlib.sha256(data)


def check_digest(digest: str) -> str:
    """The hex part of a ``sha256:<64 hex>`` digest; ImageError otherwise.
    Digests come from manifests written by others: checking them first also
    keeps them from being used as paths that climb out of the store."""
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ImageError(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest[len("sha256:"):]


class BlobStore:
    """The files under ``<images_dir>/blobs/sha256``. Creates nothing until
    a write."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, digest: str) -> str:
        return os.path.join(self.directory, check_digest(digest))

    def exists(self, digest: str) -> bool:
        return os.path.isfile(self.path(digest))

    def read(self, digest: str) -> bytes:
        try:
            with open(self.path(digest), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ImageError(f"blob {digest} is missing from the image store") from None
        except OSError as exc:
            raise ImageError(f"cannot read blob {digest}: {exc.strerror}") from None

    def size(self, digest: str) -> int:
        return os.path.getsize(self.path(digest))

    def digests(self) -> list[str]:
        """Every stored blob's digest."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + name for name in names if DIGEST_RE.match("sha256:" + name))

    def write_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data``; return its digest."""
        digest = "sha256:" + _sha256(data).hexdigest()
        self._check_expected(digest, expected)
        if not self.exists(digest):
            self._write(lambda f: f.write(data), digest)
        return digest

    def write_stream(self, stream: BinaryIO, expected: str | None = None) -> tuple[str, int]:
        """Store everything ``stream`` yields; return (digest, size). With
        ``expected``, a mismatch stores nothing and raises ImageError."""
        hasher = _sha256()
        size = 0

        def copy(out) -> None:
            nonlocal size
            while chunk := stream.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                out.write(chunk)

        tmp = self._temp_file()
        try:
            with open(tmp, "wb") as out:
                copy(out)
            digest = "sha256:" + hasher.hexdigest()
            self._check_expected(digest, expected)
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.path(digest))
        finally:
            _unlink_quietly(tmp)
        return digest, size

    def add_file(self, path: str, *, move: bool = False, expected: str | None = None) -> tuple[str, int]:
        """Store the file at ``path``; return (digest, size). ``move`` lets
        the store rename the file into place instead of copying it (when it is
        on the same filesystem); the caller still owns ``path`` if it remains."""
        if not move:
            with open(path, "rb") as f:
                return self.write_stream(f, expected)
        with open(path, "rb") as f:
            hasher = _sha256()
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
            size = f.tell()
        digest = "sha256:" + hasher.hexdigest()
        self._check_expected(digest, expected)
        if self.exists(digest):
            return digest, size
        self._ensure_dir()
        try:
            os.chmod(path, 0o644)
            os.rename(path, self.path(digest))
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(path, "rb") as f:
                return self.write_stream(f, digest)
        return digest, size

    def temp_file(self) -> str:
        """A new empty file beside the blobs, to write one into (GC removes it
        if its writer dies; only use it inside ``ImageStore.writing()``)."""
        return self._temp_file()

    def commit(self, tmp: str, digest: str) -> None:
        """Make the file ``tmp`` (a ``temp_file()`` whose content the caller
        has checked against ``digest``) the blob ``digest``."""
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.path(digest))

    def delete(self, digest: str) -> None:
        _unlink_quietly(self.path(digest))

    def remove_temporaries(self) -> tuple[int, int]:
        """Remove temporary files left by writers that died; returns how many
        and their bytes on disk. Only safe while no writer can be active
        (the store's GC lock is held exclusively)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0, 0
        stale = [os.path.join(self.directory, name) for name in names if name.startswith(TEMP_PREFIX)]
        freed = 0
        for path in stale:
            try:
                freed += os.lstat(path).st_blocks * 512
            except FileNotFoundError:
                continue
            _unlink_quietly(path)
        return len(stale), freed

    # ----- helpers

    @staticmethod
    def _check_expected(digest: str, expected: str | None) -> None:
        if expected is not None and digest != expected:
            raise ImageError(f"content does not match its digest: expected {expected}, got {digest}")

    def _ensure_dir(self) -> None:
        os.makedirs(self.directory, mode=0o755, exist_ok=True)

    def _temp_file(self) -> str:
        import tempfile  # here, not at the top: only writers need it

        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.directory)
        os.close(fd)
        return tmp

    def _write(self, write, digest: str) -> None:
        tmp = self._temp_file()
        try:
            with open(tmp, "wb") as out:
                write(out)
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.path(digest))
        finally:
            _unlink_quietly(tmp)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
