"""minipod side by side with its peers (issue 8): podman 4.3 (``kube play``,
``kube down``, ``exec``), a raw OCI bundle (crun, or runc where crun refuses
the host's cgroup layout) and the floor (``floor.sh``: unshare, nsenter and
a hand-made pivot_root), in the same run, alternating the contenders run by
run (A B C D, A B C D, …).

    sudo .venv/bin/python bench/compare.py [--runs N] [--density N] [--parallel N] [--ps-pods N]
                                           [--iperf-runs N] [--seconds S] [--scenarios a,b] [--out DIR]

Scenarios (``--scenarios``, default all):

* ``lifecycle``: pod start until Running (target <= 0.5x podman), stop and
  remove (<= 0.2x podman), ``exec … true`` (<= 1.0x podman);
* ``http``: the first HTTP answer through a hostPort on 127.0.0.1, from the
  start command's spawn;
* ``cli``: ``ps`` with --ps-pods pods (target <= 100 ms) and ``--help``,
  with ``python -X importtime`` of ``minipod ps``;
* ``density``: --density pods of two containers started one after another
  and --parallel at a time, removed --parallel at a time, and each pod's
  host overhead (PSS: pause + supervisor vs catatonit + conmons; target
  at most podman's);
* ``network``: pod-to-pod TCP with iperf3 for both runtimes vs a veth pair
  made by hand (target >= 0.8x the veth pair).

Everything is private (MINIPOD_ROOT, podman's root, runroot, tmpdir,
config, network, bridges and subnets of their own) and is removed at the
end, also on Ctrl-C or an error; podman is installed from Debian when
missing. Prints a table, writes ``peers-<date>-<time>.json``, a Markdown
table and PNG charts under --out. See bench/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import threading
import time

from core import (
    IMAGE, REPO_DIR, BenchError, FloorSide, MinipodSide, finish_in_flight, guarded, is_running_ready, process_memory,
    run_timed, wait_until,
)
from isolation import Isolation
from network import (
    BASELINE_A, BASELINE_B, NETNS_DIR, NetWorld, ensure_iperf3, free_host_port, ip, iperf3_client, pick_subnet,
    stop_strays, used_addresses,
)
from peers import BundleSide, HostTraces, PodmanSide, ensure_packages, tool_versions
from peer_profiles import memory_profile, parse_importtime, profile_minipod
from peers_report import Row, Target, markdown, table, verdict_lines, write_charts
from report import write_json
from run import compile_bytecode, host_facts, import_image, loadavg

if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)

SCENARIOS = ("lifecycle", "http", "cli", "density", "network")
# Where --publish copies a run for the README: results/*.json and *.png are
# not kept in git, this directory is.
PUBLISHED = os.path.join(REPO_DIR, "bench", "results", "published")
# Containers that exit 0 at once on SIGTERM: a graceful stop is then as
# quick as a kill, and both runtimes are measured doing what users ask.
TERM_EXITS = 'trap "exit 0" TERM; sleep 3600 & wait'
HTTPD = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
GRACE_S = 30
PS_TARGET_MS = 100.0


# ------------------------------------------------------------------ manifests (both runtimes read them)
def sleeper_pod(name: str, containers=("app",)) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": GRACE_S, "containers": [
                {"name": c, "image": IMAGE, "command": ["sh", "-c", TERM_EXITS]} for c in containers]}}


def web_pod(name: str, host_port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": GRACE_S, "containers": [
                {"name": "web", "image": IMAGE, "command": ["sh", "-c", HTTPD],
                 "ports": [{"containerPort": 8080, "hostPort": host_port}]}]}}


def write_pods(path: str, pods: list[dict]) -> str:
    """One JSON document per pod (JSON is YAML: minipod and podman read it)."""
    with open(path, "w") as f:
        f.write("\n---\n".join(json.dumps(p) for p in pods) + "\n")
    return path


# ------------------------------------------------------------------ pure helpers
def http_answer(port: int, timeout: float = 0.5) -> bool:
    """True when 127.0.0.1:port answers an HTTP GET with 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
            head = s.recv(32)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.") and head[9:12] == b"200"


