"""minipod's lifecycle benchmark (issue 5, "Speed"): how fast a pod of
well-behaved containers stops, and what the supervisor costs while it runs
probes.

    sudo .venv/bin/python bench/lifecycle.py [--runs N] [--seconds S] [--interval S] [--parts stop,idle] [--out DIR]

Two parts:

* ``stop`` (--runs cycles after one warm-up): ``minipod stop`` of a pod of two
  containers that exit 0 on SIGTERM (``terminationGracePeriodSeconds: 30``),
  checked to have exited by themselves (exit code 0, not SIGKILL), then
  ``minipod rm``; the same stop through the library in this process (the
  stop without the CLI's start-up); ``minipod rm -f`` of the same pod
  running (graceful stop and removal in one command); the CLI commands each
  alternating with ``floor.sh stop`` of a floor sandbox (the core bench's
  floor); and ``minipod stop -t 1`` of a pod whose container ignores
  SIGTERM (about 1 s by design: the sanity check).
* ``idle``: two pods of the same three containers (busybox httpd and two
  shells) run side by side, one with five probes firing every second in all
  (two httpGet, two tcpSocket, one exec), one with none. After they are
  Ready, each supervisor's utime+stime (and, apart, the cutime+cstime of
  its reaped children: the exec probes' processes) is read from
  /proc/PID/stat every --interval seconds for --seconds, as % of one core,
  with its VmRSS. Kernel counters prove that the probes really ran: TCP
  connections accepted in the pod's network namespace, and PIDs used in the
  exec-probed container's PID namespace.

Everything lives under a private MINIPOD_ROOT, cgroup parent, bridge and
subnet, and is removed at the end, also on Ctrl-C or an error. Prints a
table and writes ``lifecycle-<date>-<time>.json`` under --out. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import secrets
import signal
import sys
import time
from dataclasses import dataclass

from core import (
    IMAGE, REPO_DIR, BenchError, FloorSide, Metric, MinipodSide, guarded, process_memory, run_timed, wait_until,
)
from isolation import Isolation
from network import NetWorld, pick_subnet, stop_strays, used_addresses
from report import print_and_save, write_chart
from run import compile_bytecode, host_facts, import_image, loadavg

if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)

STOP_TARGET_MS = 200.0
IDLE_CPU_TARGET_PCT = 1.0
PARTS = ("stop", "idle")
CLK_TCK = os.sysconf("SC_CLK_TCK")
GRACE_S = 30
DEAF_TIMEOUT_S = 1
# A shell that exits 0 on SIGTERM at once: ``wait`` returns when the trap
# fires. Its background sleep dies with it (the shell is PID 1 of the
# container's PID namespace).
TERM_EXITS = 'trap "exit 0" TERM; sleep 3600 & wait'
# A shell that ignores SIGTERM, and so does its sleep (it inherits SIG_IGN).
TERM_IGNORED = "trap '' TERM; sleep 3600 & wait"
# busybox httpd with a page to serve (the image has no /www of its own),
# under a shell that exits on SIGTERM: httpd as PID 1 would ignore it (no
# handler) and every removal of the idle pods would wait out the grace period.
HTTPD = 'mkdir -p /www && echo ok > /www/index.html && trap "exit 0" TERM; httpd -f -p 8080 -h /www & wait'
HTTP_PORT = 8080
EXEC_PROBED = "side-1"  # the container with the exec probe
NET_PROBES_PER_S = 4
EXEC_PROBES_PER_S = 1
# A probe counter below this share of what the probes' periods promise
# means the probes did not run as declared: the CPU figure would be meaningless.
PROBE_RATE_MIN_SHARE = 0.8
SETTLE_S = 2.0  # after Ready: let the first attempts and start-up work pass


# ------------------------------------------------------------------ pure helpers
def parse_args(argv):
    p = argparse.ArgumentParser(description="minipod lifecycle benchmark: pod stop latency, supervisor idle CPU "
                                            "with probes (needs root)")
    p.add_argument("--runs", type=int, default=10, help="measured stop cycles (default 10)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the idle window (default 30)")
    p.add_argument("--interval", type=float, default=5.0, help="one CPU sample per this many seconds (default 5)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"which parts, comma-separated (default {','.join(PARTS)})")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "bench", "results"), help="where results go")
    args = p.parse_args(argv)
    args.parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if not args.parts or any(part not in PARTS for part in args.parts):
        p.error(f"--parts: choose from {', '.join(PARTS)}")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if args.interval < 1 or args.seconds < args.interval:
        p.error("--interval must be at least 1 and --seconds at least --interval")
    return args


def parse_stat_times(text: str) -> dict[str, int]:
    """utime, stime, cutime, cstime (clock ticks) of a /proc/PID/stat line:
    fields 14-17, counted after the ``)`` that ends the command name (which
    may itself hold spaces and parentheses)."""
    fields = text.rsplit(")", 1)[1].split()  # fields[0] is field 3, the state
    try:
        return {"utime": int(fields[11]), "stime": int(fields[12]),
                "cutime": int(fields[13]), "cstime": int(fields[14])}
    except (IndexError, ValueError):
        raise BenchError(f"not a /proc/PID/stat line: {text[:80]!r}") from None


def parse_schedstat(text: str) -> int:
    """Nanoseconds on a CPU, the first field of /proc/PID/schedstat (of the
    main thread only: the supervisor has no other)."""
    try:
        return int(text.split()[0])
    except (IndexError, ValueError):
        raise BenchError(f"not a /proc/PID/schedstat line: {text[:80]!r}") from None


def parse_tcp_counters(snmp: str) -> dict[str, int]:
    """The ``Tcp:`` counters of /proc/PID/net/snmp (a header line, then a
    line of values), for that process's network namespace."""
    lines = [line.split() for line in snmp.splitlines() if line.startswith("Tcp:")]
    if len(lines) < 2:
        raise BenchError("no Tcp: counters in /proc/PID/net/snmp")
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}


