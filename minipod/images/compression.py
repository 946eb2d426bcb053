"""Recognise how a tar stream is compressed, open it decompressed, hash it.

Compression is detected by magic bytes, never by file name: a layer blob
from a registry has no name, and users rename files. zstd needs the optional
``zstandard`` module; without it a zstd input is a clear error, not a crash.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import BinaryIO, Iterator

from minipod.errors import ImageError

NONE, GZIP, ZSTD, XZ, BZIP2 = "none", "gzip", "zstd", "xz", "bzip2"

CHUNK = 1 << 20

LAYER_MEDIA_TYPES = {
    NONE: "application/vnd.oci.image.layer.v1.tar",
    GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
    ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
}


def detect_compression(head: bytes) -> str:
    """Name the compression of a stream from its first bytes (at least 10)."""
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return ZSTD
    if head.startswith(b"\xfd7zXZ\x00"):
        return XZ
    # "BZh" alone could begin a plain tar whose first member is named so;
    # the block size digit and the block magic (pi in BCD), or the
    # end-of-stream magic (sqrt(pi)) of an empty stream, make it certain.
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (
        b"\x31\x41\x59\x26\x53\x59",
        b"\x17\x72\x45\x38\x50\x90",
    ):
        return BZIP2
    return NONE


def detect_file_compression(path: str) -> str:
    """detect_compression() of the file at ``path``."""
    try:
        with open(path, "rb") as f:
            return detect_compression(f.read(10))
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror}") from None


def require_support(compression: str, what: str) -> None:
    """Raise ImageError now if ``compression`` cannot be read here (zstd
    without the optional ``zstandard`` module)."""
    if compression == ZSTD:
        _zstandard(what)


def _zstandard(what: str):
    try:
        import zstandard  # optional: only zstd layers need it
    except ImportError:
        raise ImageError(
            f"{what} is zstd-compressed, but the Python module 'zstandard' is not installed",
            hint="install it (pip install zstandard) or decompress the file first",
        ) from None
    return zstandard


def _zstd_reader(raw: BinaryIO, what: str) -> BinaryIO:
    return _zstandard(what).ZstdDecompressor().stream_reader(raw, read_across_frames=True)


@contextmanager
def open_decompressed(path: str, compression: str | None = None, what: str | None = None) -> Iterator[BinaryIO]:
    """Open ``path`` for reading its uncompressed bytes. ``what`` names the
    file in error messages (defaults to the path)."""
    import bz2, gzip, lzma  # noqa: E401 - lazy: only image writes need them

    what = what or path
    if compression is None:
        compression = detect_file_compression(path)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise ImageError(f"cannot read {what}: {exc.strerror}") from None
    try:
        if compression == NONE:
            yield raw
        elif compression == GZIP:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream
        elif compression == XZ:
            with lzma.LZMAFile(raw, mode="rb") as stream:
                yield stream
        elif compression == BZIP2:
            with bz2.BZ2File(raw, mode="rb") as stream:
                yield stream
        elif compression == ZSTD:
            stream = _zstd_reader(raw, what)
            try:
                yield stream
            finally:
                stream.close()
        else:
            raise ImageError(f"{what}: unknown compression {compression!r}")
    finally:
        raw.close()


def is_decompression_error(exc: BaseException) -> bool:
    """True for the errors the decompressors raise on corrupt input."""
    import gzip, lzma, zlib  # noqa: E401 - lazy, see open_decompressed

    if isinstance(exc, (EOFError, gzip.BadGzipFile, lzma.LZMAError, zlib.error)):
        return True
    if isinstance(exc, OSError) and exc.errno is None:
        return True  # bz2 and zlib report corrupt data as an errno-less OSError
    return type(exc).__name__ == "ZstdError"


@contextmanager
def decompression_errors(what: str) -> Iterator[None]:
    """Turn a decompressor's complaint about corrupt input into ImageError."""
    try:
        yield
    except ImageError:
        raise
    except Exception as exc:
        if is_decompression_error(exc):
            raise ImageError(f"{what}: corrupt compressed data: {exc}") from None
        raise


class HashingReader:
    """A read-only stream that hashes (sha256) and counts what passes through,
    so a digest is computed in the same pass that consumes the data."""

    def __init__(self, stream: BinaryIO):
        import hashlib  # here, not at the top: ``run`` never hashes a layer

        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) everything left: a tar reader stops at the end
        marker, but the digest covers the whole stream, padding included."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def sha256_of_stream(stream: BinaryIO) -> tuple[str, int]:
    """Digest and length of everything ``stream`` yields."""
    reader = HashingReader(stream)
    reader.drain()
    return reader.digest, reader.size
