"""The runtimes minipod is compared with, each set up in a private corner
of the host: podman (``kube play``, its own storage, state, locks, config
and network), a raw OCI bundle run by crun (or runc, when crun refuses this
host's cgroup layout), and the traces podman's network stack (netavark)
leaves in host-global places, removed at the end.

Used by ``compare.py``; the pure parts (config text, parsing of podman's
JSON, the iptables rules to undo) are unit-tested in ``test_peers_bench.py``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time

import core
from core import BenchError, Sample, process_alive, run_timed, start_time

# Debian's packages: conmon comes with podman; catatonit is podman's pause.
PACKAGES = ("podman", "runc", "crun", "catatonit")
# An image made by ``podman import`` has an empty config, and podman (unlike
# minipod, Docker and containerd) gives no default PATH: set the same one.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Rootful netavark keeps its IPAM database here whatever the config says
# (shared by every podman on the host, by design); it is removed at the end
# only when this run created it.
NETAVARK_RUN_DIR = "/run/containers"
# The blob-info cache every containers/image copy (``podman import``)
# updates, whatever --root says: the import runs with a tmpfs over it.
BLOB_CACHE_DIRS = ("/var/lib/containers/cache", "/var/lib/containers", "/var/lib")
PODMAN_CGROUP_PARENT = "libpod_parent"  # the cgroupfs manager's pod parent
CGROUP_FS = "/sys/fs/cgroup"
NETNS_DIR = "/run/netns"
RUNC_STATE_ROOT = "/run/runc"  # podman's runc keeps its containers' state here


# ------------------------------------------------------------------ installing the peers
def missing_packages(packages=PACKAGES) -> list[str]:
    """Those of ``packages`` dpkg does not list as installed."""
    missing = []
    for name in packages:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if "ok installed" not in res.stdout:
            missing.append(name)
    return missing


def ensure_packages(packages=PACKAGES) -> list[str]:
    """Install the peers from Debian when missing (``apt-get install -y``,
    without recommends: no buildah, no slirp, no fuse). Returns what it
    installed. Only the bench calls this, never a test."""
    missing = missing_packages(packages)
    if not missing:
        return []
    print(f"  installing {' '.join(missing)} (apt-get install -y)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
    still = missing_packages(packages)
    if still:
        raise BenchError(f"could not install {' '.join(still)} with apt-get")
    return missing


def tool_versions() -> dict:
    """The first line of each peer's ``--version``, for the JSON."""
    out = {}
    for tool in ("podman", "runc", "crun", "conmon", "catatonit", "iperf3"):
        path = shutil.which(tool)
        if not path:
            out[tool] = None
            continue
        res = subprocess.run([path, "--version"], capture_output=True, text=True)
        text = (res.stdout or res.stderr).strip()
        out[tool] = text.splitlines()[0] if text else None
    return out


def run_own_session(argv: list[str], env: dict | None = None) -> Sample:
    """``core.run_timed``, with the command in a session of its own: a
    Ctrl-C at the terminal reaches the bench, which lets the command finish
    before cleaning up, and not podman half-way (a ``kube play`` cut short
    can leave its network set up, or hang on its own locks)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter_ns()
        proc = core._in_flight = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                                  start_new_session=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter_ns() - start) / 1e6
        core._in_flight = None
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Sample(argv, start, wall, (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_maxrss,
                      proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


# ------------------------------------------------------------------ podman's private config
def containers_conf(base: str, network: str) -> str:
    """containers.conf for a podman that touches nothing outside ``base``:
    state, locks (files, not the host-wide shm segment), events, volumes and
    network definitions there; runc (crun refuses this hybrid cgroup
    layout), the cgroupfs manager (PID 1 is not systemd), and the ulimits
    podman must not try to raise (no CAP_SYS_RESOURCE here)."""
    tmp = os.path.join(base, "tmp")
    return f"""# written by minipod's bench/peers.py for one benchmark run
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{tmp}/events.log"
lock_type = "file"
num_locks = 2048
tmp_dir = "{tmp}"
static_dir = "{base}/storage/libpod"
volume_path = "{base}/storage/volumes"
image_copy_tmp_dir = "{tmp}"

