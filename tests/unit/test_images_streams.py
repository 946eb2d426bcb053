"""The one-pass machinery of layer unpacking: the gzip reader, the
forward-only tar source, the chunk pipe between threads, the threaded
unpack of a stream, and a blob download that resumes and checks itself."""

import gzip
import hashlib
import io
import os
import tarfile
import threading
import time
import zlib

import pytest

from minipod.errors import ImageError
from minipod.images import compression as comp
from minipod.images.download import BlobDownload
from minipod.images.layers import LayerStore
from minipod.images.streams import ChunkPipe, TarSource, run_producer


def _read_all(reader, size=-1) -> bytes:
    out = []
    while chunk := reader.read(size):
        out.append(chunk)
    return b"".join(out)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# ----- GzipReader


def test_gzip_reader_reads_every_member_and_skips_zero_padding():
    one, two = os.urandom(3000) * 100, b"second member " * 5000
    data = gzip.compress(one) + gzip.compress(two) + b"\0" * 1024
    assert _read_all(comp.GzipReader(io.BytesIO(data), chunk=4096)) == one + two
    assert _read_all(comp.GzipReader(io.BytesIO(data)), size=1000) == one + two  # small reads too


def test_gzip_reader_limits_what_one_read_returns():
    reader = comp.GzipReader(io.BytesIO(gzip.compress(b"\0" * (10 << 20))))  # 10 MB from a few kB
    assert len(reader.read(1 << 16)) <= 1 << 16


# zlib's own error, or zlib-ng's when that is installed (compression.py turns either into an ImageError)
INFLATE_ERRORS = (zlib.error, comp.inflate_module().error)


@pytest.mark.parametrize("damage, error", [
    (lambda d: d[:-100], EOFError),                                      # truncated
    (lambda d: d[:-8] + bytes([d[-8] ^ 1]) + d[-7:], INFLATE_ERRORS),   # CRC of the content wrong
    (lambda d: d + b"garbage after the member", INFLATE_ERRORS),
    (lambda d: b"not gzip at all", INFLATE_ERRORS),
])
def test_gzip_reader_refuses_damaged_streams(damage, error):
    data = damage(gzip.compress(b"content " * 10000))
    with pytest.raises(error):
        _read_all(comp.GzipReader(io.BytesIO(data)))
    with pytest.raises(error):
        _read_all(comp.GzipReader(io.BytesIO(data)))
    for kind in error if isinstance(error, tuple) else (error,):
        assert comp.is_decompression_error(kind("x"))


# ----- TarSource


def test_tar_source_hashes_everything_and_seeks_only_forward():
    data = bytes(range(256)) * 5000
    source = TarSource(io.BytesIO(data), chunk=1000)
    assert source.read(10) == data[:10]
    source.seek(5)  # back within the chunk in hand
    assert source.read(5) == data[5:10] and source.tell() == 10
    source.seek(4000)  # forward: read past
    assert source.read(3) == data[4000:4003]
    with pytest.raises(OSError):
        source.seek(0)  # no longer in hand
    written = []
    assert source.copy_to(lambda view: written.append(bytes(view)) or len(view), 2500) == 2500
    assert b"".join(written) == data[4003:6503]
    views = source.views(1500)
    assert b"".join(bytes(v) for v in views) == data[6503:8003]
    source.drain()
    assert source.digest == _sha(data) and source.size == len(data)
    assert source.read(10) == b""


# ----- ChunkPipe


def test_pipe_hands_chunks_over_in_order_and_ends():
    pipe = ChunkPipe(depth=2)
    run_producer(pipe, lambda put: [put(bytes([i]) * 10) for i in range(20)], "test")
    assert _read_all(pipe) == b"".join(bytes([i]) * 10 for i in range(20))


def test_pipe_gives_the_reader_the_producers_error_after_its_chunks():
    def produce(put):
        put(b"first")
        raise ImageError("the download went wrong")

    pipe = ChunkPipe()
    run_producer(pipe, produce, "test")
    assert pipe.read() == b"first"
    with pytest.raises(ImageError, match="went wrong"):
        pipe.read()


def test_abandoned_pipe_stops_a_blocked_producer():
    stopped = threading.Event()

    def produce(put):
        try:
            while True:
                put(b"x" * 100)
        finally:
            stopped.set()

    pipe = ChunkPipe(depth=1)
    thread = run_producer(pipe, produce, "test")
    pipe.read()
    pipe.abandon()
    thread.join(5)
    assert stopped.is_set() and not thread.is_alive()