class FirstAnswer:
    """Polls a port every millisecond in a thread, from before the start
    command is spawned, and remembers when it first answered."""

    def __init__(self, port: int, timeout: float = 20.0):
        self.port = port
        self.at_ns: int | None = None
        self._stop = threading.Event()
        self._deadline = time.monotonic() + timeout
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if http_answer(self.port):
                self.at_ns = time.perf_counter_ns()
                return
            time.sleep(0.001)

    def wait(self) -> int:
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 1)
        self._stop.set()
        if self.at_ns is None:
            raise BenchError(f"no HTTP answer on 127.0.0.1:{self.port}")
        return self.at_ns


def parallel(jobs: list, workers: int) -> list:
    """Run callables ``workers`` at a time; their results in order. On
    Ctrl-C, queued jobs are dropped and running ones finish."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def pods_pss(pids_per_pod: list[list[int]]) -> tuple[list[float], list[float]]:
    """Per pod, the sum of its processes' Pss and VmRSS (KiB)."""
    pss, rss = [], []
    for pids in pids_per_pod:
        mems = [process_memory(p) for p in pids]
        pss.append(float(sum(m["pss_kib"] for m in mems)))
        rss.append(float(sum(m["rss_kib"] for m in mems)))
    return pss, rss


# ------------------------------------------------------------------ the rows
def new_rows(args) -> dict[str, Row]:
    n, par = args.density, args.parallel
    rows = [
        Row("lifecycle", "start", "pod start -> Running", "ms", Target("ratio_max", 0.5, "podman"), what={
            "minipod": "run -d, until the pod's status says Running and Ready",
            "podman": "kube play (returns with its containers running; checked after)",
            "bundle": "run -d of the bundle (returns with its process started)",
            "floor": "floor.sh start, until the sandbox's PID 1 is sleep"}),
        Row("lifecycle", "stop", "stop + remove", "ms", Target("ratio_max", 0.2, "podman"), what={
            "minipod": "rm -f: graceful (SIGTERM; the container exits 0 at once)",
            "podman": "kube down (podman 4.3 stops with timeout 0: SIGKILL)",
            "bundle": "delete -f (SIGKILL)", "floor": "floor.sh stop (SIGKILL)"}),
        Row("lifecycle", "stop_kill", "stop + remove, kill at once", "ms", Target("ratio_max", 0.2, "podman"), what={
            "minipod": "rm -f -t 0", "podman": "kube down (the same samples as the row above)"}),
        Row("lifecycle", "exec", "exec ... true", "ms", Target("ratio_max", 1.0, "podman"), what={
            "minipod": "minipod exec POD -- true", "podman": "podman exec POD-app true",
            "bundle": "exec CID true", "floor": "nsenter -t PID -m -u -i -n -p true"}),
        Row("http", "http", "first HTTP answer via hostPort", "ms", what={
            "minipod": "run -d of busybox httpd with a hostPort, until 127.0.0.1:PORT answers 200",
            "podman": "kube play of the same pod, until 127.0.0.1:PORT answers 200"}),
        Row("cli", "ps", f"ps with {args.ps_pods} pods", "ms", Target("max", PS_TARGET_MS), what={
            "minipod": "minipod ps", "podman": "podman pod ps", "floor": "python -c pass"}),
        Row("cli", "help", "--help", "ms", what={"minipod": "minipod --help", "podman": "podman --help",
                                                 "floor": "python -c pass"}),
        Row("density", "dens_seq", f"start {n} pods x 2 containers, one by one", "s", what={
            "minipod": f"{n} x run -d, until all are Running and Ready", "podman": f"{n} x kube play"}),
        Row("density", "dens_par", f"start {n} pods x 2 containers, {par} at a time", "s", what={
            "minipod": f"{n} x run -d, {par} at a time, until all are Running and Ready",
            "podman": f"{n} x kube play, {par} at a time"}),
        Row("density", "dens_rm", f"remove {n} pods, {par} at a time", "s", what={
            "minipod": "rm -f (graceful)", "podman": "kube down"}),
        Row("memory", "pod_pss", "per-pod overhead, Pss", "KiB", Target("ratio_max", 1.0, "podman"), what={
            "minipod": "pause + supervisor", "podman": "catatonit + 3 conmons (infra and 2 containers)"}),
        Row("memory", "pod_rss", "per-pod overhead, VmRSS", "KiB", what={
            "minipod": "pause + supervisor", "podman": "catatonit + 3 conmons"}),
        Row("network", "tcp", "pod-to-pod TCP (iperf3)", "Gbit/s", Target("ratio_min", 0.8, "floor"), what={
            "minipod": "iperf3 between two pods, by pod IP (veth, bridge, veth)",
            "podman": "the same between two podman pods (netavark bridge)",
            "floor": "iperf3 over a veth pair between two namespaces made by hand"}),
    ]
    return {r.key: r for r in rows}


