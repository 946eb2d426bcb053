"""The pod supervisor: one per pod, the parent of its processes.

It plays the part of containerd's shim and podman's conmon: it builds the
sandbox, starts the containers (init containers first, one at a time),
writes their output to CRI log files, records state, applies the restart
policy, stops the pod gracefully when asked (SIGTERM) and releases every
host resource at the end. It is single-threaded: one ``selectors`` loop
waits on the containers' output pipes and on a wake-up pipe fed by signal
handlers, so reaping children never races with spawning them.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import time
import uuid

from . import podstatus, sandbox
from .config import Config
from .container import ImageInfo, Launch, container_plan, exec_failure, make_launch
from .errors import MinipodError
from .logs import LogWriter, log_path
from .plan import MNT_DETACH, MS_BIND
from .state import PodDir
from .teardown import release_host_resources
from .volumes import container_binds, prepare_volumes

log = logging.getLogger("minipod.supervisor")

# Kubernetes' crash-loop back-off: 10 s doubling up to 5 min; the first
# restart is immediate; a container that ran 10 minutes is forgiven.
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET_AFTER = 10.0, 300.0, 600.0


def backoff_delay(restarts: int) -> float:
    if restarts <= 0:
        return 0.0
    return min(BACKOFF_START * 2 ** (restarts - 1), BACKOFF_MAX)


def exit_reason(exit_code: int, oom: bool) -> str:
    if oom:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


class ContainerRun:
    """A container's life across restarts, as the supervisor sees it."""

    def __init__(self, spec: dict, field_path: str, image: ImageInfo, init: bool):
        self.spec = spec
        self.name = spec["name"]
        self.field = field_path
        self.image = image
        self.init = init
        self.pid: int | None = None
        self.restarts = 0
        self.state: dict = {"waiting": {"reason": "ContainerCreating" if not init else "PodInitializing"}}
        self.last_state: dict = {}
        self.started = False
        self.final = False  # terminated and will not be restarted
        self.container_id = ""
        self.started_at = 0.0
        self.next_start: float | None = None
        self.backoff_restarts = 0  # restarts that count for the back-off (reset after a good run)
        self.attempted = False  # at least one start was tried (run -d waits for this)
        self.start_error: str | None = None
        self.pipes: dict[int, str] = {}  # read fd -> stream name
        self.writer: LogWriter | None = None
        self.launch: Launch | None = None
        self.cgroup_procs: list[str] = []
        self.oom_kills_at_start = 0  # the cgroup outlives a restart; so does its OOM counter
        self.log_path = ""

    @property
    def running(self) -> bool:
        return self.pid is not None

    def record(self) -> dict:
        return {
            "name": self.name, "init": self.init, "image": self.spec["image"],
            "imageID": self.image.image_id_ref, "containerID": self.container_id,
            "pid": self.pid, "restartCount": self.restarts, "state": self.state,
            "lastState": self.last_state, "ready": self.running and not self.init,
            "started": self.started, "final": self.final, "logPath": self.log_path,
            "launch": self.launch.to_record() if self.launch else None,
            "cgroupProcs": self.cgroup_procs,
        }


