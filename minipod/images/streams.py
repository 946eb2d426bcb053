"""Byte streams for unpacking layers in one pass.

* ``TarSource``: the uncompressed tar stream as ``tarfile``'s seekable mode
  reads it (``tell`` and a ``seek`` that only goes forward), with large reads
  underneath and every byte hashed once on the way, so the diff ID comes out
  of the unpack itself. tarfile's own stream mode reads 10 kB at a time
  through two buffering layers; that was a third of the unpack's CPU time.
* ``ChunkPipe``: a bounded hand-over of chunks from a producer thread
  (network, decompression) to the thread that unpacks. zlib, sha256 and the
  file system calls release the GIL, so on a machine with two CPUs the
  decompression and the file writes overlap.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import BinaryIO

CHUNK = 1 << 20


def _sha256():
    import hashlib  # here, not at the top: ``run`` never hashes a layer

    return hashlib.sha256()


class TarSource:
    """A forward-only reader over ``stream`` that hashes (sha256) and counts
    everything it takes from it. ``seek`` may go forward (the bytes skipped
    are read and hashed) or back within the chunk in hand; tarfile needs no
    more than that."""

    def __init__(self, stream: BinaryIO, chunk: int = CHUNK):
        self._stream = stream
        self._chunk = chunk
        self._hash = _sha256()
        self._buf = b""
        self._start = 0      # read position in _buf
        self._pos = 0        # stream position of _buf[_start]
        self.size = 0        # bytes taken from the stream so far

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def _fill(self) -> bool:
        """Replace the chunk in hand, which is used up, with the next one;
        False at the end of the stream."""
        data = self._stream.read(self._chunk)
        if not data:
            return False
        self._hash.update(data)
        self.size += len(data)
        self._buf, self._start = data, 0
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        avail = len(self._buf) - self._start
        if avail >= size:
            return self._take(size)
        # Across chunks: join the pieces (a tar header at a chunk's end),
        # never the chunks themselves.
        parts = [self._take(avail)] if avail else []
        need = size - avail
        while need and self._fill():
            step = min(need, len(self._buf))
            parts.append(self._take(step))
            need -= step
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def _take(self, n: int) -> bytes:
        start = self._start
        self._start += n
        self._pos += n
        if start == 0 and n == len(self._buf):
            return self._buf
        return self._buf[start:start + n]

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self._pos
        elif whence != 0:
            raise OSError("TarSource cannot seek from the end")
        if offset < self._pos:
            back = self._pos - offset
            if back > self._start:
                raise OSError(f"TarSource cannot seek back to {offset} (at {self._pos})")
            self._start -= back
            self._pos = offset
            return offset
        self.skip(offset - self._pos)
        return offset

    def skip(self, n: int) -> int:
        """Read past ``n`` bytes (hashing them); returns how many there were."""
        done = 0
        while done < n:
            avail = len(self._buf) - self._start
            if not avail and not self._fill():
                break
            step = min(n - done, len(self._buf) - self._start)
            self._start += step
            self._pos += step
            done += step
        return done

    def copy_to(self, write, n: int) -> int:
        """Hand the next ``n`` bytes to ``write`` (which takes a buffer and
        returns how much it wrote), chunk by chunk without copying them;
        returns how many there were."""
        done = 0
        while done < n:
            avail = len(self._buf) - self._start
            if not avail:
                if not self._fill():
                    break
                avail = len(self._buf)
            step = min(n - done, avail)
            view = memoryview(self._buf)[self._start:self._start + step]
            while view:
                view = view[write(view):]
            self._start += step
            self._pos += step
            done += step
        return done

    def views(self, n: int) -> list[memoryview]:
        """The next ``n`` bytes (fewer at the end of the stream) as views of
        the chunks that hold them, without copying."""
        out = []
        self.copy_to(lambda view: out.append(view) or len(view), n)
        return out

    def drain(self) -> None:
        """Read (and hash) everything left: a tar reader stops at the end
        marker, but the digest covers the whole stream, padding included."""
        self._start = len(self._buf)
        while self._fill():
            self._start = len(self._buf)


class PipeClosed(Exception):
    """The reading side of a ChunkPipe gave up: the producer should stop."""


class ChunkPipe:
    """Chunks from one producer thread to one reader, at most ``depth`` in
    flight (so memory stays bounded when the reader is slower). The reader
    sees a stream (``read``); the producer ``put``s chunks, then ``close``s,
    or ``fail``s with the exception the reader should raise."""

    def __init__(self, depth: int = 8):
        self._chunks: deque[bytes] = deque()
        self._depth = depth
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._abandoned = False

    # ----- producer side

    def put(self, chunk: bytes) -> None:
        if not chunk:
            return
        with self._cond:
            while len(self._chunks) >= self._depth and not self._abandoned:
                self._cond.wait()
            if self._abandoned:
                raise PipeClosed()
            self._chunks.append(chunk)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self._error = error
            self._closed = True
            self._cond.notify_all()

    # ----- reader side

    def abandon(self) -> None:
        """The reader stops: a producer blocked in ``put`` gets PipeClosed."""
        with self._cond:
            self._abandoned = True
            self._chunks.clear()
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        """The next chunk as it came (``size`` is a hint: TarSource asks for
        at least one chunk's worth); b"" at the end."""
        with self._cond:
            while not self._chunks and not self._closed:
                self._cond.wait()
            if self._chunks:
                chunk = self._chunks.popleft()
                self._cond.notify_all()
                return chunk
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return b""


def run_producer(pipe: ChunkPipe, produce, name: str) -> threading.Thread:
    """Start a thread that calls ``produce(pipe.put)`` and then closes the
    pipe, or fails it with what ``produce`` raised (an ImageError for the
    reader to report)."""

    def body() -> None:
        try:
            produce(pipe.put)
        except PipeClosed:
            pipe.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            pipe.fail(exc)
        else:
            pipe.close()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
