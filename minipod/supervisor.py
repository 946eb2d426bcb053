"""The pod supervisor: one per pod, the parent of its processes.

It plays the part of containerd's shim and podman's conmon, and of the
kubelet's pod worker: it builds the sandbox, starts the containers (init
containers first, one at a time; native sidecars stay beside the app
containers), writes their output to CRI log files, runs probes and
lifecycle hooks, applies the restart policy with its back-off, records
state and events, stops the pod gracefully when asked (preStop, the stop
signal, the grace period, SIGKILL) and releases every host resource at the
end. It is single-threaded: everything happens in one event loop
(``eventloop.Loop``), so a reaped child, a probe's answer and a timer never
race with each other.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time

from . import podstatus, sandbox
from .config import Config
from .container import ImageInfo, container_plan, exec_failure, make_launch
from .containerrun import BACKOFF_RESET_AFTER, ContainerRun, backoff_delay, exit_reason, should_restart
from .errors import MinipodError
from .events import EventLog
from .eventloop import Loop, now
from .logs import LogWriter, log_path
from .plan import MNT_DETACH, MS_BIND
from .state import PodDir
from .teardown import release_host_resources, remove_tree
from .spec.sidecars import pod_ports
from .volumes import container_binds, prepare_volumes

log = logging.getLogger("minipod.supervisor")

# kubelet gives a preStop hook that used up the grace period this much more
# after the stop signal, before SIGKILL.
PRE_STOP_EXTRA_GRACE = 2.0


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
            "conditionTimes": {},
        }
        self.events = EventLog(self.state.setdefault("events", []))
        self.loop = Loop()
        self.cgroup = None
        self.volumes: dict = {}
        self.pause_pid: int | None = None
        self.pause_fds: dict[str, int] = {}
        self.host_net_fd: int | None = None
        self.pod_files: dict[str, str] = {}
        self.shm_dir: str | None = None
        self.stop_requested = False   # asked to stop (SIGTERM): the phase stays what it was
        self.remove_requested = False  # by 'rm': the pod's data and logs go at the end too
        self.terminating = False      # stopping, or winding down sidecars after the app containers
        self.stop_deadline: float | None = None
        self.stop_timer = None
        self.done = False
        self.dirty = True  # state.json is behind what the supervisor knows
        self.condition_status: dict[str, str] = {}

    @property
    def apps(self) -> list[ContainerRun]:
        return [r for r in self.runs if not r.init]

    # ----------------------------------------------------------- state
    def save(self) -> None:
        self.state["containers"] = [r.record() for r in self.runs]
        self.state["pausePid"] = self.pause_pid
        if self.state.get("reason") == "DeadlineExceeded":
            self.state["phase"] = "Failed"
        elif not self.stop_requested or self.done:
            self.state["phase"] = podstatus.pod_phase(self.state["containers"], self.restart_policy,
                                                      self.state["initialized"])
        self.note_condition_transitions()
        self.pod_dir.write(self.state)
        self.dirty = False  # everything is on disk now

    def note_condition_transitions(self) -> None:
        """Keep when each condition last changed, as the API server does."""
        stamp = None
        for cond in podstatus.conditions(self.state):
            kind, status = cond["type"], cond["status"]
            if self.condition_status.get(kind) != status:
                self.condition_status[kind] = status
                stamp = stamp or podstatus.now_rfc3339()
                self.state["conditionTimes"][kind] = stamp

    def event(self, kind: str, reason: str, message: str, run: ContainerRun | None = None) -> None:
        self.events.add(kind, reason, message, run.name if run else "")
        self.dirty = True

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
        self.start_pause_and_network()
        # Volumes and pod files may name the pod's IP (downwardAPI, /etc/hosts).
        self.state["hostIP"] = _host_ip()
        self.volumes = prepare_volumes(self.pod, self.data_dir, self.config_maps, self.secrets,
                                       lambda path, opts: _sys.mount("tmpfs", path, "tmpfs", 2 | 4, opts),
                                       self.field_status())
        self.pod_files = sandbox.write_pod_files(self.data_dir, self.pod, self.hostname,
                                                 self.state.get("podIP"), self.shape)
        self.state["startTime"] = podstatus.now_rfc3339()
        self.dirty = True  # saved by the main loop's first turn, before any container starts

    def start_pause_and_network(self) -> None:
        """Start the pause process and, while it joins the pod's cgroup (see
        ``sandbox.pause_plan``), connect its new namespaces to the network."""
        from . import _sys

        # "_pause" cannot clash with a container: container names are DNS labels.
        pause = self.cgroup.child("_pause")
        pause.create()
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            sysctls = (self.pod["spec"].get("securityContext") or {}).get("sysctls")
            plan = sandbox.pause_plan(_sys.pause_binary(), self.shape, self.hostname,
                                      pause.procs_files(), devnull, sysctls)
            spawning = _sys.start_spawn(plan)
        finally:
            os.close(devnull)  # the child has its own
        try:
            pid = spawning.clone_pid()  # our child: nobody else can reap it, its pid stays its own
            for ns in self.shape.owned():
                self.pause_fds[ns] = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            if "net" in self.pause_fds:
                # Probes open their sockets in the pod and come back here.
                self.host_net_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            self.state["namespaces"] = {"pause": sandbox.namespace_inodes(pid)}
            self.connect_network()
        finally:
            # A pause that failed is reaped by finish(); its error is the one
            # to report (a network failure would only be its consequence).
            self.pause_pid = spawning.finish()
            self.loop.watch_child(self.pause_pid, self.pause_exited)

    def pause_exited(self, status: int) -> None:
        log.warning("pause process %d exited (status %#x)", self.pause_pid, status)
        self.pause_pid = None
        self.dirty = True

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
    def schedule_start(self, run: ContainerRun, delay: float = 0.0) -> None:
        if run.start_timer is None and not self.terminating:
            run.start_timer = self.loop.call_later(delay, lambda: self.start(run))

    def start(self, run: ContainerRun) -> None:
        """Spawn one container. A failure to start (no such executable, a
        volume that cannot be mounted) is the container's terminated state,
        as in Kubernetes, not the supervisor's end."""
        from . import _sys

        run.start_timer = None
        if self.terminating:
            return
        if run.attempted:  # counted when it happens, as kubelet counts restarts
            run.restarts += 1
        else:
            self.event("Normal", "Pulled", f'Container image "{run.spec["image"]}" already present on machine', run)
        run.attempted = True
        run.start_error = None
        run.new_instance()
        self.dirty = True
        run.container_id = os.urandom(16).hex()
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
                                     self.config_maps, self.secrets, self.field_status(),
                                     seccomp_dir=self.config.seccomp_dir)
            binds, staged = container_binds(run.spec, run.field, self.volumes, run.launch.env,
                                            os.path.join(layer_dir, "subpaths"),
                                            lambda src, dst: _sys.mount(src, dst, None, MS_BIND))
            from .rootfs import BindMount
            from .termination import create_message_file

            run.message_file = create_message_file(layer_dir)
            message_bind = BindMount(run.message_file, run.spec.get("terminationMessagePath", "/dev/termination-log"),
                                     False, False)
            run.launch.binds = self.pod_file_binds() + binds + [message_bind]
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
            self.loop.add_reader(fd, lambda fd=fd: self.read_pipe(run, fd))
        self.loop.watch_child(run.pid, lambda status: self.container_exited(run, status))
        run.started_at, run.started_mono = time.time(), now()
        run.has_run = True
        run.state = {"running": {"startedAt": podstatus.now_rfc3339()}}
        self.state.setdefault("namespaces", {})[run.name] = sandbox.namespace_inodes(run.pid)
        log.info("started container %s as pid %d", run.name, run.pid)
        self.event("Normal", "Created", f"Created container: {run.name}", run)
        self.event("Normal", "Started", f"Started container {run.name}", run)
        post_start = run.lifecycle.get("postStart")
        if post_start:
            run.hook = self.run_handler(run, post_start, None, lambda result: self.post_start_done(run, result))
        else:
            self.begin_probes(run)

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
        stamp = podstatus.now_rfc3339()
        run.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": message,
                                    "startedAt": stamp, "finishedAt": stamp,
                                    "containerID": f"minipod://{run.container_id}"}}
        self.event("Warning", "Failed", f"Error: {message}", run)
        if run.writer:
            run.writer.close()
            run.writer = None
        self.after_exit(run, 128)

    def container_exited(self, run: ContainerRun, status: int) -> None:
        self.drain(run)
        run.pid = None
        self.end_instance(run)
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
        from .termination import termination_message

        message = termination_message(run.message_file, run.spec.get("terminationMessagePolicy", "File"),
                                      code, run.log_path)
        if message:
            term["message"] = message
        term.update({
            "exitCode": code, "reason": exit_reason(code, oom),
            "startedAt": run.state.get("running", {}).get("startedAt"),
            "finishedAt": podstatus.now_rfc3339(),
            "containerID": f"minipod://{run.container_id}",
        })
        run.state = {"terminated": term}
        log.info("container %s exited with %d", run.name, code)
        self.after_exit(run, code)

    def end_instance(self, run: ContainerRun) -> None:
        """The process is gone: so is everything that belonged to it."""
        for attr in ("probes", "hook"):
            part = getattr(run, attr)
            if part is not None:
                (part.stop if attr == "probes" else part.cancel)()
                setattr(run, attr, None)
        if run.kill_timer is not None:
            run.kill_timer.cancel()
            run.kill_timer = None
        run.stopping = False

    def after_exit(self, run: ContainerRun, code: int) -> None:
        """Apply the restart policy, then see what the exit means for the
        pod: the next init container, the sidecars' wind-down, the end."""
        self.dirty = True
        if self.terminating or not should_restart(self.restart_policy, run.init, run.sidecar, code):
            run.final = True
            if run.init and not run.sidecar and code == 0:
                self.start_next_init()
        else:
            if run.started_at and time.time() - run.started_at > BACKOFF_RESET_AFTER:
                run.backoff_restarts = 0
            run.last_state = run.state
            delay = backoff_delay(run.backoff_restarts)
            run.backoff_restarts += 1
            if delay:
                message = f"back-off {int(delay)}s restarting failed container={run.name}"
                run.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
                pod = f"{self.pod['metadata']['name']}_{self.pod['metadata']['namespace']}({self.uid})"
                self.event("Warning", "BackOff", f"Back-off restarting failed container {run.name} in pod {pod}", run)
            self.schedule_start(run, delay)
        if self.terminating:
            self.advance_stop()
        else:
            self.wind_down_if_done()

    def start_next_init(self) -> None:
        """Init containers run one at a time, in order: a regular one must
        complete, a sidecar must have started; then the app containers."""
        for run in self.runs:
            if not run.init:
                continue
            done = run.ever_started if run.sidecar else (run.final and "terminated" in run.state
                                                         and run.state["terminated"]["exitCode"] == 0)
            if done:
                continue
            if not run.attempted:
                self.schedule_start(run)
            return
        if not self.state["initialized"]:
            self.state["initialized"] = True
            self.dirty = True
        for run in self.apps:
            if not run.attempted:
                self.schedule_start(run)

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
            self.loop.forget(fd)
            os.close(fd)
            del run.pipes[fd]
            if not run.pipes and run.writer:
                run.writer.close()
                run.writer = None
            return

    # ----------------------------------------------------------- hooks and probes
    def check_context(self, run: ContainerRun):
        from .probes.checks import CheckContext

        ports = tuple((p["name"], p["containerPort"]) for p in run.spec.get("ports") or [] if p.get("name"))
        return CheckContext(
            loop=self.loop, default_host=self.state.get("podIP") if self.shape.net else "127.0.0.1",
            net_fd=self.pause_fds.get("net"), host_net_fd=self.host_net_fd, port_names=ports,
            spawn_exec=lambda argv, out_fd: self.spawn_in(run, argv, out_fd))

    def spawn_in(self, run: ContainerRun, argv: list[str], out_fd: int) -> int:
        """A hook's or probe's command, inside the running container; its
        exit is reaped by the loop like any child of ours."""
        from .podexec import spawn_in_container

        devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return spawn_in_container(run.record(), argv, (devnull, out_fd, out_fd), tty=False)
        finally:
            os.close(devnull)

    def run_handler(self, run: ContainerRun, handler: dict, timeout: float | None, on_done):
        from .probes.checks import start_check

        try:
            check = start_check(self.check_context(run), handler, timeout, on_done)
        except MinipodError as exc:  # a port name that resolves to nothing, say
            from .probes.result import Result

            on_done(Result(False, str(exc)))
            return None
        return None if check.done else check

    def post_start_done(self, run: ContainerRun, result) -> None:
        """kubelet's rule: a failed postStart hook kills the container."""
        run.hook = None
        if not result.ok:
            message = f"PostStartHook failed: {result.message}".strip()
            self.event("Warning", "FailedPostStartHook", message, run)
            self.event("Normal", "Killing", f"FailedPostStartHook: stopping container {run.name}", run)
            self.stop_container(run, self.grace)
            return
        run.post_started = True
        self.dirty = True
        self.begin_probes(run)

    def begin_probes(self, run: ContainerRun) -> None:
        if not run.probe_specs:
            self.container_started(run)
            return
        from .probes.runner import ContainerProbes

        run.probes = ContainerProbes(self.loop, self.check_context(run), run.probe_specs,
                                     _RunProbeListener(self, run), run.started_mono)
        run.probes.start()

    def container_started(self, run: ContainerRun) -> None:
        """Past postStart and the startup probe: the container is "started"."""
        run.startup_passed = True
        self.dirty = True
        if run.sidecar and not run.ever_started:
            run.ever_started = True
            self.start_next_init()

    def probe_failed(self, run: ContainerRun, spec, message: str) -> None:
        """A liveness or startup probe failed for good: kubelet kills the
        container, and the restart policy decides what comes next."""
        self.event("Normal", "Killing", f"Container {run.name} failed {spec.kind} probe, will be restarted", run)
        self.stop_container(run, spec.grace if spec.grace is not None else self.grace)

    # ----------------------------------------------------------- stopping
    def stop_container(self, run: ContainerRun, grace: float) -> None:
        """preStop, then the stop signal, then SIGKILL once ``grace`` is over."""
        if run.pid is None or run.stopping:
            return
        run.stopping = True
        self.dirty = True
        if run.probes is not None:
            run.probes.stop()
            run.probes = None
        if run.hook is not None:  # a postStart still running is abandoned
            run.hook.cancel()
            run.hook = None
        if grace <= 0:
            self.kill_container(run)
            return
        run.kill_timer = self.loop.call_later(grace, lambda: self.grace_over(run))
        pre_stop = run.lifecycle.get("preStop")
        if pre_stop:
            run.hook = self.run_handler(run, pre_stop, None, lambda result: self.pre_stop_done(run, result))
        else:
            _signal(run.pid, _stop_signal(run))

    def pre_stop_done(self, run: ContainerRun, result) -> None:
        run.hook = None
        if not result.ok:
            self.event("Warning", "FailedPreStopHook", f"PreStopHook failed: {result.message}".strip(), run)
        if run.pid is not None:
            _signal(run.pid, _stop_signal(run))

    def grace_over(self, run: ContainerRun) -> None:
        run.kill_timer = None
        if run.hook is not None:
            # The preStop hook used up the grace period: the stop signal
            # still comes, with a short extra grace (as kubelet gives).
            run.hook.cancel()
            run.hook = None
            _signal(run.pid, _stop_signal(run))
            run.kill_timer = self.loop.call_later(PRE_STOP_EXTRA_GRACE, lambda: self.kill_container(run))
            return
        self.kill_container(run)

    def kill_container(self, run: ContainerRun) -> None:
        if run.pid is not None:
            _signal(run.pid, signal.SIGKILL)
        try:  # whatever else it left in its cgroup (its own children, an exec)
            self.cgroup.child(run.name).kill_all(signal.SIGKILL)
        except Exception as exc:
            log.warning("kill container %s: %s", run.name, exc)

    def request_stop(self, grace: float | None = None) -> None:
        """Stop the pod: app containers first (each preStop, then its stop
        signal), sidecars after them in reverse order, all within the grace
        period; SIGKILL for whatever is left when it ends."""
        if self.stop_requested:
            return
        grace = self.grace if grace is None else grace
        log.info("stopping the pod (grace period %ss)", grace)
        self.stop_requested = True
        self.begin_termination(grace)

    def begin_termination(self, grace: float) -> None:
        self.terminating = True
        self.dirty = True
        for run in self.runs:
            if run.start_timer is not None:
                run.start_timer.cancel()
                run.start_timer = None
            if run.pid is None:
                if not run.final and "terminated" not in run.state:
                    run.state = {"waiting": {"reason": "Terminating"}}
                run.final = True
        self.stop_deadline = now() + grace
        self.stop_timer = self.loop.call_at(self.stop_deadline, self.kill_remaining)
        self.advance_stop()

    def advance_stop(self) -> None:
        """The next step of the pod's termination, after each exit."""
        remaining = max(0.0, self.stop_deadline - now())
        first_wave = [r for r in self.runs if r.running and not r.sidecar]
        for run in first_wave:
            if not run.stopping:
                self.event("Normal", "Killing", f"Stopping container {run.name}", run)
                self.stop_container(run, remaining)
        if first_wave:
            return
        sidecars = [r for r in self.runs if r.running and r.sidecar]
        if sidecars and not any(r.stopping for r in sidecars):
            last = sidecars[-1]  # sidecars stop in the reverse of their start order
            self.event("Normal", "Killing", f"Stopping container {last.name}", last)
            self.stop_container(last, remaining)

    def wind_down_if_done(self) -> None:
        """Once the pod's outcome is settled (its app containers completed
        for good, or an init container failed for good), its sidecars are
        stopped: they serve the app containers and must not keep the pod
        alive."""
        if self.terminating or not any(r.sidecar and (r.running or r.start_timer) for r in self.runs):
            return
        records = [r.record() for r in self.runs]
        if podstatus.pod_phase(records, self.restart_policy, self.state["initialized"]) in ("Succeeded", "Failed"):
            self.begin_termination(self.grace)

    def deadline_exceeded(self) -> None:
        """activeDeadlineSeconds: the pod has run long enough; it is stopped
        and Failed, whatever its containers were doing."""
        if self.terminating:
            return
        message = "Pod was active on the node longer than the specified deadline"
        self.state.update(reason="DeadlineExceeded", message=message)
        self.event("Warning", "DeadlineExceeded", message)
        self.begin_termination(self.grace)

    def kill_remaining(self) -> None:
        self.stop_timer = None
        for run in self.runs:
            if run.hook is not None:
                run.hook.cancel()
                run.hook = None
            if run.running:
                self.kill_container(run)

    def finished(self) -> bool:
        """Every process is gone and none will be started again."""
        if any(r.running or r.pipes for r in self.runs):
            return False
        if self.terminating:
            return True
        if any(r.start_timer is not None for r in self.runs):
            return False
        records = [r.record() for r in self.runs]
        return podstatus.pod_phase(records, self.restart_policy, self.state["initialized"]) \
            in ("Succeeded", "Failed")

    def start_outcome(self) -> dict | None:
        """What ``run`` waits for: every app container tried once (or the
        pod over before that)."""
        if not (self.state["initialized"] and all(r.attempted for r in self.apps)) and not self.finished():
            return None
        failures = {r.name: r.start_error for r in self.runs if r.start_error}
        return {"ok": True, "failures": failures}

    # ----------------------------------------------------------- the loop
    def handle_signals(self) -> None:
        for signum in self.loop.take_signals():
            if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                asked = self.pod_dir.take_stop_request()
                self.remove_requested = self.remove_requested or asked.remove
                self.request_stop(asked.grace)

    def main_loop(self) -> None:
        while True:
            self.handle_signals()
            if self.ready_fd is not None:
                outcome = self.start_outcome()
                if outcome:
                    self.save()
                    self.tell_caller(outcome)
            if self.finished():
                return
            if self.dirty:
                self.save()
            self.loop.run_once()

    def teardown(self) -> None:
        """Stop whatever still runs and give every host resource back. The
        pod's directory, logs and state stay until ``rm``."""
        if self.pause_pid:
            self.loop.watch_child(self.pause_pid, lambda status: None)  # expected now
            _signal(self.pause_pid, signal.SIGKILL)
        for fd in [*self.pause_fds.values(), self.host_net_fd]:
            if fd is not None:
                os.close(fd)
        self.pause_fds, self.host_net_fd = {}, None
        self.state["released"] = False
        release_host_resources(self.config, self.state)
        from .cgroups import remove_parent_if_empty

        remove_parent_if_empty(self.config.cgroup_parent)
        # Said in the last save: 'rm' need not take apart again what is gone.
        self.state["released"] = True
        self.loop.reap()
        self.pause_pid = None
        if self.remove_requested:  # 'rm' deletes the rest (the state directory) once we are gone
            for path in (self.data_dir, self.log_dir):
                try:
                    remove_tree(path)
                except (MinipodError, OSError) as exc:
                    log.warning("remove %s: %s", path, exc)  # 'rm' tries again

    def run(self) -> int:
        self.loop.catch_signals(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
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
            deadline = self.pod["spec"].get("activeDeadlineSeconds")
            if deadline:
                self.loop.call_later(float(deadline), self.deadline_exceeded)
            self.main_loop()
        finally:
            self.done = True
            self.teardown()
            self.save()
            self.tell_caller({"ok": True})
            self.loop.close()
        return 0


class _RunProbeListener:
    """What a container's probes tell the supervisor, about that container."""

    def __init__(self, supervisor: Supervisor, run: ContainerRun):
        self.supervisor, self.run = supervisor, run

    def probe_started(self) -> None:
        self.supervisor.container_started(self.run)

    def probe_ready(self, ready: bool) -> None:
        self.run.readiness = ready
        self.supervisor.dirty = True

    def probe_failed(self, spec, message: str) -> None:
        self.supervisor.probe_failed(self.run, spec, message)

    def probe_event(self, kind: str, reason: str, message: str) -> None:
        self.supervisor.event(kind, reason, message, self.run)


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
