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


class GzipReader:
    """The decompressed bytes of a gzip stream (every member, as gzip reads
    them) from ``raw``. zlib itself checks each member's CRC and length;
    input is taken in large chunks and output handed out as zlib makes it,
    which is about a quarter faster than ``gzip.GzipFile`` (8 kB reads and
    a second CRC pass in Python)."""

    def __init__(self, raw: BinaryIO, chunk: int = CHUNK):
        self._zlib = inflate_module()
        self._raw = raw
        self._chunk = chunk
        self._input = b""         # taken from raw, not yet given to zlib
        self._member = None       # the decompressor of the member in progress

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (a chunk's worth when negative); b"" at the end."""
        limit = self._chunk * 4 if size is None or size < 0 else size
        while True:
            data, self._input = self._input or self._raw.read(self._chunk), b""
            if not data:
                if self._member is not None:
                    raise EOFError("compressed data ended before the end-of-stream marker")
                return b""
            if self._member is None:
                # As gzip does: zero padding after a member is not another member.
                data = data.lstrip(b"\0")
                if not data:
                    continue
                self._member = self._zlib.decompressobj(16 + self._zlib.MAX_WBITS)
            out = self._member.decompress(data, limit)
            if self._member.eof:
                self._input = self._member.unused_data
                self._member = None
            else:
                self._input = self._member.unconsumed_tail
            if out:
                return out

    def close(self) -> None:
        pass


def inflate_module():
    """The zlib to inflate with: ``zlib_ng`` (the zlib-ng library, about
    three times faster at inflating, same interface) when that optional
    module is installed, else the standard ``zlib``."""
    try:
        from zlib_ng import zlib_ng as fast  # optional: pip install zlib-ng
    except ImportError:
        import zlib  # lazy, see open_decompressed

        return zlib
    return fast


def decompressing_reader(raw: BinaryIO, compression: str, what: str) -> BinaryIO:
    """A reader of ``raw``'s bytes decompressed as ``compression`` says."""
    if compression == NONE:
        return raw
    if compression == GZIP:
        return GzipReader(raw)
    if compression == ZSTD:
        return _zstd_reader(raw, what)
    if compression == XZ:
        import lzma  # lazy, see open_decompressed

        return lzma.LZMAFile(raw, mode="rb")
    if compression == BZIP2:
        import bz2  # lazy, see open_decompressed

        return bz2.BZ2File(raw, mode="rb")
    raise ImageError(f"{what}: unknown compression {compression!r}")


@contextmanager
def open_decompressed(path: str, compression: str | None = None, what: str | None = None) -> Iterator[BinaryIO]:
    """Open ``path`` for reading its uncompressed bytes. ``what`` names the
    file in error messages (defaults to the path). The decompressors are
    imported when used: only image writes need them."""
    what = what or path
    if compression is None:
        compression = detect_file_compression(path)
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise ImageError(f"cannot read {what}: {exc.strerror}") from None
    try:
        stream = decompressing_reader(raw, compression, what)
        try:
            yield stream
        finally:
            if stream is not raw:
                stream.close()
    finally:
        raw.close()


def is_decompression_error(exc: BaseException) -> bool:
    """True for the errors the decompressors raise on corrupt input."""
    import gzip, lzma, zlib  # noqa: E401 - lazy, see open_decompressed

    if isinstance(exc, (EOFError, gzip.BadGzipFile, lzma.LZMAError, zlib.error, inflate_module().error)):
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


def sha256_of_stream(stream: BinaryIO) -> tuple[str, int]:
    """Digest and length of everything ``stream`` yields."""
    import hashlib  # here, not at the top: ``run`` never hashes a layer

    hasher, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        hasher.update(chunk)
        size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size
