"""The probe rules: when to try, and when results add up to a verdict.

As kubelet applies them: the first attempt comes ``initialDelaySeconds``
after the container started, then one every ``periodSeconds`` (counted
from the start of the previous attempt, so a slow check does not stretch
the period); ``successThreshold`` consecutive successes make a probe pass,
``failureThreshold`` consecutive failures make it fail. A readiness probe
starts out failed (a container is not ready until it says so); liveness
and startup probes start out passed and unknown.
"""

from __future__ import annotations

from ..record import Record

KINDS = ("startup", "liveness", "readiness")


class ProbeSpec(Record):
    kind: str
    handler: dict
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    grace: float | None = None  # the probe's own terminationGracePeriodSeconds

    @classmethod
    def of(cls, kind: str, probe: dict) -> "ProbeSpec":
        handler = {k: probe[k] for k in ("exec", "httpGet", "tcpSocket", "grpc") if k in probe}
        grace = probe.get("terminationGracePeriodSeconds")
        return cls(kind, handler, float(probe.get("initialDelaySeconds", 0)), float(probe.get("periodSeconds", 10)),
                   float(probe.get("timeoutSeconds", 1)), int(probe.get("successThreshold", 1)),
                   int(probe.get("failureThreshold", 3)), None if grace is None else float(grace))

    @property
    def title(self) -> str:
        """kubelet's word for it in events: "Liveness probe failed: …"."""
        return self.kind.capitalize()

    def describe(self) -> str:
        return (f"delay={self.initial_delay:g}s timeout={self.timeout:g}s period={self.period:g}s "
                f"#success={self.success_threshold} #failure={self.failure_threshold}")


def container_probes(container: dict) -> dict[str, ProbeSpec]:
    """The probes a container declares, by kind."""
    return {kind: ProbeSpec.of(kind, container[f"{kind}Probe"]) for kind in KINDS
            if isinstance(container.get(f"{kind}Probe"), dict)}


class Verdicts:
    """Consecutive results of one probe, against its thresholds."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self.successes = 0
        self.failures = 0
        self.passing: bool | None = False if spec.kind == "readiness" else None

    def record(self, ok: bool) -> bool | None:
        """Count one result; returns the new verdict when this result
        changed it (True: passes now, False: fails now), else None."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.spec.success_threshold and self.passing is not True:
                self.passing = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.spec.failure_threshold and self.passing is not False:
                self.passing = False
                return False
        return None
