"""Tests of the cgroup benchmark (bench/cgroups.py): its pure parts with no
root; as root, that the floor asks the kernel for the same cgroups as
minipod, and that a short run, and one that fails half-way, leave nothing.
No assertion on any timing.

    sudo .venv/bin/python -m pytest bench/test_cgroups_bench.py -q
"""

from __future__ import annotations

import glob
import json
import os
import secrets

import pytest

import cgroups
from core import BenchError, Metric

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the benchmark makes cgroups")


# ====================================================================== pure logic
def test_parse_args_defaults_and_limits():
    args = cgroups.parse_args([])
    assert (args.runs, args.warmup) == (50, 3) and args.out.endswith("bench/results")
    assert cgroups.parse_args(["--runs", "2", "--warmup", "0"]).runs == 2
    for bad in (["--runs", "0"], ["--warmup", "-1"]):
        with pytest.raises(SystemExit):
            cgroups.parse_args(bad)


def test_distinct_hierarchies_drops_a_second_name_for_one_hierarchy():
    real = {"/c/cpu": "/c/cpu,cpuacct", "/c/cpuacct": "/c/cpu,cpuacct"}
    roots = ["/c/memory", "/c/cpu", "/c/cpuacct", "/c/pids"]
    assert cgroups.distinct_hierarchies(roots, lambda p: real.get(p, p)) == ["/c/memory", "/c/cpu", "/c/pids"]


def test_resolve_writes_keeps_order_and_drops_what_the_host_lacks():
    writes = [("cpu", "cpu.shares", "102"), ("memory", "memory.limit_in_bytes", "134217728"),
              ("memory", "memory.memsw.limit_in_bytes", "134217728"), ("hugetlb", "x", "1")]
    roots = {"cpu": "/c/cpu", "memory": "/c/memory"}
    present = {("/c/cpu", "cpu.shares"), ("/c/memory", "memory.limit_in_bytes")}  # no swap accounting
    got = cgroups.resolve_writes(writes, roots.get, lambda root, name: (root, name) in present)
    assert got == [("/c/cpu", "cpu.shares", "102"), ("/c/memory", "memory.limit_in_bytes", "134217728")]


def test_plan_container_copies_cpuset_then_writes_limits(tmp_path):
    cpuset, memory = tmp_path / "cpuset", tmp_path / "memory"
    (cpuset / "p" / "pod").mkdir(parents=True)
    (cpuset / "p" / "pod" / "cpuset.cpus").write_text("0-1\n")
    (cpuset / "p" / "pod" / "cpuset.mems").write_text("0\n")
    floor = cgroups.HandFloor([str(memory), str(cpuset)], str(cpuset),
                              [(str(memory), "memory.limit_in_bytes", "1048576")])
    dirs, files = floor.plan_container("p/pod/app")
    assert dirs == [str(memory / "p/pod/app"), str(cpuset / "p/pod/app")]
    assert files == [(str(cpuset / "p/pod/app/cpuset.cpus"), "0-1"), (str(cpuset / "p/pod/app/cpuset.mems"), "0"),
                     (str(memory / "p/pod/app/memory.limit_in_bytes"), "1048576")]