[network]
network_backend = "netavark"
network_config_dir = "{base}/networks"
default_network = "{network}"
"""


def storage_conf(base: str) -> str:
    return f"""[storage]
driver = "overlay"
graphroot = "{base}/storage"
runroot = "{base}/run"
"""


def network_definition(name: str, bridge: str, subnet: str) -> dict:
    """A netavark network file: podman 4.3's ``network create`` cannot name
    the bridge, and its default would be the host-wide ``podman0``. No DNS
    (no aardvark-dns process per network)."""
    prefix = subnet.rsplit(".", 1)[0]
    return {
        "name": name, "id": hashlib.sha256(name.encode()).hexdigest(), "driver": "bridge",
        "network_interface": bridge, "created": "2026-01-01T00:00:00Z",
        "subnets": [{"subnet": subnet, "gateway": f"{prefix}.1"}],
        "ipv6_enabled": False, "internal": False, "dns_enabled": False,
        "ipam_options": {"driver": "host-local"},
    }


def pod_processes(pods: list[dict], containers: list[dict]) -> dict[str, dict]:
    """Per pod name: the pid of its infra process (catatonit), its
    containers' pids and the conmon of each container, infra included,
    from ``podman pod ps --format json`` and ``podman inspect`` of every
    container."""
    by_id = {c.get("Id"): c for c in containers}
    out = {}
    for pod in pods:
        infra, workloads, conmons = None, [], []
        for member in pod.get("Containers") or []:
            c = by_id.get(member.get("Id"))
            if c is None:
                continue
            state = c.get("State") or {}
            if state.get("ConmonPid"):
                conmons.append(state["ConmonPid"])
            if member.get("Id") == pod.get("InfraId"):
                infra = state.get("Pid") or None
            elif state.get("Pid"):
                workloads.append(state["Pid"])
        out[pod["Name"]] = {"infra": infra, "containers": sorted(workloads), "conmons": sorted(conmons),
                            "status": pod.get("Status")}
    return out


def pod_ip(container: dict, network: str) -> str | None:
    return (((container.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}).get("IPAddress")


class PodmanSide:
    """podman driven through its CLI as a user would (``kube play``,
    ``kube down``, ``exec``), with every path of its own under ``base``."""

    def __init__(self, base: str, tag: str, bridge: str, subnet: str):
        self.base = base
        self.network = f"mpbench-{tag}"
        self.bridge = bridge
        self.subnet = subnet
        self.podman = shutil.which("podman") or "podman"
        self.pids_seen: dict[int, int | None] = {}
        self.pod_ids: set[str] = set()  # every pod seen, for its cgroups podman leaves behind

    def write_config(self) -> None:
        if len(self.path("run")) > 50:
            raise BenchError(f"podman's runroot {self.path('run')} is longer than the 50 characters podman accepts")
        for sub in ("storage", "run", "tmp", "networks"):
            os.makedirs(os.path.join(self.base, sub), exist_ok=True)
        with open(self.path("containers.conf"), "w") as f:
            f.write(containers_conf(self.base, self.network))
        with open(self.path("storage.conf"), "w") as f:
            f.write(storage_conf(self.base))
        with open(self.path("networks", f"{self.network}.json"), "w") as f:
            json.dump(network_definition(self.network, self.bridge, self.subnet), f, indent=1)

    def path(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)

    def env(self) -> dict:
        env = dict(os.environ)
        # CONTAINERS_CONF replaces every other containers.conf (/etc, /usr/share).
        env.update({"CONTAINERS_CONF": self.path("containers.conf"),
                    "CONTAINERS_STORAGE_CONF": self.path("storage.conf"),
                    "TMPDIR": self.path("tmp")})
        return env

    def argv(self, *args: str) -> list[str]:
        return [self.podman, "--root", self.path("storage"), "--runroot", self.path("run"),
                "--tmpdir", self.path("tmp"), *args]

    def cli(self, *args: str) -> Sample:
        return run_own_session(self.argv(*args), self.env())

    # -------------------------------------------------------------- image
    def import_rootfs(self, rootfs: str, image: str) -> None:
        """``podman import`` of a tar of ``rootfs`` as ``image``; then a pod
        created and removed, which makes podman build its infra image
        (``localhost/podman-pause``, from catatonit) now rather than in the
        first measured ``kube play``. Both copy images with
        containers/image, which updates the host's blob-info cache
        (/var/lib/containers/cache) whatever --root says: they run in a mount
        namespace of their own with a tmpfs over it. Nothing else podman
        does here touches that cache (checked with strace)."""
        tar_path = self.path("rootfs.tar")
        with tarfile.open(tar_path, "w") as tar:
            tar.add(rootfs, arcname=".")
        self.covered("import", "--change", f"ENV PATH={DEFAULT_PATH}", tar_path, image)
        os.unlink(tar_path)
        made = self.covered("pod", "create", "--name", "infra-image")
        self.pod_ids.add(made.stdout.strip())  # its cgroups outlive it (see HostTraces)
        self.cli("pod", "rm", "infra-image").check()

    def covered(self, *args: str) -> Sample:
        """A podman command with a tmpfs over the host's blob-info cache, in a
        mount namespace of its own (only for commands that mount nothing)."""
        cover = next((d for d in BLOB_CACHE_DIRS if os.path.isdir(d)), "/var/lib")
        script = 'mount -t tmpfs -o size=64m,mode=0700 tmpfs "$1" && shift && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", cover, *self.argv(*args)]
        return run_own_session(argv, self.env()).check()

    # -------------------------------------------------------------- pods
    def play(self, manifest: str) -> Sample:
        return self.cli("kube", "play", "--network", self.network, manifest)

    def down(self, manifest: str) -> Sample:
        return self.cli("kube", "down", manifest)

    def exec(self, container: str, *argv: str) -> Sample:
        return self.cli("exec", container, *argv)

    def remove_pods(self, names: list[str]) -> Sample:
        """Kill and remove pods at once (cleaning up, not measured)."""
        return self.cli("pod", "rm", "-f", "-t", "0", *names)

    def pods(self) -> dict[str, dict]:
        """Every pod of this root: its processes (see ``pod_processes``) and
        the pod IP, remembered for the leak check."""
        listed = self.cli("pod", "ps", "--format", "json").check()
        pods = json.loads(listed.stdout or "[]") or []
        ids = [m["Id"] for p in pods for m in p.get("Containers") or []]
        containers = json.loads(self.cli("inspect", "--type", "container", *ids).check().stdout or "[]") if ids else []
        out = pod_processes(pods, containers)
        by_id = {c.get("Id"): c for c in containers}
        for pod in pods:
            self.pod_ids.add(pod["Id"])
            infra = by_id.get(pod.get("InfraId")) or {}
            out[pod["Name"]]["ip"] = pod_ip(infra, self.network)
        for facts in out.values():
            for pid in [facts["infra"], *facts["containers"], *facts["conmons"]]:
                if pid:
                    self.pids_seen.setdefault(pid, start_time(pid))
        return out

    # -------------------------------------------------------------- clean-up
    def cleanup(self) -> list[str]:
        """Remove every pod and container of this root: a line per failure."""
        problems = []
        if not os.path.exists(self.path("containers.conf")):
            return problems
        for args in (("pod", "rm", "-f", "-a", "-t", "0"), ("rm", "-f", "-a", "-t", "0")):
            res = self.cli(*args)
            if res.returncode != 0:
                problems.append(f"podman {' '.join(args)}: {res.stderr.strip()[-200:]}")
        return problems

    def leftovers(self) -> list[str]:
        """This run's bridge and live podman processes (conmon, catatonit)."""
        left = []
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            left.append(f"bridge {self.bridge}")
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        left += [f"podman process {p}" for p, s in sorted(self.pids_seen.items()) if process_alive(p, s)]
        return left


