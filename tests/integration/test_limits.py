"""Resource limits on the real kernel: memory (OOMKilled), CPU quota,
the pod's pids limit, the values in the cgroup files, QoS, ``minipod stats``,
and no cgroup left behind. Runs on v1/hybrid hosts and on pure v2 hosts
(the VM lane): file names follow the host's layout."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from minipod.cgroups import UNIFIED, Layout, detect_layout, open_pod_cgroup, remove_parent_if_empty
from minipod.cgroups.limits import container_limits

pytestmark = pytest.mark.integration

IMAGE = "localhost/busybox:demo"
MI = 2**20


def _layout():
    try:
        return detect_layout()
    except Exception:  # no cgroups at all: every test here fails on its own then
        return None


LAYOUT = _layout()
V2 = LAYOUT is not None and LAYOUT.kind == UNIFIED


def cgroup_file(pod, controller: str, *parts: str) -> str:
    """A file of the pod's cgroup (or of a container's, with its name in
    ``parts``) in the hierarchy that holds ``controller``."""
    rel = pod.status["minipod"]["cgroup"].lstrip("/")
    root = LAYOUT.unified if V2 else LAYOUT.mounts[controller]
    return os.path.join(root, rel, *parts)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def key_values(path: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in read(path).splitlines())}


def cpu_usage_ns(pod, container: str) -> int:
    if V2:
        return key_values(cgroup_file(pod, "cpu", container, "cpu.stat"))["usage_usec"] * 1000
    return int(read(cgroup_file(pod, "cpuacct", container, "cpuacct.usage")))


def pod_cgroup_dirs(pod_cgroup: str) -> list[str]:
    """Every directory of a pod's cgroup that exists, in any hierarchy."""
    rel = pod_cgroup.lstrip("/")
    roots = {LAYOUT.unified} if LAYOUT.unified else set()
    roots |= set(LAYOUT.mounts.values())
    return [os.path.join(r, rel) for r in roots if os.path.isdir(os.path.join(r, rel))]


# -- memory --------------------------------------------------------------------------------

# The shell itself holds the 50 MB string, so the OOM killer picks the
# container's main process: exit 137 (SIGKILL), reason OOMKilled. The first
# run leaves a mark in an emptyDir, so the restart (OnFailure) completes.
OOM_POD = """
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: OnFailure
  containers:
  - name: hog
    image: localhost/busybox:demo
    command: ["sh", "-c", "if [ -e /work/once ]; then echo second run; exit 0; fi; touch /work/once;
                          x=$(head -c 50000000 /dev/zero | tr '\\\\0' a); echo survived ${#x}"]
    resources:
      limits: {memory: 20Mi}
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
"""


def test_memory_limit_oomkills_and_the_restart_is_not_oomkilled(mpi):
    pod = mpi.runtime().run(OOM_POD)
    pod.wait_phase("Succeeded", "Failed", timeout=20)
    status = pod.container_status("hog")
    assert status["restartCount"] == 1
    first = status["lastState"]["terminated"]
    assert (first["reason"], first["exitCode"], first.get("signal")) == ("OOMKilled", 137, 9)
    # The cgroup (and its OOM counter) outlives the restart: the second,
    # normal exit must not be reported as an OOM kill.
    second = status["state"]["terminated"]
    assert (second["reason"], second["exitCode"]) == ("Completed", 0)
    assert pod.phase == "Succeeded"
    assert pod.status["qosClass"] == "Burstable"
    assert "survived" not in "".join(pod.logs("hog", previous=True))
    pod.remove(timeout=0)


def test_oomkilled_with_restart_policy_never_fails_the_pod(mpi):
    proc = mpi.cli("run", "-", input=OOM_POD.replace("OnFailure", "Never"), timeout=30)
    assert proc.returncode == 137, proc.stderr
    obj = json.loads(mpi.cli("inspect", "hog", check=True).stdout)
    term = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    assert obj["status"]["phase"] == "Failed"
    mpi.cli("rm", "-f", "-t", "0", "hog", check=True)


