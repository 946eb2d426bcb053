"""A container's life across restarts, as its supervisor sees it.

The facts (pid, state, restarts, probe verdicts, hooks in flight) and the
pure rules over them: Kubernetes' restart policy and crash-loop back-off,
what "started" and "ready" mean, and the record ``state.json`` keeps.
"""

from __future__ import annotations

from .container import ImageInfo, Launch
from .logs import LogWriter
from .probes.schedule import container_probes
from .spec.sidecars import is_sidecar

# Kubernetes' crash-loop back-off: 10 s doubling up to 5 min; the first
# restart is immediate; a container that ran 10 minutes is forgiven.
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET_AFTER = 10.0, 300.0, 600.0


def backoff_delay(restarts: int) -> float:
    if restarts <= 0:
        return 0.0
    # The exponent is capped well past the point where the cap applies, so a
    # crash loop of days never overflows a float.
    return min(BACKOFF_START * 2 ** min(restarts - 1, 16), BACKOFF_MAX)


def exit_reason(exit_code: int, oom: bool) -> str:
    if oom:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


def should_restart(pod_policy: str, init: bool, sidecar: bool, exit_code: int) -> bool:
    """Kubernetes' rule: a sidecar always restarts; an init container only
    after a failure (and never under Never); an app container as the pod's
    restartPolicy says."""
    if sidecar:
        return True
    if init:
        return exit_code != 0 and pod_policy != "Never"
    return pod_policy == "Always" or (pod_policy == "OnFailure" and exit_code != 0)


class ContainerRun:
    def __init__(self, spec: dict, field_path: str, image: ImageInfo, init: bool):
        self.spec = spec
        self.name = spec["name"]
        self.field = field_path
        self.image = image
        self.init = init
        # An init container with restartPolicy Always is a "native sidecar":
        # it runs beside the app containers for the pod's whole life.
        self.sidecar = init and is_sidecar(spec)
        self.probe_specs = container_probes(spec)
        self.lifecycle: dict = spec.get("lifecycle") or {}
        self.pid: int | None = None
        self.restarts = 0
        self.state: dict = {"waiting": {"reason": "ContainerCreating" if not init else "PodInitializing"}}
        self.last_state: dict = {}
        self.has_run = False        # a process was started at least once
        self.final = False          # terminated and will not be restarted
        self.container_id = ""
        self.started_at = 0.0       # wall clock, for the back-off reset
        self.started_mono = 0.0     # monotonic, for probe delays
        self.backoff_restarts = 0   # restarts that count for the back-off (reset after a good run)
        self.attempted = False      # at least one start was tried (run -d waits for this)
        self.start_error: str | None = None
        self.pipes: dict[int, str] = {}  # read fd -> stream name
        self.writer: LogWriter | None = None
        self.launch: Launch | None = None
        self.cgroup_procs: list[str] = []
        self.oom_kills_at_start = 0  # the cgroup outlives a restart; so does its OOM counter
        self.log_path = ""
        self.message_file: str | None = None  # the host side of terminationMessagePath
        # This instance's lifecycle: hooks, probes, the stop sequence.
        self.start_timer = None     # a (re)start scheduled on the loop
        self.hook = None            # a postStart or preStop handler in flight
        self.probes = None          # ContainerProbes while running
        self.post_started = False   # postStart done (or none)
        self.startup_passed = False  # startup probe passed (or none)
        self.ever_started = False   # for sidecars: the next init container may go
        self.readiness: bool | None = None
        self.stopping = False       # the stop sequence has begun for this instance
        self.kill_timer = None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def started(self) -> bool:
        """Kubernetes' ``started``: running, past postStart and the startup probe."""
        return self.running and self.post_started and self.startup_passed

    @property
    def ready(self) -> bool:
        if not self.started or self.stopping or (self.init and not self.sidecar):
            return False
        if "readiness" in self.probe_specs:
            return bool(self.readiness)
        return True

    def new_instance(self) -> None:
        """Forget what the previous process had achieved."""
        self.post_started = not self.lifecycle.get("postStart")
        self.startup_passed = False
        self.readiness = None
        self.stopping = False

    def record(self) -> dict:
        return {
            "name": self.name, "init": self.init, "sidecar": self.sidecar, "image": self.spec["image"],
            "imageID": self.image.image_id_ref, "containerID": self.container_id,
            "pid": self.pid, "restartCount": self.restarts, "state": self.state,
            "lastState": self.last_state, "ready": self.ready, "started": self.started,
            "hasRun": self.has_run, "final": self.final, "logPath": self.log_path,
            "launch": self.launch.to_record() if self.launch else None,
            "cgroupProcs": self.cgroup_procs,
        }