def cpu_percent(ticks: int, seconds: float, hz: int = CLK_TCK) -> float:
    """Clock ticks of CPU over a wall-clock span, as % of one core."""
    return 100.0 * ticks / hz / seconds if seconds > 0 else 0.0


def stop_pod(name: str, command: str, containers: tuple[str, ...] = ("a", "b")) -> dict:
    """A pod of busybox shells running ``command``, 30 s of grace."""
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": GRACE_S, "containers": [
            {"name": c, "image": IMAGE, "command": ["sh", "-c", command]} for c in containers]},
    }


def _every_second(handler: dict) -> dict:
    return {**handler, "periodSeconds": 1, "timeoutSeconds": 1}


def idle_pod(name: str, probes: bool) -> dict:
    """busybox httpd and two shells, with five probes a second or none.

    A container runs at most a liveness and a readiness probe at a time (a
    startup probe ends once it passes), so the five are spread over three
    containers of one pod: they are all run by its one supervisor."""
    web = {"name": "web", "image": IMAGE, "command": ["sh", "-c", HTTPD],
           "ports": [{"name": "http", "containerPort": HTTP_PORT}]}
    side1 = {"name": EXEC_PROBED, "image": IMAGE, "command": ["sh", "-c", TERM_EXITS]}
    side2 = {"name": "side-2", "image": IMAGE, "command": ["sh", "-c", TERM_EXITS]}
    if probes:
        web["readinessProbe"] = _every_second({"httpGet": {"path": "/", "port": "http"}})
        web["livenessProbe"] = _every_second({"tcpSocket": {"port": HTTP_PORT}})
        side1["livenessProbe"] = _every_second({"exec": {"command": ["true"]}})
        side1["readinessProbe"] = _every_second({"httpGet": {"path": "/", "port": HTTP_PORT}})
        side2["readinessProbe"] = _every_second({"tcpSocket": {"port": HTTP_PORT}})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": GRACE_S, "containers": [web, side1, side2]}}


def write_pod(path: str, pod: dict) -> str:
    with open(path, "w") as f:
        json.dump(pod, f)
    return path


def check_exits(pod: dict | None, code: int, what: str) -> None:
    """Every container of a stopped pod ended with exit code ``code`` (0:
    it exited by itself on SIGTERM; 137: it was killed)."""
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    if not statuses:
        raise BenchError(f"{what}: no container status after stop")
    for cs in statuses:
        ended = (cs.get("state") or {}).get("terminated")
        if not ended or ended.get("exitCode") != code:
            raise BenchError(f"{what}: container {cs.get('name')} state {cs.get('state')}, expected exit code {code}")


@dataclass
class CpuReading:
    """One look at a process's CPU counters."""

    at: float      # time.monotonic() of the reading
    own: int       # utime + stime, ticks
    children: int  # cutime + cstime, ticks: children it has reaped
    run_ns: int    # schedstat: ns on a CPU (precise; a cross-check of ``own``)

    def since(self, earlier: "CpuReading") -> dict[str, float]:
        """% of one core between two readings."""
        span = self.at - earlier.at
        return {"own": cpu_percent(self.own - earlier.own, span),
                "children": cpu_percent(self.children - earlier.children, span),
                "schedstat": 100.0 * (self.run_ns - earlier.run_ns) / 1e9 / span if span > 0 else 0.0,
                "seconds": span}