# ------------------------------------------------------------------ a raw OCI bundle
def bundle_config(spec: dict, rootfs: str, args: list[str], cgroups_path: str, hostname: str) -> dict:
    """``runc spec``'s default config made into the benchmark's container:
    the busybox rootfs read-only (nothing to copy or mount over it), the
    process, no terminal, its own cgroup under this run's parent."""
    config = json.loads(json.dumps(spec))
    config["root"] = {"path": rootfs, "readonly": True}
    config["process"]["args"] = list(args)
    config["process"]["terminal"] = False
    config["process"]["env"] = [f"PATH={DEFAULT_PATH}"]
    config["hostname"] = hostname
    config.setdefault("linux", {})["cgroupsPath"] = cgroups_path
    return config


class BundleSide:
    """One container from a raw OCI bundle, run by crun when it works on
    this host, else by runc: ``run -d``, ``exec``, ``delete -f``."""

    def __init__(self, base: str, rootfs: str, cgroup_parent: str):
        self.base = base
        self.rootfs = rootfs
        self.cgroup_parent = cgroup_parent
        self.runtime = "runc"
        self.crun_refusal: str | None = None
        self.ids: set[str] = set()
        self.pids_seen: dict[int, int | None] = {}

    def bundle(self, name: str) -> str:
        return os.path.join(self.base, "bundles", name)

    def state_root(self, runtime: str | None = None) -> str:
        return os.path.join(self.base, "state", runtime or self.runtime)

    def make_bundle(self, name: str, args: list[str]) -> str:
        path = self.bundle(name)
        os.makedirs(path, exist_ok=True)
        spec = subprocess.run(["runc", "spec", "--bundle", path], capture_output=True, text=True)
        if spec.returncode != 0:
            raise BenchError(f"runc spec: {spec.stderr.strip()}")
        with open(os.path.join(path, "config.json")) as f:
            config = bundle_config(json.load(f), self.rootfs, args, f"/{self.cgroup_parent}/{name}", name)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        return path

    def choose_runtime(self) -> str:
        """crun if it runs ``true`` from a bundle here; else runc, with the
        reason crun gave (on a hybrid host: "cgroups in hybrid mode not
        supported")."""
        crun = shutil.which("crun")
        if crun:
            path = self.make_bundle("crun-check", ["true"])
            res = run_timed([crun, "--root", self.state_root("crun"), "run", "-b", path, "crun-check"])
            if res.returncode == 0:
                self.runtime = "crun"
                return self.runtime
            self.crun_refusal = (res.stderr.strip() or f"exit {res.returncode}").splitlines()[-1]
            subprocess.run([crun, "--root", self.state_root("crun"), "delete", "-f", "crun-check"],
                           capture_output=True)
        else:
            self.crun_refusal = "crun is not installed"
        self.runtime = "runc"
        return self.runtime

    def cmd(self, *args: str) -> Sample:
        return run_timed([self.runtime, "--root", self.state_root(), *args])

    def run(self, bundle: str, cid: str) -> Sample:
        self.ids.add(cid)
        return self.cmd("run", "-d", "-b", bundle, cid)

    def exec(self, cid: str, *argv: str) -> Sample:
        return self.cmd("exec", cid, *argv)

    def delete(self, cid: str) -> Sample:
        return self.cmd("delete", "-f", cid)

    def pid(self, cid: str) -> int:
        res = self.cmd("state", cid).check()
        pid = json.loads(res.stdout).get("pid")
        if not pid:
            raise BenchError(f"{self.runtime} state {cid}: no pid")
        self.pids_seen.setdefault(pid, start_time(pid))
        return pid

    def cleanup(self) -> list[str]:
        problems = []
        for cid in sorted(self.ids):
            res = self.cmd("delete", "-f", cid)
            gone = "does not exist" in res.stderr or "not exist" in res.stderr
            if res.returncode != 0 and not gone:
                problems.append(f"{self.runtime} delete -f {cid}: {res.stderr.strip()[-200:]}")
        return problems


