"""Pod phase, conditions and the `ps` columns, from a pod's record."""

from __future__ import annotations

from minipod import podstatus

RUNNING = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}


def term(code, reason=None):
    return {"terminated": {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}}


def c(name, state, init=False, final=False, ready=None, started=True, restarts=0):
    return {"name": name, "state": state, "init": init, "final": final, "started": started,
            "ready": ("running" in state) if ready is None else ready, "restartCount": restarts}


def test_phases():
    phase = podstatus.pod_phase
    assert phase([c("a", {"waiting": {"reason": "ContainerCreating"}}, started=False)], "Always", True) == "Pending"
    assert phase([c("a", RUNNING)], "Always", True) == "Running"
    assert phase([c("a", term(0), final=True), c("b", RUNNING)], "Never", True) == "Running"
    assert phase([c("a", term(0), final=True), c("b", term(0), final=True)], "Never", True) == "Succeeded"
    assert phase([c("a", term(0), final=True), c("b", term(2), final=True)], "Never", True) == "Failed"
    # restarting after a failure: still Running
    assert phase([c("a", {"waiting": {"reason": "CrashLoopBackOff"}})], "Always", True) == "Running"
    # init containers
    init_running = [c("i", RUNNING, init=True), c("a", {"waiting": {}}, started=False)]
    assert phase(init_running, "Always", False) == "Pending"
    init_failed = [c("i", term(1), init=True, final=True), c("a", {"waiting": {}}, started=False)]
    assert phase(init_failed, "Never", False) == "Failed"


def _pod(containers, phase="Running", alive=True, **extra):
    state = {"pod": {"metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
                     "spec": {}}, "phase": phase, "containers": containers, "initialized": True,
             "supervisorPid": 42, **extra}
    return podstatus.pod_object(state, alive)


def test_pod_object_and_columns():
    pod = _pod([c("a", RUNNING), c("b", {"waiting": {"reason": "CrashLoopBackOff"}}, ready=False, restarts=3)])
    assert pod["kind"] == "Pod" and pod["status"]["phase"] == "Running"
    assert podstatus.ready_column(pod) == "1/2"
    assert podstatus.restarts_column(pod) == 3
    assert podstatus.status_word(pod) == "CrashLoopBackOff"
    ready = {x["type"]: x["status"] for x in pod["status"]["conditions"]}
    assert ready == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "False", "Ready": "False"}
    assert pod["status"]["minipod"]["supervisorPid"] == 42
    assert "podIP" not in pod["status"]


def test_status_words():
    assert podstatus.status_word(_pod([c("a", RUNNING)])) == "Running"
    assert podstatus.status_word(_pod([c("a", term(0), final=True)], phase="Succeeded", alive=False)) == "Completed"
    assert podstatus.status_word(_pod([c("a", term(1), final=True)], phase="Failed", alive=False)) == "Error"
    inits = [c("i", RUNNING, init=True), c("a", {"waiting": {"reason": "PodInitializing"}}, started=False)]
    assert podstatus.status_word(_pod(inits, phase="Pending")) == "Init:0/1"


def test_dead_supervisor_is_unknown_not_running():
    pod = _pod([c("a", RUNNING)], alive=False)
    assert pod["status"]["phase"] == "Unknown"
    assert pod["status"]["reason"] == "SupervisorGone" and "rm -f" in pod["status"]["message"]
    assert podstatus.status_word(pod) == "Unknown"
    assert pod["status"]["minipod"]["supervisorPid"] is None


def test_age():
    start = podstatus.parse_rfc3339("2026-01-01T00:00:00Z")
    assert podstatus.age("2026-01-01T00:00:00Z", start + 45) == "45s"
    assert podstatus.age("2026-01-01T00:00:00Z", start + 192) == "3m12s"
    assert podstatus.age("2026-01-01T00:00:00Z", start + 3600 * 5) == "5h"
    assert podstatus.age("2026-01-01T00:00:00Z", start + 86400 * 3) == "3d"
    assert podstatus.age(None) == "<unknown>"
