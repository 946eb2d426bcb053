"""minipod's networking benchmark (issue 3, "Speed"): what a pod's network
costs to set up, and what it costs in TCP throughput.

    sudo .venv/bin/python bench/network.py [--runs N] [--seconds S] [--parts setup,e2e,throughput] [--out DIR]

Three parts, each the median of --runs samples (default 20):

* ``setup``: ``setup_pod_network`` and ``teardown_pod_network`` timed
  in-process against fresh network namespaces made here (``ip netns add``,
  standing in for pause's), with the bridge already up (another pod holds
  it), with a hostPort, and for the first pod of a bridge (which creates the
  bridge and the nft table; its teardown removes them).
* ``e2e``: ``minipod run -d`` and ``rm -f`` of a one-container pod with a
  pod network against the same pod with ``hostNetwork: true``, alternating;
  the difference per pair is what networking adds to a real start.
* ``throughput``: iperf3 (the host's binary, run in the pods' network
  namespaces with ``nsenter``) from one pod to another by pod IP, against a
  veth pair between two namespaces made by hand in the same run, alternating
  A B A B, --seconds each.

Everything lives under a private MINIPOD_ROOT, cgroup parent, bridge
("mpb" + 6 hex) and subnet (a free 10.215.x.0/24), and is removed at the end,
also on Ctrl-C or an error. Prints a table and writes ``network-<date>.json``
under --out. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

from core import (
    REPO_DIR, BenchError, Metric, MinipodSide, guarded, pod_manifest, process_alive, run_timed, start_time,
    wait_until,
)
from isolation import Isolation
from report import print_and_save
from run import compile_bytecode, host_facts, import_image, loadavg

# The in-process part imports minipod.network from this checkout.
if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)

SETUP_TARGET_MS = 10.0
LOSS_TARGET_PCT = 20.0  # pod-to-pod within 20% of the veth pair
PARTS = ("setup", "e2e", "throughput")
IPERF_PORT = 5201
# The hand-made veth pair lives only inside its two namespaces; the RFC 2544
# benchmarking range makes plain that these addresses route nowhere.
BASELINE_A, BASELINE_B = "198.18.215.1", "198.18.215.2"
NETNS_DIR = "/run/netns"


# ------------------------------------------------------------------ pure helpers
def pick_subnet(used_text: str, rng: random.Random) -> str:
    """A 10.215.x.0/24 that overlaps no address or route in ``used_text``
    (the output of ``ip -4 addr`` and ``ip -4 route show table all``)."""
    used = []
    for addr, prefix in re.findall(r"\b(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?\b", used_text):
        try:
            used.append(ipaddress.IPv4Network(addr + (prefix or "/32"), strict=False))
        except ValueError:
            continue
    thirds = list(range(1, 255))
    rng.shuffle(thirds)
    for third in thirds:
        candidate = ipaddress.IPv4Network(f"10.215.{third}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return str(candidate)
    raise BenchError("no free 10.215.x.0/24 subnet on this host")


def parse_iperf3(text: str) -> float:
    """Gbit/s received, from ``iperf3 -c … -J`` output."""
    try:
        result = json.loads(text)
    except ValueError:
        raise BenchError(f"iperf3: not JSON: {text.strip()[:120]!r}") from None
    if result.get("error"):
        raise BenchError(f"iperf3: {result['error']}")
    try:
        return result["end"]["sum_received"]["bits_per_second"] / 1e9
    except (KeyError, TypeError):
        raise BenchError("iperf3: no end.sum_received.bits_per_second in its report") from None


def listening_ports(proc_net_tcp: str) -> set[int]:
    """Local ports in state LISTEN (0A) in /proc/PID/net/tcp or tcp6."""
    ports = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def paired_differences(a: list[float], b: list[float]) -> list[float]:
    """a[i] - b[i] for the pairs measured side by side."""
    return [x - y for x, y in zip(a, b)]


def paired_loss_pct(pod: list[float], baseline: list[float]) -> list[float]:
    """How much slower each pod-to-pod sample was than its veth-pair partner, in %."""
    return [(1 - p / b) * 100 for p, b in zip(pod, baseline) if b]


def netbench_manifest(path: str, name: str, host_network: bool) -> str:
    """The core bench's pod (busybox, ``sleep 3600``), with hostNetwork or not."""
    pod = pod_manifest(name)
    if host_network:
        pod["spec"]["hostNetwork"] = True
    with open(path, "w") as f:
        json.dump(pod, f)
    return path


