"""``minipod.Pod``: a handle on one pod for library users.

It holds only the pod's name; every property reads the pod's current
record, so a handle never goes stale.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from .errors import MinipodError


class Pod:
    def __init__(self, runtime, namespace: str, name: str):
        self.runtime = runtime
        self.namespace = namespace
        self.name = name

    def __repr__(self) -> str:
        return f"<Pod {self.namespace}/{self.name} {self.phase}>"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    # ------------------------------------------------------------ status
    @property
    def object(self) -> dict:
        """The Pod JSON (as ``minipod inspect``)."""
        return self.runtime.pod_object(self.ref)

    @property
    def status(self) -> dict:
        return self.object["status"]

    @property
    def phase(self) -> str:
        return self.status["phase"]

    @property
    def ip(self) -> str | None:
        return self.status.get("podIP")

    @property
    def uid(self) -> str:
        return self.object["metadata"]["uid"]

    @property
    def ready(self) -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True" for c in self.status["conditions"])

    @property
    def events(self) -> list[dict]:
        """What happened to the pod, as ``minipod describe`` lists it."""
        return self.runtime.events(self.ref)

    def container_status(self, name: str) -> dict:
        status = self.status
        for c in status["containerStatuses"] + status["initContainerStatuses"]:
            if c["name"] == name:
                return c
        raise MinipodError(f'container "{name}" not found in pod "{self.name}"')

    def wait(self, predicate: Callable[["Pod"], bool], timeout: float = 30, interval: float = 0.02) -> "Pod":
        """Poll until ``predicate(pod)`` is true; MinipodError on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise MinipodError(f'pod "{self.name}": condition not met within {timeout}s '
                                   f"(phase {self.phase})")
            time.sleep(interval)
        return self

    def wait_ready(self, timeout: float = 30) -> "Pod":
        return self.wait(lambda p: p.ready, timeout)

    def wait_phase(self, *phases: str, timeout: float = 30) -> "Pod":
        return self.wait(lambda p: p.phase in phases, timeout)

    # ------------------------------------------------------------ actions
    def exec(self, container: str | None, argv: list[str], input: bytes | None = None,
             timeout: float | None = None):
        """Run a command in a container; returns ``.returncode``, ``.stdout``,
        ``.stderr`` (bytes) and ``.text``."""
        from .podexec import run_captured

        state = self.runtime.table.find(self.ref).read()
        return run_captured(state, container, list(argv), input=input, timeout=timeout)

    def logs(self, container: str | None = None, *, follow: bool = False, previous: bool = False,
             timestamps: bool = False, tail: int | None = None) -> Iterator[str]:
        from .podlogs import container_log_lines

        return container_log_lines(self.runtime, self.ref, container, follow=follow,
                                   previous=previous, timestamps=timestamps, tail=tail)

    def stop(self, timeout: float | None = None) -> None:
        self.runtime.stop(self.ref, timeout)

    def remove(self, force: bool = True, timeout: float | None = None) -> None:
        """Remove the pod; a running one is stopped first (gracefully, see
        ``Runtime.stop``; ``timeout=0`` kills it at once)."""
        self.runtime.remove(self.ref, force=force, timeout=timeout)

    def __enter__(self) -> "Pod":
        return self

    def __exit__(self, *exc) -> None:
        self.remove(force=True)