# ------------------------------------------------------------------ scenario: lifecycle
class Contenders:
    """The four sides of one run and the files they share."""

    def __init__(self, iso: Isolation, mp: MinipodSide, pm: PodmanSide, bundle: BundleSide, floor: FloorSide):
        self.iso, self.mp, self.pm, self.bundle, self.floor = iso, mp, pm, bundle, floor

    def manifest(self, name: str, pod: dict) -> str:
        return write_pods(self.iso.path(f"{name}.json"), [pod])


def podman_running(pm: PodmanSide, name: str) -> None:
    facts = pm.pods().get(name)
    if not facts or facts["status"] != "Running":
        raise BenchError(f"podman pod {name}: {facts and facts['status']} after kube play, not Running")


def minipod_cycle(c: Contenders, path: str, name: str, kill: bool) -> tuple[float, float, float]:
    run = c.mp.cli("run", "-d", path).check()
    ready_ns = wait_until(lambda: c.mp.is_running_ready(name), timeout=30)
    c.mp.overhead_pids(name)  # remembered for the leak check
    ex = c.mp.cli("exec", name, "--", "true").check()
    rm = c.mp.cli("rm", "-f", *(("-t", "0") if kill else ()), name).check()
    return (ready_ns - run.start_ns) / 1e6, ex.wall_ms, rm.wall_ms


def podman_cycle(c: Contenders, path: str, name: str) -> tuple[float, float, float]:
    play = c.pm.play(path).check()
    podman_running(c.pm, name)
    ex = c.pm.exec(f"{name}-app", "true").check()
    down = c.pm.down(path).check()
    return play.wall_ms, ex.wall_ms, down.wall_ms


def bundle_cycle(c: Contenders, bundle: str, cid: str) -> tuple[float, float, float]:
    run = c.bundle.run(bundle, cid).check()
    c.bundle.pid(cid)
    ex = c.bundle.exec(cid, "true").check()
    delete = c.bundle.delete(cid).check()
    return run.wall_ms, ex.wall_ms, delete.wall_ms


def floor_cycle(c: Contenders, name: str) -> tuple[float, float, float]:
    start = c.floor.start(name).check()
    ready_ns = wait_until(lambda: c.floor.is_running(name))
    pid = c.floor.workload_pid(name)
    ex = run_timed(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "true"]).check()
    stop = c.floor.stop(name).check()
    return (ready_ns - start.start_ns) / 1e6, ex.wall_ms, stop.wall_ms


