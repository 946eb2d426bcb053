"""A pod's status the way Kubernetes reports it, computed from its record.

Pure functions over the state dict the supervisor writes, so ``ps`` and
``inspect`` need nothing but a file read, and the rules (phase, conditions,
the STATUS column of ``kubectl get pods``) are testable without root.
"""

from __future__ import annotations

import datetime as _dt
import time


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str | None) -> float | None:
    """Seconds since the epoch of a ``YYYY-MM-DDTHH:MM:SSZ`` time (the form
    ``now_rfc3339`` writes); None for anything else."""
    # Not strptime: its first call imports _strptime and compiles its
    # regexes, ~4 ms of every ``ps``. The shape check keeps it as strict.
    if not text or len(text) != 20 or text[10] != "T" or text[13] + text[16] + text[19] != "::Z":
        return None
    try:
        return _dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=_dt.timezone.utc).timestamp()
    except ValueError:
        return None


def pod_phase(containers: list[dict], restart_policy: str, initialized: bool) -> str:
    """Kubernetes' phase rules: Pending until every app container has
    started; Succeeded or Failed once all have terminated for good."""
    apps = [c for c in containers if not c.get("init")]
    if not initialized:
        inits = [c for c in containers if c.get("init")]
        if any(_failed_for_good(c, restart_policy) for c in inits):
            return "Failed"
        return "Pending"
    if any("running" not in c["state"] and not c.get("hasRun", c.get("started")) and "terminated" not in c["state"]
           for c in apps):
        return "Pending"
    terminated = [c for c in apps if "terminated" in c["state"] and c.get("final")]
    if len(terminated) == len(apps):
        if all(c["state"]["terminated"]["exitCode"] == 0 for c in apps):
            return "Succeeded"
        return "Failed"
    return "Running"


def _failed_for_good(c: dict, restart_policy: str) -> bool:
    term = c["state"].get("terminated")
    return bool(term and term["exitCode"] != 0 and c.get("final"))


def serving(containers: list[dict]) -> list[dict]:
    """The containers that count for readiness: app containers and native
    sidecars (init containers that keep running beside them)."""
    return [c for c in containers if not c.get("init") or c.get("sidecar")]


def conditions(state: dict) -> list[dict]:
    containers = state.get("containers", [])
    apps = serving(containers)
    initialized = bool(state.get("initialized"))
    all_ready = bool(apps) and all(c.get("ready") for c in apps)
    since = state.get("startTime") or state["pod"]["metadata"].get("creationTimestamp")
    times = state.get("conditionTimes") or {}

    def cond(kind: str, ok: bool, reason: str | None = None) -> dict:
        out = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": times.get(kind, since)}
        if reason and not ok:
            out["reason"] = reason
        return out

    not_ready = [c["name"] for c in apps if not c.get("ready")]
    reason = "ContainersNotReady" if not_ready else None
    if state.get("phase") in ("Succeeded", "Failed"):
        reason = "PodCompleted"
    return [
        cond("PodScheduled", True),
        cond("Initialized", initialized, "ContainersNotInitialized"),
        cond("ContainersReady", all_ready, reason),
        cond("Ready", all_ready, reason),
    ]


def _container_status(c: dict) -> dict:
    out = {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": c.get("imageID", ""),
        "ready": bool(c.get("ready")),
        "started": bool(c.get("started")) and "running" in c["state"],
        "restartCount": c.get("restartCount", 0),
        "state": c["state"],
        "lastState": c.get("lastState") or {},
    }
    if c.get("containerID"):
        out["containerID"] = f"minipod://{c['containerID']}"
    launch = c.get("launch")
    if launch and "running" in c["state"]:
        # Who the process really runs as (Kubernetes 1.31's status.user).
        out["user"] = {"linux": {"uid": launch.get("uid", 0), "gid": launch.get("gid", 0),
                                 "supplementalGroups": sorted({launch.get("gid", 0), *launch.get("groups", [])})}}
    return out


