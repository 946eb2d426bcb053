"""The probe rules: a manifest probe's defaults, and thresholds adding up to verdicts."""

from __future__ import annotations

import pytest

from minipod.probes.schedule import KINDS, ProbeSpec, Verdicts, container_probes

TCP = {"tcpSocket": {"port": 8080}}


def spec(kind: str, success: int = 1, failure: int = 3) -> ProbeSpec:
    return ProbeSpec(kind, TCP, success_threshold=success, failure_threshold=failure)


# ----------------------------------------------------------------- ProbeSpec.of

def test_of_applies_kubernetes_defaults():
    got = ProbeSpec.of("liveness", dict(TCP))
    assert got == ProbeSpec("liveness", TCP, initial_delay=0.0, period=10.0, timeout=1.0,
                            success_threshold=1, failure_threshold=3, grace=None)
    assert isinstance(got.period, float) and isinstance(got.failure_threshold, int)


def test_of_reads_every_field_and_keeps_only_the_handler():
    probe = {"httpGet": {"path": "/healthz", "port": "web"}, "initialDelaySeconds": 5, "periodSeconds": 2,
             "timeoutSeconds": 3, "successThreshold": 2, "failureThreshold": 7,
             "terminationGracePeriodSeconds": 4}
    got = ProbeSpec.of("readiness", probe)
    assert got.handler == {"httpGet": {"path": "/healthz", "port": "web"}}
    assert (got.initial_delay, got.period, got.timeout) == (5.0, 2.0, 3.0)
    assert (got.success_threshold, got.failure_threshold, got.grace) == (2, 7, 4.0)


@pytest.mark.parametrize("handler", [{"exec": {"command": ["true"]}}, {"httpGet": {"port": 80}},
                                     {"tcpSocket": {"port": 80}}, {"grpc": {"port": 9090}}])
def test_of_knows_every_probe_handler(handler):
    assert ProbeSpec.of("startup", {**handler, "periodSeconds": 1}).handler == handler


def test_title_and_describe_read_like_kubectl():
    got = ProbeSpec.of("liveness", {**TCP, "periodSeconds": 2, "timeoutSeconds": 1})
    assert got.title == "Liveness"
    assert ProbeSpec.of("readiness", TCP).title == "Readiness"
    assert got.describe() == "delay=0s timeout=1s period=2s #success=1 #failure=3"


def test_container_probes_collects_the_declared_kinds():
    container = {"name": "app", "livenessProbe": dict(TCP), "readinessProbe": {"exec": {"command": ["true"]}}}
    probes = container_probes(container)
    assert set(probes) == {"liveness", "readiness"}
    assert probes["liveness"].kind == "liveness" and probes["readiness"].handler == {"exec": {"command": ["true"]}}
    assert container_probes({"name": "app", "startupProbe": None}) == {}
    assert KINDS == ("startup", "liveness", "readiness")  # startup first: it gates the others


# ----------------------------------------------------------------- Verdicts

def test_readiness_starts_failed_and_passes_on_the_first_success():
    v = Verdicts(spec("readiness"))
    assert v.passing is False
    # Failures of a probe that never passed change nothing: still not ready.
    assert [v.record(False) for _ in range(5)] == [None] * 5
    assert v.record(True) is True and v.passing is True
    assert v.record(True) is None  # no change, no news


def test_readiness_fails_after_failure_threshold_consecutive_failures():
    v = Verdicts(spec("readiness", failure=3))
    v.record(True)
    assert [v.record(False), v.record(False)] == [None, None]
    assert v.passing is True
    assert v.record(False) is False and v.passing is False
    assert v.record(False) is None


def test_a_success_resets_the_failure_count():
    v = Verdicts(spec("readiness", failure=3))
    v.record(True)
    for _ in range(5):  # never three in a row
        assert v.record(False) is None
        assert v.record(False) is None
        assert v.record(True) is None
    assert v.passing is True


def test_success_threshold_needs_consecutive_successes():
    v = Verdicts(spec("readiness", success=3, failure=1))
    assert [v.record(True), v.record(True)] == [None, None]
    assert v.record(False) is None  # resets the successes; already not passing
    assert [v.record(True), v.record(True)] == [None, None]
    assert v.record(True) is True


@pytest.mark.parametrize("kind", ["liveness", "startup"])
def test_liveness_and_startup_start_unknown(kind):
    v = Verdicts(spec(kind, failure=2))
    assert v.passing is None
    assert v.record(True) is True  # unknown -> passing is news
    assert v.record(False) is None
    assert v.record(False) is False and v.passing is False


@pytest.mark.parametrize("kind", ["liveness", "startup"])
def test_liveness_and_startup_fail_without_ever_passing(kind):
    v = Verdicts(spec(kind, failure=3))
    assert [v.record(False) for _ in range(3)] == [None, None, False]


def test_failure_threshold_one_fails_at_once():
    v = Verdicts(spec("liveness", failure=1))
    assert v.record(False) is False