def new_metrics() -> dict[str, Metric]:
    rows = [
        Metric("setup", "set-up per pod (bridge up)", "ms", SETUP_TARGET_MS),
        Metric("setup_hostport", "set-up per pod, 1 hostPort", "ms", SETUP_TARGET_MS),
        Metric("teardown", "teardown per pod (bridge up)", "ms"),
        Metric("teardown_hostport", "teardown per pod, 1 hostPort", "ms"),
        Metric("setup_first", "set-up, first pod (+bridge, table)", "ms"),
        Metric("teardown_last", "teardown, last pod (bridge, table stay)", "ms"),
        Metric("network_rm", "network rm (-bridge, table)", "ms"),
        Metric("run_d", "run -d, pod network", "ms", floor_label="run -d of the same pod with hostNetwork: true"),
        Metric("run_d_cost", "run -d: network - hostNetwork", "ms"),
        Metric("rm_f", "rm -f, pod network", "ms", floor_label="rm -f of the hostNetwork pod"),
        Metric("rm_f_cost", "rm -f: network - hostNetwork", "ms"),
        Metric("tcp", "pod-to-pod TCP (iperf3)", "Gbit/s",
               floor_label="iperf3 over a veth pair between two namespaces made by hand"),
        Metric("tcp_loss", "TCP loss vs veth pair", "%", LOSS_TARGET_PCT),
    ]
    return {m.key: m for m in rows}


# ------------------------------------------------------------------ the host side
def ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise BenchError(f"ip {' '.join(args)}: {res.stderr.strip()}")


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def nft_table_exists(table_name: str) -> bool:
    return subprocess.run(["nft", "list", "table", "inet", table_name], capture_output=True).returncode == 0


