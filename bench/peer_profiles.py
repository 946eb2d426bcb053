"""Where minipod's time and memory go, measured in the comparison's run
(``compare.py``) so that a missed target comes with a profile: cProfile
dumps summed up, ``python -X importtime`` parsed, and a pod's memory split
into anonymous and file-backed pages next to fresh interpreters.

The parsing is unit-tested in ``test_peers_bench.py``.
"""

from __future__ import annotations

import os
import pstats
import re
import sys
import time

from core import REPO_DIR, BenchError, parse_kib, run_timed, wait_until


def parse_importtime(text: str, top: int = 8) -> dict:
    """``python -X importtime`` output: the total of every module's own
    time, and the heaviest top-level imports by cumulative time (ms)."""
    entries = []
    for line in text.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            own, cum, indent, name = found.groups()
            entries.append((int(own), int(cum), (len(indent) - 1) // 2, name))
    top_level = sorted((e for e in entries if e[2] == 0), key=lambda e: -e[1])[:top]
    return {"modules": len(entries), "total_ms": sum(e[0] for e in entries) / 1000,
            "top": [{"module": e[3], "cumulative_ms": e[1] / 1000} for e in top_level]}


def top_functions(stats_path: str, top: int = 15) -> dict:
    """A cProfile dump, summed up: minipod's own functions with the most
    cumulative time (what its steps cost, callees included), and the
    functions anywhere with the most time of their own (where the time is
    really spent: imports, waits, syscalls)."""
    stats = pstats.Stats(stats_path)
    entries = []
    for (filename, line, func), (_cc, calls, own, cum, _callers) in stats.stats.items():
        inside = filename.startswith(os.path.join(REPO_DIR, "minipod"))
        name = f"{os.path.relpath(filename, REPO_DIR) if inside else os.path.basename(filename)}:{line}({func})"
        entries.append({"function": name, "calls": calls, "own_ms": round(own * 1000, 2),
                        "cumulative_ms": round(cum * 1000, 2), "minipod": inside})
    total = max((e["cumulative_ms"] for e in entries), default=0.0)
    mine = sorted((e for e in entries if e["minipod"]), key=lambda e: -e["cumulative_ms"])[:top]
    own = sorted(entries, key=lambda e: -e["own_ms"])[:top]
    return {"total_ms": total, "minipod_cumulative": mine, "own_time": own}


# What a Python process costs before minipod does anything: the floor of a
# Python supervisor's memory, measured in fresh interpreters.
REFERENCE_IMPORTS = {
    "python, nothing imported": "pass",
    "python + minipod.supervisor": "import minipod.supervisor",
    "python + the modules run -d imports": "import minipod.cli, minipod.runtime, minipod.supervisor, "
                                           "minipod.network, minipod.spec.parse",
}


def rollup(pid: int) -> dict:
    """Pss and its anonymous and file-backed parts (KiB) from smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError as exc:
        raise BenchError(f"memory of pid {pid}: {exc.strerror}") from None
    return {key: parse_kib(text, key) for key in ("Rss", "Pss", "Pss_Anon", "Pss_File")}


def memory_profile(env: dict, pause: int, supervisor: int) -> dict:
    """Where a minipod pod's memory goes: the pause and the supervisor split
    into anonymous (the interpreter's heap: modules, objects) and file-backed
    pages, and the Pss of fresh interpreters that import nothing, the
    supervisor, or what ``run -d`` imports (the supervisor is forked from
    it)."""
    out = {"pause": rollup(pause), "supervisor": rollup(supervisor), "reference_pss_kib": {}}
    for label, code in REFERENCE_IMPORTS.items():
        probe = code + "\nimport re\nprint(re.search(r'^Pss:\\s+(\\d+)', open('/proc/self/smaps_rollup').read()," \
                       " re.M).group(1))"
        res = run_timed([sys.executable, "-c", probe], env).check()
        out["reference_pss_kib"][label] = int(res.stdout.strip())
    return out


def profile_minipod(mp, out_dir: str, path: str, name: str) -> dict:
    """Where minipod's own time goes, with cProfile (``profile_pod.py``):
    the CLI of ``run -d``, the supervisor until it reports the containers
    started, ``exec`` and ``rm -f`` (CLIs), and the supervisor from its
    report to its end (the stop and teardown; its idle wait shows as the
    event loop's poll)."""
    os.makedirs(out_dir, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    run_timed([sys.executable, os.path.join(here, "profile_pod.py"), out_dir, "run", "-d", path], mp.env).check()
    wait_until(lambda: mp.is_running_ready(name), timeout=30)
    mp.overhead_pids(name)
    for dump, args in (("exec.prof", ("exec", name, "--", "true")), ("rm.prof", ("rm", "-f", name))):
        run_timed([sys.executable, os.path.join(here, "profile_pod.py"), f"--dump={dump}", out_dir, *args],
                  mp.env).check()
    rest = os.path.join(out_dir, "supervisor-rest.prof")
    wait_until(lambda: os.path.exists(rest), timeout=30, interval=0.01)
    time.sleep(0.1)  # the dump is written, then closed: let it finish
    return {what: top_functions(os.path.join(out_dir, dump)) for what, dump in (
        ("run -d: CLI", "cli.prof"), ("run -d: supervisor until started", "supervisor-start.prof"),
        ("exec: CLI", "exec.prof"), ("rm -f: CLI", "rm.prof"),
        ("supervisor after start (its life, stop, teardown)", "supervisor-rest.prof"))}
