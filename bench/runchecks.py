"""What the bench tests check of a real run of a benchmark: it is started
as a user would start it, its private names are read from the first line
it prints, and afterwards nothing of the run may be left on the host."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

from core import BENCH_DIR, REPO_DIR

# The first line of a benchmark with pods: its isolation, and podman's
# network when it runs podman too (compare.py).
_HEADER = re.compile(r"root (\S+), cgroup parent (\S+), bridge (\S+), subnet (\S+)"
                     r"(?:, podman bridge (\S+), subnet (\S+))?")


def start_bench(script: str, *args: str) -> subprocess.Popen:
    """``bench/SCRIPT ARGS…`` as a child, its output piped."""
    return subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, script), *args], cwd=REPO_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_names(header: str) -> dict:
    """The run's root, cgroup parent, bridge and subnet (and podman's bridge
    and subnet when the header names them)."""
    found = _HEADER.search(header)
    assert found, header
    keys = ("root", "cgroup_parent", "bridge", "subnet", "podman_bridge", "podman_subnet")
    return {k: v for k, v in zip(keys, found.groups()) if v is not None}


def assert_nothing_left(names: dict) -> None:
    """No directory, mount, cgroup, bridge, netns, nft table, address or
    process of the run."""
    root, bridge = names["root"], names["bridge"]
    assert not os.path.exists(root)
    with open("/proc/self/mountinfo") as f:
        assert [ln for ln in f if root in ln] == []
    cg = names["cgroup_parent"]
    assert glob.glob(f"/sys/fs/cgroup/*/{cg}") + glob.glob(f"/sys/fs/cgroup/{cg}") == []
    for name in (bridge, names.get("podman_bridge")):
        assert not name or not os.path.exists(f"/sys/class/net/{name}"), name
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert [n for n in netns if n.startswith(bridge)] == []
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"minipod_{bridge}" not in tables
    addrs = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    assert names["subnet"].rsplit(".", 1)[0] + "." not in addrs
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert root not in ps  # no supervisor, sandbox, conmon or iperf3 of this run
