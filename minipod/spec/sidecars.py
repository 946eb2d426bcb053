"""Which containers of a pod run side by side: its app containers and its
native sidecars (init containers with ``restartPolicy: Always``). Pure, for
validation, resource sums, hostPort checks, the supervisor and status."""

from __future__ import annotations


def is_sidecar(container: dict) -> bool:
    """An init container that keeps running beside the app containers."""
    return container.get("restartPolicy") == "Always"


def side_by_side(pod_spec: dict) -> list[dict]:
    """Native sidecars (in their order), then the app containers."""
    return [c for c in pod_spec.get("initContainers") or [] if is_sidecar(c)] + list(pod_spec["containers"])


def pod_ports(pod: dict) -> list[dict]:
    """The container ports of every container that runs alongside the others,
    where hostPorts are declared."""
    return [port for c in side_by_side(pod["spec"]) for port in c.get("ports") or []]