def measure_lifecycle(c: Contenders, runs: int, rows: dict[str, Row]) -> dict:
    mp_path = c.manifest("life-mp", sleeper_pod("life-mp"))
    pm_path = c.manifest("life-pm", sleeper_pod("life-pm"))
    bundle = c.bundle.make_bundle("life", ["sh", "-c", TERM_EXITS])
    # Warm-up, not counted: page cache, podman's infra image (built on first use).
    minipod_cycle(c, mp_path, "life-mp", False)
    podman_cycle(c, pm_path, "life-pm")
    bundle_cycle(c, bundle, "life-b")
    floor_cycle(c, "life-f")
    for i in range(runs):
        print(f"\r  lifecycle: run {i + 1}/{runs}", end="", flush=True)
        for side, result in (("minipod", minipod_cycle(c, mp_path, "life-mp", False)),
                             ("podman", podman_cycle(c, pm_path, "life-pm")),
                             ("bundle", bundle_cycle(c, bundle, "life-b")),
                             ("floor", floor_cycle(c, "life-f"))):
            start, ex, stop = result
            rows["start"].add(side, start)
            rows["exec"].add(side, ex)
            rows["stop"].add(side, stop)
        _start, _ex, kill = minipod_cycle(c, mp_path, "life-mp", True)
        rows["stop_kill"].add("minipod", kill)
    print(flush=True)
    rows["stop_kill"].samples["podman"] = list(rows["stop"].samples["podman"])
    return profile_minipod(c.mp, c.iso.path("profile"), mp_path, "life-mp")


# ------------------------------------------------------------------ scenario: http
def http_cycle(start_argv_run, port: int) -> float:
    """ms from the start command's spawn to the first 200 on the hostPort."""
    poll = FirstAnswer(port)
    sample = start_argv_run()
    sample.check()
    return (poll.wait() - sample.start_ns) / 1e6


def measure_http(c: Contenders, runs: int, rows: dict[str, Row]) -> None:
    def one(side: str, i: int) -> float:
        port = free_host_port()
        name = f"web-{side[:2]}"
        path = c.manifest(f"{name}-{i}", web_pod(name, port))
        if side == "minipod":
            ms = http_cycle(lambda: c.mp.cli("run", "-d", path), port)
            c.mp.overhead_pids(name)
            c.mp.cli("rm", "-f", "-t", "0", name).check()
        else:
            ms = http_cycle(lambda: c.pm.play(path), port)
            c.pm.pods()  # remembered for the leak check
            c.pm.down(path).check()
        os.unlink(path)
        return ms

    one("minipod", -1)  # warm-up, not counted
    one("podman", -1)
    for i in range(runs):
        print(f"\r  http: run {i + 1}/{runs}", end="", flush=True)
        rows["http"].add("minipod", one("minipod", i))
        rows["http"].add("podman", one("podman", i))
    print(flush=True)


# ------------------------------------------------------------------ scenario: cli
def remove_podman_pods(pm: PodmanSide, names: list[str], workers: int) -> float:
    """Kill and remove pods, ``workers`` at a time: seconds (not a row)."""
    start = time.perf_counter()
    parallel([lambda n=n: pm.remove_pods([n]).check() for n in names], workers)
    return time.perf_counter() - start


