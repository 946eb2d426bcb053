"""A pod's record on the host: its state directory, ``state.json`` and lock.

``/run/minipod/pods/<namespace>_<name>/`` holds:

* ``state.json`` — everything known about the pod, written by the supervisor
  (write to a temporary file, then ``rename``: readers never see half a file);
* ``lock`` — held with ``flock`` by the pod's supervisor for as long as it
  lives, so anyone can tell a live supervisor from a dead one without
  trusting a pid that may have been reused;
* ``supervisor.log`` — the supervisor's own diagnostics.

Creating the directory is how a name is claimed: ``mkdir`` either succeeds or
fails atomically, so of two ``run``s of the same pod at the same moment
exactly one wins.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from typing import NamedTuple

from .config import Config
from .errors import KernelError, StateError
from .record import Record

STATE_FILE = "state.json"
LOCK_FILE = "lock"
SUPERVISOR_LOG = "supervisor.log"
STOP_REQUEST = "stop.json"


def pod_key(namespace: str, name: str) -> str:
    return f"{namespace}_{name}"


def split_ref(ref: str) -> tuple[str, str]:
    """``"ns/name"`` or ``"name"`` (namespace ``default``) → (namespace, name)."""
    if "/" in ref:
        namespace, _, name = ref.partition("/")
        return namespace, name
    return "default", ref


def new_uid() -> str:
    """A random (version 4) UUID, as Kubernetes gives every object, in its
    usual text form. Not ``uuid.uuid4()``: importing ``uuid`` (it imports
    ``platform``) costs ~9 ms of every ``run`` here, for 16 random bytes."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def write_json_atomic(path: str, data: object, mode: int = 0o600) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, json.dumps(data, indent=1, sort_keys=True).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


class StopRequest(NamedTuple):
    grace: float | None  # seconds; None: the pod's terminationGracePeriodSeconds
    remove: bool         # the pod is being removed: its data and logs go too


class PodDir(Record):
    """The state directory of one pod."""

    path: str

    @property
    def key(self) -> str:
        return os.path.basename(self.path)

    @property
    def state_path(self) -> str:
        return os.path.join(self.path, STATE_FILE)

    @property
    def lock_path(self) -> str:
        return os.path.join(self.path, LOCK_FILE)

    @property
    def supervisor_log(self) -> str:
        return os.path.join(self.path, SUPERVISOR_LOG)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def read(self) -> dict:
        try:
            with open(self.state_path, "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as exc:  # a torn file cannot happen (rename); a corrupt one can
            raise StateError(f"{self.state_path}: corrupt state: {exc}") from None

    def write(self, state: dict) -> None:
        write_json_atomic(self.state_path, state)

    def hold_lock(self) -> int:
        """Take the supervisor's lock and return its fd (kept open for the
        supervisor's lifetime; the kernel drops the lock when it dies)."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StateError(f"pod {self.key} already has a supervisor") from None
            raise KernelError.from_oserror("flock", exc, self.lock_path) from None
        return fd

    def request_stop(self, grace: float | None, remove: bool = False) -> None:
        """Leave the grace period for the supervisor to read when the stop
        signal reaches it (``None``: the pod's own), and whether the pod
        is being removed (then the supervisor deletes its data and logs
        too, with what it has already loaded)."""
        write_json_atomic(os.path.join(self.path, STOP_REQUEST), {"gracePeriodSeconds": grace, "remove": remove})

    def take_stop_request(self) -> StopRequest:
        """What a stop request asked for, read once."""
        path = os.path.join(self.path, STOP_REQUEST)
        try:
            with open(path, "rb") as f:
                asked = json.load(f)
            os.unlink(path)
        except (OSError, ValueError):
            return StopRequest(None, False)
        if not isinstance(asked, dict):
            return StopRequest(None, False)
        grace = asked.get("gracePeriodSeconds")
        grace = float(grace) if isinstance(grace, (int, float)) and grace >= 0 else None
        return StopRequest(grace, asked.get("remove") is True)

    def supervisor_alive(self) -> bool:
        """True while some process holds the lock (the supervisor)."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        finally:
            os.close(fd)  # closing drops our probe lock, if we got it
        return False


class PodTable:
    """All pods' state directories under ``/run/minipod/pods``."""

    def __init__(self, config: Config):
        self.config = config
        self.root = config.pods_state_dir

    def dir_for(self, namespace: str, name: str) -> PodDir:
        return PodDir(os.path.join(self.root, pod_key(namespace, name)))

    def claim(self, namespace: str, name: str) -> PodDir:
        """Claim a pod name: exactly one concurrent caller wins."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        pod_dir = self.dir_for(namespace, name)
        try:
            os.mkdir(pod_dir.path, 0o700)
        except FileExistsError:
            raise StateError(
                f'pod "{name}" already exists in namespace "{namespace}"',
                hint="remove it with 'minipod rm -f', or run with --replace",
            ) from None
        return pod_dir

    def find(self, ref: str) -> PodDir:
        """A pod by ``name`` or ``namespace/name``; StateError if unknown."""
        namespace, name = split_ref(ref)
        pod_dir = self.dir_for(namespace, name)
        if not pod_dir.exists():
            raise StateError(f'pod "{ref}" not found', hint="list pods with 'minipod ps -a'")
        return pod_dir

    def all(self) -> list[PodDir]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [PodDir(os.path.join(self.root, n)) for n in names if "_" in n]
