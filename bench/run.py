"""minipod's core benchmark: speed and memory of the runtime, side by side
with a floor made of public tools, in the same run.

    sudo .venv/bin/python bench/run.py [--runs N] [--pods N] [--out DIR]

Measures (median of --runs runs, minipod and floor alternating A B A B):
``run -d`` of a one-container busybox pod (until the command returns, and
until the pod's status says Running and Ready), ``rm -f``, ``ps`` with no
pod and with --pods pods, ``inspect``, and the memory of the pause process
and the supervisor. Prints a table, writes ``core-<date>.json`` (and a PNG
when matplotlib is importable) under --out, and removes everything it made,
also on Ctrl-C or an error. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys

from core import (
    IMAGE, REPO_DIR, BenchError, FloorSide, Metric, MinipodSide, guarded, is_running_ready, process_memory,
    run_timed, wait_until, write_manifest,
)
from isolation import Isolation
from report import floor_notes, table, write_chart, write_json

TARGETS = {"run_d": 150, "rm_f": 100, "ps_many": 100, "pause_rss": 512}


def new_metrics(pods: int) -> dict[str, Metric]:
    t = TARGETS
    rows = [
        Metric("python", "python -c pass (reference)", "ms", floor_label=""),
        Metric("run_d", "run -d (returns)", "ms", t["run_d"],
               floor_label="floor.sh start, returns once its container is about to exec sleep"),
        Metric("run_ready", "run -d -> Running+Ready", "ms", t["run_d"],
               floor_label="floor.sh start until the sandbox's PID 1 is sleep"),
        Metric("inspect", "inspect (1 pod)", "ms"),
        Metric("rm_f", "rm -f -t 0", "ms", t["rm_f"],
               floor_label="floor.sh stop: SIGKILL, wait until its last process is exiting, rm -rf"),
        Metric("ps_none", "ps (0 pods)", "ms", floor_label="floor.sh ps: list sandbox dirs, kill -0 each"),
        Metric("ps_many", f"ps ({pods} pods)", "ms", t["ps_many"],
               floor_label=f"floor.sh ps with {pods} sandboxes"),
        Metric("run_many", f"run -d of {pods} pods (1 file)", "ms",
               floor_label=f"{pods} floor.sh start, one after another"),
        Metric("rm_many", f"rm -f of {pods} pods", "ms", floor_label=f"{pods} floor.sh stop, one after another"),
        Metric("pause_rss", "pause VmRSS", "KiB", t["pause_rss"]),
        Metric("pause_pss", "pause Pss", "KiB"),
        Metric("sup_rss", "supervisor VmRSS", "KiB"),
        Metric("sup_pss", "supervisor Pss", "KiB"),
        Metric("pod_rss", "per-pod overhead VmRSS", "KiB",
               floor_label="minipod: pause + supervisor; floor: the unshare parent"),
        Metric("pod_pss", "per-pod overhead Pss", "KiB",
               floor_label="minipod: pause + supervisor; floor: the unshare parent"),
    ]
    return {m.key: m for m in rows}


# ------------------------------------------------------------------ one cycle per side
def minipod_cycle(mp: MinipodSide, manifest: str, name: str, m: dict[str, Metric] | None) -> None:
    """run -d, until Running+Ready, memory, inspect, rm -f, ps with no pod."""
    run = mp.cli("run", "-d", manifest).check()
    ready_ns = wait_until(lambda: mp.is_running_ready(name))
    pause, sup = mp.overhead_pids(name)
    pause_mem, sup_mem = process_memory(pause), process_memory(sup)
    inspect = mp.cli("inspect", name).check()
    if not is_running_ready(json.loads(inspect.stdout)):
        raise BenchError(f"inspect {name}: not Running+Ready right after the library said so")
    rm = mp.cli("rm", "-f", "-t", "0", name).check()
    ps = mp.cli("ps").check()
    if m is None:
        return
    m["run_d"].minipod.append(run.wall_ms)
    m["run_ready"].minipod.append((ready_ns - run.start_ns) / 1e6)
    m["inspect"].minipod.append(inspect.wall_ms)
    m["rm_f"].minipod.append(rm.wall_ms)
    m["ps_none"].minipod.append(ps.wall_ms)
    m["pause_rss"].minipod.append(pause_mem["rss_kib"])
    m["pause_pss"].minipod.append(pause_mem["pss_kib"])
    m["sup_rss"].minipod.append(sup_mem["rss_kib"])
    m["sup_pss"].minipod.append(sup_mem["pss_kib"])
    m["pod_rss"].minipod.append(pause_mem["rss_kib"] + sup_mem["rss_kib"])
    m["pod_pss"].minipod.append(pause_mem["pss_kib"] + sup_mem["pss_kib"])


def floor_cycle(floor: FloorSide, name: str, m: dict[str, Metric] | None) -> None:
    """The same cycle with public tools."""
    start = floor.start(name).check()
    ready_ns = wait_until(lambda: floor.is_running(name))
    mem = process_memory(floor.unshare_pid(name))
    stop = floor.stop(name).check()
    ps = floor.ps().check()
    if m is None:
        return
    m["run_d"].floor.append(start.wall_ms)
    m["run_ready"].floor.append((ready_ns - start.start_ns) / 1e6)
    m["rm_f"].floor.append(stop.wall_ms)
    m["ps_none"].floor.append(ps.wall_ms)
    m["pod_rss"].floor.append(mem["rss_kib"])
    m["pod_pss"].floor.append(mem["pss_kib"])


def many_pods(mp: MinipodSide, floor: FloorSide, iso: Isolation, pods: int, runs: int,
              m: dict[str, Metric]) -> None:
    """``ps`` with ``pods`` pods running on each side, alternating."""
    names = [f"many-{i:02d}" for i in range(1, pods + 1)]
    manifest = write_manifest(iso.path(f"many-{pods}.json"), names)
    run = mp.cli("run", "-d", manifest).check()
    m["run_many"].minipod.append(run.wall_ms)
    wait_until(lambda: all(is_running_ready(p.object) for p in mp.runtime.pods()) and
               len(mp.runtime.pods()) == pods, timeout=30)
    for name in names:
        mp.overhead_pids(name)  # remembered for the leak check
    m["run_many"].floor.append(sum(floor.start(n).check().wall_ms for n in names))
    for name in names:
        floor.unshare_pid(name)
    for _ in range(runs):
        ps = mp.cli("ps").check()
        if len(ps.stdout.strip().splitlines()) != pods + 1:
            raise BenchError(f"minipod ps listed {len(ps.stdout.splitlines()) - 1} pods, not {pods}")
        m["ps_many"].minipod.append(ps.wall_ms)
        m["ps_many"].floor.append(floor.ps().check().wall_ms)
    m["rm_many"].minipod.append(mp.cli("rm", "-f", "-t", "0", *names).check().wall_ms)
    m["rm_many"].floor.append(sum(floor.stop(n).check().wall_ms for n in names))


def measure(mp: MinipodSide, floor: FloorSide, iso: Isolation, runs: int, pods: int) -> dict[str, Metric]:
    m = new_metrics(pods)
    manifest = write_manifest(iso.path("one.json"), ["bench-one"])
    python = [sys.executable, "-c", "pass"]
    # Warm-up, not counted: page cache, the library import in this process.
    run_timed(python).check()
    minipod_cycle(mp, manifest, "bench-one", None)
    floor_cycle(floor, "bench-one", None)
    for i in range(runs):
        print(f"\r  run {i + 1}/{runs}", end="", flush=True)
        m["python"].minipod.append(run_timed(python).check().wall_ms)
        minipod_cycle(mp, manifest, "bench-one", m)
        floor_cycle(floor, "bench-one", m)
    print(f"\r  {pods} pods on each side, ps x{runs}", flush=True)
    many_pods(mp, floor, iso, pods, runs, m)
    return m


# ------------------------------------------------------------------ set-up
def compile_bytecode() -> None:
    """Measure running, not compiling: this environment may set
    PYTHONDONTWRITEBYTECODE, so stale or missing .pyc files would make every
    CLI start compile minipod from source."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO_DIR, "minipod")], check=True,
                   stdout=subprocess.DEVNULL)


