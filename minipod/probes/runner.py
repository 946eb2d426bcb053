"""A container's probes at work: startup first, then liveness and readiness.

The runner schedules attempts on the supervisor's loop, counts their
results (``schedule.Verdicts``) and tells its listener what matters: the
container has started (its startup probe passed), its readiness changed,
a liveness or startup probe failed for good (the supervisor kills the
container), and each failed attempt (an ``Unhealthy`` event, as kubelet
records one).
"""

from __future__ import annotations

from typing import Protocol

from ..eventloop import Loop, Timer, now
from .checks import Check, CheckContext, start_check
from .result import Result
from .schedule import ProbeSpec, Verdicts


class ProbeListener(Protocol):
    def probe_started(self) -> None: ...
    def probe_ready(self, ready: bool) -> None: ...
    def probe_failed(self, spec: ProbeSpec, message: str) -> None: ...
    def probe_event(self, kind: str, reason: str, message: str) -> None: ...


class ContainerProbes:
    def __init__(self, loop: Loop, ctx: CheckContext, specs: dict[str, ProbeSpec],
                 listener: ProbeListener, started_at: float):
        self.loop = loop
        self.ctx = ctx
        self.specs = specs
        self.listener = listener
        self.started_at = started_at  # monotonic; initial delays count from here
        self.verdicts = {kind: Verdicts(spec) for kind, spec in specs.items()}
        self.timers: dict[str, Timer] = {}
        self.checks: dict[str, Check] = {}
        self.stopped = False

    def start(self) -> None:
        """Begin with the startup probe; without one the container counts
        as started at once and the others begin."""
        if "startup" in self.specs:
            self._schedule("startup", self.started_at + self.specs["startup"].initial_delay)
        else:
            self._begin_main_probes()

    def _begin_main_probes(self) -> None:
        self.listener.probe_started()
        for kind in ("liveness", "readiness"):
            if kind in self.specs:
                self._schedule(kind, self.started_at + self.specs[kind].initial_delay)

    def stop(self) -> None:
        """The container is going away: no more attempts, none in flight."""
        self.stopped = True
        for timer in self.timers.values():
            timer.cancel()
        for check in self.checks.values():
            check.cancel()
        self.timers.clear()
        self.checks.clear()

    def _schedule(self, kind: str, when: float) -> None:
        if not self.stopped:
            self.timers[kind] = self.loop.call_at(max(when, now()), lambda: self._attempt(kind))

    def _attempt(self, kind: str) -> None:
        spec = self.specs[kind]
        began = now()
        self.timers.pop(kind, None)
        # The next attempt is due a period after this one began, whatever
        # this one's answer; it is scheduled once this one ends.
        check = start_check(self.ctx, spec.handler, spec.timeout,
                            lambda result: self._result(kind, began + spec.period, result))
        if not check.done:  # a refused connection may have answered already
            self.checks[kind] = check

    def _result(self, kind: str, next_at: float, result: Result) -> None:
        self.checks.pop(kind, None)
        if self.stopped:
            return
        spec = self.specs[kind]
        if result.warning:
            self.listener.probe_event("Warning", "ProbeWarning", f"{spec.title} probe warning: {result.warning}")
        if not result.ok:
            self.listener.probe_event("Warning", "Unhealthy", f"{spec.title} probe failed: {result.message}")
        verdict = self.verdicts[kind].record(result.ok)
        if kind == "readiness":
            if verdict is not None:
                self.listener.probe_ready(verdict)
        elif verdict is False:  # liveness or startup failed for good
            self.stop()
            self.listener.probe_failed(spec, result.message)
            return
        elif kind == "startup" and verdict is True:
            self._begin_main_probes()
            return
        self._schedule(kind, next_at)
