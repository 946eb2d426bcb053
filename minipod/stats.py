"""What each running container uses now, from its cgroup (``minipod stats``).

Like ``kubectl top pod --containers`` / ``docker stats --no-stream``: CPU
is the CPU time a container used over a short window divided by the window
(in cores: 0.2 is a fifth of one CPU), memory is the working set kubelet
reports (usage minus the inactive file cache). Every pod is read, then one
sleep, then every pod again, so asking for ten pods costs one window.
"""

from __future__ import annotations

import time

from .errors import StateError

DEFAULT_WINDOW = 0.5


def _container_cgroups(state: dict) -> list:
    """(name, cgroup) of each container of the pod that is running."""
    from .cgroups import open_pod_cgroup
    from .config import DEFAULT_CGROUP_PARENT

    if not state.get("cgroupId"):
        return []
    pod = open_pod_cgroup(parent=state.get("cgroupParent") or DEFAULT_CGROUP_PARENT, pod_id=state["cgroupId"])
    return [(c["name"], pod.child(c["name"])) for c in state.get("containers", []) if c.get("pid")]


def pod_stats(pods: list[dict], window: float = DEFAULT_WINDOW) -> list[dict]:
    """Usage of every running container of ``pods`` (their state records),
    sampled over ``window`` seconds. One dict per pod::

        {"namespace": "default", "name": "web", "window": 0.5, "containers": [
            {"name": "app", "cpuCores": 0.198, "cpu": {...}, "memory": {...}, "pids": 3}]}
    """
    targets = []
    for state in pods:
        meta = state["pod"]["metadata"]
        targets.append((meta, _container_cgroups(state)))
    first = {(meta["uid"], name): (time.monotonic_ns(), cg.stats())
             for meta, cgs in targets for name, cg in cgs}
    if first:
        time.sleep(window)
    out = []
    for meta, cgs in targets:
        containers = []
        for name, cg in cgs:
            before_ns, before = first[(meta["uid"], name)]
            now_ns, now = time.monotonic_ns(), cg.stats()
            containers.append(_container_entry(name, before, now, now_ns - before_ns))
        out.append({"namespace": meta["namespace"], "name": meta["name"], "window": window,
                    "containers": containers})
    return out


def _container_entry(name: str, before: dict, now: dict, elapsed_ns: int) -> dict:
    cores = None
    if before["cpu_usage_ns"] is not None and now["cpu_usage_ns"] is not None and elapsed_ns > 0:
        cores = round(max(now["cpu_usage_ns"] - before["cpu_usage_ns"], 0) / elapsed_ns, 4)
    return {
        "name": name,
        "cpuCores": cores,
        "cpu": {"usageNanoSeconds": now["cpu_usage_ns"], "periods": now["cpu_periods"],
                "throttledPeriods": now["cpu_throttled_periods"], "throttledNanoSeconds": now["cpu_throttled_ns"]},
        "memory": {"workingSetBytes": now["memory_working_set_bytes"], "usageBytes": now["memory_usage_bytes"],
                   "limitBytes": now["memory_limit_bytes"]},
        "pids": now["pids"],
    }


def running_pod_states(runtime, ref: str | None) -> list[dict]:
    """The state records to sample: pod ``ref`` (an error when it is not
    running), or every running pod."""
    if ref is not None:
        pod_dir = runtime.table.find(ref)
        state = pod_dir.read()
        if not state.get("pod") or not pod_dir.supervisor_alive():
            raise StateError(f'pod "{ref}" is not running')
        return [state]
    states = []
    for pod_dir in runtime.table.all():
        state = pod_dir.read()
        if state.get("pod") and pod_dir.supervisor_alive():
            states.append(state)
    return states


def format_cpu(cores: float | None) -> str:
    """Millicores, as kubectl top prints them (``198m``)."""
    return "-" if cores is None else f"{round(cores * 1000)}m"


def format_memory(value: int | None) -> str:
    """MiB, as kubectl top prints them (``5Mi``)."""
    return "-" if value is None else f"{round(value / 2**20)}Mi"


def table(stats: list[dict]) -> list[list[str]]:
    """The rows ``minipod stats`` prints, header first."""
    rows = [["POD", "CONTAINER", "CPU(cores)", "MEMORY(bytes)", "MEMORY LIMIT", "PIDS"]]
    for pod in stats:
        name = pod["name"] if pod["namespace"] == "default" else f"{pod['namespace']}/{pod['name']}"
        for c in pod["containers"]:
            rows.append([name, c["name"], format_cpu(c["cpuCores"]), format_memory(c["memory"]["workingSetBytes"]),
                         format_memory(c["memory"]["limitBytes"]) if c["memory"]["limitBytes"] else "-",
                         "-" if c["pids"] is None else str(c["pids"])])
    return rows
