"""The cgroup benchmark (issue 4's "Speed"): how long minipod takes to set up
one container's cgroup and to tear down a pod's cgroup, side by side with
the same kernel work done by hand with plain ``os`` calls (the floor).

    sudo .venv/bin/python bench/cgroups.py [--runs 50] [--warmup 3] [--out DIR]

Both rows are timed in this process with ``time.perf_counter_ns``:

1. container set-up: ``pod.child("app").create()`` and ``apply`` of a
   Burstable container's ``container_limits`` — what the supervisor does for
   each container (target 2 ms);
2. pod teardown, with a ``sleep`` in each of the pod's three cgroups (pause
   and two containers): ``kill_all(SIGKILL)`` then ``destroy()``, as
   ``minipod rm`` does (target 20 ms).

Everything lives in a private cgroup parent ``minipod-bench-<hex>`` that is
removed at the end, also on Ctrl-C or an error. Prints a table and writes
``cgroups-<date>-<time>.json`` under --out. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time

from core import REPO_DIR, BenchError, Metric, guarded, start_time
from isolation import Isolation
from report import print_and_save
from run import host_facts, loadavg

# The measured code is minipod's, from this checkout.
if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)

SETUP_TARGET_MS = 2.0
TEARDOWN_TARGET_MS = 20.0
# A Burstable container: requests below limits, both CPU and memory, so every
# kind of limit file is written (shares/weight, quota, memory limit, swap).
BURSTABLE = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}
# The pod's cgroups in the teardown row, one sleeping process in each.
POD_CHILDREN = ("pause", "app", "sidecar")
CONTAINER = "app"
# A cgroup whose last process was killed stays busy (EBUSY) for a moment;
# the floor retries this often, and gives up (an error) after that long.
RMDIR_RETRY_S = 0.0005
RMDIR_GIVE_UP_S = 5.0


# ------------------------------------------------------------------ pure helpers
def parse_args(argv):
    p = argparse.ArgumentParser(description="minipod cgroup benchmark (needs root)")
    p.add_argument("--runs", type=int, default=50, help="measured samples per side and row (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured pairs before each row (default 3)")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "bench", "results"), help="where results go")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be at least 1 and --warmup at least 0")
    return args


def distinct_hierarchies(roots: list[str], realpath=os.path.realpath) -> list[str]:
    """The hierarchy mount points with duplicates (two names, one hierarchy)
    dropped, order kept: the floor makes each directory once."""
    seen, out = set(), []
    for root in roots:
        real = realpath(root)
        if real not in seen:
            seen.add(real)
            out.append(root)
    return out


def resolve_writes(writes, hierarchy_of, exists) -> list[tuple[str, str, str]]:
    """The floor's ``(hierarchy root, file, value)`` list from minipod's
    ``(controller, file, value)`` writes: the same files with the same
    values, so both sides ask the kernel for exactly the same limits.
    ``hierarchy_of`` maps a controller to its hierarchy's mount point (None:
    not on this host); ``exists(root, file)`` says whether a cgroup there has
    that file — one the host lacks (swap accounting off) is left out, as
    ``apply`` skips it."""
    out = []
    for controller, name, value in writes:
        root = hierarchy_of(controller)
        if root is not None and exists(root, name):
            out.append((root, name, value))
    return out


def paired_ratios(a: list[float], b: list[float]) -> list[float]:
    """a[i] / b[i] for each A-B pair (one sample each, taken back to back)."""
    return [x / y for x, y in zip(a, b) if y]


def summary(rows: dict[str, dict], metrics: dict[str, Metric]) -> dict:
    """Per row: the median, its verdict, the ratio of the medians and the
    median of the per-pair ratios (robust to drift during the run)."""
    out = {}
    for key, row in rows.items():
        if key not in COMPARED:
            continue
        pairs = paired_ratios(metrics[key].minipod, metrics[key].floor)
        out[key] = {
            "median_ms": row["minipod"]["median"], "target_ms": row["target"], "verdict": row["verdict"],
            "floor_median_ms": (row["floor"] or {}).get("median"),
            "ratio_of_medians": row["ratio"],
            "median_of_pair_ratios": statistics.median(pairs) if pairs else None,
        }
    return out


def summary_lines(s: dict) -> list[str]:
    lines = []
    for key, v in s.items():
        pair = v["median_of_pair_ratios"]
        lines.append(f"  {key}: {v['median_ms']:.2f} ms (target <= {v['target_ms']:g} ms): {v['verdict']}; "
                     f"floor {v['floor_median_ms']:.2f} ms, ratio of medians {v['ratio_of_medians']:.1f}x, "
                     f"median of pair ratios {pair:.1f}x")
    return lines


def new_metrics() -> dict[str, Metric]:
    return {
        "container_setup": Metric(
            "container_setup", "container cgroup set-up (Burstable)", "ms", SETUP_TARGET_MS,
            floor_label="mkdir in each hierarchy (+ cpuset copied from the parent) and the same limit "
                        "files written, with plain os calls"),
        "pod_teardown": Metric(
            "pod_teardown", "pod cgroup teardown (3 processes)", "ms", TEARDOWN_TARGET_MS,
            floor_label="os.kill SIGKILL of the 3 known pids, then rmdir deepest first in each "
                        "hierarchy, retried every 0.5 ms on EBUSY"),
        # The same teardown samples, split: where minipod's time goes.
        "teardown_kill_all": Metric("teardown_kill_all", "  of which kill_all", "ms"),
        "teardown_destroy": Metric("teardown_destroy", "  of which destroy", "ms"),
    }


# The rows with a target and a floor, which the summary is about.
COMPARED = ("container_setup", "pod_teardown")


# ------------------------------------------------------------------ the floor
class HandFloor:
    """The timed part of each row done again with plain ``os`` calls on
    known paths: the least the kernel needs. (Its pods are made, untimed,
    with minipod's own code, so both sides start from the same tree.)"""

    def __init__(self, roots: list[str], cpuset_root: str | None, writes: list[tuple[str, str, str]]):
        self.roots = distinct_hierarchies(roots)
        self.cpuset_root = cpuset_root
        self.writes = writes  # (hierarchy root, file, value), from resolve_writes

    @staticmethod
    def cpuset_values(parent: str) -> list[tuple[str, str]]:
        values = []
        for name in ("cpuset.cpus", "cpuset.mems"):
            with open(os.path.join(parent, name)) as f:
                values.append((name, f.read().strip()))
        return values

    def plan_container(self, relpath: str) -> tuple[list[str], list[tuple[str, str]]]:
        """(directories to make, (file, value) to write) for a container
        cgroup at ``relpath``, worked out before the clock starts: a new
        cpuset has no CPUs and no memory nodes, so they are written as
        minipod does, copied from the pod's cpuset."""
        dirs = [os.path.join(root, relpath) for root in self.roots]
        files = []
        if self.cpuset_root:
            path = os.path.join(self.cpuset_root, relpath)
            files += [(os.path.join(path, name), value) for name, value in self.cpuset_values(os.path.dirname(path))]
        files += [(os.path.join(root, relpath, name), value) for root, name, value in self.writes]
        return dirs, files

    @staticmethod
    def make_container(dirs: list[str], files: list[tuple[str, str]]) -> None:
        """The timed floor of a container set-up."""
        for path in dirs:
            os.mkdir(path, 0o755)
        for path, value in files:
            write(path, value)

    def teardown(self, pod_relpath: str, children, pids: list[int]) -> None:
        """The timed floor of a pod teardown: the pids are known, so no
        cgroup.procs is read, nothing is frozen, nothing waited on but the
        rmdir itself."""
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for relpath in [f"{pod_relpath}/{child}" for child in children] + [pod_relpath]:
            for root in self.roots:
                rmdir_when_free(os.path.join(root, relpath))


def write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def rmdir_when_free(path: str) -> None:
    """rmdir, retried while the kernel still tears the killed processes down."""
    deadline = time.monotonic() + RMDIR_GIVE_UP_S
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise BenchError(f"rmdir {path}: {exc.strerror}") from None
        time.sleep(RMDIR_RETRY_S)


# ------------------------------------------------------------------ the bench
class CgroupBench:
    """Both sides in one private cgroup parent; remembers every process it
    starts so the clean-up can stop and reap them by pid."""

    def __init__(self, parent: str):
        from minipod.cgroups import detect_layout

        self.parent = parent
        self.layout = detect_layout()
        self.floor = None  # once the parent exists (which files it has decides the floor's writes)
        self.procs: dict[int, subprocess.Popen] = {}
        self.pids_seen: dict[int, int | None] = {}  # pid -> start time, for the leak check

    def make_parent(self) -> None:
        """The private parent, made (untimed) with minipod's code for both
        sides; then the floor's list of limit files, probed in it."""
        from minipod.cgroups import hierarchy_roots, open_cgroup
        from minipod.cgroups.limits import container_limits

        parent = open_cgroup(self.parent, layout=self.layout, delegate=True)
        parent.create()

        def hierarchy_of(controller):
            directory = parent.controller_dir(controller)
            return directory[: -len(self.parent) - 1] if directory else None

        writes = resolve_writes(container_limits(BURSTABLE, parent.kind), hierarchy_of,
                                lambda root, name: os.path.exists(os.path.join(root, self.parent, name)))
        cpuset_root = self.layout.mounts.get("cpuset") if parent.kind == "v1" else None
        self.floor = HandFloor(hierarchy_roots(self.layout), cpuset_root, writes)

    def pod(self, pod_id: str):
        from minipod.cgroups import open_pod_cgroup

        return open_pod_cgroup(self.parent, pod_id, layout=self.layout)

    def spawn_sleep(self) -> int:
        proc = subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs[proc.pid] = proc
        self.pids_seen[proc.pid] = start_time(proc.pid)
        return proc.pid

    def reap(self, pids: list[int]) -> None:
        for pid in pids:
            try:
                self.procs[pid].wait(5)
            except subprocess.TimeoutExpired:
                raise BenchError(f"sleep {pid} still alive 5 s after its teardown") from None
            del self.procs[pid]

    # -------------------------------------------------------------- container set-up
    def setup_minipod(self, n: int) -> dict[str, float]:
        from minipod.cgroups.limits import container_limits

        pod = self.pod(f"setup-m{n}")
        pod.create()
        try:
            start = time.perf_counter_ns()
            cg = pod.child(CONTAINER)
            cg.create()
            warnings = cg.apply(container_limits(BURSTABLE, cg.kind))
            took = (time.perf_counter_ns() - start) / 1e6
        finally:
            pod.destroy()
        if warnings:
            raise BenchError(f"limits not all applied: {'; '.join(warnings)}")
        return {"container_setup": took}

    def setup_floor(self, n: int) -> float:
        pod = self.pod(f"setup-f{n}")
        pod.create()
        try:
            dirs, files = self.floor.plan_container(f"{pod.relpath}/{CONTAINER}")
            start = time.perf_counter_ns()
            self.floor.make_container(dirs, files)
            took = (time.perf_counter_ns() - start) / 1e6
        finally:
            pod.destroy()
        return took

    # -------------------------------------------------------------- pod teardown
    def _pod_with_sleeps(self, pod_id: str):
        """A pod cgroup with one sleep in each of its children (untimed)."""
        pod = self.pod(pod_id)
        pod.create()
        pids = []
        for name in POD_CHILDREN:
            child = pod.child(name)
            child.create()
            pids.append(self.spawn_sleep())
            child.add(pids[-1])
        return pod, pids

    def teardown_minipod(self, n: int) -> dict[str, float]:
        """The teardown in ms, whole and split."""
        pod, pids = self._pod_with_sleeps(f"teardown-m{n}")
        start = time.perf_counter_ns()
        pod.kill_all(signal.SIGKILL)
        killed = time.perf_counter_ns()
        pod.destroy()
        end = time.perf_counter_ns()
        self.reap(pids)
        return {"pod_teardown": (end - start) / 1e6, "teardown_kill_all": (killed - start) / 1e6,
                "teardown_destroy": (end - killed) / 1e6}

    def teardown_floor(self, n: int) -> float:
        pod, pids = self._pod_with_sleeps(f"teardown-f{n}")
        start = time.perf_counter_ns()
        self.floor.teardown(pod.relpath, POD_CHILDREN, pids)
        took = (time.perf_counter_ns() - start) / 1e6
        self.reap(pids)
        return took

    # -------------------------------------------------------------- clean-up
    def stop_processes(self) -> list[str]:
        """SIGKILL and reap, by pid, every sleep this run started that is
        not reaped yet; a line per one that was still alive."""
        problems = []
        for pid, proc in list(self.procs.items()):
            if proc.poll() is None:
                problems.append(f"sleep {pid} still alive at clean-up: killed")
                proc.kill()
            proc.wait()
            del self.procs[pid]
        return problems


def measure(bench: CgroupBench, runs: int, warmup: int, m: dict[str, Metric]) -> None:
    """Each row A B A B …: minipod then the floor, back to back, so a
    machine that drifts moves both sides; the warm-up pairs are dropped.
    minipod's side returns ms per metric key (its row and any split of it),
    the floor's the ms of its row."""
    rows = (("container_setup", bench.setup_minipod, bench.setup_floor),
            ("pod_teardown", bench.teardown_minipod, bench.teardown_floor))
    for key, mine, floor in rows:
        for n in range(warmup + runs):
            mine_ms, floor_ms = mine(n), floor(n)
            if n < warmup:
                continue
            for metric, value in mine_ms.items():  # the row, and any split of it
                m[metric].minipod.append(value)
            m[key].floor.append(floor_ms)
        print(f"  {m[key].label}: {runs} pairs done", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None, tag: str | None = None) -> int:
    """``tag`` names the run's cgroup parent (tests pass their own)."""
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (sudo): it makes cgroups and moves processes into them", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    started = datetime.datetime.now()
    iso = Isolation(tag=tag or secrets.token_hex(4))
    metrics = new_metrics()
    bench = None
    load_before = loadavg()
    print(f"minipod cgroup benchmark: {args.runs} runs (+{args.warmup} warm-up), "
          f"cgroup parent {iso.cgroup_parent}", flush=True)
    def work():
        nonlocal bench
        bench = CgroupBench(iso.cgroup_parent)
        bench.make_parent()
        measure(bench, args.runs, args.warmup, metrics)

    def cleanup():
        problems = bench.stop_processes() if bench is not None else []
        problems += iso.cleanup()  # the parent and everything below it, the temp dir
        return problems, iso.leftovers(bench.pids_seen if bench else {})

    code, error, problems, left = guarded(work, cleanup)
    if error:
        return code
    rows = {k: mt.to_dict() for k, mt in metrics.items() if mt.minipod}
    result = {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.datetime.now() - started).total_seconds(), 1),
        "runs": args.runs, "warmup": args.warmup,
        "order": "alternating A B sample by sample (minipod, then the floor), in-process perf_counter_ns",
        "container_resources": BURSTABLE, "pod_children": list(POD_CHILDREN),
        "host": {**host_facts(), "cgroup_layout": bench.layout.kind, "hierarchies": bench.floor.roots if bench.floor else None},
        "loadavg_before": load_before, "loadavg_after": loadavg(),
        "isolation": {"cgroup_parent": iso.cgroup_parent},
        "clean": not problems and not left, "left_behind": problems + left,
        "summary": summary(rows, metrics),
        "rows": list(rows.values()),
    }
    return print_and_save(result, summary_lines(result["summary"]), "cgroups", args.out, started)


if __name__ == "__main__":
    sys.exit(main())