# -- CPU -----------------------------------------------------------------------------------

SPIN_POD = """
apiVersion: v1
kind: Pod
metadata: {name: spin}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: localhost/busybox:demo
    # two spinners: more than one core's worth of demand
    command: ["sh", "-c", "while :; do :; done & while :; do :; done"]
    resources:
      limits: {cpu: 200m, memory: 64Mi}
"""


def test_cpu_limit_gives_about_a_fifth_of_a_cpu_and_throttles(mpi):
    pod = mpi.runtime().run(SPIN_POD)
    pod.wait_ready(timeout=10)
    time.sleep(0.2)
    start_ns, start = time.monotonic_ns(), cpu_usage_ns(pod, "spin")
    time.sleep(1.0)
    cores = (cpu_usage_ns(pod, "spin") - start) / (time.monotonic_ns() - start_ns)
    # The upper bound is the limit at work (two spinners want two cores); the
    # lower one only that they ran: a busy machine may give them far less.
    assert 0.02 <= cores <= 0.3, f"{cores:.3f} CPUs used under a 200m limit"
    stat = key_values(cgroup_file(pod, "cpu", "spin", "cpu.stat"))
    assert stat["nr_throttled"] > 0
    assert pod.status["qosClass"] == "Guaranteed"
    pod.remove(timeout=0)


# -- pids ----------------------------------------------------------------------------------

FORK_POD = """
apiVersion: v1
kind: Pod
metadata: {name: forks}
spec:
  restartPolicy: Never
  containers:
  - name: forker
    image: localhost/busybox:demo
    command: ["sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 300 & i=$((i+1)); echo $i; done; echo all started"]
"""


def test_pod_pids_limit_stops_forks_past_it(mpi):
    mpi.env["MINIPOD_POD_PIDS_LIMIT"] = "20"
    proc = mpi.cli("run", "-", input=FORK_POD, timeout=30)
    assert proc.returncode != 0
    assert "can't fork" in proc.stdout + proc.stderr
    started = [int(line.split()[-1]) for line in proc.stdout.splitlines() if line.split()[-1].isdigit()]
    # pause + the shell + the sleeps it forked: at most 20 tasks in the pod
    assert 10 <= max(started) <= 18, started
    assert "all started" not in proc.stdout
    mpi.cli("rm", "-f", "-t", "0", "forks", check=True)

    # The same pod without that limit starts every one of them.
    mpi.env["MINIPOD_POD_PIDS_LIMIT"] = "max"
    proc = mpi.cli("run", "-", input=FORK_POD, timeout=30)
    assert "all started" in proc.stdout, proc.stdout + proc.stderr
    mpi.cli("rm", "-f", "-t", "0", "forks", check=True)


# -- the values kubelet would write ---------------------------------------------------------