class Supervisor:
    def __init__(self, config: Config, pod_dir: PodDir, ready_fd: int | None):
        self.config = config
        self.pod_dir = pod_dir
        self.ready_fd = ready_fd
        with open(os.path.join(pod_dir.path, "spec.json")) as f:
            spec = json.load(f)
        self.pod: dict = spec["pod"]
        self.config_maps = {(ns, n): obj for ns, n, obj in spec["configMaps"]}
        self.secrets = {(ns, n): obj for ns, n, obj in spec["secrets"]}
        images = {name: ImageInfo.from_dict(d) for name, d in spec["images"].items()}
        meta, pspec = self.pod["metadata"], self.pod["spec"]
        self.uid = meta["uid"]
        self.restart_policy = pspec.get("restartPolicy", "Always")
        self.grace = float(pspec.get("terminationGracePeriodSeconds", 30))
        self.shape = sandbox.SandboxShape.of(pspec)
        self.hostname = sandbox.pod_hostname(self.pod)
        self.data_dir = os.path.join(config.pods_data_dir, self.uid)
        self.log_dir = os.path.join(config.logs_dir, f"{meta['namespace']}_{meta['name']}_{self.uid}")
        self.cgroup_id = f"pod-{self.uid}"
        self.runs: list[ContainerRun] = []
        for i, c in enumerate(pspec.get("initContainers") or []):
            self.runs.append(ContainerRun(c, f"spec.initContainers[{i}]", images[c["name"]], True))
        for i, c in enumerate(pspec["containers"]):
            self.runs.append(ContainerRun(c, f"spec.containers[{i}]", images[c["name"]], False))
        from .cgroups.limits import qos_class

        self.state: dict = {
            "version": 1, "pod": self.pod, "uid": self.uid, "phase": "Pending", "qosClass": qos_class(pspec),
            "supervisorPid": os.getpid(), "dataDir": self.data_dir, "logDir": self.log_dir,
            "cgroupId": self.cgroup_id, "cgroupParent": config.cgroup_parent,
            "bridge": config.bridge, "subnet": config.subnet,
            "hostIP": None, "podIP": None, "initialized": not any(r.init for r in self.runs),
        }
        self.selector = selectors.DefaultSelector()
        self.cgroup = None
        self.volumes: dict = {}
        self.pause_pid: int | None = None
        self.pause_fds: dict[str, int] = {}
        self.pod_files: dict[str, str] = {}
        self.shm_dir: str | None = None
        self.stop_requested = False
        self.stop_deadline: float | None = None
        self.signals: list[int] = []
        self.done = False
        self.dirty = True  # state.json is behind what the supervisor knows

    # ----------------------------------------------------------- state
    def save(self) -> None:
        self.state["containers"] = [r.record() for r in self.runs]
        self.state["pausePid"] = self.pause_pid
        if not self.stop_requested or self.done:
            self.state["phase"] = podstatus.pod_phase(self.state["containers"], self.restart_policy,
                                                      self.state["initialized"])
        self.pod_dir.write(self.state)

    def tell_caller(self, message: dict) -> None:
        """Report the start's outcome to the waiting ``run`` (once)."""
        if self.ready_fd is None:
            return
        try:
            os.write(self.ready_fd, (json.dumps(message) + "\n").encode())
        except OSError:
            pass
        os.close(self.ready_fd)
        self.ready_fd = None

    # ----------------------------------------------------------- sandbox
    def build_sandbox(self) -> None:
        """Create the pod's host resources, each recorded before the next
        step so that a failure part-way is undone by ``teardown``."""
        from . import _sys
        from .cgroups import open_pod_cgroup

        os.makedirs(self.data_dir, 0o711, exist_ok=True)
        os.makedirs(self.log_dir, 0o755, exist_ok=True)
        self.cgroup = open_pod_cgroup(parent=self.config.cgroup_parent, pod_id=self.cgroup_id)
        self.state["cgroupPath"] = self.cgroup.path
        self.save()  # the record names the cgroup before it exists: rm can always find it
        self.cgroup.create()
        # Before the pause joins: nothing in the pod ever runs unlimited.
        from .cgroups.limits import pod_limits

        self.note_warnings(self.cgroup.apply(pod_limits(self.pod["spec"], self.cgroup.kind,
                                                        self.config.pod_pids_limit)))
        self.shm_dir = os.path.join(self.data_dir, "shm")
        os.makedirs(self.shm_dir, 0o1777, exist_ok=True)
        _sys.mount("shm", self.shm_dir, "tmpfs", 2 | 4 | 8, "mode=1777,size=65536k")
        self.start_pause()
        self.connect_network()
        # Volumes and pod files may name the pod's IP (downwardAPI, /etc/hosts).
        self.state["hostIP"] = _host_ip()
        self.volumes = prepare_volumes(self.pod, self.data_dir, self.config_maps, self.secrets,
                                       lambda path, opts: _sys.mount("tmpfs", path, "tmpfs", 2 | 4, opts),
                                       self.field_status())
        self.pod_files = sandbox.write_pod_files(self.data_dir, self.pod, self.hostname,
                                                 self.state.get("podIP"), self.shape)
        self.state["startTime"] = podstatus.now_rfc3339()
        self.save()

    def start_pause(self) -> None:
        from . import _sys

        # "_pause" cannot clash with a container: container names are DNS labels.
        pause = self.cgroup.child("_pause")
        pause.create()
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            sysctls = (self.pod["spec"].get("securityContext") or {}).get("sysctls")
            plan = sandbox.pause_plan(_sys.pause_binary(), self.shape, self.hostname,
                                      pause.procs_files(), devnull, sysctls)
            self.pause_pid = _sys.spawn(plan)
        finally:
            os.close(devnull)
        for ns in self.shape.owned():
            self.pause_fds[ns] = os.open(f"/proc/{self.pause_pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        self.state["namespaces"] = {"pause": sandbox.namespace_inodes(self.pause_pid)}

    def connect_network(self) -> None:
        """An address on the bridge for the pause's network namespace, and
        its hostPorts. A hostNetwork pod uses the host's; its ports are only
        checked."""
        from .network import check_host_ports, setup_pod_network
        from .teardown import pod_network_config

        cfg = pod_network_config(self.config, self.state)
        ports = pod_ports(self.pod)
        if not self.shape.net:
            check_host_ports(cfg, self.pod_dir.key, ports)
            return
        net = setup_pod_network(cfg, self.pod_dir.key, self.pause_fds["net"], ports)
        self.state["network"] = net.to_record()
        self.state["podIP"] = net.ip

    # ----------------------------------------------------------- containers
    def start(self, run: ContainerRun) -> None:
        """Spawn one container. A failure to start (no such executable, a
        volume that cannot be mounted) is the container's terminated state,
        as in Kubernetes, not the supervisor's end."""
        from . import _sys

        run.next_start = None
        if run.attempted:  # counted when it happens, as kubelet counts restarts
            run.restarts += 1
        run.attempted = True
        run.start_error = None
        self.dirty = True
        run.container_id = uuid.uuid4().hex
        run.log_path = log_path(self.config.logs_dir, self.pod["metadata"]["namespace"],
                                self.pod["metadata"]["name"], self.uid, run.name, run.restarts)
        run.writer = LogWriter(run.log_path)
        cdir = os.path.join(self.data_dir, "containers", run.name)
        layer_dir = os.path.join(cdir, str(run.restarts))
        upper, work, rootfs = (os.path.join(layer_dir, d) for d in ("upper", "work", "rootfs"))
        for d in (upper, work, rootfs):
            os.makedirs(d, 0o755, exist_ok=True)
        # A restarted container gets a fresh writable layer, as kubelet gives.
        _remove_older_layers(cdir, run.restarts)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        staged: list[str] = []
        try:
            run.launch = make_launch(self.pod, run.spec, run.field, run.image, self.hostname,
                                     self.config_maps, self.secrets, self.field_status())
            binds, staged = container_binds(run.spec, run.field, self.volumes, run.launch.env,
                                            os.path.join(layer_dir, "subpaths"),
                                            lambda src, dst: _sys.mount(src, dst, None, MS_BIND))
            run.launch.binds = self.pod_file_binds() + binds
            cg = self.cgroup.child(run.name)
            cg.create()
            from .cgroups.limits import container_limits

            self.note_warnings(cg.apply(container_limits(run.spec.get("resources"), cg.kind)))
            run.oom_kills_at_start = cg.oom_kills()
            from .devices import restrict_devices  # block devices and the like: see devices.py
            self.note_warnings(restrict_devices(cg, run.launch.privileged))
            run.cgroup_procs = cg.procs_files()
            plan = container_plan(
                launch=run.launch, pause_ns_fds=self.pause_fds, new_pid_ns=not self.shape.pid
                and not self.pod["spec"].get("hostPID"), cgroup_procs=run.cgroup_procs,
                rootfs=rootfs, lower_dirs=run.image.layer_dirs, upper=upper, work=work,
                shm_source="/dev/shm" if self.pod["spec"].get("hostIPC") else self.shm_dir,
                stdio=(devnull, out_w, err_w))
            log.debug("container %s plan:\n%s", run.name, "\n".join(plan.describe()))
            run.pid = _sys.spawn(plan)
        except (MinipodError, OSError) as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            self.record_start_failure(run, exc)
            return
        finally:
            for fd in (out_w, err_w, devnull):
                os.close(fd)
            for path in staged:  # the container has its own copy of these mounts now
                _sys.umount2(path, MNT_DETACH)
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            run.pipes[fd] = stream
            self.selector.register(fd, selectors.EVENT_READ, run)
        run.started_at = time.time()
        run.started = True
        run.state = {"running": {"startedAt": podstatus.now_rfc3339()}}
        self.state.setdefault("namespaces", {})[run.name] = sandbox.namespace_inodes(run.pid)
        log.info("started container %s as pid %d", run.name, run.pid)

    def note_warnings(self, warnings: list[str]) -> None:
        """Keep what could not be enforced (a controller the host lacks) in
        the pod's record, once each."""
        if warnings:
            known = self.state.setdefault("warnings", [])
            known.extend(w for w in warnings if w not in known)
            self.dirty = True

    def field_status(self) -> dict:
        """What ``fieldRef``s may read beyond the manifest."""
        return {"podIP": self.state.get("podIP"), "hostIP": self.state.get("hostIP"),
                "nodeName": os.uname().nodename}

    def pod_file_binds(self):
        from .rootfs import BindMount

        return [BindMount(src, target, False, False) for target, src in self.pod_files.items()]

    def record_start_failure(self, run: ContainerRun, exc: Exception) -> None:
        message = (run.launch and exec_failure(run.launch.argv[0], exc)) or str(exc)
        log.warning("container %s failed to start: %s", run.name, message)
        run.start_error = message
        now = podstatus.now_rfc3339()
        run.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": message,
                                    "startedAt": now, "finishedAt": now,
                                    "containerID": f"minipod://{run.container_id}"}}
        if run.writer:
            run.writer.close()
            run.writer = None
        self.after_exit(run, 128)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pause_pid:
                log.warning("pause process %d exited (status %#x)", pid, status)
                self.pause_pid = None
                continue
            run = next((r for r in self.runs if r.pid == pid), None)
            if run is not None:
                self.container_exited(run, status)

    def container_exited(self, run: ContainerRun, status: int) -> None:
        self.drain(run)
        run.pid = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code, term = 128 + sig, {"signal": sig}
        else:
            code, term = os.WEXITSTATUS(status), {}
        oom = False
        try:
            oom = self.cgroup.child(run.name).oom_killed(since=run.oom_kills_at_start)
        except Exception:  # a missing counter must not hide the exit itself
            pass
        term.update({
            "exitCode": code, "reason": exit_reason(code, oom),
            "startedAt": run.state.get("running", {}).get("startedAt"),
            "finishedAt": podstatus.now_rfc3339(),
            "containerID": f"minipod://{run.container_id}",
        })
        run.state = {"terminated": term}
        log.info("container %s exited with %d", run.name, code)
        self.after_exit(run, code)

    def after_exit(self, run: ContainerRun, code: int) -> None:
        """Apply the restart policy (init containers restart unless Never,
        and only on failure)."""
        self.dirty = True
        if self.stop_requested:
            run.final = True
            return
        policy = self.restart_policy
        if run.init:
            restart = code != 0 and policy != "Never"
        else:
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if not restart:
            run.final = True
            if run.init and code == 0:
                self.start_next_init()
            return
        if run.started_at and time.time() - run.started_at > BACKOFF_RESET_AFTER:
            run.backoff_restarts = 0
        run.last_state = run.state
        delay = backoff_delay(run.backoff_restarts)
        run.backoff_restarts += 1
        run.next_start = time.time() + delay
        if delay:
            run.state = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                     f"back-off {int(delay)}s restarting failed container={run.name}"}}

    def start_next_init(self) -> None:
        for run in self.runs:
            if run.init and not run.final:
                if run.pid is None and run.next_start is None:
                    run.next_start = time.time()
                return
        self.state["initialized"] = True
        for run in self.runs:
            if not run.init and not run.attempted and run.next_start is None:
                run.next_start = time.time()

    def drain(self, run: ContainerRun) -> None:
        for fd in list(run.pipes):
            self.read_pipe(run, fd, final=True)

    def read_pipe(self, run: ContainerRun, fd: int, final: bool = False) -> None:
        stream = run.pipes[fd]
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                if not final:
                    return
                data = b""
            except OSError:
                data = b""
            if data and run.writer:
                run.writer.write(stream, data)
                continue
            # EOF, or (at exit) nothing more to read now
            self.selector.unregister(fd)
            os.close(fd)
            del run.pipes[fd]
            if not run.pipes and run.writer:
                run.writer.close()
                run.writer = None
            return

    # ----------------------------------------------------------- stopping
    def request_stop(self) -> None:
        if self.stop_requested:
            return
        log.info("stopping the pod (grace period %ss)", self.grace)
        self.stop_requested = True
        self.dirty = True
        for run in self.runs:
            run.next_start = None
            if run.pid is None and not run.final and "terminated" not in run.state:
                run.state = {"waiting": {"reason": "Terminating"}}
            if run.pid is None:
                run.final = True
            else:
                _signal(run.pid, _stop_signal(run))
        self.stop_deadline = time.time() + self.grace

    def kill_remaining(self) -> None:
        for run in self.runs:
            if run.pid is not None:
                _signal(run.pid, signal.SIGKILL)
        if self.cgroup is not None:
            for run in self.runs:
                try:
                    self.cgroup.child(run.name).kill_all(signal.SIGKILL)
                except Exception as exc:
                    log.warning("kill container %s: %s", run.name, exc)

    def finished(self) -> bool:
        """Stopped, or every container is done for good."""
        if self.stop_requested:
            return all(r.pid is None for r in self.runs)
        records = [r.record() for r in self.runs]
        return podstatus.pod_phase(records, self.restart_policy, self.state["initialized"]) \
            in ("Succeeded", "Failed")

    def start_outcome(self) -> dict | None:
        """What ``run`` waits for: every app container tried once (or the
        pod over before that)."""
        apps = [r for r in self.runs if not r.init]
        if not (self.state["initialized"] and all(r.attempted for r in apps)) and not self.finished():
            return None
        failures = {r.name: r.start_error for r in self.runs if r.start_error}
        return {"ok": True, "failures": failures}

    # ----------------------------------------------------------- the loop
    def on_signal(self, signum, frame) -> None:
        self.signals.append(signum)

    def loop(self, wake_r: int) -> None:
        while True:
            now = time.time()
            for run in self.runs:
                if run.next_start is not None and run.next_start <= now and not self.stop_requested:
                    self.start(run)
            if self.ready_fd is not None:
                outcome = self.start_outcome()
                if outcome:
                    self.save()
                    self.tell_caller(outcome)
            if self.stop_deadline and now >= self.stop_deadline:
                self.kill_remaining()
                self.stop_deadline = None
            if self.finished() and not any(r.pipes for r in self.runs):
                return
            if self.dirty:
                self.dirty = False
                self.save()
            timeout = self.next_timeout(now)
            for key, _ in self.selector.select(timeout):
                if key.fd == wake_r:
                    _drain_wakeup(wake_r)
                    continue
                run = key.data
                if key.fd in run.pipes:
                    self.read_pipe(run, key.fd)
            signals, self.signals = self.signals, []
            for signum in signals:
                if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    self.request_stop()
            self.reap()
            if self.finished():
                for run in self.runs:
                    self.drain(run)

    def next_timeout(self, now: float) -> float | None:
        times = [r.next_start for r in self.runs if r.next_start is not None]
        if self.stop_deadline:
            times.append(self.stop_deadline)
        if not times:
            return None
        return max(0.0, min(times) - now)

    def teardown(self) -> None:
        """Stop whatever still runs and give every host resource back. The
        pod's directory, logs and state stay until ``rm``."""
        if self.pause_pid:
            _signal(self.pause_pid, signal.SIGKILL)
        for fd in self.pause_fds.values():
            os.close(fd)
        self.pause_fds = {}
        release_host_resources(self.config, self.state)
        self.reap()
        self.pause_pid = None

    def run(self) -> int:
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        try:
            try:
                self.build_sandbox()
            except Exception as exc:
                log.error("pod sandbox failed: %s", exc, exc_info=self.config.debug)
                self.state.update(phase="Failed", reason="SandboxFailed", message=str(exc))
                self.teardown()
                self.done = True
                self.save()
                self.tell_caller({"ok": False, "error": f"pod sandbox: {exc}",
                                  "hint": getattr(exc, "hint", None)})
                return 1
            self.start_next_init()
            self.loop(wake_r)
        finally:
            self.done = True
            self.teardown()
            self.save()
            self.tell_caller({"ok": True})
        return 0


