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


# ----------------------------------------------------------------- native sidecars, transitions, hasRun

WAITING_BACKOFF = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}}


def sc(name, state, ready=False, started=None, restarts=0):
    """A native sidecar's record (an init container with restartPolicy Always)."""
    return {**c(name, state, init=True, ready=ready, restarts=restarts), "sidecar": True,
            "started": ("running" in state) if started is None else started}


def _sidecar_pod(containers, init_specs, phase="Running", initialized=True, **extra):
    state = {"pod": {"metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
                     "spec": {"initContainers": init_specs, "containers": [{"name": "app"}]}},
             "phase": phase, "containers": containers, "initialized": initialized, "supervisorPid": 42,
             "startTime": "2026-01-01T00:00:01Z", **extra}
    return podstatus.pod_object(state, True)


PROXY = {"name": "proxy", "restartPolicy": "Always"}
SETUP = {"name": "setup"}


def test_ready_column_counts_sidecars_but_not_regular_init_containers():
    containers = [c("setup", term(0), init=True, final=True), sc("proxy", RUNNING, ready=True), c("app", RUNNING)]
    pod = _sidecar_pod(containers, [SETUP, PROXY])
    assert podstatus.ready_column(pod) == "2/2"
    containers[1] = sc("proxy", RUNNING, ready=False)
    assert podstatus.ready_column(_sidecar_pod(containers, [SETUP, PROXY])) == "1/2"
    containers[2] = c("app", RUNNING, ready=False)
    assert podstatus.ready_column(_sidecar_pod(containers, [SETUP, PROXY])) == "0/2"


def test_status_word_skips_a_started_sidecar():
    containers = [c("setup", term(0), init=True, final=True), sc("proxy", RUNNING, ready=True), c("app", RUNNING)]
    assert podstatus.status_word(_sidecar_pod(containers, [SETUP, PROXY])) == "Running"


def test_status_word_waits_for_a_sidecar_that_has_not_started():
    # Running but its startup probe has not passed: initialisation is held there.
    containers = [c("setup", term(0), init=True, final=True), sc("proxy", RUNNING, started=False),
                  c("app", {"waiting": {"reason": "PodInitializing"}}, started=False)]
    pod = _sidecar_pod(containers, [SETUP, PROXY], phase="Pending", initialized=False)
    assert podstatus.status_word(pod) == "Init:1/2"


def test_status_word_after_a_started_sidecar_shows_the_next_init_container():
    containers = [sc("proxy", RUNNING, ready=True), c("migrate", RUNNING, init=True),
                  c("app", {"waiting": {"reason": "PodInitializing"}}, started=False)]
    pod = _sidecar_pod(containers, [PROXY, {"name": "migrate"}], phase="Pending", initialized=False)
    assert podstatus.status_word(pod) == "Init:1/2"


def test_status_word_does_not_skip_a_started_regular_init_container():
    # Only restartPolicy Always makes a sidecar: "started" alone does not.
    containers = [c("setup", RUNNING, init=True, started=True),
                  c("app", {"waiting": {"reason": "PodInitializing"}}, started=False)]
    pod = _sidecar_pod(containers, [SETUP], phase="Pending", initialized=False)
    assert podstatus.status_word(pod) == "Init:0/1"


def test_a_sidecar_that_is_not_ready_makes_the_pod_not_ready():
    containers = [sc("proxy", RUNNING, ready=False), c("app", RUNNING)]
    conds = {x["type"]: x for x in _sidecar_pod(containers, [PROXY])["status"]["conditions"]}
    assert conds["ContainersReady"]["status"] == "False" and conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ContainersNotReady"
    containers[0] = sc("proxy", RUNNING, ready=True)
    conds = {x["type"]: x for x in _sidecar_pod(containers, [PROXY])["status"]["conditions"]}
    assert conds["Ready"]["status"] == "True" and "reason" not in conds["Ready"]


def test_condition_transition_times_come_from_the_record():
    times = {"Initialized": "2026-01-01T00:00:05Z", "Ready": "2026-01-01T00:02:00Z",
             "ContainersReady": "2026-01-01T00:01:59Z"}
    pod = _sidecar_pod([c("app", RUNNING)], [], conditionTimes=times)
    got = {x["type"]: x["lastTransitionTime"] for x in pod["status"]["conditions"]}
    # A condition with no recorded transition falls back to the pod's start.
    assert got == {"PodScheduled": "2026-01-01T00:00:01Z", **times}


def test_condition_times_fall_back_to_the_creation_time_without_a_start_time():
    state = {"pod": {"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}},
             "containers": [c("app", RUNNING)], "initialized": True}
    assert {x["lastTransitionTime"] for x in podstatus.conditions(state)} == {"2026-01-01T00:00:00Z"}


def test_completed_pod_conditions_say_pod_completed():
    containers = [sc("proxy", term(143), ready=False), c("app", term(0), final=True)]
    pod = _sidecar_pod(containers, [PROXY], phase="Succeeded")
    assert {x["type"]: x.get("reason") for x in pod["status"]["conditions"]}["Ready"] == "PodCompleted"


def test_phase_a_container_in_back_off_that_has_run_is_running_not_pending():
    # Between two runs it is neither running nor "started", but it has run.
    backoff = {**c("app", WAITING_BACKOFF, started=False), "hasRun": True}
    assert podstatus.pod_phase([backoff], "Always", True) == "Running"
    never = {**c("app", {"waiting": {"reason": "ContainerCreating"}}, started=False), "hasRun": False}
    assert podstatus.pod_phase([never], "Always", True) == "Pending"


def test_phase_one_app_container_not_yet_run_keeps_the_pod_pending():
    first = {**c("a", RUNNING), "hasRun": True}
    second = {**c("b", {"waiting": {"reason": "ContainerCreating"}}, started=False), "hasRun": False}
    assert podstatus.pod_phase([first, second], "Always", True) == "Pending"


def test_phase_records_without_has_run_fall_back_to_started():
    # state.json written before "hasRun" existed
    old = c("app", WAITING_BACKOFF, started=True)
    assert "hasRun" not in old
    assert podstatus.pod_phase([old], "Always", True) == "Running"
    assert podstatus.pod_phase([c("app", {"waiting": {}}, started=False)], "Always", True) == "Pending"


def test_phase_ignores_sidecars_still_running_when_the_apps_are_done():
    containers = [{**sc("proxy", RUNNING, ready=True), "hasRun": True},
                  {**c("app", term(0), final=True), "hasRun": True}]
    assert podstatus.pod_phase(containers, "Never", True) == "Succeeded"
    containers[1] = {**c("app", term(1), final=True), "hasRun": True}
    assert podstatus.pod_phase(containers, "Never", True) == "Failed"


def test_restarts_column_counts_sidecar_restarts_like_kubectl():
    containers = [sc("proxy", RUNNING, ready=True, restarts=2), c("app", RUNNING, restarts=1)]
    assert podstatus.restarts_column(_sidecar_pod(containers, [PROXY])) == 3