# ------------------------------------------------------------------ what podman leaves on the host
NETAVARK_PREFIXES = ("NETAVARK",)
IPTABLES_NFT_TABLES = ("ip nat", "ip filter", "ip6 nat", "ip6 filter")


def netavark_rules_to_undo(save_text: str, own_subnets=()) -> tuple[list[list[str]], list[str], list[str]]:
    """What of netavark's is to go, from ``iptables-save -t TABLE`` text:
    (the ``-D`` arguments of rules to delete, chains to flush and delete,
    the rules that show another netavark network in use).

    Netavark's per-network chains (``NETAVARK-<hex>``, jumped to with
    ``-s SUBNET``) and its ``NETAVARK_FORWARD`` rules of a subnet in
    ``own_subnets`` are this run's: always removed (a podman killed half-way
    leaves them). Its generic chains (the hostPort ones, ``NETAVARK_FORWARD``
    itself) and the jumps to them are removed only when no other network's
    rules are left in them."""
    own = tuple(own_subnets)
    chains, jumps, forward, per_network_jumps = [], [], [], {}
    for line in save_text.splitlines():
        if line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(NETAVARK_PREFIXES):
                chains.append(name)
        elif line.startswith("-A "):
            words = shlex.split(line)
            chain = words[1]
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if chain == "NETAVARK_FORWARD":
                forward.append(words)
            elif not chain.startswith(NETAVARK_PREFIXES) and target.startswith(NETAVARK_PREFIXES):
                if _per_network(target):
                    per_network_jumps.setdefault(target, []).append(words)
                else:
                    jumps.append(words)
    mine = lambda words: any(subnet in words for subnet in own)  # noqa: E731
    deletes, remove, busy = [], [], []
    for chain in (c for c in chains if _per_network(c)):
        into = per_network_jumps.get(chain, [])
        if into and all(mine(w) for w in into):
            deletes += [["-D", *w[1:]] for w in into]
            remove.append(chain)
        else:
            busy.append(f"chain {chain}")
    for words in forward:
        if mine(words):
            deletes.append(["-D", *words[1:]])
        else:
            busy.append(" ".join(words))
    if not busy:
        deletes += [["-D", *w[1:]] for w in jumps]
        remove += [c for c in chains if not _per_network(c)]
    return deletes, remove, busy