def pod_ports(pod: dict) -> list[dict]:
    """The container ports of every container that runs alongside the others
    (app containers and native sidecars), where hostPorts are declared."""
    spec = pod["spec"]
    containers = list(spec["containers"])
    containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return [port for c in containers for port in c.get("ports") or []]


def _remove_older_layers(cdir: str, current: int) -> None:
    from .teardown import remove_tree

    for name in os.listdir(cdir):
        if name.isdigit() and int(name) < current:
            remove_tree(os.path.join(cdir, name))


def _stop_signal(run: ContainerRun) -> int:
    name = ((run.spec.get("lifecycle") or {}).get("stopSignal") or run.image.config.get("StopSignal") or "SIGTERM")
    name = name if name.startswith("SIG") else "SIG" + name
    return getattr(signal, name, signal.SIGTERM)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _drain_wakeup(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _host_ip() -> str | None:
    """The host's primary address, learnt from the routing table without
    sending a packet (a UDP socket's connect sends nothing)."""
    # The C module, not ``socket``: socket.py's enum set-up costs ~4 ms of
    # every pod start, for one ioctl.
    import _socket

    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == "00000000":
                    iface = fields[0]
                    break
            else:
                return None
        import fcntl
        import struct

        s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface[:15].encode()))  # SIOCGIFADDR
        finally:
            s.close()
        return _socket.inet_ntoa(packed[20:24])
    except (OSError, StopIteration, IndexError):
        return None


def run_supervisor(config: Config, pod_dir: PodDir, ready_fd: int | None) -> int:
    """Entry point in the daemonized process."""
    try:
        import prctl

        prctl.set_child_subreaper(True)
        from .teardown import SUPERVISOR_NAME

        prctl.set_name(SUPERVISOR_NAME)
    except ImportError:  # pragma: no cover - python-prctl is a dependency
        pass
    lock_fd = pod_dir.hold_lock()
    os.set_inheritable(lock_fd, False)
    sup = Supervisor(config, pod_dir, ready_fd)
    return sup.run()


if __name__ == "__main__":
    import sys

    from .launcher import main

    sys.exit(main(sys.argv[1:]))
