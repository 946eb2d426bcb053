"""Tests of the lifecycle benchmark (bench/lifecycle.py): its pure parts with
no root (parsing /proc, the pods it runs, the shell that exits on SIGTERM);
as root a short real run (10 s of idle window) and a Ctrl-C half-way
through the idle window, both of which must leave nothing on the host. No
assertion on any timing.

    sudo .venv/bin/python -m pytest bench/test_lifecycle_bench.py -q
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import lifecycle
from core import BENCH_DIR, REPO_DIR, BenchError, Metric, process_alive, wait_until
from runchecks import assert_nothing_left, run_names, start_bench

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the benchmark runs real pods")

# A supervisor's line, with a command name that holds ") " as a hostile one may.
STAT = ("27367 (minipod) (x) S 1 27366 27366 0 -1 4194624 7997 131 0 0 412 95 7 3 20 0 1 0 979472 "
        "34398208 6574 18446744073709551615 1 1 0 0 0 0 0 16781312 81923 1 0 0 17 1 0 0 0 0 0\n")
SNMP = ("Ip: Forwarding DefaultTTL\nIp: 1 64\n"
        "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails\n"
        "Tcp: 1 200 120000 -1 20 19 0\nUdp: InDatagrams\nUdp: 0\n")


# ====================================================================== pure logic
def test_parse_args_defaults_and_limits():
    args = lifecycle.parse_args([])
    assert (args.runs, args.seconds, args.interval, args.parts) == (10, 30.0, 5.0, ["stop", "idle"])
    assert args.out.endswith("bench/results")
    assert lifecycle.parse_args(["--parts", " idle ", "--seconds", "10"]).parts == ["idle"]
    for bad in (["--runs", "0"], ["--parts", "stop,start"], ["--parts", ","], ["--interval", "0.5"],
                ["--seconds", "4", "--interval", "5"]):
        with pytest.raises(SystemExit):
            lifecycle.parse_args(bad)


def test_parse_stat_times_counts_fields_after_the_command_name():
    assert lifecycle.parse_stat_times(STAT) == {"utime": 412, "stime": 95, "cutime": 7, "cstime": 3}
    with open("/proc/self/stat") as f:
        mine = lifecycle.parse_stat_times(f.read())
    assert set(mine) == {"utime", "stime", "cutime", "cstime"} and all(v >= 0 for v in mine.values())
    with pytest.raises(BenchError, match="not a /proc/PID/stat line"):
        lifecycle.parse_stat_times("1 (x) S 1 2")


def test_parse_schedstat_and_tcp_counters():
    assert lifecycle.parse_schedstat("85575272 29603228 80\n") == 85575272
    with pytest.raises(BenchError):
        lifecycle.parse_schedstat("")
    tcp = lifecycle.parse_tcp_counters(SNMP)
    assert tcp["PassiveOpens"] == 19 and tcp["ActiveOpens"] == 20 and tcp["MaxConn"] == -1
    with pytest.raises(BenchError, match="no Tcp: counters"):
        lifecycle.parse_tcp_counters("Ip: Forwarding\nIp: 1\n")


def test_cpu_percent_and_readings():
    assert lifecycle.cpu_percent(30, 30.0, hz=100) == pytest.approx(1.0)  # 0.3 s of CPU in 30 s
    assert lifecycle.cpu_percent(5, 0.0, hz=100) == 0.0
    a = lifecycle.CpuReading(at=10.0, own=100, children=40, run_ns=1_000_000_000)
    b = lifecycle.CpuReading(at=20.0, own=106, children=41, run_ns=1_055_000_000)
    used = b.since(a)
    hz = lifecycle.CLK_TCK
    assert used["seconds"] == 10.0
    assert used["own"] == pytest.approx(100 * 6 / hz / 10) and used["children"] == pytest.approx(100 / hz / 10)
    assert used["schedstat"] == pytest.approx(0.55)
    me = lifecycle.read_cpu(os.getpid())
    assert me.own >= 0 and me.run_ns > 0
    with pytest.raises(BenchError, match="did the supervisor die"):
        lifecycle.read_cpu(2 ** 22 + 1)  # above pid_max's ceiling: never a process


def _probes(pod: dict) -> list[tuple[str, str, str]]:
    return [(c["name"], kind, next(h for h in ("exec", "httpGet", "tcpSocket") if h in c[kind]))
            for c in pod["spec"]["containers"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")
            if kind in c]


def test_idle_pods_differ_only_by_five_probes_a_second():
    probes, plain = lifecycle.idle_pod("p", True), lifecycle.idle_pod("q", False)
    found = _probes(probes)
    assert len(found) == 5 and _probes(plain) == []
    assert sorted(h for _, _, h in found) == ["exec", "httpGet", "httpGet", "tcpSocket", "tcpSocket"]
    assert (lifecycle.EXEC_PROBED, "livenessProbe", "exec") in found
    assert lifecycle.NET_PROBES_PER_S + lifecycle.EXEC_PROBES_PER_S == 5
    for c in probes["spec"]["containers"]:
        for kind in ("livenessProbe", "readinessProbe"):
            if kind in c:
                assert c[kind]["periodSeconds"] == 1 and "initialDelaySeconds" not in c[kind]
    strip = [{k: v for k, v in c.items() if not k.endswith("Probe")} for c in probes["spec"]["containers"]]
    assert strip == plain["spec"]["containers"]
    assert "httpd -f -p 8080 -h /www" in probes["spec"]["containers"][0]["command"][2]


def test_every_pod_of_the_bench_passes_strict_validation(tmp_path):
    pods = [lifecycle.stop_pod("stop-good", lifecycle.TERM_EXITS),
            lifecycle.stop_pod("stop-deaf", lifecycle.TERM_IGNORED, ("a",)),
            lifecycle.idle_pod("idle-probes", True), lifecycle.idle_pod("idle-plain", False)]
    assert [len(p["spec"]["containers"]) for p in pods] == [2, 1, 3, 3]
    assert pods[0]["spec"]["terminationGracePeriodSeconds"] == 30
    for pod in pods:
        path = lifecycle.write_pod(str(tmp_path / f"{pod['metadata']['name']}.json"), pod)
        res = subprocess.run([sys.executable, "-m", "minipod", "validate", path], capture_output=True, text=True,
                             cwd=REPO_DIR)
        assert res.returncode == 0, res.stderr
        assert "warning" not in res.stderr.lower(), res.stderr


def test_check_exits_wants_every_container_ended_with_the_code():
    def pod(*states):
        return {"status": {"containerStatuses": [{"name": f"c{i}", "state": s} for i, s in enumerate(states)]}}

    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    killed = {"terminated": {"exitCode": 137, "signal": 9, "reason": "Error"}}
    lifecycle.check_exits(pod(done, done), 0, "stop x")
    lifecycle.check_exits(pod(killed), 137, "stop y")
    with pytest.raises(BenchError, match="container c1 .* expected exit code 0"):
        lifecycle.check_exits(pod(done, killed), 0, "stop x")
    with pytest.raises(BenchError, match="container c0"):
        lifecycle.check_exits(pod({"running": {}}), 0, "stop x")
    with pytest.raises(BenchError, match="no container status"):
        lifecycle.check_exits(None, 0, "stop x")


def _busybox_sh(script: str) -> subprocess.Popen:
    # Its own session, so the background sleep can be killed with it.
    return subprocess.Popen(["busybox", "sh", "-c", script], start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test made: the shell and its sleep
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True).returncode != 0,
                    reason="busybox is not installed (apt-get install busybox-static)")
def test_the_containers_shell_exits_on_sigterm_and_the_deaf_one_does_not():
    """The stop pod's shell (the image's busybox sh) must end by itself, with
    exit code 0, as soon as SIGTERM comes; the deaf pod's must not."""
    good = _busybox_sh(lifecycle.TERM_EXITS)
    try:
        time.sleep(0.2)  # let it set its trap and reach ``wait``
        sent = time.monotonic()
        good.send_signal(signal.SIGTERM)
        assert good.wait(timeout=5) == 0
        assert time.monotonic() - sent < 1.0  # not a timing figure: the 3600 s sleep was not waited for
    finally:
        _kill_group(good)
    deaf = _busybox_sh(lifecycle.TERM_IGNORED)
    try:
        time.sleep(0.2)
        deaf.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            deaf.wait(timeout=0.5)
    finally:
        _kill_group(deaf)