LIMITED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: limited}
spec:
  initContainers:
  - name: prepare
    image: localhost/busybox:demo
    command: ["true"]
    resources:
      limits: {cpu: 700m, memory: 16Mi}
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {cpu: 500m, memory: 128Mi}
  - name: side
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
    resources:
      limits: {cpu: 100m, memory: 20Mi}
  - name: free
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
"""


def expected_files(version: str) -> dict[tuple[str, str, str], str]:
    """(container or "" for the pod, controller, file) -> value, computed by
    hand from kubelet's formulas for LIMITED_POD."""
    if version == "v1":
        return {
            ("app", "cpu", "cpu.shares"): "256",              # 250m * 1024 / 1000
            ("app", "cpu", "cpu.cfs_quota_us"): "50000",      # 500m of a 100 ms period
            ("app", "cpu", "cpu.cfs_period_us"): "100000",
            ("app", "memory", "memory.limit_in_bytes"): str(128 * MI),
            ("side", "cpu", "cpu.shares"): "102",             # request defaults to the 100m limit
            ("side", "cpu", "cpu.cfs_quota_us"): "10000",
            ("side", "memory", "memory.limit_in_bytes"): str(20 * MI),
            ("free", "cpu", "cpu.shares"): "2",               # no request: kubelet's minimum
            ("free", "cpu", "cpu.cfs_quota_us"): "-1",
            # pod: shares from the pod's requests, max(250m + 100m, init 700m);
            # no quota and no memory limit because "free" sets none; pids
            ("", "cpu", "cpu.shares"): "716",                 # 700m * 1024 / 1000
            ("", "cpu", "cpu.cfs_quota_us"): "-1",
            ("", "pids", "pids.max"): "4096",
        }
    return {
        ("app", "cpu", "cpu.weight"): "10",                   # 1 + (256 - 2) * 9999 / 262142
        ("app", "cpu", "cpu.max"): "50000 100000",
        ("app", "memory", "memory.max"): str(128 * MI),
        ("app", "memory", "memory.low"): str(32 * MI),
        ("side", "cpu", "cpu.weight"): "4",
        ("side", "cpu", "cpu.max"): "10000 100000",
        ("side", "memory", "memory.max"): str(20 * MI),
        ("free", "cpu", "cpu.weight"): "1",
        ("free", "cpu", "cpu.max"): "max 100000",
        ("free", "memory", "memory.max"): "max",
        ("", "cpu", "cpu.weight"): "28",                      # from 716 shares
        ("", "cpu", "cpu.max"): "max 100000",
        ("", "memory", "memory.max"): "max",
        ("", "memory", "memory.low"): str(52 * MI),
        ("", "pids", "pids.max"): "4096",
    }


def test_cgroup_files_hold_what_kubelet_would_write(mpi):
    pod = mpi.runtime().run(LIMITED_POD)
    pod.wait_ready(timeout=10)
    found = {}
    for (container, controller, name), value in expected_files("v2" if V2 else "v1").items():
        parts = (container, name) if container else (name,)
        found[(container, controller, name)] = read(cgroup_file(pod, controller, *parts))
    assert found == expected_files("v2" if V2 else "v1")
    assert pod.status["qosClass"] == "Burstable"
    if not V2:
        # The pause is not limited by itself, only by the pod.
        assert read(cgroup_file(pod, "cpu", "_pause", "cpu.shares")) == "1024"
    pod.remove(timeout=0)


def test_guaranteed_pod_gets_the_summed_limits(mpi):
    pod = mpi.runtime().run(LIMITED_POD.replace("""  - name: free
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
""", "").replace("requests: {cpu: 250m, memory: 32Mi}", "requests: {cpu: 500m, memory: 128Mi}"))
    pod.wait_ready(timeout=10)
    assert pod.status["qosClass"] == "Guaranteed"
    if V2:
        assert read(cgroup_file(pod, "cpu", "cpu.max")) == "70000 100000"  # max(500m + 100m, init 700m)
        assert read(cgroup_file(pod, "memory", "memory.max")) == str(148 * MI)
    else:
        assert read(cgroup_file(pod, "cpu", "cpu.cfs_quota_us")) == "70000"
        assert read(cgroup_file(pod, "cpu", "cpu.shares")) == "716"  # max(500m + 100m, 700m) * 1024 / 1000
        assert read(cgroup_file(pod, "memory", "memory.limit_in_bytes")) == str(148 * MI)
    pod.remove(timeout=0)


def test_best_effort_pod(mpi):
    pod = mpi.runtime().run(LIMITED_POD.split("  initContainers:")[0] + """  containers:
  - name: free
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
""")
    pod.wait_ready(timeout=10)
    assert pod.status["qosClass"] == "BestEffort"
    name = "cpu.weight" if V2 else "cpu.shares"
    assert read(cgroup_file(pod, "cpu", name)) == read(cgroup_file(pod, "cpu", "free", name)) == \
        ("1" if V2 else "2")
    pod.remove(timeout=0)


# -- stats ---------------------------------------------------------------------------------

STATS_POD = """
apiVersion: v1
kind: Pod
metadata: {name: spin}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: localhost/busybox:demo
    # the shell holds 8 MB, and spins
    command: ["sh", "-c", "x=$(head -c 8000000 /dev/zero | tr '\\\\0' a); while :; do :; done & while :; do :; done"]
    resources:
      limits: {cpu: 200m, memory: 64Mi}
"""