def read_cpu(pid: int) -> CpuReading:
    try:
        with open(f"/proc/{pid}/stat") as f:
            times = parse_stat_times(f.read())
        with open(f"/proc/{pid}/schedstat") as f:
            run_ns = parse_schedstat(f.read())
    except OSError as exc:
        raise BenchError(f"CPU of pid {pid}: {exc.strerror} (did the supervisor die?)") from None
    return CpuReading(time.monotonic(), times["utime"] + times["stime"], times["cutime"] + times["cstime"], run_ns)


def new_metrics() -> dict[str, Metric]:
    rows = [
        Metric("python", "python -c pass (reference)", "ms"),
        Metric("stop", "stop (2 containers exit on TERM)", "ms", STOP_TARGET_MS,
               floor_label="floor.sh stop: SIGKILL a 1-container sandbox, wait until its last process "
                           "is exiting, rm -rf"),
        Metric("stop_lib", "stop in-process (library: no CLI start)", "ms"),
        Metric("rm_after_stop", "rm of the stopped pod", "ms"),
        Metric("rm_f", "rm -f (graceful stop + removal)", "ms", floor_label="floor.sh stop, as above"),
        Metric("stop_deaf", f"stop -t {DEAF_TIMEOUT_S}, SIGTERM ignored", "ms"),
        Metric("sup_cpu", "supervisor CPU, 5 probes/s", "% core", IDLE_CPU_TARGET_PCT,
               floor_label="the same pod without probes, in the same window"),
        Metric("probe_procs_cpu", "exec-probe processes (cutime+cstime)", "% core",
               floor_label="the same pod without probes"),
        Metric("sup_rss", "supervisor VmRSS, 5 probes/s", "KiB", floor_label="the same pod without probes"),
        Metric("sup_pss", "supervisor Pss, 5 probes/s", "KiB", floor_label="the same pod without probes"),
    ]
    return {m.key: m for m in rows}


def summary(rows: dict[str, dict], idle: dict | None) -> dict:
    """The issue's two questions, answered with the medians; the idle
    window's whole-span figures and the probe counts."""
    out = {}
    if "stop" in rows:
        stop = rows["stop"]
        out.update({"stop_ms_median": stop["minipod"]["median"], "stop_verdict": stop["verdict"],
                    "stop_floor_ms_median": (stop["floor"] or {}).get("median"), "stop_ratio": stop["ratio"],
                    "stop_library_ms_median": rows["stop_lib"]["minipod"]["median"],
                    "rm_f_ms_median": rows["rm_f"]["minipod"]["median"], "rm_f_ratio": rows["rm_f"]["ratio"],
                    "stop_deaf_ms_median": rows["stop_deaf"]["minipod"]["median"]})
    if "sup_cpu" in rows:
        out.update({"sup_cpu_pct_median": rows["sup_cpu"]["minipod"]["median"],
                    "sup_cpu_verdict": rows["sup_cpu"]["verdict"]})
    if idle:
        out["idle_window"] = idle
    return out


def summary_lines(s: dict) -> list[str]:
    lines = []
    if "stop_ms_median" in s:
        ratio = f", {s['stop_ratio']:.1f}x the floor's {s['stop_floor_ms_median']:.0f} ms" if s["stop_ratio"] else ""
        lines.append(f"  stop of a well-behaved 2-container pod: {s['stop_ms_median']:.0f} ms median{ratio} "
                     f"(target <= {STOP_TARGET_MS:g} ms): {s['stop_verdict']}")
        lines.append(f"    of which the supervisor's part (library stop, no CLI start): "
                     f"{s['stop_library_ms_median']:.0f} ms median")
        lines.append(f"  rm -f: {s['rm_f_ms_median']:.0f} ms; stop -t {DEAF_TIMEOUT_S} of a pod ignoring SIGTERM: "
                     f"{s['stop_deaf_ms_median']:.0f} ms ({s['stop_deaf_ms_median'] - 1000 * DEAF_TIMEOUT_S:+.0f} ms "
                     f"over the {DEAF_TIMEOUT_S} s grace)")
    if "sup_cpu_pct_median" in s:
        lines.append(f"  supervisor CPU with 5 probes/s: {s['sup_cpu_pct_median']:.2f}% of a core median "
                     f"(target < {IDLE_CPU_TARGET_PCT:g}%): {s['sup_cpu_verdict']}")
    w = s.get("idle_window")
    if w:
        lines.append(f"  whole {w['seconds']:.1f} s window: supervisor {w['probes']['own_pct']:.3f}% "
                     f"(schedstat {w['probes']['schedstat_pct']:.3f}%), its exec-probe children "
                     f"{w['probes']['children_pct']:.3f}%; without probes {w['plain']['own_pct']:.3f}% "
                     f"(schedstat {w['plain']['schedstat_pct']:.3f}%)")
        lines.append(f"  probes seen: {w['net_probes_per_s']:.2f} TCP connections/s (expected "
                     f"{NET_PROBES_PER_S}), {w['exec_probes_per_s']:.2f} exec/s (expected {EXEC_PROBES_PER_S})")
    return lines


