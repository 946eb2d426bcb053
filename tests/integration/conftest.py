"""Fixtures for integration tests: real pods, as root, on the real kernel.

Every test gets its own ``--root``, cgroup parent, bridge and subnet, so it
never touches a real installation, and a leak check runs after it: no
mount under its root, no cgroup under its parent, no process holding
anything under its root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_IMAGE = "localhost/busybox:demo"

# Pulls would now reach a real registry for an image missing from the store:
# tests may only talk to registries they run themselves on loopback.
os.environ["MINIPOD_REGISTRY_LOOPBACK_ONLY"] = "1"

NOT_ROOT = "integration tests need root (namespaces, mounts, cgroups): run 'sudo make test'"


def pytest_collection_modifyitems(items):
    for item in items:
        if os.sep + "integration" + os.sep in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason=NOT_ROOT))


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> str:
    """The demo root filesystem, built once from the host's busybox-static."""
    dest = str(tmp_path_factory.mktemp("rootfs") / "busybox")
    subprocess.run(["sh", os.path.join(REPO, "examples", "busybox-rootfs.sh"), dest], check=True)
    return dest


def _mounts_under(path: str) -> list[str]:
    from minipod.teardown import mounts_under

    return mounts_under(path)


def _cgroup_dirs(parent: str) -> list[str]:
    found = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.isdir(base):
            continue
        for entry in os.listdir(base):
            candidate = os.path.join(base, entry, parent)
            if os.path.isdir(candidate):
                found.append(candidate)
        if os.path.isdir(os.path.join(base, parent)):
            found.append(os.path.join(base, parent))
    return found


def _processes_using(path: str) -> list[str]:
    """Processes whose root, cwd or any open fd lies under ``path``."""
    users = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        links = []
        for name in ("root", "cwd"):
            links.append(f"/proc/{pid}/{name}")
        try:
            links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target.startswith(path + "/") or target.startswith(path + " (deleted)"):
                try:
                    comm = open(f"/proc/{pid}/comm").read().strip()
                except OSError:
                    comm = "?"
                users.append(f"{pid} ({comm}) {link} -> {target}")
                break
    return users


class Env:
    """One test's private minipod installation."""

    def __init__(self, root: str, suffix: str):
        self.root = root
        self.cgroup_parent = f"minipod-test-{suffix}"
        self.bridge = f"mpt{suffix[:8]}"
        # A subnet of its own, so tests running side by side never collide.
        self.subnet = f"10.213.{int(suffix[:4], 16) % 200 + 20}.0/24"
        self.env = {
            **os.environ,
            "MINIPOD_ROOT": root,
            "MINIPOD_CGROUP_PARENT": self.cgroup_parent,
            "MINIPOD_BRIDGE": self.bridge,
            "MINIPOD_SUBNET": self.subnet,
        }

    def runtime(self):
        import minipod

        return minipod.Runtime(root=self.root, cgroup_parent=self.cgroup_parent,
                               bridge=self.bridge, subnet=self.subnet)

    def cli(self, *args: str, input: str | None = None, check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the real command line, as a user would."""
        proc = subprocess.run([sys.executable, "-m", "minipod", *args], input=input, text=True,
                              capture_output=True, env=self.env, timeout=timeout, cwd=REPO)
        if check and proc.returncode != 0:
            raise AssertionError(f"minipod {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def network_leaks(self) -> list[str]:
        """What pods left of the network: a veth on the bridge, a rule in
        the table, an address or a hostPort claim. The bridge and the table
        themselves stay after the last pod, until ``remove_network``."""
        problems = []
        ports_dir = f"/sys/class/net/{self.bridge}/brif"
        if os.path.isdir(ports_dir):
            problems += [f"veth left on {self.bridge}: {port}" for port in os.listdir(ports_dir)]
        table = subprocess.run(["nft", "list", "table", "inet", f"minipod_{self.bridge}"],
                               capture_output=True, text=True).stdout
        problems += [f"nftables rule left: {line.strip()}" for line in table.splitlines() if '"pod:' in line]
        problems += [f"network claim left: {path}" for path in self._network_files()
                     if os.path.basename(path) != "last_reserved_ip"]
        return problems

    def shared_network_left(self) -> list[str]:
        """After ``remove_network``: no bridge, no table, no file of its pool."""
        problems = []
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            problems.append(f"bridge left: {self.bridge}")
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        if f"minipod_{self.bridge}" in tables:
            problems.append(f"nftables table left: inet minipod_{self.bridge}")
        problems += [f"network file left: {path}" for path in self._network_files()]
        return problems

    def _network_files(self) -> list[str]:
        net_dir = os.path.join(self.root, "run", "minipod", "net")
        return [os.path.join(current, f) for current, _dirs, files in os.walk(net_dir)
                for f in files if not f.endswith("lock")]

    def leaks(self) -> list[str]:
        problems = [f"mount left: {m}" for m in _mounts_under(self.root)]
        problems += self.network_leaks()
        problems += [f"cgroup left: {c}" for c in _cgroup_dirs(self.cgroup_parent)]
        problems += [f"process left: {p}" for p in _processes_using(self.root)]
        return problems

    def remove_pods(self) -> None:
        """After a failed test, remove what it left, so the next one starts clean."""
        rt = self.runtime()
        for pod in rt.pods():
            try:
                pod.remove(force=True, timeout=0)
            except Exception:
                pass


@pytest.fixture
def mp(tmp_path) -> Env:
    """A private minipod root with the demo image imported, and a leak check
    after the test."""
    suffix = uuid.uuid4().hex[:10]
    root = str(tmp_path / "root")
    os.makedirs(root)
    env = Env(root, suffix)
    yield env
    env.remove_pods()  # what the test did not remove itself, `rm -f` must clean
    leaks = env.leaks()
    try:
        env.runtime().remove_network()  # the bridge and table the first pod made
    except Exception as exc:
        leaks.append(f"network rm failed: {exc}")
    leaks += env.shared_network_left()
    shutil.rmtree(root, ignore_errors=True)
    assert not leaks, "leaked host resources:\n" + "\n".join(leaks)


@pytest.fixture
def mpi(mp: Env, busybox_rootfs: str) -> Env:
    """``mp`` with the busybox demo image in its store."""
    mp.runtime().import_image(busybox_rootfs, DEMO_IMAGE)
    return mp