def test_stats_prints_sane_numbers(mpi):
    assert mpi.cli("stats", check=True).stdout.split() == \
        ["POD", "CONTAINER", "CPU(cores)", "MEMORY(bytes)", "MEMORY", "LIMIT", "PIDS"]
    mpi.cli("run", "-d", "-", input=STATS_POD, check=True)
    time.sleep(0.5)
    [pod] = json.loads(mpi.cli("stats", "spin", "-o", "json", check=True).stdout)
    assert (pod["name"], pod["namespace"]) == ("spin", "default")
    [c] = pod["containers"]
    assert c["name"] == "spin"
    # It spins under a 0.2-core limit: busy, never above the limit (how busy
    # depends on what else the machine runs).
    assert 0.01 <= c["cpuCores"] <= 0.3, c
    assert c["cpu"]["throttledPeriods"] > 0
    memory = c["memory"]
    assert memory["limitBytes"] == 64 * MI
    assert 1 * MI < memory["workingSetBytes"] <= memory["usageBytes"] <= 64 * MI, memory
    assert c["pids"] >= 2  # the shell and its spinning child

    lines = mpi.cli("stats", check=True).stdout.splitlines()
    assert len(lines) == 2
    name, container, cpu, mem, limit, pids = lines[1].split()
    assert (name, container, limit) == ("spin", "spin", "64Mi")
    assert 10 <= int(cpu.rstrip("m")) <= 300 and mem.endswith("Mi") and int(pids) >= 2

    proc = mpi.cli("stats", "nosuchpod")
    assert proc.returncode != 0 and proc.stderr.startswith('error: pod "nosuchpod" not found')
    mpi.cli("rm", "-f", "-t", "0", "spin", check=True)


# -- teardown ------------------------------------------------------------------------------

def test_no_cgroup_left_after_supervisor_sigkill_and_rm(mpi):
    pod = mpi.runtime().run(LIMITED_POD)
    pod.wait_ready(timeout=10)
    cgroup = pod.status["minipod"]["cgroup"]
    assert len(pod_cgroup_dirs(cgroup)) >= (1 if V2 else 5)
    os.kill(pod.status["minipod"]["supervisorPid"], signal.SIGKILL)
    pod.wait_phase("Unknown", timeout=5)
    mpi.cli("rm", "-f", "-t", "0", "limited", check=True)
    assert pod_cgroup_dirs(cgroup) == []
    assert not [r for r in ([LAYOUT.unified] if LAYOUT.unified else []) + list(LAYOUT.mounts.values())
                if os.path.isdir(os.path.join(r, mpi.cgroup_parent))]


# -- a controller that is not there --------------------------------------------------------

@pytest.mark.skipif(V2 or LAYOUT is None or not LAYOUT.unified,
                    reason="needs a hybrid host, whose cgroup2 tree has no controllers")
def test_missing_controllers_warn_and_do_not_fail_on_a_real_v2_tree():
    layout = Layout(kind=UNIFIED, unified=LAYOUT.unified, mounts={})
    parent = f"minipod-test-{uuid.uuid4().hex[:8]}"
    pod = open_pod_cgroup(parent, "pod-1", layout=layout)
    try:
        pod.create()
        app = pod.child("app")
        app.create()
        warnings = app.apply(container_limits({"limits": {"cpu": "200m", "memory": "20Mi"}}, layout.kind))
        assert len(warnings) == 1
        assert "cpu.max=20000 100000" in warnings[0] and "memory.max=20971520" in warnings[0]
        assert "offers no cpu controller" in warnings[0]
        # The cgroup works without them: stats read what the core counts.
        assert app.stats()["cpu_usage_ns"] == 0 and app.stats()["memory_limit_bytes"] is None
    finally:
        pod.destroy()
        remove_parent_if_empty(parent, layout=layout)
    assert not os.path.exists(os.path.join(LAYOUT.unified, parent))