def measure_cli(c: Contenders, runs: int, pods: int, workers: int, rows: dict[str, Row]) -> dict:
    names = [f"cli-{i:02d}" for i in range(1, pods + 1)]
    c.mp.cli("run", "-d", write_pods(c.iso.path("cli-mp.json"), [sleeper_pod(n) for n in names])).check()
    wait_until(lambda: sum(is_running_ready(p.object) for p in c.mp.runtime.pods()) == pods, timeout=60)
    for n in names:
        c.mp.overhead_pids(n)
    c.pm.play(write_pods(c.iso.path("cli-pm.json"), [sleeper_pod(n) for n in names])).check()
    if len(c.pm.pods()) != pods:
        raise BenchError(f"podman lists {len(c.pm.pods())} pods, not {pods}")
    python = [sys.executable, "-c", "pass"]
    for i in range(runs):
        print(f"\r  cli: run {i + 1}/{runs}", end="", flush=True)
        ps = c.mp.cli("ps").check()
        if len(ps.stdout.strip().splitlines()) != pods + 1:
            raise BenchError(f"minipod ps listed {len(ps.stdout.splitlines()) - 1} pods, not {pods}")
        rows["ps"].add("minipod", ps.wall_ms)
        pps = c.pm.cli("pod", "ps").check()
        if len(pps.stdout.strip().splitlines()) != pods + 1:
            raise BenchError(f"podman pod ps listed {len(pps.stdout.splitlines()) - 1} pods, not {pods}")
        rows["ps"].add("podman", pps.wall_ms)
        py = run_timed(python).check().wall_ms
        rows["ps"].add("floor", py)
        rows["help"].add("floor", py)
        rows["help"].add("minipod", c.mp.cli("--help").check().wall_ms)
        rows["help"].add("podman", c.pm.cli("--help").check().wall_ms)
    print(flush=True)
    # Where the CLI's start goes: the imports of `minipod ps`, three times (the last kept).
    for _ in range(3):
        res = run_timed([sys.executable, "-X", "importtime", "-m", "minipod", "ps"], c.mp.env).check()
    profile = {"ps": parse_importtime(res.stderr)}
    c.mp.cli("rm", "-f", "-t", "0", *names).check()
    remove_podman_pods(c.pm, names, workers)
    return profile


# ------------------------------------------------------------------ scenario: density
def start_many(jobs: list, workers: int) -> float:
    """Start commands one by one (workers == 1) or ``workers`` at a time: seconds."""
    start = time.perf_counter()
    if workers == 1:
        for job in jobs:
            job().check()
    else:
        for sample in parallel(jobs, workers):
            sample.check()
    return time.perf_counter() - start


def density_minipod(c: Contenders, n: int, workers: int, removers: int, rows: dict[str, Row], key: str) -> dict:
    names = [f"dm-{i:02d}" for i in range(1, n + 1)]
    paths = [c.manifest(name, sleeper_pod(name, ("app", "side"))) for name in names]
    start = time.perf_counter()
    start_many([lambda p=p: c.mp.cli("run", "-d", p) for p in paths], workers)
    wait_until(lambda: sum(is_running_ready(p.object) for p in c.mp.runtime.pods()) == n, timeout=120)
    rows[key].add("minipod", time.perf_counter() - start)
    pids = [list(c.mp.overhead_pids(name)) for name in names]
    pss, rss = pods_pss(pids)
    for a, b in zip(pss, rss):
        rows["pod_pss"].add("minipod", a)
        rows["pod_rss"].add("minipod", b)
    profile = memory_profile(c.mp.env, *pids[0])
    start = time.perf_counter()
    parallel([lambda name=name: c.mp.cli("rm", "-f", name).check() for name in names], removers)
    rows["dens_rm"].add("minipod", time.perf_counter() - start)
    return profile


def density_podman(c: Contenders, n: int, workers: int, removers: int, rows: dict[str, Row], key: str) -> None:
    names = [f"dp-{i:02d}" for i in range(1, n + 1)]
    paths = [c.manifest(name, sleeper_pod(name, ("app", "side"))) for name in names]
    rows[key].add("podman", start_many([lambda p=p: c.pm.play(p) for p in paths], workers))
    facts = c.pm.pods()
    if sorted(facts) != sorted(names) or any(f["status"] != "Running" for f in facts.values()):
        raise BenchError(f"podman: {sum(f['status'] == 'Running' for f in facts.values())} of {n} pods Running")
    pss, rss = pods_pss([[facts[name]["infra"], *facts[name]["conmons"]] for name in names])
    for a, b in zip(pss, rss):
        rows["pod_pss"].add("podman", a)
        rows["pod_rss"].add("podman", b)
    start = time.perf_counter()
    parallel([lambda p=p: c.pm.down(p).check() for p in paths], removers)
    rows["dens_rm"].add("podman", time.perf_counter() - start)