def used_addresses() -> str:
    out = [subprocess.run(cmd, capture_output=True, text=True).stdout
           for cmd in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route", "show", "table", "all"])]
    return "\n".join(out)


def free_host_port() -> int:
    """A TCP port no host process holds right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def ensure_iperf3() -> str:
    """The host's iperf3, installed from Debian when missing."""
    found = shutil.which("iperf3")
    if found:
        return found
    print("  iperf3 is missing: apt-get install -y iperf3", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "iperf3"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("iperf3")
    if not found:
        raise BenchError("iperf3 is not installed and apt-get could not install it")
    return found


class NetWorld:
    """The network resources this run makes by hand, each remembered before
    it is made so that ``cleanup`` removes it whatever happened: named
    network namespaces, pods set up in-process, iperf3 servers."""

    def __init__(self, cfg, logs_dir: str):
        self.cfg = cfg
        self.logs_dir = logs_dir
        self.namespaces: list[str] = []
        self.keys: list[str] = []  # pod keys set up in-process and not yet torn down
        self.servers: list[subprocess.Popen] = []
        self.pids_seen: dict[int, int | None] = {}

    def add_netns(self, name: str) -> str:
        self.namespaces.append(name)
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")  # as pause does
        return name

    def delete_netns(self, name: str) -> None:
        ip("netns", "delete", name)
        self.namespaces.remove(name)

    def start_server(self, netns_path: str, tag: str) -> subprocess.Popen:
        """An iperf3 server in the network namespace at ``netns_path``;
        returns once it listens."""
        log = os.path.join(self.logs_dir, f"iperf3-{tag}.log")
        with open(log, "w") as out:
            proc = subprocess.Popen(["nsenter", f"--net={netns_path}", "iperf3", "-s", "-p", str(IPERF_PORT)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.servers.append(proc)
        self.pids_seen[proc.pid] = start_time(proc.pid)

        def listening() -> bool:
            if proc.poll() is not None:
                with open(log) as f:
                    raise BenchError(f"iperf3 server ({tag}) exited: {f.read().strip()[-200:]}")
            ports = set()
            for name in ("tcp", "tcp6"):  # nsenter exec'd iperf3: its /proc/PID/net is the namespace's
                try:
                    with open(f"/proc/{proc.pid}/net/{name}") as f:
                        ports |= listening_ports(f.read())
                except OSError:
                    pass
            return IPERF_PORT in ports

        wait_until(listening, timeout=10, interval=0.01)
        return proc

    def cleanup(self) -> list[str]:
        """Stop the servers, tear down in-process pods, delete namespaces;
        a line per thing that failed."""
        from minipod.network import teardown_pod_network

        problems = []
        for proc in self.servers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for key in list(self.keys):
            try:
                teardown_pod_network(self.cfg, key, None)
                self.keys.remove(key)
            except Exception as exc:  # keep going: every later step still frees something
                problems.append(f"teardown of {key}: {exc}")
        for name in list(self.namespaces):
            try:
                self.delete_netns(name)
            except BenchError as exc:
                problems.append(str(exc))
        return problems

    def leftovers(self) -> list[str]:
        """What is still on the host after every clean-up: this run's
        namespaces, veths, bridge, nft table. Removed here as a last resort
        (all carry this run's private names), and reported."""
        left = []
        for name in self.namespaces + [n for n in self._netns_on_host() if n.startswith(self.cfg.bridge + "-")]:
            left.append(f"netns {name}")
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        for key in self.keys:
            veth = self.cfg.host_veth_name(key)
            if link_exists(veth):
                left.append(f"veth {veth} of {key}")
                subprocess.run(["ip", "link", "delete", veth], capture_output=True)
        if link_exists(self.cfg.bridge):
            left.append(f"bridge {self.cfg.bridge}")
            subprocess.run(["ip", "link", "delete", self.cfg.bridge], capture_output=True)
        if nft_table_exists(self.cfg.nft_table):
            left.append(f"nft table inet {self.cfg.nft_table}")
            subprocess.run(["nft", "delete", "table", "inet", self.cfg.nft_table], capture_output=True)
        return sorted(set(left))

    @staticmethod
    def _netns_on_host() -> list[str]:
        try:
            return os.listdir(NETNS_DIR)
        except OSError:
            return []


def stop_strays(pids: dict[int, int | None]) -> list[int]:
    """SIGKILL those of ``pids`` (pid -> start time: this run's pause and
    supervisor processes) that are still alive after ``rm -f``. A last
    resort: a live supervisor restarts the containers that the cgroup sweep
    kills, so the sweep alone cannot empty the cgroups."""
    killed = []
    for pid, started in sorted(pids.items()):
        if process_alive(pid, started):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 2.0
    while any(process_alive(p, pids[p]) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.01)
    return killed


# ------------------------------------------------------------------ part 1: set-up in-process
def setup_cycle(world: NetWorld, tag: str, ports=()) -> tuple[float, float]:
    """One pod's network on a fresh namespace: (set-up ms, teardown ms)."""
    from minipod.network import setup_pod_network, teardown_pod_network

    name = world.add_netns(f"{world.cfg.bridge}-{tag}")
    key = f"netbench_{tag}"
    fd = os.open(f"{NETNS_DIR}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        world.keys.append(key)
        start = time.perf_counter_ns()
        net = setup_pod_network(world.cfg, key, fd, ports)
        setup_ns = time.perf_counter_ns() - start
    finally:
        os.close(fd)
    # Not timed: that the pod really got its address (no no-op measured).
    inside = subprocess.run(["ip", "-n", name, "-4", "-o", "addr", "show", "eth0"], capture_output=True, text=True)
    if f"inet {net.ip}/" not in inside.stdout:
        raise BenchError(f"pod {key}: eth0 has no {net.ip} after set-up")
    start = time.perf_counter_ns()
    teardown_pod_network(world.cfg, key, net.to_record())
    teardown_ns = time.perf_counter_ns() - start
    world.keys.remove(key)
    world.delete_netns(name)
    return setup_ns / 1e6, teardown_ns / 1e6


def measure_setup(world: NetWorld, runs: int, m: dict[str, Metric]) -> None:
    from minipod.network import remove_network, setup_pod_network, teardown_pod_network

    def hostport():
        return [{"containerPort": 80, "hostPort": free_host_port()}]

    def remove_network_ms() -> float:
        start = time.perf_counter_ns()
        remove_network(world.cfg)
        return (time.perf_counter_ns() - start) / 1e6

    # The first pod of a bridge: nothing else may hold it. The bridge and
    # table stay after the last pod; 'network rm' takes them away each time.
    setup_cycle(world, "warm")  # not counted: imports, libnftables, page cache
    remove_network_ms()
    for i in range(runs):
        if link_exists(world.cfg.bridge):
            raise BenchError(f"bridge {world.cfg.bridge} still up: the first-pod cycle would not create it")
        s, t = setup_cycle(world, f"f{i}")
        m["setup_first"].minipod.append(s)
        m["teardown_last"].minipod.append(t)
        m["network_rm"].minipod.append(remove_network_ms())
        print(f"\r  set-up: first pod {i + 1}/{runs}", end="", flush=True)
    # Then with the bridge held by another pod, as on a host with pods running.
    anchor = world.add_netns(f"{world.cfg.bridge}-anchor")
    fd = os.open(f"{NETNS_DIR}/{anchor}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        world.keys.append("netbench_anchor")
        setup_pod_network(world.cfg, "netbench_anchor", fd)
    finally:
        os.close(fd)
    setup_cycle(world, "warm")
    setup_cycle(world, "warmh", hostport())
    for i in range(runs):
        s, t = setup_cycle(world, f"p{i}")
        m["setup"].minipod.append(s)
        m["teardown"].minipod.append(t)
        s, t = setup_cycle(world, f"h{i}", hostport())
        m["setup_hostport"].minipod.append(s)
        m["teardown_hostport"].minipod.append(t)
        print(f"\r  set-up: bridge up, plain and hostPort {i + 1}/{runs}", end="", flush=True)
    print(flush=True)
    teardown_pod_network(world.cfg, "netbench_anchor", None)
    world.keys.remove("netbench_anchor")
    world.delete_netns(anchor)


# ------------------------------------------------------------------ part 2: run -d end to end
def pod_facts(mp: MinipodSide, name: str) -> tuple[int, str | None]:
    """(pausePid, podIP) of a running pod, its pids remembered for the leak check."""
    pause, _sup = mp.overhead_pids(name)
    return pause, (mp.pod_object(name) or {}).get("status", {}).get("podIP")


def e2e_cycle(mp: MinipodSide, manifest: str, name: str, host_network: bool) -> tuple[float, float]:
    run = mp.cli("run", "-d", manifest).check()
    wait_until(lambda: mp.is_running_ready(name))
    pause, pod_ip = pod_facts(mp, name)
    shares_host = os.readlink(f"/proc/{pause}/ns/net") == os.readlink("/proc/self/ns/net")
    if shares_host != host_network or bool(pod_ip) == host_network:
        raise BenchError(f"pod {name}: hostNetwork={host_network} but podIP {pod_ip}, host netns {shares_host}")
    rm = mp.cli("rm", "-f", "-t", "0", name).check()
    return run.wall_ms, rm.wall_ms


def measure_e2e(mp: MinipodSide, iso: Isolation, runs: int, m: dict[str, Metric]) -> None:
    net = netbench_manifest(iso.path("net.json"), "netbench-net", False)
    host = netbench_manifest(iso.path("hostnet.json"), "netbench-host", True)
    e2e_cycle(mp, net, "netbench-net", False)  # warm-up, not counted
    e2e_cycle(mp, host, "netbench-host", True)
    for i in range(runs):
        run_n, rm_n = e2e_cycle(mp, net, "netbench-net", False)
        run_h, rm_h = e2e_cycle(mp, host, "netbench-host", True)
        m["run_d"].minipod.append(run_n)
        m["run_d"].floor.append(run_h)
        m["rm_f"].minipod.append(rm_n)
        m["rm_f"].floor.append(rm_h)
        print(f"\r  run -d / rm -f, pod network and hostNetwork {i + 1}/{runs}", end="", flush=True)
    print(flush=True)
    m["run_d_cost"].minipod.extend(paired_differences(m["run_d"].minipod, m["run_d"].floor))
    m["rm_f_cost"].minipod.extend(paired_differences(m["rm_f"].minipod, m["rm_f"].floor))


def start_pod_pair(mp: MinipodSide, iso: Isolation) -> dict[str, tuple[int, str]]:
    """Two running pods, netbench-a and netbench-b: iperf3's two ends, and
    the holders of the bridge while ``e2e`` starts and removes pods."""
    names = ["netbench-a", "netbench-b"]
    for name in names:
        mp.cli("run", "-d", netbench_manifest(iso.path(f"{name}.json"), name, False)).check()
    wait_until(lambda: all(mp.is_running_ready(n) for n in names), timeout=30)
    pods = {n: pod_facts(mp, n) for n in names}
    for name, (_pause, pod_ip) in pods.items():
        if not pod_ip:
            raise BenchError(f"pod {name} has no podIP")
    return pods


# ------------------------------------------------------------------ part 3: throughput
def iperf3_client(netns_path: str, server_ip: str, seconds: float) -> float:
    sample = run_timed(["nsenter", f"--net={netns_path}", "iperf3", "-c", server_ip, "-p", str(IPERF_PORT),
                        "-t", f"{seconds:g}", "-J"])
    if sample.returncode != 0 and not sample.stdout.strip():
        raise BenchError(f"iperf3 -c {server_ip}: exit {sample.returncode}: {sample.stderr.strip()[-200:]}")
    return parse_iperf3(sample.stdout)


def measure_throughput(world: NetWorld, pods: dict[str, tuple[int, str]], runs: int, seconds: float,
                       m: dict[str, Metric]) -> None:
    (pause_a, ip_a), (pause_b, _ip_b) = pods["netbench-a"], pods["netbench-b"]
    va = world.add_netns(f"{world.cfg.bridge}-va")
    vb = world.add_netns(f"{world.cfg.bridge}-vb")
    # The peer is created directly in the other namespace, as minipod creates eth0.
    ip("-n", va, "link", "add", "eth0", "mtu", str(world.cfg.mtu), "type", "veth", "peer", "name", "eth0",
       "netns", vb)
    for ns, addr in ((va, BASELINE_A), (vb, BASELINE_B)):
        ip("-n", ns, "addr", "add", f"{addr}/30", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
    world.start_server(f"/proc/{pause_a}/ns/net", "pod-a")
    world.start_server(f"{NETNS_DIR}/{va}", "veth-a")
    pod_client, veth_client = f"/proc/{pause_b}/ns/net", f"{NETNS_DIR}/{vb}"
    iperf3_client(pod_client, ip_a, 1)  # warm-up, not counted
    iperf3_client(veth_client, BASELINE_A, 1)
    for i in range(runs):
        print(f"\r  iperf3 {seconds:g} s, pod-to-pod and veth pair {i + 1}/{runs}", end="", flush=True)
        m["tcp"].minipod.append(iperf3_client(pod_client, ip_a, seconds))
        m["tcp"].floor.append(iperf3_client(veth_client, BASELINE_A, seconds))
    print(flush=True)
    m["tcp_loss"].minipod.extend(paired_loss_pct(m["tcp"].minipod, m["tcp"].floor))


# ------------------------------------------------------------------ results
def summary(rows: dict[str, dict]) -> dict:
    """The issue's two questions, answered with the medians."""
    out = {}
    if "setup" in rows:
        out["setup_ms_median"] = rows["setup"]["minipod"]["median"]
        out["setup_verdict"] = rows["setup"]["verdict"]
    if "tcp" in rows:
        pod, veth = rows["tcp"]["minipod"]["median"], rows["tcp"]["floor"]["median"]
        out.update({"pod_gbps_median": pod, "veth_gbps_median": veth, "ratio_of_medians": pod / veth,
                    "loss_pct_median_of_pairs": rows["tcp_loss"]["minipod"]["median"],
                    "throughput_verdict": rows["tcp_loss"]["verdict"]})
    if "run_d_cost" in rows:
        out["run_d_network_cost_ms_median"] = rows["run_d_cost"]["minipod"]["median"]
    return out


def summary_lines(s: dict) -> list[str]:
    lines = []
    if "setup_ms_median" in s:
        lines.append(f"  network set-up per pod: {s['setup_ms_median']:.2f} ms median "
                     f"(target <= {SETUP_TARGET_MS:g} ms): {s['setup_verdict']}")
    if "run_d_network_cost_ms_median" in s:
        lines.append(f"  what the pod network adds to run -d: {s['run_d_network_cost_ms_median']:.1f} ms median")
    if "pod_gbps_median" in s:
        lines.append(f"  pod-to-pod {s['pod_gbps_median']:.2f} Gbit/s vs veth pair {s['veth_gbps_median']:.2f} "
                     f"Gbit/s: ratio {s['ratio_of_medians']:.3f}, loss {s['loss_pct_median_of_pairs']:.1f}% "
                     f"(median of pairs; target <= {LOSS_TARGET_PCT:g}%): {s['throughput_verdict']}")
    return lines


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def network_facts(cfg) -> dict:
    """What moves throughput figures, for whoever reads the JSON later."""
    version = None
    if shutil.which("iperf3"):
        out = subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout
        version = out.splitlines()[0] if out else None
    return {
        "iperf3": version,
        "mtu": cfg.mtu,
        # With br_netfilter and this at 1, bridged pod-to-pod packets also pass the netfilter hooks.
        "bridge_nf_call_iptables": read_text("/proc/sys/net/bridge/bridge-nf-call-iptables"),
    }


# ------------------------------------------------------------------ main
def parse_args(argv):
    p = argparse.ArgumentParser(description="minipod networking benchmark (needs root)")
    p.add_argument("--runs", type=int, default=20, help="measured samples per row (default 20)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each iperf3 run (default 3)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"which parts, comma-separated (default {','.join(PARTS)})")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "bench", "results"), help="where results go")
    args = p.parse_args(argv)
    args.parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown or not args.parts:
        p.error(f"--parts: choose from {', '.join(PARTS)}")
    if args.runs < 1 or args.seconds < 1:
        p.error("--runs and --seconds must be at least 1")
    return args


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (sudo): it makes namespaces, links and pods", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    started = datetime.datetime.now()
    try:
        if "throughput" in args.parts:
            ensure_iperf3()
        iso = Isolation(tag=secrets.token_hex(3))  # bridge "mpb" + these 6 hex digits
        iso.subnet = pick_subnet(used_addresses(), random.Random())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    from minipod.config import Config
    from minipod.network import PodNetworkConfig

    # The CLI's own network settings for this root: the in-process part and
    # the pods share the bridge, the subnet and the IPAM files.
    cfg = PodNetworkConfig.from_config(Config(root=iso.root, bridge=iso.bridge, subnet=iso.subnet))
    world = NetWorld(cfg, iso.root)
    mp = None
    metrics = new_metrics()
    load_before = loadavg()
    print(f"minipod network benchmark: {args.runs} runs, parts {','.join(args.parts)}, root {iso.root}, "
          f"cgroup parent {iso.cgroup_parent}, bridge {iso.bridge}, subnet {iso.subnet}", flush=True)
    def work():
        nonlocal mp
        compile_bytecode()
        if "setup" in args.parts:
            measure_setup(world, args.runs, metrics)
        if "e2e" in args.parts or "throughput" in args.parts:
            mp = MinipodSide(iso.env(), iso.root, iso.cgroup_parent)
            import_image(mp, iso)
            pods = start_pod_pair(mp, iso)
            if "e2e" in args.parts:
                measure_e2e(mp, iso, args.runs, metrics)
            if "throughput" in args.parts:
                measure_throughput(world, pods, args.runs, args.seconds, metrics)

    def cleanup():
        problems = world.cleanup()
        problems += iso.cleanup(mp)
        pids = {**(mp.pids_seen if mp else {}), **world.pids_seen}
        strays = stop_strays(pids) if problems else []
        if strays:  # then sweep the cgroups once more, with nobody left to restart anything
            problems.append(f"killed processes of this run still alive after rm -f: {strays}")
            problems += iso.cleanup(None)
        return problems, world.leftovers() + iso.leftovers(pids)

    code, error, problems, left = guarded(work, cleanup)
    if error:
        return code
    rows = {k: mt.to_dict() for k, mt in metrics.items() if mt.minipod}
    result = {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.datetime.now() - started).total_seconds(), 1),
        "runs": args.runs, "iperf3_seconds": args.seconds, "parts": args.parts,
        "order": "alternating A B run by run (pod network, then hostNetwork / veth pair)",
        "host": {**host_facts(), **network_facts(cfg)},
        "loadavg_before": load_before, "loadavg_after": loadavg(),
        "isolation": {"root": iso.root, "cgroup_parent": iso.cgroup_parent, "bridge": iso.bridge,
                      "subnet": iso.subnet},
        "clean": not problems and not left, "left_behind": problems + left,
        "summary": summary(rows),
        "rows": list(rows.values()),
    }
    return print_and_save(result, summary_lines(result["summary"]), "network", args.out, started)


if __name__ == "__main__":
    sys.exit(main())
