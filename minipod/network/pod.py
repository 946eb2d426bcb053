"""Set up and tear down one pod's network: the order of the steps and the
undo of each.

Set-up: check hostPorts → claim them → allocate an address and make sure
the bridge exists (under the IPAM lock) → veth pair with ``eth0`` created in
the pod's namespace → address and default route there → nftables rules. Each
step registers its undo as it succeeds; a failure undoes the completed steps
in reverse and raises NetworkError.

Teardown needs no live process and no record: the host veth's name, the
address, the hostPort claims and the nft rules are all found from the pod key
(the record, when there is one, is used first). Every step is tried even if
another failed, and anything already gone is fine. The last pod of a bridge
also takes the bridge, the nft table and the IPAM directory with it.
"""

from __future__ import annotations

import logging
import os

from ..errors import MinipodError, NetworkError
from . import hostports, ipam, links, nat, nft, rtnl
from .model import PodNetwork, PodNetworkConfig, check_pod_key, parse_host_ports

log = logging.getLogger(__name__)


def check_host_ports(cfg: PodNetworkConfig, pod_key: str, ports) -> None:
    """Raise NetworkError if a hostPort in ``ports`` is published by another
    pod or bound by a process on the host. Creates nothing."""
    check_pod_key(pod_key)
    wanted = parse_host_ports(ports)
    if not wanted:
        return
    if os.path.isdir(hostports.claims_dir(cfg)):
        with hostports.locked(cfg, shared=True):
            hostports.check_claims(cfg, pod_key, wanted)
    hostports.check_host_sockets(wanted)


def setup_pod_network(cfg: PodNetworkConfig, pod_key: str, netns_fd: int, ports=()) -> PodNetwork:
    """Give the pod whose network namespace is ``netns_fd`` an address on the
    bridge, egress through masquerade, and its hostPorts."""
    check_pod_key(pod_key)
    wanted = parse_host_ports(ports)
    undo: list[tuple[str, object]] = []
    host = _host_socket()
    try:
        if wanted:
            hostports.check_host_sockets(wanted)
            hostports.claim(cfg, pod_key, wanted)
            undo.append(("release hostPorts", lambda: hostports.release(cfg, pod_key)))

        # Under the lock, so ``remove_network`` cannot delete the bridge
        # between our allocation and our veth joining it.
        with ipam.locked(cfg) as pool:
            again = pool.address_of(pod_key) is not None
            ip = pool.allocate(pod_key)
            undo.append(("release address", lambda: _release_address(cfg, pod_key)))
            bridge_index = links.ensure_bridge(host, cfg)
        if again:
            # Set up before and never torn down (a killed supervisor, then a
            # retry): its rules would be duplicated, drop them first.
            _remove_pod_rules(cfg, pod_key)

        host_veth = cfg.host_veth_name(pod_key)
        links.create_veth(host, cfg, host_veth, bridge_index, netns_fd)
        undo.append(("delete veth", lambda: links.delete_link(host, host_veth)))
        links.configure_pod_side(cfg, netns_fd, ip)

        nft.run(nat.setup_script(cfg, pod_key, ip, wanted), f"rules of pod {pod_key}")
        undo.append(("remove nft rules", lambda: _remove_pod_rules(cfg, pod_key)))
    except BaseException as exc:
        _undo(undo, pod_key)
        host.close()
        if isinstance(exc, MinipodError):
            raise
        if isinstance(exc, OSError):
            raise links.failed(exc) from exc
        raise
    host.close()
    log.debug("pod %s: %s/%d on %s via %s", pod_key, ip, cfg.prefix, cfg.bridge, host_veth)
    return PodNetwork(ip=ip, prefix=cfg.prefix, gateway=cfg.gateway, host_veth=host_veth,
                      ports=[p.to_dict() for p in wanted], bridge=cfg.bridge, pod_key=pod_key)


def _host_socket() -> rtnl.Rtnl:
    try:
        return rtnl.Rtnl()
    except OSError as exc:
        raise NetworkError(f"open a netlink socket: {exc.strerror}") from None


def _undo(undo: list, pod_key: str) -> None:
    for what, step in reversed(undo):
        try:
            step()
        except Exception as exc:  # keep undoing: leave as little as possible
            log.warning("pod %s: undo %s failed: %s", pod_key, what, exc)


# How long a teardown lets the kernel remove a dead namespace's veth.
VETH_GONE_WAIT = 0.015


