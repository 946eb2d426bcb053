"""Pod networking: an IP per pod on a host bridge, egress masquerade and
hostPorts, the way CNI's bridge + host-local + portmap plugins do it for
kubelet and podman — with no CNI binaries.

    cfg = PodNetworkConfig.from_config(config)      # bridge, subnet, <run_dir>/net
    check_host_ports(cfg, "default_web", ports)     # before anything is made
    net = setup_pod_network(cfg, "default_web", netns_fd, ports)
    state["network"] = net.to_record()
    ...
    teardown_pod_network(cfg, "default_web", state.get("network"))
    ...
    remove_network(cfg)                             # the bridge and table, once no pod is left

Modules: ``model`` (config, ports, record: pure), ``ipam`` (addresses in
files), ``hostports`` (who holds a port), ``nat`` (nft rules as text),
``nft`` (runs them), ``rtnl`` (netlink requests), ``links`` (bridge, veth,
pod side), ``pod`` (the order of steps and their undo).

Importing this package is cheap: the kernel-facing modules load on first use,
so ``minipod ps`` can read records without them.
"""

from __future__ import annotations

from ..errors import NetworkError
from .model import HostPort, PodNetwork, PodNetworkConfig, parse_host_ports

__all__ = [
    "NetworkError",
    "HostPort",
    "PodNetwork",
    "PodNetworkConfig",
    "parse_host_ports",
    "check_host_ports",
    "setup_pod_network",
    "teardown_pod_network",
    "remove_network",
    "list_allocations",
]


def check_host_ports(cfg: PodNetworkConfig, pod_key: str, ports) -> None:
    """Raise NetworkError if one of ``ports`` (Kubernetes container ports;
    those without hostPort are ignored) is published by another pod or
    bound by a process on this host. Creates nothing."""
    from .pod import check_host_ports as check

    check(cfg, pod_key, ports)


def setup_pod_network(cfg: PodNetworkConfig, pod_key: str, netns_fd: int, ports=()) -> PodNetwork:
    """Connect the network namespace ``netns_fd`` to the bridge: an address,
    ``eth0``, a default route, masquerade and the hostPort rules. On failure
    nothing is left behind and NetworkError is raised."""
    from .pod import setup_pod_network as setup

    return setup(cfg, pod_key, netns_fd, ports)


def teardown_pod_network(cfg: PodNetworkConfig, pod_key: str, record: dict | None = None, *,
                         namespace_ended: bool = False) -> None:
    """Remove the pod's veth, rules, hostPort claims and address. The bridge
    and the table stay (``remove_network``). Idempotent; ``record`` may be
    None. ``namespace_ended``: no process of the pod is left (then the
    kernel is already removing the veth, and is given a moment to)."""
    from .pod import teardown_pod_network as teardown

    teardown(cfg, pod_key, record, namespace_ended=namespace_ended)


def remove_network(cfg: PodNetworkConfig) -> bool:
    """Remove the bridge, the nft table and the address pool once no pod
    uses them; returns whether anything was there. Raises NetworkError
    while pods are on the bridge."""
    from .pod import remove_network as remove

    return remove(cfg)


def list_allocations(cfg: PodNetworkConfig) -> dict[str, str]:
    """``{ip: pod_key}`` for every address allocated on the bridge."""
    from .pod import list_allocations as allocations

    return allocations(cfg)
