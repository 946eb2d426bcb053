"""The benchmark's private corner of the host, and leaving nothing behind.

Every run gets its own ``MINIPOD_ROOT`` (a temp dir), cgroup parent,
bridge and subnet, so it never touches ``/run/minipod``, the default cgroup
or another run. ``cleanup`` removes everything the run made: pods, floor
sandboxes, mounts under the temp dir, the cgroup parent, the temp dir; then
``leftovers`` says what, if anything, is still there.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from core import finish_in_flight, process_alive

CGROUP_FS = "/sys/fs/cgroup"


class Isolation:
    def __init__(self, tag: str | None = None):
        self.tag = tag or secrets.token_hex(4)
        self.root = tempfile.mkdtemp(prefix=f"minipod-bench-{self.tag}-", dir="/tmp")
        self.cgroup_parent = f"minipod-bench-{self.tag}"
        # Not used by the core runtime yet; set so a later network issue
        # cannot make the bench collide with a real install or a test.
        self.bridge = f"mpb{self.tag[:8]}"[:15]
        self.subnet = f"10.{200 + int(self.tag[:2], 16) % 50}.{int(self.tag[2:4], 16)}.0/24"

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "MINIPOD_ROOT": self.root,
            "MINIPOD_CGROUP_PARENT": self.cgroup_parent,
            "MINIPOD_BRIDGE": self.bridge,
            "MINIPOD_SUBNET": self.subnet,
        })
        return env

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    # -------------------------------------------------------------- cleanup
    def mounts(self) -> list[str]:
        """Mount points under the temp dir, deepest first."""
        found = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == self.root or point.startswith(self.root + "/"):
                    found.append(point)
        return sorted(found, key=lambda p: p.count("/"), reverse=True)

    def cgroup_dirs(self) -> list[str]:
        """This run's cgroup parent in every hierarchy (v1 controllers, the
        unified tree, or a pure v2 host), deepest directories first."""
        tops = glob.glob(os.path.join(CGROUP_FS, "*", self.cgroup_parent))
        tops += glob.glob(os.path.join(CGROUP_FS, self.cgroup_parent))
        found = []
        for top in tops:
            for current, _dirs, _files in os.walk(top):
                found.append(current)
        return sorted(found, key=lambda p: p.count("/"), reverse=True)

    def cgroup_pids(self) -> list[int]:
        """Processes in this run's cgroup parent, in any hierarchy."""
        pids: set[int] = set()
        for path in self.cgroup_dirs():
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    pids.update(int(p) for p in f.read().split())
            except (OSError, ValueError):
                pass
        return sorted(pids)

    @staticmethod
    def _rmdir_cgroup(path: str) -> None:
        """A cgroup whose last process was just killed can stay busy for a
        moment; retry briefly."""
        for attempt in range(50):
            try:
                os.rmdir(path)
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == 49:
                    raise
                time.sleep(0.01)

    def cleanup(self, minipod_side=None, floor_side=None) -> list[str]:
        """Remove everything; return a line per thing that could not be."""
        problems = []
        stuck = finish_in_flight()
        if stuck:
            problems.append(stuck)
        if minipod_side is not None:
            names = minipod_side.names()
            if names:
                sample = minipod_side.cli("rm", "-f", "-t", "0", *names)
                if sample.returncode != 0:
                    problems.append(f"minipod rm -f {' '.join(names)}: {sample.stderr.strip()}")
            # The bridge and table the first pod made stay after the last one.
            sample = minipod_side.cli("network", "rm")
            if sample.returncode != 0:
                problems.append(f"minipod network rm: {sample.stderr.strip()}")
        # Last resort, and a finding worth reporting: processes still in this
        # run's own cgroup parent (so started by this run) after `rm -f`.
        for pid in self.cgroup_pids():
            problems.append(f"process {pid} still in {self.cgroup_parent} after rm -f: killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if floor_side is not None:
            for name in floor_side.names():
                sample = floor_side.stop(name)
                if sample.returncode != 0:
                    problems.append(f"floor stop {name}: {sample.stderr.strip()}")
        for point in self.mounts():
            # Only mounts under this run's own temp dir.
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
        failed = []
        for path in self.cgroup_dirs():
            try:
                self._rmdir_cgroup(path)
            except OSError as exc:
                failed.append(f"{path}: {exc.strerror}")
        if failed:
            problems.append(f"{len(failed)} cgroup(s) not removed, first {failed[-1]}")
        if self.mounts():
            problems.append(f"mounts still under {self.root}; not deleting it")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        return problems

    def leftovers(self, pids: dict[int, int | None]) -> list[str]:
        """What is still on the host after cleanup: mounts, cgroups, the temp
        dir, and live (non-zombie) processes among those the run started."""
        left = [f"mount {m}" for m in self.mounts()]
        cgroups = self.cgroup_dirs()
        if cgroups:
            left.append(f"{len(cgroups)} cgroup(s) under {self.cgroup_parent}, e.g. {cgroups[-1]}")
        left += [f"process {p} in {self.cgroup_parent}" for p in self.cgroup_pids()]
        if os.path.exists(self.root):
            left.append(f"dir {self.root}")
        # A killed process may still be exiting for a moment: allow 1 s.
        deadline = time.monotonic() + 1.0
        alive = [p for p, started in sorted(pids.items()) if process_alive(p, started)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.01)
            alive = [p for p in alive if process_alive(p, pids[p])]
        left += [f"process {pid}" for pid in alive]
        return left

