"""Tests of the benchmark's own logic (no root, no timing assertions):
parsing /proc, summaries and verdicts, the table, the manifests it runs,
the isolation names, and the floor script's argument handling.

    .venv/bin/python -m pytest bench -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core import (
    FLOOR_SCRIPT, REPO_DIR, Metric, is_running_ready, parse_kib, process_alive, ratio, run_timed, start_time,
    summarize, verdict, write_manifest,
)
from isolation import Isolation
from report import table, write_json

STATUS = """Name:\tminipod-pause
VmPeak:\t     220 kB
VmRSS:\t      12 kB
RssAnon:\t       8 kB
"""
ROLLUP = """00400000-7ffc83570000 ---p 00000000 00:00 0                              [rollup]
Rss:                 700 kB
Pss:                 696 kB
Pss_Dirty:            48 kB
"""


def test_parse_kib_reads_the_exact_key():
    assert parse_kib(STATUS, "VmRSS") == 12
    assert parse_kib(ROLLUP, "Pss") == 696  # not Pss_Dirty
    assert parse_kib(ROLLUP, "Rss") == 700
    assert parse_kib(STATUS, "Pss") is None


def test_summarize_gives_median_min_max():
    s = summarize([5.0, 1.0, 9.0, 3.0])
    assert (s["n"], s["median"], s["min"], s["max"]) == (4, 4.0, 1.0, 9.0)
    assert summarize([])["median"] is None


def test_verdict_and_ratio():
    assert verdict(150.0, 150) == "PASS"
    assert verdict(150.1, 150) == "MISS"
    assert verdict(10.0, None) == "-"
    assert ratio(300.0, 40.0) == 7.5
    assert ratio(300.0, None) is None and ratio(None, 4.0) is None and ratio(3.0, 0) is None


def test_metric_row_compares_medians():
    m = Metric("run_d", "run -d", "ms", 150, minipod=[100.0, 300.0, 200.0], floor=[40.0, 50.0, 45.0],
               floor_label="floor.sh start")
    row = m.to_dict()
    assert row["minipod"]["median"] == 200.0
    assert row["floor"]["median"] == 45.0
    assert row["ratio"] == pytest.approx(200 / 45)
    assert row["verdict"] == "MISS"
    assert Metric("x", "x", "KiB").to_dict()["floor"] is None


def test_table_has_a_line_per_metric_and_the_verdicts():
    rows = [Metric("a", "run -d", "ms", 150, minipod=[120.0], floor=[40.0]).to_dict(),
            Metric("b", "pause VmRSS", "KiB", 512, minipod=[700.0]).to_dict()]
    lines = table(rows).splitlines()
    assert len(lines) == 4  # head, rule, two rows
    assert "PASS" in lines[2] and "3.0x" in lines[2] and "<= 150" in lines[2]
    assert "MISS" in lines[3] and "<= 512" in lines[3]


def test_write_json_round_trips(tmp_path):
    path = write_json({"rows": [Metric("a", "a", "ms", minipod=[1.0]).to_dict()]}, str(tmp_path / "r" / "x.json"))
    assert json.load(open(path))["rows"][0]["minipod"]["median"] == 1.0


def test_manifest_is_one_valid_pod_per_name(tmp_path):
    path = write_manifest(str(tmp_path / "m.json"), ["a-01", "a-02"])
    with open(path) as f:
        docs = [json.loads(d) for d in f.read().split("\n---\n")]
    assert [d["metadata"]["name"] for d in docs] == ["a-01", "a-02"]
    assert docs[0]["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    # And minipod itself accepts the file, strictly.
    res = subprocess.run([sys.executable, "-m", "minipod", "validate", path], capture_output=True, text=True,
                         cwd=REPO_DIR)
    assert res.returncode == 0, res.stderr


def test_running_ready_needs_both_phase_and_condition():
    ready = [{"type": "Ready", "status": "True"}]
    assert is_running_ready({"status": {"phase": "Running", "conditions": ready}})
    assert not is_running_ready({"status": {"phase": "Pending", "conditions": ready}})
    assert not is_running_ready({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}})
    assert not is_running_ready({})


def test_process_alive_tells_a_zombie_and_a_reused_pid():
    proc = subprocess.Popen(["true"])
    started = None
    while started is None or process_alive(proc.pid):
        started = started or start_time(proc.pid)
    # Dead but not reaped: a zombie, which counts as gone.
    assert os.path.exists(f"/proc/{proc.pid}") and not process_alive(proc.pid)
    proc.wait()
    me = os.getpid()
    assert process_alive(me) and process_alive(me, start_time(me))
    assert not process_alive(me, start_time(me) + 1)


def test_run_timed_keeps_output_and_exit_code():
    s = run_timed([sys.executable, "-c", "import sys; print('out'); sys.stderr.write('err'); sys.exit(3)"])
    assert (s.returncode, s.stdout.strip(), s.stderr) == (3, "out", "err")
    assert s.wall_ms > 0 and s.maxrss_kib > 0
    with pytest.raises(Exception, match="exit 3"):
        s.check()


def test_isolation_names_fit_the_kernel_and_are_private():
    a, b = Isolation(), Isolation()
    try:
        assert a.root != b.root and a.cgroup_parent != b.cgroup_parent
        assert a.cgroup_parent.startswith("minipod-bench-")
        assert len(a.bridge) <= 15  # IFNAMSIZ - 1
        import ipaddress

        assert ipaddress.ip_network(a.subnet).prefixlen == 24
        env = a.env()
        assert env["MINIPOD_ROOT"] == a.root and env["MINIPOD_CGROUP_PARENT"] == a.cgroup_parent
    finally:
        os.rmdir(a.root)
        os.rmdir(b.root)


def test_floor_script_parses_and_rejects_bad_usage(tmp_path):
    assert subprocess.run(["bash", "-n", FLOOR_SCRIPT]).returncode == 0
    for args in ([], ["start", str(tmp_path)], ["stop"], ["nope", "x"]):
        res = subprocess.run(["bash", FLOOR_SCRIPT, *args], capture_output=True, text=True)
        assert res.returncode == 2 and "usage" in res.stderr


def test_floor_ps_lists_sandbox_dirs(tmp_path):
    (tmp_path / "alive").mkdir()
    (tmp_path / "alive" / "pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "empty").mkdir()  # no pid file: not a sandbox yet
    out = subprocess.run(["bash", FLOOR_SCRIPT, "ps", str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "PID"]
    assert out[1].split() == ["alive", "Running", str(os.getpid())]
    assert len(out) == 2