# ------------------------------------------------------------------ part 1: stop
def start_ready(mp: MinipodSide, path: str, name: str) -> None:
    mp.cli("run", "-d", path).check()
    wait_until(lambda: mp.is_running_ready(name), timeout=30)
    mp.overhead_pids(name)  # remembered for the leak check


def stop_cycle(mp: MinipodSide, path: str, name: str) -> tuple[float, float]:
    """(stop ms, rm ms) of a running pod whose containers exit on SIGTERM."""
    start_ready(mp, path, name)
    stop = mp.cli("stop", name).check()
    check_exits(mp.pod_object(name), 0, f"stop {name}")
    rm = mp.cli("rm", name).check()
    return stop.wall_ms, rm.wall_ms


def library_stop_cycle(mp: MinipodSide, path: str, name: str) -> float:
    """The same stop through the library in this process, which has
    minipod imported already: the stop without the CLI's start-up, i.e.
    the supervisor's part (signal, exits, teardown) and the wait for it."""
    start_ready(mp, path, name)
    began = time.perf_counter_ns()
    mp.runtime.stop(name)
    took = (time.perf_counter_ns() - began) / 1e6
    check_exits(mp.pod_object(name), 0, f"library stop {name}")
    mp.cli("rm", name).check()
    return took


def rm_f_cycle(mp: MinipodSide, path: str, name: str) -> float:
    start_ready(mp, path, name)
    return mp.cli("rm", "-f", name).check().wall_ms


def deaf_cycle(mp: MinipodSide, path: str, name: str) -> float:
    """stop -t 1 of a pod that ignores SIGTERM: killed when the second is up."""
    start_ready(mp, path, name)
    stop = mp.cli("stop", "-t", str(DEAF_TIMEOUT_S), name).check()
    check_exits(mp.pod_object(name), 137, f"stop -t {DEAF_TIMEOUT_S} {name}")
    mp.cli("rm", name).check()
    return stop.wall_ms


def floor_cycle(floor: FloorSide, name: str) -> float:
    floor.start(name).check()
    wait_until(lambda: floor.is_running(name))
    floor.unshare_pid(name)  # remembered for the leak check
    return floor.stop(name).check().wall_ms


def measure_stop(mp: MinipodSide, floor: FloorSide, iso: Isolation, runs: int, m: dict[str, Metric]) -> None:
    good = write_pod(iso.path("stop-good.json"), stop_pod("stop-good", TERM_EXITS))
    deaf = write_pod(iso.path("stop-deaf.json"), stop_pod("stop-deaf", TERM_IGNORED, ("a",)))
    python = [sys.executable, "-c", "pass"]
    # Warm-up, not counted: page cache, the library import in this process.
    stop_cycle(mp, good, "stop-good")
    library_stop_cycle(mp, good, "stop-good")
    rm_f_cycle(mp, good, "stop-good")
    floor_cycle(floor, "floor-1")
    deaf_cycle(mp, deaf, "stop-deaf")
    for i in range(runs):
        print(f"\r  stop: run {i + 1}/{runs}", end="", flush=True)
        m["python"].minipod.append(run_timed(python).check().wall_ms)
        stop_ms, rm_ms = stop_cycle(mp, good, "stop-good")
        m["stop"].minipod.append(stop_ms)
        m["rm_after_stop"].minipod.append(rm_ms)
        m["stop"].floor.append(floor_cycle(floor, "floor-1"))
        m["stop_lib"].minipod.append(library_stop_cycle(mp, good, "stop-good"))
        m["rm_f"].minipod.append(rm_f_cycle(mp, good, "stop-good"))
        m["rm_f"].floor.append(floor_cycle(floor, "floor-1"))
        m["stop_deaf"].minipod.append(deaf_cycle(mp, deaf, "stop-deaf"))
    print(flush=True)