def test_summary_answers_both_questions():
    m = lifecycle.new_metrics()
    m["stop"].minipod, m["stop"].floor = [150.0, 140.0, 400.0], [10.0, 12.0, 11.0]
    m["rm_f"].minipod, m["rm_f"].floor = [240.0], [12.0]
    m["stop_lib"].minipod = [90.0]
    m["stop_deaf"].minipod = [1190.0]
    m["sup_cpu"].minipod, m["sup_cpu"].floor = [0.6, 1.4, 0.8], [0.0, 0.0, 0.0]
    rows = {k: v.to_dict() for k, v in m.items() if v.minipod}
    idle = {"seconds": 30.0, "net_probes_per_s": 4.0, "exec_probes_per_s": 1.0,
            "probes": {"own_pct": 0.6, "children_pct": 0.5, "schedstat_pct": 0.55},
            "plain": {"own_pct": 0.0, "children_pct": 0.0, "schedstat_pct": 0.001}}
    s = lifecycle.summary(rows, idle)
    assert s["stop_ms_median"] == 150.0 and s["stop_verdict"] == "PASS" and s["stop_ratio"] == pytest.approx(150 / 11)
    assert s["sup_cpu_pct_median"] == 0.8 and s["sup_cpu_verdict"] == "PASS"
    assert rows["sup_cpu"]["ratio"] is None  # no ratio against a floor of 0
    text = "\n".join(lifecycle.summary_lines(s))
    assert "150 ms median, 13.6x the floor's 11 ms" in text and "1190 ms (+190 ms over the 1 s grace)" in text
    assert "supervisor's part (library stop, no CLI start): 90 ms" in text
    assert "0.80% of a core" in text and "4.00 TCP connections/s" in text
    slow = {"sup_cpu": Metric("sup_cpu", "x", "% core", 1.0, [1.5]).to_dict()}
    assert lifecycle.summary(slow, None)["sup_cpu_verdict"] == "MISS"
    assert lifecycle.summary({}, None) == {} and lifecycle.summary_lines({}) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="checks the refusal a non-root user sees")