def pod_object(state: dict, supervisor_alive: bool) -> dict:
    """The Pod as ``kubectl get pod -o json`` would show it, plus minipod's
    own facts under ``status.minipod``."""
    pod = state["pod"]
    phase = state.get("phase", "Pending")
    reason = state.get("reason")
    message = state.get("message")
    if not supervisor_alive and phase in ("Pending", "Running"):
        phase, reason = "Unknown", "SupervisorGone"
        message = "the pod's supervisor is not running; remove the pod with 'minipod rm -f'"
    containers = state.get("containers", [])
    status = {
        "phase": phase,
        "conditions": conditions({**state, "phase": phase}),
        "hostIP": state.get("hostIP"),
        "hostIPs": [{"ip": state["hostIP"]}] if state.get("hostIP") else [],
        "podIP": state.get("podIP"),
        "podIPs": [{"ip": state["podIP"]}] if state.get("podIP") else [],
        "startTime": state.get("startTime"),
        "qosClass": state.get("qosClass", "BestEffort"),
        "initContainerStatuses": [_container_status(c) for c in containers if c.get("init")],
        "containerStatuses": [_container_status(c) for c in containers if not c.get("init")],
        "minipod": {
            "supervisorPid": state.get("supervisorPid") if supervisor_alive else None,
            "pausePid": state.get("pausePid"),
            "namespaces": state.get("namespaces", {}),
            "cgroup": state.get("cgroupPath"),
            "rootDir": state.get("dataDir"),
            "logDir": state.get("logDir"),
            # What the host could not enforce (a missing cgroup controller…).
            "warnings": state.get("warnings", []),
        },
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if not status["podIP"]:
        del status["podIP"], status["podIPs"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod["metadata"], "spec": pod["spec"],
            "status": status}


def status_word(pod: dict) -> str:
    """The STATUS column of ``kubectl get pods``."""
    status = pod["status"]
    if status.get("reason") in ("SupervisorGone",):
        return "Unknown"
    inits = status.get("initContainerStatuses", [])
    sidecars = sidecar_names(pod)
    for i, c in enumerate(inits):
        if c["name"] in sidecars and c.get("started"):
            continue  # a sidecar that is up is not holding initialisation back
        term = c["state"].get("terminated")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            return f"Init:{term.get('reason') or 'Error'}"
        waiting = c["state"].get("waiting")
        if waiting and waiting.get("reason") not in (None, "PodInitializing", "ContainerCreating"):
            return f"Init:{waiting['reason']}"
        return f"Init:{i}/{len(inits)}"
    word = status["phase"]
    for c in status.get("containerStatuses", []):
        state = c["state"]
        if "waiting" in state and state["waiting"].get("reason"):
            word = state["waiting"]["reason"]
        elif "terminated" in state and status["phase"] != "Running":
            word = state["terminated"].get("reason") or "Error"
    if status["phase"] == "Running" and word in ("Completed", "Error"):
        word = "Running"
    if status.get("reason") == "DeadlineExceeded":
        word = "DeadlineExceeded"  # why the pod ended says more than its killed containers
    return word


def sidecar_names(pod: dict) -> set[str]:
    from .spec.sidecars import is_sidecar

    return {c["name"] for c in pod["spec"].get("initContainers") or [] if is_sidecar(c)}


def ready_column(pod: dict) -> str:
    """kubectl's READY: app containers and sidecars that are ready, of all of them."""
    sidecars = sidecar_names(pod)
    apps = pod["status"].get("containerStatuses", [])
    apps = [c for c in pod["status"].get("initContainerStatuses", []) if c["name"] in sidecars] + apps
    return f"{sum(1 for c in apps if c['ready'])}/{len(apps)}"


def restarts_column(pod: dict) -> int:
    """kubectl's RESTARTS: init containers' while the pod initialises; after
    that, app containers' and sidecars'."""
    status = pod["status"]
    inits = status.get("initContainerStatuses", [])
    initialized = any(c["type"] == "Initialized" and c["status"] == "True" for c in status.get("conditions", []))
    if not initialized:
        return sum(c.get("restartCount", 0) for c in inits)
    sidecars = sidecar_names(pod)
    counted = [c for c in inits if c["name"] in sidecars] + status.get("containerStatuses", [])
    return sum(c.get("restartCount", 0) for c in counted)


def age(timestamp: str | None, now: float | None = None) -> str:
    """kubectl's short ages: 45s, 3m12s, 5h, 2d."""
    start = parse_rfc3339(timestamp)
    if start is None:
        return "<unknown>"
    secs = max(0, int((now or time.time()) - start))
    if secs < 120:
        return f"{secs}s"
    if secs < 600:
        return f"{secs // 60}m{secs % 60}s"
    if secs < 3 * 3600:
        return f"{secs // 60}m"
    if secs < 48 * 3600:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"
