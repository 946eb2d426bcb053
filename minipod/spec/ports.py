"""Which container ports a pod publishes: pure, for the runtime's hostPort
check before anything exists and for the supervisor's network set-up."""

from __future__ import annotations


def pod_ports(pod: dict) -> list[dict]:
    """The container ports of every container that runs alongside the others
    (app containers and native sidecars), where hostPorts are declared."""
    spec = pod["spec"]
    containers = list(spec["containers"])
    containers += [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    return [port for c in containers for port in c.get("ports") or []]