# ------------------------------------------------------------------ part 2: idle with probes
def last_pid_in(mp: MinipodSide, pod: str, container: str) -> int:
    """The PID a new process gets in the container's PID namespace, by
    making one (``minipod exec``); the next call minus this minus one is how
    many processes the namespace saw in between (there: the exec probes)."""
    out = mp.cli("exec", pod, "-c", container, "--", "sh", "-c", "echo $$").check().stdout.strip()
    if not out.isdigit():
        raise BenchError(f"exec in {pod}/{container}: expected a PID, got {out[:40]!r}")
    return int(out)


def tcp_counters(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/net/snmp") as f:
            return parse_tcp_counters(f.read())
    except OSError as exc:
        raise BenchError(f"TCP counters of pid {pid}: {exc.strerror}") from None


def check_steady(mp: MinipodSide, name: str) -> None:
    """The pod stayed Running+Ready with no restart: every probe passed."""
    obj = mp.pod_object(name) or {}
    restarts = {cs["name"]: cs.get("restartCount", 0) for cs in obj.get("status", {}).get("containerStatuses", [])}
    if not mp.is_running_ready(name) or any(restarts.values()):
        raise BenchError(f"pod {name} did not stay Running+Ready without restarts: "
                         f"phase {obj.get('status', {}).get('phase')}, restarts {restarts}")


def measure_idle(mp: MinipodSide, iso: Isolation, seconds: float, interval: float, m: dict[str, Metric]) -> dict:
    """Both pods side by side over the same window; returns its whole-span
    figures and the probe counts."""
    names = {"probes": "idle-probes", "plain": "idle-plain"}
    for kind, name in names.items():
        mp.cli("run", "-d", write_pod(iso.path(f"{name}.json"), idle_pod(name, kind == "probes"))).check()
    wait_until(lambda: all(mp.is_running_ready(n) for n in names.values()), timeout=30)
    pids = {kind: mp.overhead_pids(name) for kind, name in names.items()}  # (pause, supervisor)
    sup = {kind: pair[1] for kind, pair in pids.items()}
    time.sleep(SETTLE_S)
    count = max(1, int(seconds // interval))
    print(f"  idle: {count} x {interval:g} s, supervisors {sup['probes']} (5 probes/s) and {sup['plain']} "
          f"(no probes)", flush=True)
    exec_from = time.monotonic()
    pid_before = last_pid_in(mp, names["probes"], EXEC_PROBED)
    tcp_before, counted_from = tcp_counters(pids["probes"][0]), time.monotonic()
    first = prev = {kind: read_cpu(pid) for kind, pid in sup.items()}
    for i in range(count):
        time.sleep(max(0.0, first["probes"].at + (i + 1) * interval - time.monotonic()))
        now = {kind: read_cpu(pid) for kind, pid in sup.items()}
        mem = {kind: process_memory(pid) for kind, pid in sup.items()}
        used = {kind: now[kind].since(prev[kind]) for kind in sup}
        m["sup_cpu"].minipod.append(used["probes"]["own"])
        m["sup_cpu"].floor.append(used["plain"]["own"])
        m["probe_procs_cpu"].minipod.append(used["probes"]["children"])
        m["probe_procs_cpu"].floor.append(used["plain"]["children"])
        m["sup_rss"].minipod.append(mem["probes"]["rss_kib"])
        m["sup_rss"].floor.append(mem["plain"]["rss_kib"])
        m["sup_pss"].minipod.append(mem["probes"]["pss_kib"])
        m["sup_pss"].floor.append(mem["plain"]["pss_kib"])
        prev = now
    tcp_after, counted_to = tcp_counters(pids["probes"][0]), time.monotonic()
    pid_after = last_pid_in(mp, names["probes"], EXEC_PROBED)
    exec_to = time.monotonic()
    for name in names.values():
        check_steady(mp, name)
    span = counted_to - counted_from
    net_rate = (tcp_after["PassiveOpens"] - tcp_before["PassiveOpens"]) / span
    # The two PIDs were given out somewhere inside the two execs: dividing
    # by the time from the start of the first to the end of the second
    # can only make the rate look lower (it is a check, not a figure).
    exec_rate = (pid_after - pid_before - 1) / (exec_to - exec_from)
    if net_rate < PROBE_RATE_MIN_SHARE * NET_PROBES_PER_S or exec_rate < PROBE_RATE_MIN_SHARE * EXEC_PROBES_PER_S:
        raise BenchError(f"the probes did not run as declared: {net_rate:.2f} connections/s "
                         f"(expected {NET_PROBES_PER_S}), {exec_rate:.2f} exec/s (expected {EXEC_PROBES_PER_S})")
    whole = {kind: prev[kind].since(first[kind]) for kind in sup}
    mp.cli("rm", "-f", *names.values()).check()
    return {
        "seconds": whole["probes"]["seconds"], "samples": count, "interval_s": interval, "clk_tck": CLK_TCK,
        "net_probes_per_s": net_rate, "exec_probes_per_s": exec_rate,
        **{kind: {"own_pct": w["own"], "children_pct": w["children"], "schedstat_pct": w["schedstat"]}
           for kind, w in whole.items()},
    }


# ------------------------------------------------------------------ main
def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None, tag: str | None = None) -> int:
    """``tag`` names the run's bridge and cgroup parent (tests pass their own)."""
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (sudo): it runs real pods", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    started = datetime.datetime.now()
    try:
        iso = Isolation(tag=tag or secrets.token_hex(3))  # bridge "mpb" + the tag
        iso.subnet = pick_subnet(used_addresses(), random.Random())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    from minipod.config import Config
    from minipod.network import PodNetworkConfig

    # Nothing is made by hand here: the world only checks, at the end, that
    # the pods' bridge, nft table and veths are gone.
    world = NetWorld(PodNetworkConfig.from_config(Config(root=iso.root, bridge=iso.bridge, subnet=iso.subnet)),
                     iso.root)
    mp = floor = None
    metrics = new_metrics()
    idle = None
    load_before = loadavg()
    print(f"minipod lifecycle benchmark: {args.runs} runs, {args.seconds:g} s idle, parts {','.join(args.parts)}, "
          f"root {iso.root}, cgroup parent {iso.cgroup_parent}, bridge {iso.bridge}, subnet {iso.subnet}", flush=True)

    def work():
        nonlocal mp, floor, idle
        compile_bytecode()
        mp = MinipodSide(iso.env(), iso.root, iso.cgroup_parent)
        rootfs = import_image(mp, iso)
        if "stop" in args.parts:
            floor = FloorSide(iso.path("floor"), rootfs)
            measure_stop(mp, floor, iso, args.runs, metrics)
        if "idle" in args.parts:
            idle = measure_idle(mp, iso, args.seconds, args.interval, metrics)

    def cleanup():
        problems = iso.cleanup(mp, floor)
        pids = {**(mp.pids_seen if mp else {}), **(floor.pids_seen if floor else {})}
        strays = stop_strays(pids) if problems else []
        if strays:  # then sweep once more, with no supervisor left to restart anything
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
        "runs": args.runs, "idle_seconds": args.seconds, "interval": args.interval, "parts": args.parts,
        "order": "stop: per run minipod stop, floor, library stop, minipod rm -f, floor, stop -t 1 (SIGTERM "
                 "ignored); "
                 "idle: both pods at once, one window",
        "pods": {"stop": stop_pod("stop-good", TERM_EXITS), "stop_deaf": stop_pod("stop-deaf", TERM_IGNORED, ("a",)),
                 "idle_probes": idle_pod("idle-probes", True), "idle_plain": idle_pod("idle-plain", False)},
        "host": host_facts(), "loadavg_before": load_before, "loadavg_after": loadavg(),
        "isolation": {"root": iso.root, "cgroup_parent": iso.cgroup_parent, "bridge": iso.bridge,
                      "subnet": iso.subnet},
        "clean": not problems and not left, "left_behind": problems + left,
        "summary": summary(rows, idle),
        "rows": list(rows.values()),
    }
    code = print_and_save(result, summary_lines(result["summary"]), "lifecycle", args.out, started)
    # Only the ms rows: in them "floor" is floor.sh, as the chart's legend
    # says; in the CPU and memory rows it is the pod without probes.
    charted = {**result, "rows": [r for r in result["rows"] if r["unit"] == "ms"]}
    chart = write_chart(charted, os.path.join(args.out, f"lifecycle-{started.strftime('%Y%m%d-%H%M%S')}.png"))
    print(f"  {chart}" if chart else "  (no chart: matplotlib is not installed)")
    return code


if __name__ == "__main__":
    sys.exit(main())
