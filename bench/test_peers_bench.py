"""Tests of the side-by-side comparison with podman, a raw OCI bundle and
the floor (bench/compare.py, peers.py, peers_report.py): the pure logic
with no root, and, as root with podman and runc installed, a tiny real run
and a Ctrl-C half-way, each of which must leave nothing on the host. No
assertion on any timing. Tests never install anything: without podman or
runc the real runs are skipped (``sudo make bench-peers`` installs them).

    sudo .venv/bin/python -m pytest bench/test_peers_bench.py -q
"""

from __future__ import annotations

import cProfile
import glob
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

import pytest

import compare
import peer_profiles
import peers
from core import BENCH_DIR, REPO_DIR, BenchError, wait_until
from runchecks import assert_nothing_left, run_names, start_bench
from peers_report import Row, Target, chart_groups, judge, markdown, table, verdict_lines

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the comparison runs real pods")
needs_peers = pytest.mark.skipif(not (shutil.which("podman") and shutil.which("runc")),
                                 reason="podman or runc not installed: `sudo make bench-peers` installs them "
                                        "(tests never install anything)")

# What netavark leaves in the nat table once its last container is gone.
NAT_AFTER = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:NETAVARK-HOSTPORT-DNAT - [0:0]
:NETAVARK-HOSTPORT-MASQ - [0:0]
:NETAVARK-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
-A POSTROUTING -j NETAVARK-HOSTPORT-MASQ
-A POSTROUTING -s 10.9.0.0/24 -j MASQUERADE
-A NETAVARK-HOSTPORT-MASQ -m comment --comment "netavark portfw masq mark" -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A NETAVARK-HOSTPORT-SETMARK -j MARK --set-xmark 0x2000/0x2000
COMMIT
"""
# ... and while a network is in use (10.215.2.0/24: the run's own, say).
NAT_BUSY = NAT_AFTER.replace(":NETAVARK-HOSTPORT-SETMARK - [0:0]\n", ":NETAVARK-HOSTPORT-SETMARK - [0:0]\n"
                             ":NETAVARK-4B9D9135B29BA - [0:0]\n") + \
    "-A POSTROUTING -s 10.215.2.0/24 -j NETAVARK-4B9D9135B29BA\n" \
    "-A NETAVARK-4B9D9135B29BA -d 10.215.2.0/24 -j ACCEPT\n" \
    "-A NETAVARK-4B9D9135B29BA ! -d 224.0.0.0/4 -j MASQUERADE\n"
FILTER_BUSY = """*filter
:FORWARD ACCEPT [0:0]
:NETAVARK_FORWARD - [0:0]
-A FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD
-A NETAVARK_FORWARD -d 10.215.2.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A NETAVARK_FORWARD -s 10.215.2.0/24 -j ACCEPT
COMMIT
"""


# ====================================================================== peers.py
def test_podman_config_keeps_every_path_private_and_sets_what_this_host_needs(tmp_path):
    base = str(tmp_path / "podman")
    conf = tomllib.loads(peers.containers_conf(base, "mpbench-abc"))
    engine = conf["engine"]
    assert (engine["runtime"], engine["cgroup_manager"], engine["lock_type"]) == ("runc", "cgroupfs", "file")
    for key in ("tmp_dir", "static_dir", "volume_path", "events_logfile_path", "image_copy_tmp_dir"):
        assert engine[key].startswith(base + "/"), key
    assert conf["network"]["network_config_dir"] == base + "/networks"
    assert conf["network"]["default_network"] == "mpbench-abc"
    assert conf["containers"]["default_ulimits"] == ["nofile=20000:20000", "nproc=32768:32768"]
    storage = tomllib.loads(peers.storage_conf(base))["storage"]
    assert storage["graphroot"] == base + "/storage" and storage["runroot"] == base + "/run"


def test_network_definition_names_the_bridge_and_turns_dns_off():
    net = peers.network_definition("mpbench-abc", "mppabc", "10.215.7.0/24")
    assert net["network_interface"] == "mppabc" and net["name"] == "mpbench-abc"
    assert net["subnets"] == [{"subnet": "10.215.7.0/24", "gateway": "10.215.7.1"}]
    assert net["dns_enabled"] is False and len(net["id"]) == 64
    assert peers.network_definition("mpbench-abc", "x", "10.0.0.0/24")["id"] == net["id"]  # stable


def test_pod_processes_finds_infra_containers_and_conmons():
    pods = [{"Name": "p1", "Status": "Running", "InfraId": "i1",
             "Containers": [{"Id": "i1"}, {"Id": "a1"}, {"Id": "b1"}]},
            {"Name": "p2", "Status": "Degraded", "InfraId": "i2", "Containers": [{"Id": "i2"}, {"Id": "gone"}]}]
    containers = [
        {"Id": "i1", "State": {"Pid": 10, "ConmonPid": 9}, "NetworkSettings": {"Networks": {"n": {"IPAddress":
                                                                                               "10.1.0.2"}}}},
        {"Id": "a1", "State": {"Pid": 12, "ConmonPid": 11}},
        {"Id": "b1", "State": {"Pid": 0, "ConmonPid": 0}},  # exited: no process to count
        {"Id": "i2", "State": {"Pid": 20, "ConmonPid": 19}},
    ]
    out = peers.pod_processes(pods, containers)
    assert out["p1"] == {"infra": 10, "containers": [12], "conmons": [9, 11], "status": "Running"}
    assert out["p2"] == {"infra": 20, "containers": [], "conmons": [19], "status": "Degraded"}
    assert peers.pod_ip(containers[0], "n") == "10.1.0.2"
    assert peers.pod_ip(containers[1], "n") is None


def test_netavark_rules_to_undo_when_nothing_uses_them():
    deletes, chains, busy = peers.netavark_rules_to_undo(NAT_AFTER)
    assert deletes == [["-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-HOSTPORT-DNAT"],
                       ["-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "NETAVARK-HOSTPORT-DNAT"],
                       ["-D", "POSTROUTING", "-j", "NETAVARK-HOSTPORT-MASQ"]]  # not the MASQUERADE of 10.9/24
    assert chains == ["NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-MASQ", "NETAVARK-HOSTPORT-SETMARK"]
    assert busy == []


def test_netavark_rules_of_another_network_keep_the_generic_chains():
    deletes, chains, busy = peers.netavark_rules_to_undo(NAT_BUSY, ["10.215.9.0/24"])
    assert (deletes, chains) == ([], []) and busy == ["chain NETAVARK-4B9D9135B29BA"]
    deletes, chains, busy = peers.netavark_rules_to_undo(FILTER_BUSY)
    assert (deletes, chains) == ([], []) and len(busy) == 2
    assert peers.netavark_rules_to_undo("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n") == ([], [], [])


def test_netavark_rules_of_the_runs_own_subnet_always_go():
    # A kube play killed half-way leaves its network's rules: they are this run's.
    deletes, chains, busy = peers.netavark_rules_to_undo(NAT_BUSY, ["10.215.2.0/24"])
    assert busy == []
    assert ["-D", "POSTROUTING", "-s", "10.215.2.0/24", "-j", "NETAVARK-4B9D9135B29BA"] in deletes
    assert ["-D", "POSTROUTING", "-j", "NETAVARK-HOSTPORT-MASQ"] in deletes
    assert chains == ["NETAVARK-4B9D9135B29BA", "NETAVARK-HOSTPORT-DNAT", "NETAVARK-HOSTPORT-MASQ",
                      "NETAVARK-HOSTPORT-SETMARK"]
    deletes, chains, busy = peers.netavark_rules_to_undo(FILTER_BUSY, ["10.215.2.0/24"])
    assert busy == [] and chains == ["NETAVARK_FORWARD"]
    assert deletes == [["-D", "NETAVARK_FORWARD", "-d", "10.215.2.0/24", "-m", "conntrack", "--ctstate",
                        "RELATED,ESTABLISHED", "-j", "ACCEPT"],
                       ["-D", "NETAVARK_FORWARD", "-s", "10.215.2.0/24", "-j", "ACCEPT"],
                       ["-D", "FORWARD", "-m", "comment", "--comment", "netavark firewall plugin rules", "-j",
                        "NETAVARK_FORWARD"]]


def test_bundle_config_makes_the_benchmark_container_and_leaves_the_spec_alone():
    spec = {"process": {"args": ["sh"], "terminal": True, "env": ["PATH=/x", "TERM=xterm"]},
            "root": {"path": "rootfs", "readonly": True}, "hostname": "runc", "linux": {"namespaces": []}}
    config = peers.bundle_config(spec, "/tmp/r", ["true"], "/minipod-bench-x/life", "life")
    assert config["root"] == {"path": "/tmp/r", "readonly": True}
    assert config["process"]["args"] == ["true"] and config["process"]["terminal"] is False
    assert config["process"]["env"] == [f"PATH={peers.DEFAULT_PATH}"]
    assert config["linux"]["cgroupsPath"] == "/minipod-bench-x/life" and config["hostname"] == "life"
    assert spec["process"]["args"] == ["sh"] and "cgroupsPath" not in spec["linux"]


# ====================================================================== peers_report.py
def _row(target=None, **samples) -> dict:
    row = Row("lifecycle", "start", "pod start", "ms", target)
    for side, values in samples.items():
        for v in values:
            row.add(side, v)
    return row.to_dict()


def test_row_gives_every_side_and_the_ratios_to_minipod():
    r = _row(minipod=[100.0, 120.0, 110.0], podman=[400.0, 440.0], floor=[10.0])
    assert r["sides"]["minipod"]["median"] == 110.0 and r["sides"]["podman"]["median"] == 420.0
    assert r["ratios"] == {"podman": pytest.approx(110 / 420), "floor": pytest.approx(11.0)}
    assert r["verdict"] == "-" and r["target"] is None


def test_verdicts_say_by_how_much():
    half = Target("ratio_max", 0.5, "podman")
    assert _row(half, minipod=[200.0], podman=[400.0])["verdict"] == "PASS"
    miss = _row(half, minipod=[300.0], podman=[400.0])
    assert miss["verdict"] == "MISS" and miss["margin"] == "0.75x: 33% too high"  # 300 -> 200 is 33% less
    at_least = Target("ratio_min", 0.8, "floor")
    assert _row(at_least, minipod=[8.0], floor=[10.0])["verdict"] == "PASS"
    short = _row(at_least, minipod=[6.0], floor=[10.0])
    assert short["verdict"] == "MISS" and short["margin"] == "0.60x: 25% short"
    bound = _row(Target("max", 100.0), minipod=[112.0])
    assert bound["verdict"] == "MISS" and bound["margin"] == "12.0 over the 100 bound"
    assert _row(half, minipod=[100.0])["verdict"] == "-"  # no podman sample: no verdict
    assert judge(half, None, {}) == ("-", None)


def test_table_and_markdown_show_each_contender_and_the_verdict():
    rows = [_row(Target("ratio_max", 0.5, "podman"), minipod=[100.0, 90.0], podman=[400.0], bundle=[50.0]),
            Row("memory", "pss", "per-pod Pss", "KiB").to_dict()]
    text = table(rows, {"bundle": "runc bundle"})
    head = text.splitlines()[0]
    assert "minipod" in head and "podman" in head and "runc bundle" in head and "/podman" in head
    assert "95.0 (90.0-100)" in text and "0.24x" in text and "PASS" in text and "<= 0.5x podman" in text
    md = markdown(rows, {"bundle": "runc bundle"})
    assert md.splitlines()[0].startswith("| scenario | minipod | podman | runc bundle |")
    assert "| pod start (ms) | 95.0 (90.0-100) | 400 | 50.0 | 0.24x | <= 0.5x podman | **PASS** (0.24x) |" in md
    assert verdict_lines(rows) == ["  PASS  pod start: 0.24x (target <= 0.5x podman)"]


def test_chart_groups_split_scenarios_by_unit():
    rows = [{"scenario": "density", "unit": "s"}, {"scenario": "density", "unit": "s"},
            {"scenario": "memory", "unit": "KiB"}, {"scenario": "density", "unit": "KiB"}]
    assert [(t, len(rs)) for t, rs in chart_groups(rows)] == [("density (s)", 2), ("memory (KiB)", 1),
                                                              ("density (KiB)", 1)]


# ====================================================================== compare.py
def test_manifests_are_valid_for_minipod(tmp_path):
    path = compare.write_pods(str(tmp_path / "pods.json"),
                              [compare.sleeper_pod("a", ("app", "side")), compare.web_pod("b", 18080)])
    with open(path) as f:
        docs = [json.loads(d) for d in f.read().split("\n---\n")]
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    assert docs[1]["spec"]["containers"][0]["ports"] == [{"containerPort": 8080, "hostPort": 18080}]
    res = subprocess.run([sys.executable, "-m", "minipod", "validate", path], capture_output=True, text=True,
                         cwd=REPO_DIR)
    assert res.returncode == 0, res.stderr


def test_parse_importtime_totals_and_ranks_top_level_imports():
    text = """import time: self [us] | cumulative | imported package