# ----- LayerStore.unpack_stream: decompression on a second thread


def test_unpack_stream_in_a_pipeline(tmp_path):
    data = _tar({f"dir/file{i}": os.urandom(i * 997) for i in range(50)})
    target = tmp_path / "layer"
    target.mkdir()
    result = LayerStore.unpack_stream(io.BytesIO(gzip.compress(data)), comp.GZIP, str(target), what="layer 1")
    assert result.diff_id == _sha(data)
    assert len(os.listdir(target / "dir")) == 50


@pytest.mark.parametrize("blob, error", [
    (lambda tar: gzip.compress(tar)[:-50], "corrupt compressed data"),
    (lambda tar: gzip.compress(_tar({"../escape": b"x"}) + tar), "escape the layer"),
])
def test_unpack_stream_errors_end_both_threads(tmp_path, blob, error):
    target = tmp_path / "layer"
    target.mkdir()
    before = threading.active_count()
    big = _tar({f"f{i}": os.urandom(200_000) for i in range(40)})  # more than the pipe holds
    with pytest.raises(ImageError, match=error):
        LayerStore.unpack_stream(io.BytesIO(blob(big)), comp.GZIP, str(target), what="layer 1")
    assert threading.active_count() == before
    assert not (tmp_path / "escape").exists()


# ----- BlobDownload, against a registry client stand-in


class _Response:
    def __init__(self, status, body: bytes, headers=None, fail_after=None):
        self.status, self.headers = status, headers or {}
        self._body, self._fail_after, self._pos = body, fail_after, 0

    def read(self, size=-1):
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        end = len(self._body) if size < 0 else self._pos + size
        if self._fail_after is not None:
            end = min(end, self._fail_after)
        chunk, self._pos = self._body[self._pos:end], end
        return chunk

    def close(self):
        pass


class _Client:
    """Serves ``blob``: the first response dies after ``cut`` bytes; later
    ones honour Range (206) or not (200)."""

    def __init__(self, blob: bytes, cut=None, ranges=True, always_cut=False):
        self.blob, self.cut, self.ranges, self.always_cut = blob, cut, ranges, always_cut
        self.requests = []

    def get(self, path, headers=None, ok=(200,), what=None):
        headers = headers or {}
        self.requests.append(headers.get("Range"))
        cut = self.cut if (len(self.requests) == 1 or self.always_cut) else None
        if "Range" in headers and self.ranges:
            start = int(headers["Range"].split("=")[1].rstrip("-"))
            return _Response(206, self.blob[start:], {"content-range": f"bytes {start}-{len(self.blob) - 1}/*"},
                             fail_after=cut)
        return _Response(200, self.blob, fail_after=cut)


def _download(client, blob, tmp_path, size=None, cancelled=None):
    out = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        desc = {"digest": _sha(blob), "size": len(blob) if size is None else size}
        download = BlobDownload(client, desc, out, cancelled=cancelled)
        return _read_all(download), download
    finally:
        os.close(out)


@pytest.mark.parametrize("ranges", [True, False], ids=["resumes-with-range", "restarts-and-reads-past"])
def test_download_survives_a_dropped_connection(tmp_path, ranges, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    blob = os.urandom(3 << 20)
    client = _Client(blob, cut=1 << 20, ranges=ranges)
    data, download = _download(client, blob, tmp_path)
    assert data == blob and download.verified
    assert (tmp_path / "blob").read_bytes() == blob
    assert client.requests == [None, f"bytes={1 << 20}-"]


def test_download_gives_up_after_three_attempts(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    blob = os.urandom(100_000)
    client = _Client(blob, cut=10, always_cut=True)
    with pytest.raises(ImageError, match="download interrupted"):
        _download(client, blob, tmp_path)
    assert len(client.requests) == 3


def test_download_refuses_a_wrong_digest_or_size(tmp_path):
    blob = os.urandom(5000)
    with pytest.raises(ImageError, match="larger than the 4000 bytes"):
        _download(_Client(blob), blob, tmp_path, size=4000)
    tampered = _Client(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ImageError, match="content does not match its digest"):
        _download(tampered, blob, tmp_path)


def test_download_stops_when_cancelled(tmp_path):
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(ImageError, match="cancelled"):
        _download(_Client(b"x" * 10), b"x" * 10, tmp_path, cancelled=cancelled)
