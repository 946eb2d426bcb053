"""The supervisor's event loop: file descriptors, timers, children, signals.

One thread, one ``selectors`` call: pipes carrying container output,
sockets of probes in flight, a wake-up pipe written by signal handlers
(``signal.set_wakeup_fd``), and the earliest timer as the select timeout.
Children are reaped here and handed to whoever watches their pid, so a
container's exit, an exec probe's exit and a spawn never race.

Not ``asyncio``: it costs ~25 ms to import and a thread-safe machinery the
supervisor has no use for; this is the part of it a supervisor needs.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import selectors
import signal
import time
from typing import Callable

now = time.monotonic
log = logging.getLogger("minipod.loop")


class Timer:
    """A call scheduled on the loop; ``cancel()`` makes it a no-op."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()  # ties keep the order they were scheduled in
        self._children: dict[int, Callable[[int], None]] = {}
        self.signals: list[int] = []
        self._wake_r = self._wake_w = -1

    # ------------------------------------------------------------- signals
    def catch_signals(self, *signums: int) -> None:
        """Turn signals into entries of ``self.signals`` (read after each
        step), waking the select through a pipe. SIGCHLD is always caught:
        it is how children are noticed."""
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in {signal.SIGCHLD, *signums}:
            signal.signal(signum, self._on_signal)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)

    def _on_signal(self, signum, frame) -> None:
        if signum != signal.SIGCHLD:
            self.signals.append(signum)

    def take_signals(self) -> list[int]:
        signals, self.signals = self.signals, []
        return signals

    # ------------------------------------------------------------- fds
    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_WRITE, callback)

    def watch(self, fd: int, events: int, callback: Callable[[], None]) -> None:
        """Register ``fd`` or change what it waits for."""
        try:
            self.selector.modify(fd, events, callback)
        except KeyError:
            self.selector.register(fd, events, callback)

    def forget(self, fd: int) -> None:
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    # ------------------------------------------------------------- timers
    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(now() + max(0.0, delay), callback)

    def _next_timer(self) -> Timer | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][2] if self._timers else None

    def _run_due_timers(self) -> None:
        current = now()
        while True:
            timer = self._next_timer()
            if timer is None or timer.when > current:
                return
            heapq.heappop(self._timers)
            timer.cancelled = True  # ran: a late cancel() is harmless
            _call(timer.callback)

    # ------------------------------------------------------------- children
    def watch_child(self, pid: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(wait_status)`` when child ``pid`` exits."""
        self._children[pid] = callback

    def reap(self) -> None:
        """Collect every exited child. Orphans re-parented to us (we are a
        subreaper) have no watcher and are simply reaped."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            callback = self._children.pop(pid, None)
            if callback is not None:
                _call(callback, status)

    # ------------------------------------------------------------- one step
    def run_once(self, max_wait: float | None = None) -> None:
        """Wait for the next thing to happen (at most ``max_wait`` seconds)
        and dispatch it: ready fds, then signals' children, then timers."""
        timer = self._next_timer()
        wait = max_wait
        if timer is not None:
            until_timer = max(0.0, timer.when - now())
            wait = until_timer if wait is None else min(wait, until_timer)
        for key, _ in self.selector.select(wait):
            if key.fd == self._wake_r:
                _drain(self._wake_r)
            elif key.data is not None:
                # An earlier callback of this round may have closed this fd
                # (or closed it and reused the number): only call the owner
                # it still has.
                current = self.selector.get_map().get(key.fd)
                if current is not None and current.data is key.data:
                    _call(key.data)
        self.reap()
        self._run_due_timers()

    def close(self) -> None:
        if self._wake_w >= 0:
            signal.set_wakeup_fd(-1)
        self.selector.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1


def _call(callback, *args) -> None:
    """One callback's bug must not take the pod's supervisor down with it
    (its pod would be left Unknown): it is logged, and the loop goes on."""
    try:
        callback(*args)
    except Exception:
        log.exception("error in %r", callback)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
