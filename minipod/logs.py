"""Container logs in the CRI format that kubelet and containerd use.

One record per line::

    2026-01-02T03:04:05.123456789Z stdout F hello

The timestamp is RFC 3339 in UTC with exactly nine fraction digits (fixed
width, as containerd writes it, so records sort as text). The tag is ``F``
for a record that ends a line and ``P`` for a partial one:

* a line longer than 16 KiB is cut into ``P`` records of 16 KiB and a final
  ``F`` with the rest (containerd's ``max_container_log_line_size``);
* output still without a newline when a stream ends (``printf hello``) is
  written as ``P`` at ``flush_partial``/``close``, as containerd does. A
  reader joins ``P`` records with the next ``F`` of the same stream; a ``P``
  left at the end of the file is a line without a newline, which is what
  kubelet's reader (and ``read_log`` here) gives back: the text, no newline.

Content is kept as the raw bytes the container wrote; readers decode UTF-8
only after joining the pieces, so a character cut by a split is not lost.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from typing import Callable, Iterable, Iterator

from .errors import KernelError

STREAMS = ("stdout", "stderr")
TAG_FULL = "F"
TAG_PARTIAL = "P"
MAX_LINE = 16 * 1024

_READ_BLOCK = 64 * 1024
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)\Z")


# -- where logs live --------------------------------------------------------

def log_dir(logs_root: str, namespace: str, name: str, uid: str) -> str:
    """The directory of one pod's logs: ``<root>/<namespace>_<name>_<uid>``."""
    return os.path.join(logs_root, f"{namespace}_{name}_{uid}")


def log_path(logs_root: str, namespace: str, name: str, uid: str, container: str, restart: int) -> str:
    """The log of one run of a container: ``…/<container>/<restart>.log``."""
    return os.path.join(log_dir(logs_root, namespace, name, uid), container, f"{restart}.log")


# -- timestamps ---------------------------------------------------------------

# (second, formatted second): strftime runs once a second, not once a line.
_last_second: tuple[int, str] = (-1, "")