def _per_network(chain: str) -> bool:
    suffix = chain[len("NETAVARK-"):] if chain.startswith("NETAVARK-") else ""
    return len(suffix) >= 8 and all(ch in "0123456789ABCDEFabcdef" for ch in suffix)


class HostTraces:
    """What podman and netavark put in host-global places, noted before the
    run: iptables chains (netavark keeps its generic ones after the last
    container), the ip nat/filter tables iptables-nft made for them,
    /run/containers, the cgroupfs manager's ``libpod_parent``, and named
    network namespaces. ``restore`` removes what was not there before and
    is netavark's or podman's alone."""

    def __init__(self):
        self.tables_before = self.nft_tables()
        self.run_dir_existed = os.path.exists(NETAVARK_RUN_DIR)
        self.libpod_parents_before = set(self.libpod_parents())
        self.netns_before = set(self.netns())
        self.runc_before = set(self.runc_states())
        self.runc_root_existed = os.path.exists(RUNC_STATE_ROOT)

    @staticmethod
    def nft_tables() -> set[str]:
        res = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
        return {ln.strip()[len("table "):] for ln in res.stdout.splitlines() if ln.startswith("table ")}

    @staticmethod
    def libpod_parents() -> list[str]:
        return glob.glob(os.path.join(CGROUP_FS, "*", PODMAN_CGROUP_PARENT)) + \
            glob.glob(os.path.join(CGROUP_FS, PODMAN_CGROUP_PARENT))

    def stray_netns(self) -> list[str]:
        """podman's namespaces (``netns-<uuid>``) made during the run that no
        process is in any more."""
        new = [n for n in set(self.netns()) - self.netns_before if n.startswith("netns-")]
        if not new:
            return []
        used = set()
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    used.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
                except OSError:
                    pass
        stray = []
        for name in sorted(new):
            try:
                if os.stat(os.path.join(NETNS_DIR, name)).st_ino not in used:
                    stray.append(name)
            except OSError:
                pass
        return stray

    @staticmethod
    def runc_states() -> list[str]:
        """Containers in runc's default state root, where podman runs it."""
        try:
            return os.listdir(RUNC_STATE_ROOT)
        except OSError:
            return []

    @staticmethod
    def netns() -> list[str]:
        try:
            return os.listdir(NETNS_DIR)
        except OSError:
            return []

    def restore(self, own_subnets=(), pod_ids=()) -> list[str]:
        """Undo netavark's and podman's host-global traces: the rules of
        ``own_subnets``, netavark's generic chains when no other network
        uses them, tables, cgroups (``pod_ids``' own under a
        ``libpod_parent`` that was there before), podman's network
        namespaces left unused; a line per thing left in place on purpose or
        that could not be removed."""
        problems = []
        for tool in ("iptables", "ip6tables"):
            problems += self._undo_netavark(tool, own_subnets)
        now = self.nft_tables()
        for name in IPTABLES_NFT_TABLES:
            if name in self.tables_before or name not in now:
                continue
            # Made by iptables-nft for netavark during this run: removed when
            # nothing but empty base chains is left in it.
            fam, table = name.split()
            tool = "iptables-save" if fam == "ip" else "ip6tables-save"
            res = subprocess.run([tool, "-t", table], capture_output=True, text=True)
            if any(ln.startswith("-A ") for ln in res.stdout.splitlines()):
                problems.append(f"table {name} holds rules that are not netavark's: left in place")
                continue
            subprocess.run(["nft", "delete", "table", fam, table], capture_output=True)
        for path in self.libpod_parents():
            # podman leaves its pods' cgroups in the named "systemd" and the
            # unified hierarchies: the whole parent when this run made it,
            # else this run's pods below it.
            tops = [path] if path not in self.libpod_parents_before else \
                [os.path.join(path, i) for i in pod_ids if os.path.isdir(os.path.join(path, i))]
            for top in tops:
                for current, _dirs, _files in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
                    try:
                        os.rmdir(current)
                    except OSError as exc:
                        problems.append(f"cgroup {current}: {exc.strerror}")
        for name in self.stray_netns():
            # A podman killed half-way leaves its pod's namespace mounted.
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        if not self.run_dir_existed and os.path.isdir(NETAVARK_RUN_DIR):
            shutil.rmtree(NETAVARK_RUN_DIR, ignore_errors=True)
        if not self.runc_root_existed and not self.runc_states():
            try:  # made by the first container podman's runc ran, and empty again
                os.rmdir(RUNC_STATE_ROOT)
            except OSError:
                pass
        return problems

    @staticmethod
    def _undo_netavark(tool: str, own_subnets) -> list[str]:
        if not shutil.which(tool):
            return []
        problems = []
        for table in ("nat", "filter"):
            save = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True)
            if save.returncode != 0:
                continue
            deletes, chains, busy = netavark_rules_to_undo(save.stdout, own_subnets)
            if busy:
                # Another netavark network is in use (a podman outside this run):
                # the generic chains are its too.
                problems.append(f"{tool} -t {table}: netavark chains in use ({busy[0]}): left in place")
            for args in deletes:
                subprocess.run([tool, "-t", table, *args], capture_output=True)
            for chain in chains:
                subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
            for chain in chains:
                subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)
        return problems

    def leftovers(self) -> list[str]:
        left = []
        for tool in ("iptables", "ip6tables"):
            if not shutil.which(tool):
                continue
            for table in ("nat", "filter"):
                text = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True).stdout
                if "NETAVARK" in text:
                    left.append(f"{tool} -t {table}: netavark chains")
        # Only the tables iptables-nft makes for netavark: other people's
        # minipod tables (inet minipod_*) come and go on this host meanwhile.
        for table in sorted((self.nft_tables() - self.tables_before) & set(IPTABLES_NFT_TABLES)):
            left.append(f"nft table {table}")
        left += [f"cgroup {p}" for p in self.libpod_parents() if p not in self.libpod_parents_before]
        left += [f"netns {n}" for n in sorted(set(self.netns()) - self.netns_before) if n.startswith("netns-")]
        if not self.run_dir_existed and os.path.exists(NETAVARK_RUN_DIR):
            left.append(f"dir {NETAVARK_RUN_DIR}")
        left += [f"runc state {RUNC_STATE_ROOT}/{c}" for c in sorted(set(self.runc_states()) - self.runc_before)
                 if len(c) == 64]  # podman's container ids
        return left