def test_rmdir_when_free_removes_or_names_the_directory(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    cgroups.rmdir_when_free(str(gone))
    cgroups.rmdir_when_free(str(gone))  # already gone: fine
    assert not gone.exists()
    full = tmp_path / "full"
    (full / "x").mkdir(parents=True)
    with pytest.raises(BenchError, match="rmdir .*full"):  # not EBUSY: no retrying
        cgroups.rmdir_when_free(str(full))


def test_summary_gives_both_ratios():
    m = cgroups.new_metrics()
    m["pod_teardown"].minipod = [4.0, 6.0, 30.0]
    m["pod_teardown"].floor = [2.0, 2.0, 3.0]
    rows = {"pod_teardown": m["pod_teardown"].to_dict()}
    s = cgroups.summary(rows, m)["pod_teardown"]
    assert s["median_ms"] == 6.0 and s["verdict"] == "PASS" and s["floor_median_ms"] == 2.0
    assert s["ratio_of_medians"] == 3.0 and s["median_of_pair_ratios"] == 3.0  # pairs: 2, 3, 10
    assert cgroups.paired_ratios([1.0, 2.0], [0.0, 4.0]) == [0.5]
    slow = {"container_setup": Metric("container_setup", "x", "ms", 2.0, [3.0], [1.0])}
    lines = cgroups.summary_lines(cgroups.summary({k: v.to_dict() for k, v in slow.items()}, slow))
    assert len(lines) == 1 and "MISS" in lines[0] and "3.0x" in lines[0]
    # The split rows (no floor, no target) are in the table, not the summary.
    m["teardown_kill_all"].minipod = [1.0]
    assert set(cgroups.summary({k: v.to_dict() for k, v in m.items() if v.minipod}, m)) == {"pod_teardown"}


# ====================================================================== as root
def _left(parent: str) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/{parent}") + glob.glob(f"/sys/fs/cgroup/{parent}")


@needs_root
def test_floor_makes_the_same_container_cgroup_as_minipod():
    from minipod.cgroups import open_cgroup
    from minipod.cgroups.limits import container_limits

    bench = cgroups.CgroupBench(f"minipod-bench-{secrets.token_hex(4)}")
    try:
        bench.make_parent()
        assert bench.floor.writes, "the floor would write no limit at all"
        mine, floor = bench.pod("m"), bench.pod("f")
        mine.create()
        floor.create()
        app = mine.child("app")
        app.create()
        assert app.apply(container_limits(cgroups.BURSTABLE, app.kind)) == []
        dirs, files = bench.floor.plan_container(f"{floor.relpath}/app")
        bench.floor.make_container(dirs, files)
        assert sorted(app.dirs()) == sorted(d.replace("/f/app", "/m/app") for d in dirs)
        for path, _value in files:
            with open(path) as a, open(path.replace("/f/app/", "/m/app/")) as b:
                assert a.read() == b.read(), path
    finally:
        open_cgroup(bench.parent, layout=bench.layout).destroy()
    assert _left(bench.parent) == []


@needs_root
def test_a_short_run_writes_its_result_and_leaves_nothing(tmp_path, capsys):
    tag = secrets.token_hex(4)
    assert cgroups.main(["--runs", "3", "--warmup", "1", "--out", str(tmp_path)], tag=tag) == 0
    [path] = glob.glob(str(tmp_path / "cgroups-*.json"))
    with open(path) as f:
        result = json.load(f)
    assert result["clean"] is True and result["left_behind"] == []
    assert result["isolation"]["cgroup_parent"] == f"minipod-bench-{tag}"
    rows = {r["key"]: r for r in result["rows"]}
    assert set(rows) == {"container_setup", "pod_teardown", "teardown_kill_all", "teardown_destroy"}
    for key in cgroups.COMPARED:
        assert rows[key]["minipod"]["n"] == rows[key]["floor"]["n"] == 3 and rows[key]["ratio"] > 0
    # The split adds up to the whole, sample by sample.
    for whole, kill, destroy in zip(*(rows[k]["minipod"]["samples"] for k in
                                      ("pod_teardown", "teardown_kill_all", "teardown_destroy"))):
        assert kill + destroy == pytest.approx(whole, abs=0.002)
    assert set(result["summary"]) == set(cgroups.COMPARED)
    assert "pod cgroup teardown (3 processes)" in capsys.readouterr().out
    assert _left(f"minipod-bench-{tag}") == []
    assert not glob.glob(f"/tmp/minipod-bench-{tag}-*")


@needs_root
def test_a_run_that_fails_half_way_leaves_nothing(tmp_path, monkeypatch, capsys):
    # Fail in the teardown row with sleeps still in their cgroups: the
    # clean-up must kill and reap them and remove the whole parent.
    def broken(self, pod_relpath, children, pids):
        raise BenchError("injected failure")

    monkeypatch.setattr(cgroups.HandFloor, "teardown", broken)
    tag = secrets.token_hex(4)
    started = []
    real_spawn = cgroups.CgroupBench.spawn_sleep

    def spawn(self):
        started.append(real_spawn(self))
        return started[-1]

    monkeypatch.setattr(cgroups.CgroupBench, "spawn_sleep", spawn)
    assert cgroups.main(["--runs", "2", "--warmup", "0", "--out", str(tmp_path)], tag=tag) == 1
    err = capsys.readouterr().err
    assert "injected failure" in err and "left behind" not in err
    assert len(started) == 6  # the minipod pod (torn down) and the floor's (left to the clean-up)
    for pid in started:
        assert not os.path.exists(f"/proc/{pid}")  # killed and reaped
    assert _left(f"minipod-bench-{tag}") == []
    assert glob.glob(str(tmp_path / "*.json")) == []
