"""Measuring pieces of the core benchmark: timed commands, memory of a
process, summaries, and the two sides compared (minipod and the floor).

Only public tools: ``time.perf_counter_ns`` around ``subprocess``, the
child's own rusage from ``os.wait4``, and ``/proc`` for memory. The pure
parts (parsing, summaries, verdicts) are unit-tested in ``test_bench.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
FLOOR_SCRIPT = os.path.join(BENCH_DIR, "floor.sh")
IMAGE = "localhost/busybox:demo"


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


# ------------------------------------------------------------------ timing
@dataclass
class Sample:
    """One command, timed from just before spawn to its reaping."""

    argv: list[str]
    start_ns: int  # perf_counter_ns just before the spawn
    wall_ms: float
    cpu_ms: float  # user + system of the command (and children it waited for)
    maxrss_kib: int
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> "Sample":
        if self.returncode != 0:
            tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-3:]
            raise BenchError(f"{' '.join(self.argv[-4:])}: exit {self.returncode}: " + " | ".join(tail))
        return self


# The command being timed, if any: after Ctrl-C the clean-up must first let
# it end, or a `run -d` still starting pods would race the removal.
_in_flight: subprocess.Popen | None = None


def guarded(work, cleanup) -> tuple[int, str | None, list[str], list[str]]:
    """Run a bench's measuring part, then always its clean-up.

    Ctrl-C, a BenchError or a bug end ``work()`` with an exit code and a
    message rather than an exception; ``cleanup()`` returns ``(problems,
    left_behind)`` and runs with SIGINT and SIGTERM ignored, so a second
    Ctrl-C cannot cut it short (the commands it runs inherit that too).
    Prints what clean-up reports. Returns ``(code, error, problems, left)``."""
    import signal
    import traceback

    code, error = 0, None
    problems: list[str] = []
    left: list[str] = []
    try:
        work()
    except KeyboardInterrupt:
        code, error = 130, "interrupted"
    except BenchError as exc:
        code, error = 1, str(exc)
    except Exception:  # a bug here or in minipod: show where, then still clean up
        traceback.print_exc()
        code, error = 1, "stopped by an unexpected error (traceback above)"
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\n  cleaning up", flush=True)
        try:
            problems, left = cleanup()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for line in problems + [f"left behind: {x}" for x in left]:
        print(f"bench: {line}", file=sys.stderr)
    if error:
        print(f"bench: {error}", file=sys.stderr)
    return code, error, problems, left


def run_timed(argv: list[str], env: dict | None = None) -> Sample:
    """Run ``argv`` to completion and time it. Output goes to temporary files,
    not pipes, so a daemon that inherits them can never hold the wait open;
    ``os.wait4`` gives the command's own CPU time and peak RSS."""
    global _in_flight
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter_ns()
        proc = _in_flight = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter_ns() - start) / 1e6
        _in_flight = None
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Sample(argv, start, wall, (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_maxrss,
                      proc.returncode, out.read().decode(errors="replace"),
                      err.read().decode(errors="replace"))


def finish_in_flight(timeout: float = 60.0) -> str | None:
    """Let an interrupted command end by itself (a `run -d` that got Ctrl-C
    undoes its own work; one that did not finishes what it started), then
    stop it if it will not. Returns a line when it had to be killed."""
    global _in_flight
    proc, _in_flight = _in_flight, None
    if proc is None or proc.poll() is not None:
        return None
    try:
        proc.wait(timeout)
        return None
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"killed {' '.join(proc.args[-3:])} after {timeout:g}s"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.001) -> float:
    """Poll ``predicate`` until true; return ``perf_counter_ns`` of the first
    true answer. The interval is short so the poll adds at most ~1 ms."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.perf_counter_ns()
        if time.monotonic() > deadline:
            raise BenchError(f"condition not met within {timeout:g}s")
        time.sleep(interval)


# ------------------------------------------------------------------ memory
def parse_kib(text: str, key: str) -> int | None:
    """The value of a ``Key:   123 kB`` line of /proc/PID/status or
    smaps_rollup, in KiB (the kernel's "kB" is KiB)."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == key:
            parts = rest.split()
            if parts and parts[0].isdigit():
                return int(parts[0])
    return None


def process_memory(pid: int) -> dict:
    """VmRSS (resident pages, shared ones counted whole) and Pss (shared
    pages divided among their users: what this process really costs)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/smaps_rollup") as f:
            rollup = f.read()
    except OSError as exc:
        raise BenchError(f"memory of pid {pid}: {exc.strerror}") from None
    return {"rss_kib": parse_kib(status, "VmRSS"), "pss_kib": parse_kib(rollup, "Pss")}


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (field 22 of
    /proc/PID/stat): with the pid, it names one process even if the pid is
    reused later."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None = None) -> bool:
    """True for a live process (the same one, when ``started`` is given); a
    zombie, dead but not yet reaped by PID 1 (slow on this host), is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    if fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


# ------------------------------------------------------------------ summaries
def summarize(values: list[float]) -> dict:
    """Median, min and max of samples (the median because one scheduling
    hiccup on a shared 2-core VM must not move the result)."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "samples": []}
    return {"n": len(values), "median": statistics.median(values), "min": min(values),
            "max": max(values), "samples": [round(v, 3) for v in values]}


def verdict(median: float | None, target: float | None) -> str:
    """PASS when the median meets the target; "-" when there is no target."""
    if target is None or median is None:
        return "-"
    return "PASS" if median <= target else "MISS"


def ratio(a: float | None, b: float | None) -> float | None:
    """minipod / floor; None when either side is missing or the floor is 0."""
    if a is None or not b:
        return None
    return a / b


@dataclass
class Metric:
    """One row of the result table."""

    key: str
    label: str
    unit: str  # "ms" or "KiB"
    target: float | None = None
    minipod: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    floor_label: str = ""

    def to_dict(self) -> dict:
        mine, peer = summarize(self.minipod), summarize(self.floor)
        return {
            "key": self.key, "label": self.label, "unit": self.unit, "target": self.target,
            "minipod": mine, "floor": peer if self.floor else None, "floor_label": self.floor_label or None,
            "ratio": ratio(mine["median"], peer["median"]),
            "verdict": verdict(mine["median"], self.target),
        }


# ------------------------------------------------------------------ the two sides
def pod_manifest(name: str) -> dict:
    """The benchmark's pod: one busybox container sleeping."""
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": IMAGE, "command": ["sleep", "3600"]}]},
    }


