"""The benchmark for real, as root: the floor sandbox has the pod shape it
claims, and a run (finished or cut by Ctrl-C) leaves nothing on the host.
No assertion on any timing.

    sudo .venv/bin/python -m pytest bench -q
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import time

import pytest

from core import REPO_DIR, FloorSide, process_alive, start_time, wait_until
from runchecks import start_bench

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the benchmark makes namespaces, mounts and pods"),
]


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(path + "/")]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> str:
    dest = str(tmp_path_factory.mktemp("bench-rootfs") / "busybox")
    subprocess.run(["sh", os.path.join(REPO_DIR, "examples", "busybox-rootfs.sh"), dest], check=True)
    return dest


def test_floor_sandbox_has_the_pod_shape_and_leaves_nothing(tmp_path, rootfs):
    floor = FloorSide(str(tmp_path / "floor"), rootfs)
    floor.start("shape-1").check()
    try:
        wait_until(lambda: floor.is_running("shape-1"), timeout=5)
        pid = floor.workload_pid("shape-1")
        for ns in ("net", "ipc", "uts", "pid", "mnt"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        with open(f"/proc/{pid}/cmdline") as f:
            assert f.read().split("\0")[:2] == ["sleep", "3600"]
        # Inside: the busybox rootfs as /, its own hostname, loopback up, PID 1.
        inside = subprocess.run(["nsenter", "-t", str(pid), "-a", "sh", "-c",
                                 "hostname; ip link show lo | grep -c LOWER_UP; readlink /proc/1/exe; ls /bin/busybox"],
                                capture_output=True, text=True, check=True).stdout.split()
        assert inside == ["shape-1", "1", "/bin/busybox", "/bin/busybox"]
        assert _mounts_under(str(tmp_path)) == []  # the overlay lives in the sandbox's mount namespace
        pids = {p: start_time(p) for p in (floor.unshare_pid("shape-1"), pid)}
    finally:
        floor.stop("shape-1").check()
    assert not os.path.exists(floor.dir("shape-1"))
    # The lock is released when the last process closes its files, a moment
    # before the kernel marks it dead: give it that moment, no more.
    wait_until(lambda: not any(process_alive(p, s) for p, s in pids.items()), timeout=2)
    assert _mounts_under(str(tmp_path)) == []




def _isolation_of(header: str) -> tuple[str, str]:
    found = re.search(r"root (\S+), cgroup parent (\S+)", header)
    assert found, header
    return found.group(1), found.group(2)


def _assert_nothing_left(root: str, cgroup_parent: str) -> None:
    assert not os.path.exists(root)
    assert _mounts_under(root) == []
    assert glob.glob(f"/sys/fs/cgroup/*/{cgroup_parent}") + glob.glob(f"/sys/fs/cgroup/{cgroup_parent}") == []


def test_a_short_run_writes_results_and_cleans_up(tmp_path):
    proc = start_bench("run.py", "--runs", "1", "--pods", "2", "--out", str(tmp_path))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    root, cgroup_parent = _isolation_of(out.splitlines()[0])
    _assert_nothing_left(root, cgroup_parent)
    [path] = glob.glob(str(tmp_path / "core-*.json"))
    result = json.load(open(path))
    assert result["clean"] is True and result["runs"] == 1
    rows = {r["key"]: r for r in result["rows"]}
    for key in ("run_d", "run_ready", "rm_f", "ps_many", "pause_rss"):
        assert rows[key]["verdict"] in ("PASS", "MISS")
        assert rows[key]["minipod"]["n"] >= 1
    for key in ("run_d", "rm_f", "ps_many", "pod_pss"):
        assert rows[key]["floor"]["n"] >= 1 and rows[key]["ratio"] > 0
    assert rows["ps_many"]["label"] == "ps (2 pods)"
    assert "run -d (returns)" in out and "rm -f" in out


def test_ctrl_c_stops_the_run_and_removes_everything(tmp_path):
    proc = start_bench("run.py", "--runs", "50", "--out", str(tmp_path))
    try:
        root, cgroup_parent = _isolation_of(proc.stdout.readline())
        # The floor's directory appears once the image is imported: from
        # then on pods come and go; let a few of them be half-way.
        wait_until(lambda: os.path.isdir(os.path.join(root, "floor")), timeout=60, interval=0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    _assert_nothing_left(root, cgroup_parent)
    assert glob.glob(str(tmp_path / "core-*.json")) == []
