"""One blob from a registry as a stream that checks itself.

``BlobDownload`` is read like a file by whatever consumes the blob (the
decompressor feeding the unpacker): each chunk is hashed, counted against
the size the manifest gives, and copied to the blob's temporary file in the
store, all in the same pass. A transient failure (connection dropped, 5xx,
429) is retried, resuming with a Range request where the registry allows it
(and reading past what we already have where it does not). The stream only
ends (``read`` returns b"") once every byte is there and the digest
matches, so nothing downstream can finish on a blob that is wrong.
"""

from __future__ import annotations

import os
import threading

from minipod.errors import ImageError

ATTEMPTS = 3            # requests per blob; later ones resume with Range
READ_SIZE = 1 << 20
RETRY_STATUSES = (429, 500, 502, 503, 504)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}MB"


class BlobDownload:
    """The blob ``desc`` (a descriptor: digest, size) from ``client``,
    copied to the file descriptor ``out_fd`` as it is read (None: not
    kept). ``progress`` (pull.Progress) shows how far it got; once
    ``cancelled`` is set, the next read raises ImageError."""

    def __init__(self, client, desc: dict, out_fd: int | None, *, progress=None,
                 cancelled: threading.Event | None = None):
        import hashlib

        self.client = client
        self.digest, self.size = desc["digest"], desc["size"]
        self.what = f"layer {self.digest}"
        self._out_fd = out_fd
        self._progress = progress
        self._cancelled = cancelled
        self._hasher = hashlib.sha256()
        self.done = 0                  # bytes of the blob taken so far
        self._attempts = 0
        self._response = None
        self._skip = 0                 # bytes to read past after a restart without Range
        self._peeked = b""
        self._last_error: ImageError | None = None
        self.verified = False

    # ----- the stream

    def peek(self, n: int) -> bytes:
        """At least ``n`` bytes from the start (fewer if the blob is
        shorter), without consuming them: they say how it is compressed."""
        while len(self._peeked) < n:
            chunk = self._next_chunk()
            if not chunk:
                break
            self._peeked += chunk
        return self._peeked

    def read(self, size: int = -1) -> bytes:
        """The next chunk (up to about ``size`` bytes; the chunk the
        network gave when negative); b"" once the whole blob was read and
        verified."""
        if self._peeked:
            chunk, self._peeked = self._peeked, b""
            return chunk
        return self._next_chunk(size)

    def finish(self) -> None:
        """Read the rest (keeping it as usual), so that a mismatching digest
        or a short blob is reported: the root cause of a decompression or
        tar error that came first."""
        self._peeked = b""
        while self._next_chunk():
            pass

    def close(self) -> None:
        self._drop_response()

    # ----- helpers

    def _next_chunk(self, size: int = -1) -> bytes:
        import http.client

        while not self.verified:
            if self._cancelled is not None and self._cancelled.is_set():
                raise ImageError(f"{self.what}: cancelled")
            if self._response is None:
                self._open()
            try:
                chunk = self._response.read(READ_SIZE if size is None or size < 0 else max(size, 1 << 16))
            except (OSError, http.client.HTTPException) as exc:
                self._failed(ImageError(f"{self.what}: download interrupted after {self.done} bytes: {exc}"))
                continue
            if self._skip and chunk:
                cut = min(self._skip, len(chunk))
                self._skip -= cut
                chunk = chunk[cut:]
                if not chunk:
                    continue
            if not chunk:
                self._drop_response()
                if self.done < self.size:
                    self._failed(ImageError(f"{self.what}: truncated: {self.done} of {self.size} bytes"))
                    continue
                self._verify()
                return b""
            self._take(chunk)
            return chunk
        return b""

    def _take(self, chunk: bytes) -> None:
        self.done += len(chunk)
        if self.done > self.size:
            raise ImageError(f"{self.what}: larger than the {self.size} bytes its manifest says")
        self._hasher.update(chunk)
        if self._out_fd is not None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._out_fd, view):]
        if self._progress is not None:
            self._progress.set(self.digest, f"Downloading {_mb(self.done)}/{_mb(self.size)}")

    def _verify(self) -> None:
        actual = "sha256:" + self._hasher.hexdigest()
        if actual != self.digest:
            raise ImageError(f"{self.what}: content does not match its digest (got {actual})")
        self.verified = True
        if self._progress is not None:
            self._progress.set(self.digest, f"Download complete {_mb(self.size)}")

    def _open(self) -> None:
        """A response for the rest of the blob, within ATTEMPTS requests."""
        import time

        last_error = self._last_error
        while self._attempts < ATTEMPTS:
            if self._attempts:
                time.sleep(0.2 * self._attempts)
            self._attempts += 1
            headers = {"Range": f"bytes={self.done}-"} if self.done else {}
            try:
                response = self.client.get(f"blobs/{self.digest}", headers, ok=(200, 206) + RETRY_STATUSES,
                                           what=f"blob {self.digest}")
            except ImageError as exc:
                if "cannot reach" not in str(exc):
                    raise
                last_error = exc
                continue
            if response.status in RETRY_STATUSES:
                response.close()
                last_error = ImageError(f"{self.what}: registry answered HTTP {response.status}")
                continue
            if response.status == 206 and not self._range_starts_at(response, self.done):
                response.close()
                last_error = ImageError(f"{self.what}: registry resumed at the wrong offset")
                continue
            # A 200 after a partial read starts over: read past what we have.
            self._skip = self.done if response.status == 200 else 0
            self._response = response
            return
        raise last_error or ImageError(f"{self.what}: download failed")

    @staticmethod
    def _range_starts_at(response, offset: int) -> bool:
        content_range = response.headers.get("content-range", "")
        # "bytes 100-199/200"
        try:
            return int(content_range.split()[1].split("-")[0]) == offset
        except (IndexError, ValueError):
            return False

    def _failed(self, error: ImageError) -> None:
        """A transient failure: drop the response; the next read retries."""
        self._drop_response()
        self._last_error = error
        if self._attempts >= ATTEMPTS:
            raise error

    def _drop_response(self) -> None:
        if self._response is not None:
            try:
                self._response.close()
            except OSError:
                pass
            self._response = None