def format_timestamp(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, e.g. ``2026-01-02T03:04:05.123456789Z``."""
    global _last_second
    second, fraction = divmod(ns, 1_000_000_000)
    cached = _last_second
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _last_second = cached  # one tuple assignment: safe across threads
    return f"{cached[1]}.{fraction:09d}Z"


# -- writing --------------------------------------------------------------------

class LogWriter:
    """Appends a container's output to a CRI log file.

    ``write`` takes chunks as they come from a pipe, for either stream; a line
    is written once its newline arrives (an incomplete one is kept per stream),
    so that lines from stdout and stderr never mix. Thread-safe.
    """

    def __init__(self, path: str, *, clock: Callable[[], int] = time.time_ns, max_line: int = MAX_LINE):
        self.path = path
        self._clock = clock
        self._max = max_line
        self._pending = {stream: b"" for stream in STREAMS}
        self._lock = threading.Lock()
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            raise KernelError.from_oserror("open log", exc, path) from None

    def write(self, stream: str, data: bytes) -> None:
        """Log a chunk of ``stream`` output."""
        if stream not in self._pending:
            raise ValueError(f"log stream must be stdout or stderr, not {stream!r}")
        if not data:
            return
        with self._lock:
            buffer = self._pending[stream] + data
            records: list[bytes] = []
            prefix = None
            start = 0
            while (newline := buffer.find(b"\n", start)) >= 0:
                prefix = prefix or self._prefix(stream)
                self._line(records, prefix, buffer[start:newline])
                start = newline + 1
            rest = buffer[start:]
            # An endless line must not grow memory: emit it in full chunks now.
            while len(rest) > self._max:
                prefix = prefix or self._prefix(stream)
                records.append(prefix + b"P " + rest[:self._max] + b"\n")
                rest = rest[self._max:]
            self._pending[stream] = rest
            if records:
                self._append(b"".join(records))

    def flush_partial(self, stream: str | None = None) -> None:
        """Write the incomplete line kept for ``stream`` (both when None) as a
        ``P`` record: at the end of a stream, or to show a prompt."""
        with self._lock:
            records = []
            for name in ([stream] if stream else STREAMS):
                if self._pending.get(name):
                    records.append(self._prefix(name) + b"P " + self._pending[name] + b"\n")
                    self._pending[name] = b""
            if records:
                self._append(b"".join(records))

    def close(self) -> None:
        """Flush what is pending and close the file; idempotent."""
        if self._fd is None:
            return
        self.flush_partial()
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _prefix(self, stream: str) -> bytes:
        return f"{format_timestamp(self._clock())} {stream} ".encode()

    def _line(self, records: list[bytes], prefix: bytes, line: bytes) -> None:
        while len(line) > self._max:
            records.append(prefix + b"P " + line[:self._max] + b"\n")
            line = line[self._max:]
        records.append(prefix + b"F " + line + b"\n")

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError(f"log {self.path} is closed")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            raise KernelError.from_oserror("write log", exc, self.path) from None


# -- reading --------------------------------------------------------------------

def _parse(record: bytes) -> tuple[bytes, str, str, bytes]:
    """Split one record (without its newline) into its four fields."""
    timestamp, sep1, rest = record.partition(b" ")
    stream, sep2, rest = rest.partition(b" ")
    tag, sep3, content = rest.partition(b" ")
    if not (sep1 and sep2):
        raise ValueError(f"not a CRI log line: {record[:80]!r}")
    if not _TIMESTAMP.match(timestamp):
        raise ValueError(f"bad timestamp in log line: {timestamp[:40]!r}")
    if stream not in (b"stdout", b"stderr"):
        raise ValueError(f"bad stream in log line: {stream[:20]!r}")
    # Tags may carry more after a colon ("F:x"); only the first one counts.
    first_tag = tag.split(b":", 1)[0]
    if not sep3 or first_tag not in (b"F", b"P"):
        raise ValueError(f"bad tag in log line: {tag[:20]!r}")
    return timestamp, stream.decode(), first_tag.decode(), content


def parse_line(line: str) -> tuple[str, str, str, str]:
    """``(timestamp, stream, tag, content)`` of one log line (its newline is
    optional). Raises ValueError when the line is not CRI format."""
    raw = line.encode("utf-8", "surrogateescape")
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    timestamp, stream, tag, content = _parse(raw)
    return timestamp.decode(), stream, tag, content.decode("utf-8", "surrogateescape")


class LineAssembler:
    """Joins P records with their F and turns lines into text."""

    def __init__(self, timestamps: bool, streams: Iterable[str]):
        self.timestamps = timestamps
        self.streams = set(streams)
        # stream -> (timestamp of the line's first piece, pieces)
        self.pending: dict[str, tuple[bytes, list[bytes]]] = {}

    def feed(self, record: bytes) -> str | None:
        try:
            timestamp, stream, tag, content = _parse(record)
        except ValueError:
            return None  # as kubelet does: a bad line is skipped
        if stream not in self.streams:
            return None
        first_ts, pieces = self.pending.pop(stream, (timestamp, []))
        pieces.append(content)
        if tag == TAG_PARTIAL:
            self.pending[stream] = (first_ts, pieces)
            return None
        return self._text(first_ts, pieces, b"\n")

    def flush(self) -> list[str]:
        """Lines left unfinished: returned as they are, without a newline."""
        lines = [self._text(ts, pieces, b"") for ts, pieces in self.pending.values()]
        self.pending.clear()
        return lines

    def _text(self, timestamp: bytes, pieces: list[bytes], end: bytes) -> str:
        text = (b"".join(pieces) + end).decode("utf-8", "replace")
        return f"{timestamp.decode()} {text}" if self.timestamps else text


def _records_backwards(f, end: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, record)`` from the last complete record back to the first.
    Bytes after the last newline (a write in progress) are not a record."""
    pos = end
    buffer = b""
    found_end = False
    while pos > 0:
        size = min(_READ_BLOCK, pos)
        pos -= size
        f.seek(pos)
        buffer = f.read(size) + buffer
        if not found_end:
            cut = buffer.rfind(b"\n")
            if cut < 0:
                buffer = b""
                continue
            buffer = buffer[:cut + 1]
            found_end = True
        parts = buffer.split(b"\n")[:-1]
        # Unless at the start of the file, the first piece may be cut short.
        keep = parts.pop(0) if pos > 0 else None
        offset = pos + (len(keep) + 1 if keep is not None else 0)
        located = []
        for part in parts:
            located.append((offset, part))
            offset += len(part) + 1
        yield from reversed(located)
        buffer = keep + b"\n" if keep is not None else b""


def _tail_offset(f, lines: int, streams: Iterable[str]) -> int:
    """An offset (a record boundary) from which reading gives the last
    ``lines`` lines of ``streams`` whole; a few older lines may come too, the
    reader keeps only the last ones."""
    wanted = set(streams)
    end = f.seek(0, os.SEEK_END)
    counted = 0
    seen: set[str] = set()
    # Streams whose counted line may still have pieces further back.
    open_lines: set[str] = set()
    for offset, record in _records_backwards(f, end):
        try:
            _ts, stream, tag, _content = _parse(record)
        except ValueError:
            continue
        if stream not in wanted:
            continue
        if tag == TAG_PARTIAL and stream in seen:
            continue  # an earlier piece of a line already accounted for
        # This record ends a line of its stream: an F, or the P that
        # closes the file's unfinished line. The stream's later line (if
        # any) starts just after it.
        open_lines.discard(stream)
        seen.add(stream)
        if counted >= lines:
            if not open_lines:
                return offset + len(record) + 1
            continue  # older than needed; other streams still reach back
        counted += 1
        open_lines.add(stream)
    return 0


def read_log(path: str, *, timestamps: bool = False, tail: int | None = None,
             streams: Iterable[str] = STREAMS) -> Iterator[str]:
    """Each line of a CRI log (pieces joined), ending with "\\n" — except an
    unfinished last line, given as it is. ``timestamps`` prefixes each line
    with its timestamp and a space (``kubectl logs --timestamps``); ``tail``
    keeps the last N lines (None or negative: all)."""
    streams = tuple(streams)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise KernelError.from_oserror("read log", exc, path) from None
    with f:
        assembler = LineAssembler(timestamps, streams)
        if tail is not None and tail >= 0:
            f.seek(_tail_offset(f, tail, streams))
            last = collections.deque(maxlen=tail)
            last.extend(_read_lines(f, assembler))
            last.extend(assembler.flush())
            yield from last
            return
        yield from _read_lines(f, assembler)
        yield from assembler.flush()


def _read_lines(f, assembler: LineAssembler) -> Iterator[str]:
    for record in f:
        if not record.endswith(b"\n"):
            return  # being written right now
        line = assembler.feed(record[:-1])
        if line is not None:
            yield line


def follow_logs(path_getter: Callable[[], str | None], *, poll: float = 0.1,
                stop: Callable[[], bool] = lambda: False, timestamps: bool = False,
                tail: int | None = None, streams: Iterable[str] = STREAMS) -> Iterator[str]:
    """Lines of a growing log, like ``tail -f``.

    ``path_getter()`` names the current log file (or None while there is
    none); when it changes (the container restarted), the old file is read to
    its end and following goes on in the new one from its start. ``tail``
    limits the lines shown from the first file. Ends once ``stop()`` is true
    and everything written before that is read.
    """
    streams = tuple(streams)
    assembler = LineAssembler(timestamps, streams)
    follower = _Follower(assembler)
    first_file = True
    try:
        while True:
            stopping = stop()
            path = path_getter()
            if path != follower.path:
                yield from follower.finish()
                follower.path = path
            if follower.file is None and follower.path and follower.open():
                if first_file and tail is not None and tail >= 0:
                    follower.file.seek(_tail_offset(follower.file, tail, streams))
                    last = collections.deque(follower.read(), maxlen=tail)
                    yield from last
                first_file = False
            got = False
            for line in follower.read():
                got = True
                yield line
            if stopping:
                yield from follower.finish()
                return
            if not got:
                time.sleep(poll)
    finally:
        follower.close()


class _Follower:
    """The file being followed and the unfinished record read from it."""

    def __init__(self, assembler: LineAssembler):
        self.assembler = assembler
        self.path: str | None = None
        self.file = None
        self.carry = b""

    def open(self) -> bool:
        try:
            self.file = open(self.path, "rb")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise KernelError.from_oserror("read log", exc, self.path) from None
        self.carry = b""
        return True

    def read(self) -> Iterator[str]:
        if self.file is None:
            return
        if os.fstat(self.file.fileno()).st_size < self.file.tell():
            self.file.seek(0)  # truncated: start over
            self.carry = b""
        # In blocks, so that following a large log does not load it whole.
        while chunk := self.file.read(_READ_BLOCK):
            data = self.carry + chunk
            cut = data.rfind(b"\n") + 1
            self.carry = data[cut:]
            for record in data[:cut].split(b"\n")[:-1]:
                line = self.assembler.feed(record)
                if line is not None:
                    yield line

    def finish(self) -> Iterator[str]:
        """Read the current file to its end and give its unfinished lines."""
        yield from self.read()
        yield from self.assembler.flush()
        self.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