def teardown_pod_network(cfg: PodNetworkConfig, pod_key: str, record: dict | None = None, *,
                         namespace_ended: bool = False) -> None:
    """Remove what ``setup_pod_network`` made for ``pod_key``. Idempotent;
    works from the record alone, or from nothing but the pod key.
    ``namespace_ended``: the pod's processes are all gone, so its network
    namespace is ending and the kernel removes the veth by itself."""
    check_pod_key(pod_key)
    known = PodNetwork.from_record(record) if record else None
    host_veth = (known.host_veth if known and known.host_veth else cfg.host_veth_name(pod_key))
    failures: list[str] = []

    def attempt(what: str, step) -> None:
        try:
            step()
        except Exception as exc:  # go on: every later step still frees something
            log.warning("pod %s: %s: %s", pod_key, what, exc)
            failures.append(f"{what}: {exc}")

    with _host_socket() as host:
        attempt("remove nft rules", lambda: _remove_pod_rules(cfg, pod_key))
        # Once the pod's last process is gone, its namespace goes and the
        # kernel unlinks the veth pair itself, 1-3 ms later here; a deletion
        # request meanwhile would queue behind that cleanup for the RTNL
        # lock (~17 ms). The request is for a namespace something still holds.
        if not links.wait_gone(host_veth, VETH_GONE_WAIT if namespace_ended else 0):
            attempt(f"delete {host_veth}", lambda: links.delete_link(host, host_veth))
        attempt("release hostPorts", lambda: hostports.release(cfg, pod_key))
        if os.path.isdir(os.path.join(cfg.state_dir, "ipam")):
            attempt("release address", lambda: _release_address(cfg, pod_key))
    if failures:
        raise NetworkError(f"tear down the network of pod {pod_key}: " + "; ".join(failures))


def list_allocations(cfg: PodNetworkConfig) -> dict[str, str]:
    """``{ip: pod_key}`` of the bridge's allocated addresses (leak checks)."""
    if not os.path.isdir(os.path.join(cfg.state_dir, "ipam")):
        return {}
    with ipam.locked(cfg, shared=True) as pool:
        return pool.allocations()


def _remove_pod_rules(cfg: PodNetworkConfig, pod_key: str) -> None:
    for attempt in range(2):
        try:
            listing = nft.list_json(nat.list_hostports_script(cfg), "list hostPort rules")
        except nft.NftFailure as exc:
            if exc.not_found:
                return  # no table, no rules
            raise
        try:
            handles = nat.pod_rule_handles(listing, pod_key)
        except ValueError:
            raise NetworkError(f"nftables: unreadable listing of {cfg.nft_table}: {listing[:80]!r}") from None
        if not handles:
            return
        try:
            nft.run(nat.delete_rules_script(cfg, handles), f"remove rules of pod {pod_key}")
            return
        except nft.NftFailure as exc:
            # A concurrent teardown of the same pod removed one first: look again.
            if not exc.not_found or attempt:
                raise


def _release_address(cfg: PodNetworkConfig, pod_key: str) -> None:
    """Free the pod's address. The bridge and the nft table stay when it
    was the last (see ``remove_network``)."""
    with ipam.locked(cfg) as pool:
        released = pool.release(pod_key)
        if released:
            log.debug("pod %s: released %s", pod_key, ", ".join(released))


def remove_network(cfg: PodNetworkConfig) -> bool:
    """Remove what the first pod made and every pod shares: the bridge (if
    minipod made it), the nft table and the address pool's files. Refused
    while a pod has an address on the bridge. Returns whether there was
    anything to remove.

    The last pod's removal does not do this itself, as Docker keeps docker0
    and CNI's bridge plugin keeps cni0: deleting a bridge takes the kernel
    45-65 ms here (its RCU barriers), which every ``rm`` of a lone pod would
    pay, and every next ``run`` would make the bridge and table again."""
    with _host_socket() as host, ipam.locked(cfg) as pool:
        users = sorted(set(pool.allocations().values()))
        if users:
            raise NetworkError(f"network {cfg.bridge}: still used by {len(users)} pod(s): "
                               f"{', '.join(u.replace('_', '/', 1) for u in users)}",
                               hint="remove them first ('minipod rm -f POD')")
        removed = False
        try:
            nft.run(nat.delete_table_script(cfg), f"delete table {cfg.nft_table}")
            removed = True
        except nft.NftFailure as exc:
            if not exc.not_found:
                raise
        removed = links.delete_bridge_if_ours(host, cfg) or removed
        pool.remove_if_empty()
    log.debug("network %s: %s", cfg.bridge, "removed" if removed else "nothing to remove")
    return removed