def import_image(mp: MinipodSide, iso: Isolation) -> str:
    """Build the busybox rootfs and import it into the bench root; the floor
    uses the same directory as its overlay's lower layer."""
    rootfs = iso.path("busybox-rootfs")
    build = run_timed(["sh", os.path.join(REPO_DIR, "examples", "busybox-rootfs.sh"), rootfs])
    build.check()
    mp.cli("image", "import", rootfs, IMAGE).check()
    return rootfs


def host_facts() -> dict:
    def first(path: str, prefix: str) -> str | None:
        try:
            with open(path) as f:
                return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith(prefix)), None)
        except OSError:
            return None

    head = subprocess.run(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {
        "kernel": platform.release(), "cpus": os.cpu_count(), "cpu": first("/proc/cpuinfo", "model name"),
        "python": platform.python_version(), "minipod_commit": head.stdout.strip() or None,
    }


def loadavg() -> list[float]:
    return list(os.getloadavg())


def _interrupt(signum, frame):
    raise KeyboardInterrupt


# ------------------------------------------------------------------ main
def parse_args(argv):
    p = argparse.ArgumentParser(description="minipod core benchmark (needs root)")
    p.add_argument("--runs", type=int, default=10, help="measured runs per side (default 10)")
    p.add_argument("--pods", type=int, default=20, help="pods running during the ps measurement (default 20)")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "bench", "results"), help="where results go")
    args = p.parse_args(argv)
    if args.runs < 1 or args.pods < 1:
        p.error("--runs and --pods must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (sudo): it runs real pods", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    started = datetime.datetime.now()
    iso = Isolation()
    mp = floor = None
    metrics = None
    load_before = loadavg()
    print(f"minipod core benchmark: {args.runs} runs per side, root {iso.root}, cgroup parent {iso.cgroup_parent}",
          flush=True)

    def work():
        nonlocal mp, floor, metrics
        compile_bytecode()
        mp = MinipodSide(iso.env(), iso.root, iso.cgroup_parent)
        rootfs = import_image(mp, iso)
        floor = FloorSide(iso.path("floor"), rootfs)
        metrics = measure(mp, floor, iso, args.runs, args.pods)

    def cleanup():
        pids = {**(mp.pids_seen if mp else {}), **(floor.pids_seen if floor else {})}
        return iso.cleanup(mp, floor), iso.leftovers(pids)

    code, error, problems, left = guarded(work, cleanup)
    if error:
        return code
    rows = [mt.to_dict() for mt in metrics.values()]
    result = {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.datetime.now() - started).total_seconds(), 1),
        "runs": args.runs, "pods": args.pods, "order": "alternating A B (minipod, floor) run by run",
        "host": host_facts(), "loadavg_before": load_before, "loadavg_after": loadavg(),
        "isolation": {"root": iso.root, "cgroup_parent": iso.cgroup_parent},
        "clean": not problems and not left, "left_behind": problems + left,
        "rows": rows,
    }
    stem = os.path.join(args.out, "core-" + started.strftime("%Y%m%d-%H%M%S"))
    print()
    print(table(rows))
    print(floor_notes(rows))
    print(f"\n  {result['seconds']} s, load {load_before[0]:.2f} -> {result['loadavg_after'][0]:.2f}, "
          f"{'clean' if result['clean'] else 'NOT CLEAN'}")
    print(f"  {write_json(result, stem + '.json')}")
    chart = write_chart(result, stem + ".png")
    print(f"  {chart}" if chart else "  (no chart: matplotlib is not installed)")
    return 0 if result["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
