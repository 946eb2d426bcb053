"""A container's life as its supervisor sees it: Kubernetes' restart rules,
the crash-loop back-off, exit reasons, and what "started" and "ready" mean."""

from __future__ import annotations

import pytest

from minipod.container import ImageInfo
from minipod.containerrun import (BACKOFF_MAX, BACKOFF_RESET_AFTER, BACKOFF_START, ContainerRun, backoff_delay,
                                  exit_reason, should_restart)

IMAGE = ImageInfo("docker.io/library/busybox:1.36", "sha256:" + "1" * 64, "sha256:" + "2" * 64, {}, [])
READINESS = {"readinessProbe": {"tcpSocket": {"port": 8080}}}


def run_of(init: bool = False, **spec) -> ContainerRun:
    spec = {"name": "app", "image": "busybox:1.36", **spec}
    field = "spec.initContainers[0]" if init else "spec.containers[0]"
    return ContainerRun(spec, field, IMAGE, init)


def running(run: ContainerRun, pid: int = 4242) -> ContainerRun:
    """As the supervisor leaves a run once its process is up."""
    run.new_instance()
    run.pid = pid
    return run


# ----------------------------------------------------------------- should_restart

# (pod policy, kind, exit code) -> restarts?   kind: app, init, sidecar
RESTART_TABLE = [
    ("Always", "app", 0, True), ("Always", "app", 1, True), ("Always", "app", 137, True),
    ("OnFailure", "app", 0, False), ("OnFailure", "app", 1, True), ("OnFailure", "app", 137, True),
    ("Never", "app", 0, False), ("Never", "app", 1, False), ("Never", "app", 137, False),
    # an init container must complete: it is retried after a failure unless the pod says Never
    ("Always", "init", 0, False), ("Always", "init", 1, True),
    ("OnFailure", "init", 0, False), ("OnFailure", "init", 2, True),
    ("Never", "init", 0, False), ("Never", "init", 1, False),
    # a native sidecar always comes back, whatever the pod's policy and its exit
    ("Always", "sidecar", 0, True), ("Always", "sidecar", 1, True),
    ("OnFailure", "sidecar", 0, True), ("OnFailure", "sidecar", 1, True),
    ("Never", "sidecar", 0, True), ("Never", "sidecar", 143, True),
]


@pytest.mark.parametrize("policy, kind, code, expected", RESTART_TABLE)
def test_should_restart(policy, kind, code, expected):
    assert should_restart(policy, kind != "app", kind == "sidecar", code) is expected


# ----------------------------------------------------------------- back-off

def test_backoff_first_restart_is_immediate_then_doubles_from_10s():
    assert [backoff_delay(n) for n in range(7)] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0]
    assert (BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET_AFTER) == (10.0, 300.0, 600.0)


def test_backoff_is_capped_at_five_minutes():
    assert all(backoff_delay(n) == BACKOFF_MAX for n in range(6, 200))
    assert backoff_delay(-1) == 0.0


def test_backoff_stays_capped_after_a_very_long_crash_loop():
    assert backoff_delay(1025) == BACKOFF_MAX
    assert backoff_delay(10_000) == BACKOFF_MAX


# ----------------------------------------------------------------- exit reasons

@pytest.mark.parametrize("code, oom, reason", [(0, False, "Completed"), (1, False, "Error"), (137, False, "Error"),
                                               (143, False, "Error"), (137, True, "OOMKilled"),
                                               (0, True, "OOMKilled")])
def test_exit_reason(code, oom, reason):
    assert exit_reason(code, oom) == reason


# ----------------------------------------------------------------- ContainerRun

def test_a_new_run_waits_with_kubelets_reason():
    assert run_of().state == {"waiting": {"reason": "ContainerCreating"}}
    assert run_of(init=True).state == {"waiting": {"reason": "PodInitializing"}}


def test_sidecar_is_an_init_container_with_restart_policy_always():
    assert run_of(init=True, restartPolicy="Always").sidecar
    assert not run_of(init=True).sidecar
    assert not run_of(init=False, restartPolicy="Always").sidecar  # not a field of app containers


def test_probe_specs_and_lifecycle_come_from_the_spec():
    run = run_of(livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 2},
                 lifecycle={"preStop": {"sleep": {"seconds": 1}}})
    assert set(run.probe_specs) == {"liveness"} and run.probe_specs["liveness"].period == 2.0
    assert run.lifecycle == {"preStop": {"sleep": {"seconds": 1}}}
    assert run_of().probe_specs == {} and run_of().lifecycle == {}


def test_not_started_nor_ready_before_a_process_runs():
    run = run_of()
    run.new_instance()
    run.startup_passed = True  # even with every other box ticked
    assert not run.running and not run.started and not run.ready


def test_started_needs_post_start_and_the_startup_probe():
    run = running(run_of(lifecycle={"postStart": {"exec": {"command": ["true"]}}}))
    assert run.running and not run.post_started and not run.started
    run.post_started = True
    assert not run.started  # the startup probe (or the supervisor's word that there is none) is still due
    run.startup_passed = True
    assert run.started


def test_without_post_start_only_the_startup_verdict_is_awaited():
    run = running(run_of())
    assert run.post_started and not run.started
    run.startup_passed = True
    assert run.started and run.ready


def test_ready_follows_the_readiness_probe():
    run = running(run_of(**READINESS))
    run.startup_passed = True
    assert run.started and run.readiness is None and not run.ready  # not ready until it says so
    run.readiness = True
    assert run.ready
    run.readiness = False
    assert not run.ready


def test_a_stopping_container_is_not_ready():
    run = running(run_of())
    run.startup_passed = True
    run.stopping = True
    assert run.started and not run.ready
    with_probe = running(run_of(**READINESS))
    with_probe.startup_passed, with_probe.readiness, with_probe.stopping = True, True, True
    assert not with_probe.ready


def test_a_regular_init_container_is_never_ready():
    run = running(run_of(init=True, **READINESS))
    run.startup_passed, run.readiness = True, True
    assert run.started and not run.ready


def test_a_sidecar_is_ready_once_started_or_as_its_readiness_probe_says():
    plain = running(run_of(init=True, restartPolicy="Always"))
    assert not plain.ready
    plain.startup_passed = True
    assert plain.ready
    probed = running(run_of(init=True, restartPolicy="Always", **READINESS))
    probed.startup_passed = True
    assert not probed.ready
    probed.readiness = True
    assert probed.ready


def test_new_instance_forgets_what_the_previous_process_achieved():
    run = running(run_of(lifecycle={"postStart": {"sleep": {"seconds": 1}}}, **READINESS))
    run.post_started, run.startup_passed, run.readiness, run.stopping = True, True, True, True
    run.new_instance()
    assert (run.post_started, run.startup_passed, run.readiness, run.stopping) == (False, False, None, False)
    assert not run.started and not run.ready


def test_record_is_what_state_json_keeps():
    run = running(run_of(init=True, restartPolicy="Always"))
    run.startup_passed, run.has_run, run.restarts, run.container_id = True, True, 2, "c0ffee"
    record = run.record()
    assert record["name"] == "app" and record["init"] and record["sidecar"]
    assert record["image"] == "busybox:1.36"
    assert record["imageID"] == "docker.io/library/busybox@sha256:" + "2" * 64
    assert (record["pid"], record["restartCount"], record["containerID"]) == (4242, 2, "c0ffee")
    assert record["started"] is True and record["ready"] is True and record["hasRun"] is True
    assert record["final"] is False and record["launch"] is None
    run.pid = None
    assert run.record()["started"] is False and run.record()["ready"] is False