def write_manifest(path: str, names: list[str]) -> str:
    """One JSON document per pod (JSON is YAML, and one file starts them all)."""
    with open(path, "w") as f:
        f.write("\n---\n".join(json.dumps(pod_manifest(n)) for n in names) + "\n")
    return path


class MinipodSide:
    """minipod driven through its CLI (``python -m minipod``), as a user
    would, with a private root and cgroup parent in the environment."""

    def __init__(self, env: dict, root: str, cgroup_parent: str):
        self.env = env
        self.root = root
        self.cgroup_parent = cgroup_parent
        self.python = sys.executable
        self._runtime = None
        self.pids_seen: dict[int, int | None] = {}  # pid -> start time, for the leak check

    def cli(self, *args: str) -> Sample:
        return run_timed([self.python, "-m", "minipod", *args], self.env)

    @property
    def runtime(self):
        """The library (same code as ``inspect``), in this process, to poll a
        pod's status at ~1 ms cost instead of a 100 ms CLI start."""
        if self._runtime is None:
            import minipod

            self._runtime = minipod.Runtime(root=self.root, cgroup_parent=self.cgroup_parent)
        return self._runtime

    def pod_object(self, name: str) -> dict | None:
        for pod in self.runtime.pods():
            if pod.name == name:
                return pod.object
        return None

    def is_running_ready(self, name: str) -> bool:
        obj = self.pod_object(name)
        return obj is not None and is_running_ready(obj)

    def overhead_pids(self, name: str) -> tuple[int, int]:
        """(pausePid, supervisorPid) from the pod's status."""
        info = (self.pod_object(name) or {}).get("status", {}).get("minipod", {})
        pause, sup = info.get("pausePid"), info.get("supervisorPid")
        if not pause or not sup:
            raise BenchError(f"pod {name}: no pausePid/supervisorPid in its status")
        for pid in (pause, sup):
            self.pids_seen.setdefault(pid, start_time(pid))
        return pause, sup

    def names(self) -> list[str]:
        """Every pod under the bench root, running or not."""
        sample = self.cli("ps", "-a", "-o", "json")
        if sample.returncode != 0:
            return []
        try:
            return [p["metadata"]["name"] for p in json.loads(sample.stdout or "[]")]
        except (ValueError, KeyError, TypeError):
            return []


def is_running_ready(pod: dict) -> bool:
    """What the benchmark calls Running: phase Running and condition Ready."""
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return status.get("phase") == "Running" and ready


class FloorSide:
    """The same pod shape from public tools (``floor.sh``): unshare, an
    overlay, pivot_root, sleep."""

    def __init__(self, base: str, lower: str):
        self.base = base
        self.lower = lower
        os.makedirs(base, exist_ok=True)
        self.pids_seen: dict[int, int | None] = {}  # pid -> start time, for the leak check

    def dir(self, name: str) -> str:
        return os.path.join(self.base, name)

    def start(self, name: str) -> Sample:
        return run_timed(["/bin/bash", FLOOR_SCRIPT, "start", self.dir(name), self.lower, name])

    def stop(self, name: str) -> Sample:
        return run_timed(["/bin/bash", FLOOR_SCRIPT, "stop", self.dir(name)])

    def ps(self) -> Sample:
        return run_timed(["/bin/bash", FLOOR_SCRIPT, "ps", self.base])

    def unshare_pid(self, name: str) -> int:
        with open(os.path.join(self.dir(name), "pid")) as f:
            pid = int(f.read())
        self.pids_seen.setdefault(pid, start_time(pid))
        return pid

    def workload_pid(self, name: str) -> int | None:
        """PID (on the host) of the sandbox's PID 1, the unshare child."""
        pid = self.unshare_pid(name)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def is_running(self, name: str) -> bool:
        """Running once the sandbox's PID 1 has exec'd ``sleep``."""
        pid = self.workload_pid(name)
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip() == "sleep"
        except OSError:
            return False

    def names(self) -> list[str]:
        try:
            return sorted(os.listdir(self.base))
        except OSError:
            return []