def test_without_root_it_refuses_and_makes_nothing():
    res = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "lifecycle.py")], capture_output=True, text=True)
    assert res.returncode == 1 and "needs root" in res.stderr


# ====================================================================== for real, as root






@pytest.mark.integration
@needs_root
def test_a_short_run_measures_both_parts_and_cleans_up(tmp_path):
    proc = start_bench("lifecycle.py", "--runs", "1", "--seconds", "10", "--interval", "5",
                       "--out", str(tmp_path))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    names = run_names(out.splitlines()[0])
    assert_nothing_left(names)
    [path] = glob.glob(str(tmp_path / "lifecycle-*.json"))
    with open(path) as f:
        result = json.load(f)
    assert result["clean"] is True and result["left_behind"] == []
    rows = {r["key"]: r for r in result["rows"]}
    for key in ("python", "stop", "stop_lib", "rm_after_stop", "rm_f", "stop_deaf"):
        assert rows[key]["minipod"]["n"] == 1 and rows[key]["minipod"]["median"] > 0, key
    for key in ("stop", "rm_f"):
        assert rows[key]["floor"]["n"] == 1 and rows[key]["ratio"] > 0
    # The deaf pod is killed when its 1 s is up, not before.
    assert rows["stop_deaf"]["minipod"]["min"] >= 1000
    for key in ("sup_cpu", "probe_procs_cpu", "sup_rss", "sup_pss"):
        assert rows[key]["minipod"]["n"] == rows[key]["floor"]["n"] == 2, key
    assert rows["sup_rss"]["minipod"]["min"] > 0 and rows["sup_rss"]["floor"]["min"] > 0
    assert rows["stop"]["verdict"] in ("PASS", "MISS") and rows["sup_cpu"]["verdict"] in ("PASS", "MISS")
    window = result["summary"]["idle_window"]
    assert window["samples"] == 2 and window["seconds"] >= 9.5
    # The bench refuses to report a CPU figure for probes that did not run.
    assert window["net_probes_per_s"] >= 3.2 and window["exec_probes_per_s"] >= 0.8
    assert window["probes"]["schedstat_pct"] > 0
    assert "stop of a well-behaved 2-container pod:" in out and "probes seen:" in out


@pytest.mark.integration
@needs_root
def test_ctrl_c_in_the_idle_window_removes_everything(tmp_path):
    proc = start_bench("lifecycle.py", "--parts", "idle", "--seconds", "60", "--out", str(tmp_path))
    try:
        names = run_names(proc.stdout.readline())
        line = proc.stdout.readline()  # the idle window begins: both pods running, probes firing
        assert "idle:" in line, line
        sups = [int(p) for p in re.findall(r"supervisors (\d+) .* and (\d+) ", line)[0]]
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "left behind" not in err
    assert_nothing_left(names)
    # Gone (a zombie waiting for PID 1, slow here, counts as gone).
    wait_until(lambda: not any(process_alive(pid) for pid in sups), timeout=5)
    assert glob.glob(str(tmp_path / "lifecycle-*.json")) == []
