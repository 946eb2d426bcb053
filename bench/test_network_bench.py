"""Tests of the networking benchmark (bench/network.py): its pure logic with
no root, and, as root, a short real run and a Ctrl-C half-way, each of
which must leave nothing on the host. No assertion on any timing.

    sudo .venv/bin/python -m pytest bench/test_network_bench.py -q
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys

import pytest

import network
from core import BENCH_DIR, REPO_DIR, BenchError, wait_until
from runchecks import assert_nothing_left, run_names, start_bench
from isolation import Isolation

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the benchmark makes namespaces, links and pods")

PROC_NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1451 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
"""
PROC_NET_TCP6 = """  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


# ====================================================================== pure logic
def test_pick_subnet_avoids_every_used_address_and_route():
    # Everything in 10.215.0.0/16 is taken but 10.215.77.0/24 (a route to
    # its lower half would already overlap it: use host addresses around it).
    used = "10.215.0.0/18 dev x\n10.215.64.0/21 dev y\n10.215.72.0/22\n10.215.76.9/32\n10.215.78.0/23\n" \
           "10.215.80.0/20\n10.215.96.0/19\n10.215.128.0/17\n"
    for seed in range(5):
        assert network.pick_subnet(used, random.Random(seed)) == "10.215.77.0/24"
    # An address alone takes its whole /24 out; ip's text around it is ignored.
    inet = "2: eth0    inet 10.215.200.5/32 scope global eth0\ndefault via 192.0.2.1 dev eth0"
    picks = {network.pick_subnet(inet, random.Random(seed)) for seed in range(200)}
    assert "10.215.200.0/24" not in picks and len(picks) > 100
    with pytest.raises(BenchError, match="no free 10.215.x.0/24"):
        network.pick_subnet("10.0.0.0/8 dev tun0", random.Random(0))


def test_parse_iperf3_reads_received_bits_and_reports_errors():
    report = {"start": {}, "end": {"sum_sent": {"bits_per_second": 9.9e9},
                                   "sum_received": {"bits_per_second": 12.5e9}}}
    assert network.parse_iperf3(json.dumps(report)) == pytest.approx(12.5)
    with pytest.raises(BenchError, match="iperf3: unable to connect to server: Connection refused"):
        network.parse_iperf3(json.dumps({"start": {}, "end": {},
                                         "error": "unable to connect to server: Connection refused"}))
    with pytest.raises(BenchError, match="not JSON"):
        network.parse_iperf3("iperf3: error - the server is busy")
    with pytest.raises(BenchError, match="no end.sum_received"):
        network.parse_iperf3(json.dumps({"end": {}}))


def test_listening_ports_keeps_only_listeners():
    assert network.listening_ports(PROC_NET_TCP) == {5201}  # not 40000, a connection
    assert network.listening_ports(PROC_NET_TCP6) == {8080}
    assert network.listening_ports(PROC_NET_TCP.splitlines()[0]) == set()


def test_paired_figures_pair_samples_in_order():
    assert network.paired_differences([30.0, 20.0, 25.0], [10.0, 15.0, 5.0]) == [20.0, 5.0, 20.0]
    assert network.paired_loss_pct([8.0, 10.0, 12.0], [10.0, 10.0, 10.0]) == pytest.approx([20.0, 0.0, -20.0])
    assert network.paired_loss_pct([8.0], [0.0]) == []  # a failed baseline is no sample


def test_loss_row_passes_within_twenty_percent_only():
    rows = network.new_metrics()
    loss = rows["tcp_loss"]
    loss.minipod = [19.0, 21.0, 5.0]
    assert loss.to_dict()["verdict"] == "PASS"
    loss.minipod = [25.0, 21.0, 5.0]
    assert loss.to_dict()["verdict"] == "MISS"
    assert rows["setup"].target == 10 and rows["setup_hostport"].target == 10


def test_summary_answers_the_issue_from_the_rows():
    m = network.new_metrics()
    m["setup"].minipod = [3.0, 4.0, 50.0]
    m["tcp"].minipod, m["tcp"].floor = [7.0, 8.0, 9.0], [10.0, 10.0, 10.0]
    m["tcp_loss"].minipod = network.paired_loss_pct(m["tcp"].minipod, m["tcp"].floor)
    rows = {k: v.to_dict() for k, v in m.items() if v.minipod}
    s = network.summary(rows)
    assert s["setup_ms_median"] == 4.0 and s["setup_verdict"] == "PASS"
    assert s["ratio_of_medians"] == pytest.approx(0.8)
    assert s["loss_pct_median_of_pairs"] == pytest.approx(20.0) and s["throughput_verdict"] == "PASS"
    text = "\n".join(network.summary_lines(s))
    assert "4.00 ms median" in text and "ratio 0.800" in text and "PASS" in text
    assert "run_d_network_cost_ms_median" not in s  # a part not run is not reported


def test_manifests_are_valid_pods_with_and_without_host_network(tmp_path):
    for host_network in (False, True):
        path = network.netbench_manifest(str(tmp_path / f"p{host_network}.json"), "netbench-x", host_network)
        with open(path) as f:
            pod = json.load(f)
        assert bool(pod["spec"].get("hostNetwork")) is host_network
        res = subprocess.run([sys.executable, "-m", "minipod", "validate", path], capture_output=True, text=True,
                             cwd=REPO_DIR)
        assert res.returncode == 0, res.stderr


def test_arguments_default_to_twenty_runs_and_every_part():
    args = network.parse_args([])
    assert (args.runs, args.seconds, args.parts) == (20, 3.0, ["setup", "e2e", "throughput"])
    assert network.parse_args(["--parts", "setup, throughput"]).parts == ["setup", "throughput"]
    for bad in (["--parts", "setup,nope"], ["--parts", ","], ["--runs", "0"], ["--seconds", "0.5"]):
        with pytest.raises(SystemExit):
            network.parse_args(bad)


def test_a_six_hex_tag_gives_the_mpb_bridge_name():
    iso = Isolation(tag="a1b2c3")
    try:
        assert iso.bridge == "mpba1b2c3" and len(iso.bridge) <= 15
        assert iso.cgroup_parent == "minipod-bench-a1b2c3"
    finally:
        os.rmdir(iso.root)


@pytest.mark.skipif(os.geteuid() == 0, reason="checks the refusal a non-root user sees")
def test_without_root_it_refuses_and_makes_nothing():
    res = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "network.py")], capture_output=True, text=True)
    assert res.returncode == 1 and "needs root" in res.stderr


# ====================================================================== for real, as root






@pytest.mark.integration
@needs_root
def test_a_short_run_measures_every_part_and_cleans_up(tmp_path):
    # Tests never install anything: without iperf3, the throughput part is left out.
    parts = "setup,e2e,throughput" if shutil.which("iperf3") else "setup,e2e"
    proc = start_bench("network.py", "--runs", "2", "--seconds", "1", "--parts", parts, "--out", str(tmp_path))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    names = run_names(out.splitlines()[0])
    assert names["bridge"].startswith("mpb") and names["subnet"].startswith("10.215.")
    assert_nothing_left(names)
    [path] = glob.glob(str(tmp_path / "network-*.json"))
    with open(path) as f:
        result = json.load(f)
    assert result["clean"] is True and result["left_behind"] == []
    rows = {r["key"]: r for r in result["rows"]}
    for key in ("setup", "setup_hostport", "teardown", "setup_first", "teardown_last", "network_rm", "run_d_cost",
                "rm_f_cost"):
        assert rows[key]["minipod"]["n"] == 2 and rows[key]["minipod"]["median"] is not None, key
    for key in ("run_d", "rm_f"):
        assert rows[key]["floor"]["n"] == 2 and rows[key]["ratio"] > 0
    assert rows["setup"]["verdict"] in ("PASS", "MISS")
    if "throughput" in parts:
        assert rows["tcp"]["minipod"]["n"] == 2 and rows["tcp"]["floor"]["n"] == 2
        assert rows["tcp"]["minipod"]["min"] > 0 and rows["tcp"]["floor"]["min"] > 0
        assert rows["tcp_loss"]["verdict"] in ("PASS", "MISS")
        assert result["summary"]["throughput_verdict"] == rows["tcp_loss"]["verdict"]
    assert "set-up per pod (bridge up)" in out and "network set-up per pod:" in out


@pytest.mark.integration
@needs_root
def test_ctrl_c_half_way_removes_everything(tmp_path):
    proc = start_bench("network.py", "--runs", "200", "--parts", "setup,e2e", "--out", str(tmp_path))
    try:
        names = run_names(proc.stdout.readline())
        # The bridge comes and goes with the first-pod cycles: stop while
        # namespaces, links and rules exist.
        wait_until(lambda: os.path.exists(f"/sys/class/net/{names['bridge']}"), timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert_nothing_left(names)
    assert glob.glob(str(tmp_path / "network-*.json")) == []