def measure_density(c: Contenders, n: int, workers: int, rows: dict[str, Row]) -> dict:
    """Both rounds (one by one, then ``workers`` at a time), each side in
    turn; removal is ``workers`` at a time in both rounds. Returns the
    memory profile of a minipod pod among ``n`` (the first round's)."""
    profiles = []
    for key, w in (("dens_seq", 1), ("dens_par", workers)):
        how = "one by one" if w == 1 else f"{w} at a time"
        print(f"  density: {n} pods, {how}: minipod", flush=True)
        profiles.append(density_minipod(c, n, w, workers, rows, key))
        print(f"  density: {n} pods, {how}: podman", flush=True)
        density_podman(c, n, w, workers, rows, key)
    return profiles[0]


# ------------------------------------------------------------------ scenario: network
def measure_network(c: Contenders, world: NetWorld, runs: int, seconds: float, rows: dict[str, Row]) -> None:
    names = ["net-a", "net-b"]
    for name in names:
        c.mp.cli("run", "-d", c.manifest(f"{name}-mp", sleeper_pod(name))).check()
        c.pm.play(c.manifest(f"{name}-pm", sleeper_pod(name))).check()
    wait_until(lambda: all(c.mp.is_running_ready(n) for n in names), timeout=30)
    mp_ns, mp_ip = {}, {}
    for name in names:
        pause, _sup = c.mp.overhead_pids(name)
        mp_ns[name] = f"/proc/{pause}/ns/net"
        mp_ip[name] = (c.mp.pod_object(name) or {}).get("status", {}).get("podIP")
    facts = c.pm.pods()
    pm_ns = {n: f"/proc/{facts[n]['infra']}/ns/net" for n in names}
    pm_ip = {n: facts[n]["ip"] for n in names}
    if not all(mp_ip.values()) or not all(pm_ip.values()):
        raise BenchError(f"pods without an IP: minipod {mp_ip}, podman {pm_ip}")
    va = world.add_netns(f"{world.cfg.bridge}-va")
    vb = world.add_netns(f"{world.cfg.bridge}-vb")
    ip("-n", va, "link", "add", "eth0", "mtu", str(world.cfg.mtu), "type", "veth", "peer", "name", "eth0",
       "netns", vb)
    for ns, addr in ((va, BASELINE_A), (vb, BASELINE_B)):
        ip("-n", ns, "addr", "add", f"{addr}/30", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
    world.start_server(mp_ns["net-a"], "minipod-a")
    world.start_server(pm_ns["net-a"], "podman-a")
    world.start_server(f"{NETNS_DIR}/{va}", "veth-a")
    pairs = {"minipod": (mp_ns["net-b"], mp_ip["net-a"]), "podman": (pm_ns["net-b"], pm_ip["net-a"]),
             "floor": (f"{NETNS_DIR}/{vb}", BASELINE_A)}
    for client, server in pairs.values():  # warm-up, not counted
        iperf3_client(client, server, 1)
    for i in range(runs):
        print(f"\r  network: iperf3 {seconds:g} s x 3, run {i + 1}/{runs}", end="", flush=True)
        for side, (client, server) in pairs.items():
            rows["tcp"].add(side, iperf3_client(client, server, seconds))
    print(flush=True)
    for name in names:
        c.mp.cli("rm", "-f", "-t", "0", name).check()
        c.pm.down(c.iso.path(f"{name}-pm.json")).check()


# ------------------------------------------------------------------ main
def parse_args(argv):
    p = argparse.ArgumentParser(description="minipod side by side with podman, a raw OCI bundle and the floor "
                                            "(needs root)")
    p.add_argument("--runs", type=int, default=10, help="runs per contender for lifecycle, http, cli (default 10)")
    p.add_argument("--density", type=int, default=50, help="pods in the density scenario (default 50)")
    p.add_argument("--parallel", type=int, default=8, help="pods started at a time (default 8)")
    p.add_argument("--ps-pods", type=int, default=20, help="pods running while ps is timed (default 20)")
    p.add_argument("--iperf-runs", type=int, default=5, help="iperf3 runs per contender (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="length of each iperf3 run (default 2)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help=f"which, comma-separated (default {','.join(SCENARIOS)})")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "bench", "results"), help="where results go")
    p.add_argument("--publish", action="store_true",
                   help=f"also copy the JSON, the Markdown table and the overview chart to "
                        f"{os.path.relpath(PUBLISHED, REPO_DIR)}/peers.* (what the README shows)")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not args.scenarios or any(s not in SCENARIOS for s in args.scenarios):
        p.error(f"--scenarios: choose from {', '.join(SCENARIOS)}")
    if min(args.runs, args.density, args.parallel, args.ps_pods, args.iperf_runs) < 1 or args.seconds < 1:
        p.error("counts must be at least 1 and --seconds at least 1")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None, tag: str | None = None) -> int:
    """``tag`` names the run's bridges and cgroup parent (tests pass their own)."""
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (sudo): it runs real pods and containers", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    started = datetime.datetime.now()
    try:
        installed = ensure_packages()
        if "network" in args.scenarios:
            ensure_iperf3()
        iso = Isolation(tag=tag or secrets.token_hex(3))
        used = used_addresses()
        iso.subnet = pick_subnet(used, random.Random())
        podman_subnet = pick_subnet(used + "\n" + iso.subnet, random.Random())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    from minipod.config import Config
    from minipod.network import PodNetworkConfig

    world = NetWorld(PodNetworkConfig.from_config(Config(root=iso.root, bridge=iso.bridge, subnet=iso.subnet)),
                     iso.root)
    traces = HostTraces()
    pm = PodmanSide(iso.path("podman"), iso.tag, f"mpp{iso.tag}"[:15], podman_subnet)
    bundle = BundleSide(iso.path("bundle"), "", iso.cgroup_parent)
    mp = floor = None
    rows = new_rows(args)
    profiles: dict = {}
    load_before = loadavg()
    print(f"minipod vs peers: scenarios {','.join(args.scenarios)}, root {iso.root}, cgroup parent "
          f"{iso.cgroup_parent}, bridge {iso.bridge}, subnet {iso.subnet}, podman bridge {pm.bridge}, "
          f"subnet {podman_subnet}", flush=True)

    def work():
        nonlocal mp, floor
        compile_bytecode()
        mp = MinipodSide(iso.env(), iso.root, iso.cgroup_parent)
        rootfs = import_image(mp, iso)
        pm.write_config()
        pm.import_rootfs(rootfs, IMAGE)
        bundle.rootfs = rootfs
        bundle.choose_runtime()
        floor = FloorSide(iso.path("floor"), rootfs)
        c = Contenders(iso, mp, pm, bundle, floor)
        if "lifecycle" in args.scenarios:
            profiles["cprofile"] = measure_lifecycle(c, args.runs, rows)
        if "http" in args.scenarios:
            measure_http(c, args.runs, rows)
        if "cli" in args.scenarios:
            profiles["importtime"] = measure_cli(c, args.runs, args.ps_pods, args.parallel, rows)
        if "density" in args.scenarios:
            profiles["memory"] = measure_density(c, args.density, args.parallel, rows)
        if "network" in args.scenarios:
            measure_network(c, world, args.iperf_runs, args.seconds, rows)

    def cleanup():
        # First let an interrupted command end: removing pods under a
        # running `kube play` leaves it hung and its network set up.
        stuck = finish_in_flight()
        problems = [stuck] if stuck else []
        problems += world.cleanup()
        problems += pm.cleanup()
        problems += bundle.cleanup()
        problems += iso.cleanup(mp, floor)
        problems += traces.restore(own_subnets=[podman_subnet], pod_ids=pm.pod_ids)
        pids = {**(mp.pids_seen if mp else {}), **(floor.pids_seen if floor else {}), **world.pids_seen,
                **pm.pids_seen, **bundle.pids_seen}
        strays = stop_strays(pids) if problems else []
        if strays:
            problems.append(f"killed processes of this run still alive after clean-up: {strays}")
            problems += iso.cleanup(None)
        return problems, world.leftovers() + iso.leftovers(pids) + pm.leftovers() + traces.leftovers()

    code, error, problems, left = guarded(work, cleanup)
    if error:
        return code
    out_rows = [r.to_dict() for r in rows.values() if r.samples]
    titles = {"bundle": f"{bundle.runtime} bundle"}
    result = {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.datetime.now() - started).total_seconds(), 1),
        "scenarios": args.scenarios,
        "args": {k: v for k, v in vars(args).items() if k not in ("out", "scenarios", "publish")},
        "order": "alternating run by run: minipod, podman, raw bundle, floor (density: minipod then podman)",
        "host": host_facts(), "versions": {**tool_versions(), "installed_now": installed},
        "bundle_runtime": bundle.runtime, "crun_refusal": bundle.crun_refusal, "side_titles": titles,
        "loadavg_before": load_before, "loadavg_after": loadavg(),
        "isolation": {"root": iso.root, "cgroup_parent": iso.cgroup_parent, "bridge": iso.bridge,
                      "subnet": iso.subnet, "podman_bridge": pm.bridge, "podman_subnet": podman_subnet},
        "profiles": profiles,
        "clean": not problems and not left, "left_behind": problems + left,
        "rows": out_rows,
    }
    return report(result, args.out, started, titles, args.publish)