import time:       500 |        500 |   _io
import time:      1000 |       1000 |     minipod.errors
import time:      2000 |       3000 |   minipod
import time:      7000 |      10000 | minipod.cli
import time:       300 |        300 | json
something else on stderr
"""
    out = peer_profiles.parse_importtime(text, top=2)
    assert out["modules"] == 5 and out["total_ms"] == pytest.approx(10.8)
    assert out["top"] == [{"module": "minipod.cli", "cumulative_ms": 10.0}, {"module": "json", "cumulative_ms": 0.3}]


def test_top_functions_separates_minipod_from_the_rest(tmp_path):
    dump = str(tmp_path / "x.prof")
    profile = cProfile.Profile()
    profile.enable()
    from minipod.spec import parse  # noqa: F401  (something of minipod's, imported under the profiler)
    sorted(range(1000))
    profile.disable()
    profile.dump_stats(dump)
    out = peer_profiles.top_functions(dump, top=3)
    assert out["total_ms"] >= 0 and len(out["own_time"]) == 3
    assert all(e["function"].startswith("minipod/") for e in out["minipod_cumulative"])


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_http_answer_and_first_answer_on_loopback():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    port = server.server_address[1]
    assert not compare.http_answer(compare.free_host_port())  # nobody there
    poll = compare.FirstAnswer(port, timeout=5)
    time.sleep(0.05)  # the server is not answering yet: bound, not accepting
    started = time.perf_counter_ns()
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        assert poll.wait() >= started
    finally:
        thread.join(5)
        server.server_close()
    with pytest.raises(BenchError, match="no HTTP answer"):
        compare.FirstAnswer(compare.free_host_port(), timeout=0.1).wait()


def test_parallel_keeps_order_and_bounds_concurrency():
    running, peak, lock = [0], [0], threading.Lock()

    def job(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i * i

    assert compare.parallel([lambda i=i: job(i) for i in range(9)], 3) == [i * i for i in range(9)]
    assert peak[0] <= 3


def test_arguments_default_to_the_issue_and_reject_nonsense():
    args = compare.parse_args([])
    assert (args.runs, args.density, args.parallel, args.ps_pods) == (10, 50, 8, 20)
    assert args.scenarios == list(compare.SCENARIOS)
    assert compare.parse_args(["--scenarios", "cli, density"]).scenarios == ["cli", "density"]
    for bad in (["--scenarios", "nope"], ["--scenarios", ","], ["--runs", "0"], ["--seconds", "0.5"]):
        with pytest.raises(SystemExit):
            compare.parse_args(bad)


def test_rows_carry_the_issue_targets():
    rows = compare.new_rows(compare.parse_args(["--density", "7", "--ps-pods", "3"]))
    assert (rows["start"].target.kind, rows["start"].target.value, rows["start"].target.peer) == \
        ("ratio_max", 0.5, "podman")
    assert rows["stop"].target.value == 0.2 and rows["exec"].target.value == 1.0
    assert rows["pod_pss"].target.value == 1.0 and rows["pod_pss"].target.peer == "podman"
    assert (rows["tcp"].target.kind, rows["tcp"].target.value) == ("ratio_min", 0.8)
    assert (rows["ps"].target.kind, rows["ps"].target.value) == ("max", 100.0)
    assert rows["ps"].label == "ps with 3 pods" and "7 pods" in rows["dens_seq"].label


@pytest.mark.skipif(os.geteuid() == 0, reason="checks the refusal a non-root user sees")
def test_without_root_it_refuses_and_makes_nothing():
    res = subprocess.run([sys.executable, os.path.join(BENCH_DIR, "compare.py")], capture_output=True, text=True)
    assert res.returncode == 1 and "needs root" in res.stderr


# ====================================================================== for real, as root




def _host_state() -> dict:
    """What the run may touch outside its own directory."""
    def run(*argv):
        return subprocess.run(argv, capture_output=True, text=True).stdout

    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return {"netavark": "NETAVARK" in run("iptables-save") + run("ip6tables-save"),
            "tables": sorted(t for t in run("nft", "list", "tables").splitlines()
                             if t in ("table ip nat", "table ip filter", "table ip6 nat", "table ip6 filter")),
            "run_containers": os.path.exists("/run/containers"),
            "libpod_parent": sorted(glob.glob("/sys/fs/cgroup/*/libpod_parent")),
            "podman_netns": sorted(n for n in netns if n.startswith("netns-"))}


def _assert_nothing_left(names: dict, before: dict) -> None:
    assert_nothing_left(names)
    assert _host_state() == before


@pytest.mark.integration
@needs_root
@needs_peers
def test_a_tiny_run_compares_every_scenario_and_cleans_up(tmp_path):
    before = _host_state()
    scenarios = "lifecycle,http,cli,density" + (",network" if shutil.which("iperf3") else "")
    proc = start_bench("compare.py", "--runs", "1", "--density", "2", "--parallel", "2", "--ps-pods", "2",
                       "--iperf-runs", "1", "--seconds", "1", "--scenarios", scenarios, "--out", str(tmp_path))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    names = run_names(out.splitlines()[0])
    _assert_nothing_left(names, before)
    [path] = glob.glob(str(tmp_path / "peers-*.json"))
    with open(path) as f:
        result = json.load(f)
    assert result["clean"] is True and result["left_behind"] == []
    rows = {r["key"]: r for r in result["rows"]}
    for key in ("start", "stop", "exec"):
        assert set(rows[key]["sides"]) == {"minipod", "podman", "bundle", "floor"}, key
        assert rows[key]["verdict"] in ("PASS", "MISS") and rows[key]["ratios"]["podman"] > 0
    assert rows["http"]["sides"]["minipod"]["n"] == 1 and rows["http"]["sides"]["podman"]["n"] == 1
    assert rows["ps"]["verdict"] in ("PASS", "MISS") and rows["ps"]["label"] == "ps with 2 pods"
    assert rows["pod_pss"]["sides"]["minipod"]["n"] == 4 and rows["pod_pss"]["sides"]["podman"]["n"] == 4
    assert rows["dens_rm"]["sides"]["podman"]["n"] == 2
    if "network" in scenarios:
        assert set(rows["tcp"]["sides"]) == {"minipod", "podman", "floor"}
        assert rows["tcp"]["sides"]["podman"]["min"] > 0
    # The raw bundle runs with crun, or with runc and crun's reason why not.
    assert result["bundle_runtime"] in ("crun", "runc")
    assert (result["bundle_runtime"] == "crun") == (result["crun_refusal"] is None)
    profiles = result["profiles"]
    assert profiles["cprofile"]["run -d: supervisor until started"]["minipod_cumulative"]
    assert profiles["importtime"]["ps"]["modules"] > 0
    assert os.path.exists(path[:-5] + ".md") and "pod start -> Running" in out


@pytest.mark.integration
@needs_root
@needs_peers
def test_podman_import_and_infra_image_leave_the_host_blob_cache_alone():
    # containers/image writes /var/lib/containers/cache whatever --root says;
    # the two commands that copy images run with a tmpfs over it. (Only this
    # short window is watched: other work on the host may use skopeo.)
    base = tempfile.mkdtemp(prefix="mpbt-", dir="/tmp")  # podman wants a runroot under 50 characters
    pm = peers.PodmanSide(os.path.join(base, "podman"), "t0", "mppt0", "10.215.253.0/24")
    pm.write_config()
    rootfs = os.path.join(base, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    cache = "/var/lib/containers/cache/blob-info-cache-v1.boltdb"
    before = os.stat(cache).st_mtime_ns if os.path.exists(cache) else None
    traces, host = peers.HostTraces(), _host_state()
    try:
        pm.import_rootfs(rootfs, "localhost/t0:1")
        after = os.stat(cache).st_mtime_ns if os.path.exists(cache) else None
        images = pm.cli("images", "--format", "{{.Repository}}:{{.Tag}}").check().stdout.split()
    finally:
        pm.cli("rmi", "-a", "-f")
        with open("/proc/self/mountinfo") as f:
            for point in [ln.split()[4] for ln in f if ln.split()[4].startswith(base + "/")]:
                subprocess.run(["umount", "-l", point])
        shutil.rmtree(base)
        problems = traces.restore(pod_ids=pm.pod_ids)
    assert problems == [] and traces.leftovers() == [] and _host_state() == host
    assert after == before
    assert "localhost/t0:1" in images and any("podman-pause" in i for i in images)


@pytest.mark.integration
@needs_root
@needs_peers
def test_ctrl_c_half_way_removes_everything(tmp_path):
    before = _host_state()
    proc = start_bench("compare.py", "--runs", "50", "--scenarios", "lifecycle,http", "--out", str(tmp_path))
    try:
        names = run_names(proc.stdout.readline())
        # Stop while podman has a pod up (its containers' directory fills).
        containers = os.path.join(names["root"], "podman", "storage", "overlay-containers")
        wait_until(lambda: os.path.isdir(containers) and len(os.listdir(containers)) > 1, timeout=120,
                   interval=0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    _assert_nothing_left(names, before)
    assert glob.glob(str(tmp_path / "peers-*.json")) == []
