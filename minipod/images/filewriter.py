"""Regular files of a layer written by a few worker threads.

Creating a file is mostly kernel time (open, write, chown, chmod, utime,
close), and those calls release the GIL: with workers doing them while the
unpacking thread parses the next tar headers, a layer unpacks faster than
one thread can, on any machine with more than one CPU.

The unpacker stays the only one that decides *where* things go: it opens
the parent directory (never following a symlink) and hands over that fd,
a name and the data. It must ``settle`` a path before it touches it again
(a later entry replacing it, a hard link to it, a whiteout of it) and
``flush`` before it closes a directory fd or removes a tree, so the order of
the tar is kept wherever it matters.
"""

from __future__ import annotations

import os
from collections import deque

# At most this many files in flight, holding at most this many bytes: each
# holds its data (views of the stream's chunks) until written.
MAX_JOBS = 64
MAX_BYTES = 64 << 20
# Bigger files are written by the unpacking thread itself, straight from
# the stream, so they never sit in memory whole.
MAX_FILE_BYTES = 8 << 20

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def worker_count() -> int:
    """Workers for this machine now: one per CPU that is idle (by the load
    average, as ``make -l`` judges it), at most 3, none when there is no
    idle CPU. Threads only help with a CPU to run on: on a busy machine
    they cost about a fifth more time than writing in the unpacking thread
    (bench/images.py, 2 CPUs at load 2), on an idle one they save a fifth."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        idle = cpus - os.getloadavg()[0]
    except OSError:
        idle = cpus - 1
    return max(0, min(3, int(idle)))


def write_file(parent: int, name: str, views, finish) -> None:
    """Create ``name`` in the directory ``parent`` (never following a
    symlink, never over an existing entry), write ``views`` into it, then
    call ``finish(fd)`` (owner, mode, xattrs, times) before closing it."""
    fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=parent)
    try:
        for view in views:
            while view:
                view = view[os.write(fd, view):]
        finish(fd)
    finally:
        os.close(fd)


class FileWriter:
    """A small pool of threads creating files; see the module docstring."""

    def __init__(self, workers: int):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unpack")
        self._queue: deque = deque()      # (key, future, bytes), oldest first
        self._bytes = 0
        self.pending: dict[tuple[str, ...], object] = {}

    def submit(self, key: tuple[str, ...], size: int, job) -> None:
        """Run ``job()`` (which creates the file at ``key``) on a worker."""
        while self._queue and (len(self._queue) >= MAX_JOBS or self._bytes + size > MAX_BYTES):
            self._retire_oldest()
        future = self._pool.submit(job)
        self._queue.append((key, future, size))
        self._bytes += size
        self.pending[key] = future

    def settle(self, *keys: tuple[str, ...]) -> None:
        """Wait until no file is pending at any of ``keys`` nor at any of
        their parent paths (a file pending at ``a`` must exist before an
        entry ``a/b`` finds it there)."""
        if not self.pending:
            return
        for key in keys:
            for depth in range(1, len(key) + 1):
                future = self.pending.get(key[:depth])
                if future is not None and not future.done():
                    self.flush()
                    return

    def flush(self) -> None:
        """Wait for every file in flight; raise the first error of a worker."""
        try:
            while self._queue:
                self._retire_oldest()
        finally:
            self.pending.clear()

    def close(self) -> None:
        """Wait for the workers to finish (whatever failed) and stop them;
        nothing may run once the caller closes its directory fds."""
        self._pool.shutdown(wait=True)
        self._queue.clear()
        self.pending.clear()

    def _retire_oldest(self) -> None:
        key, future, size = self._queue.popleft()
        self._bytes -= size
        if self.pending.get(key) is future:
            del self.pending[key]
        future.result()  # a worker's ImageError is raised here