def report(result: dict, out_dir: str, started, titles: dict, publish: bool = False) -> int:
    """Table, verdicts, profiles, JSON, Markdown and charts; the exit code."""
    rows = result["rows"]
    print()
    print(table(rows, titles))
    print()
    for r in rows:
        for side, what in r["what"].items():
            if side in r["sides"]:
                print(f"  {r['label']}, {titles.get(side, side)}: {what}")
    if result["crun_refusal"]:
        print(f"\n  raw bundle: crun refused ({result['crun_refusal']}); runc ran it")
    print("\n".join(["", *verdict_lines(rows)]))
    imports = result["profiles"].get("importtime", {}).get("ps")
    if imports:
        heavy = ", ".join(f"{t['module']} {t['cumulative_ms']:.1f}" for t in imports["top"][:5])
        print(f"  minipod ps imports {imports['modules']} modules in {imports['total_ms']:.1f} ms; heaviest (ms): "
              f"{heavy}")
    mem = result["profiles"].get("memory")
    if mem:
        sup, refs = mem["supervisor"], mem["reference_pss_kib"]
        print(f"  a minipod pod among {result['args']['density']}: supervisor Pss {sup['Pss']} KiB (anonymous "
              f"{sup['Pss_Anon']}, file {sup['Pss_File']}), pause {mem['pause']['Pss']} KiB; fresh pythons: " +
              ", ".join(f"{k} {v}" for k, v in refs.items()) + " KiB")
    print(f"\n  {result['seconds']} s, load {result['loadavg_before'][0]:.2f} -> {result['loadavg_after'][0]:.2f}, "
          f"{'clean' if result['clean'] else 'NOT CLEAN'}")
    stem = os.path.join(out_dir, f"peers-{started.strftime('%Y%m%d-%H%M%S')}")
    print(f"  {write_json(result, stem + '.json')}")
    with open(stem + ".md", "w") as f:
        f.write(markdown(rows, titles) + "\n")
    print(f"  {stem}.md")
    charts = write_charts(result, stem)
    print("\n".join(f"  {p}" for p in charts) if charts else "  (no charts: matplotlib is not installed)")
    if publish and result["clean"]:
        os.makedirs(PUBLISHED, exist_ok=True)
        for src, ext in ((stem + ".json", "json"), (stem + ".md", "md"), (stem + "-overview.png", "png")):
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(PUBLISHED, f"peers.{ext}"))
        print(f"  published to {PUBLISHED}/peers.{{json,md,png}}")
    return 0 if result["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
