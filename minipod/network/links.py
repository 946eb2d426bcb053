"""The links of pod networking: the host bridge, one veth pair per pod, and
the pod side (``eth0``, its address and default route).

Kernel requests go through ``rtnl`` (see there why not pyroute2's IPRoute).
"""

from __future__ import annotations

import errno
import logging
import os
import time

from ..errors import NetworkError
from . import rtnl
from .model import PodNetworkConfig

log = logging.getLogger(__name__)

# The bridge's alias (``ip -d link`` shows it) marks it as minipod's own:
# only such a bridge is ever deleted, never one a user pointed minipod at.
BRIDGE_ALIAS = "minipod bridge"
POD_IFNAME = "eth0"


def failed(exc: OSError, what: str | None = None) -> NetworkError:
    """A refused kernel request as one line: ``create veth mp…: Invalid argument``."""
    what = what or getattr(exc, "what", None) or "netlink request"
    err = NetworkError(f"{what}: {exc.strerror or os.strerror(exc.errno or errno.EIO)}")
    err.errno = exc.errno
    return err


def write_sysctl(path: str, value: str) -> None:
    """Set a /proc/sys value, writing only when it differs."""
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        log.debug("sysctl %s = %s", path, value)
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise NetworkError(f"set {path} to {value}: {exc.strerror}") from None


def _random_mac() -> bytes:
    """A fixed MAC for the bridge: without one, a bridge takes the lowest
    MAC of its ports and changes it as pods come and go, which makes pods'
    ARP entries for the gateway go stale."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02  # unicast, locally administered
    return bytes(raw)


def ensure_bridge(host: rtnl.Rtnl, cfg: PodNetworkConfig) -> int:
    """Make sure the bridge exists, is up and has the gateway address;
    returns its index. Also turns on what routing pods needs: IPv4
    forwarding, and ``route_localnet`` on the bridge so a hostPort reached
    on 127.0.0.1 may be routed to a pod."""
    try:
        link = host.link(cfg.bridge)
        if link is None:
            log.debug("create bridge %s (%s)", cfg.bridge, cfg.subnet)
            created = True
            try:
                host.request(rtnl.new_bridge(cfg.bridge, cfg.mtu, _random_mac()))
            except rtnl.NetlinkError as exc:
                if exc.errno != errno.EEXIST:  # made by a concurrent set-up: fine
                    raise
                created = False
            link = host.link(cfg.bridge)
            if link is None:
                raise NetworkError(f"bridge {cfg.bridge} vanished while being set up")
            if created:
                host.request(rtnl.set_alias(link.index, f"{BRIDGE_ALIAS} {cfg.subnet}"))
        else:
            _check_subnet(link, cfg)
        # Both idempotent, and cheap: repairs a bridge someone took down.
        host.batch([
            rtnl.set_up(link.index, f"bridge {cfg.bridge}"),
            rtnl.new_address(link.index, cfg.gateway, cfg.prefix, str(cfg.network.broadcast_address),
                             f"bridge {cfg.bridge}"),
        ])
    except rtnl.NetlinkError as exc:
        raise failed(exc) from None
    write_sysctl(f"/proc/sys/net/ipv4/conf/{cfg.bridge}/route_localnet", "1")
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    return link.index


def _check_subnet(link, cfg: PodNetworkConfig) -> None:
    """A bridge minipod made for another subnet (it stays after its last
    pod) must not get a second gateway address."""
    alias = link.text(rtnl.IFLA_IFALIAS) or ""
    if alias.startswith(BRIDGE_ALIAS) and alias != f"{BRIDGE_ALIAS} {cfg.subnet}":
        raise NetworkError(f"bridge {cfg.bridge} is minipod's network for {alias[len(BRIDGE_ALIAS):].strip()}, "
                           f"not {cfg.subnet}",
                           hint=f"use another --bridge, or remove it with 'minipod --bridge {cfg.bridge} network rm'")


def delete_bridge_if_ours(host: rtnl.Rtnl, cfg: PodNetworkConfig) -> bool:
    """Delete the bridge if minipod made it. Returns whether it did."""
    link = host.link(cfg.bridge)
    if link is None or not (link.text(rtnl.IFLA_IFALIAS) or "").startswith(BRIDGE_ALIAS):
        return False
    return delete_link(host, cfg.bridge)


def wait_gone(ifname: str, timeout: float) -> bool:
    """Whether the host has no link of that name, waiting up to ``timeout``
    seconds for it to go. Asks sysfs, which answers without the RTNL lock
    that the kernel may hold for a while (a namespace's cleanup)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/sys/class/net/{ifname}"):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0005)
    return True


def delete_link(host: rtnl.Rtnl, ifname: str) -> bool:
    """Delete a link; a veth's peer goes with it. Already gone is fine."""
    log.debug("delete link %s", ifname)
    try:
        host.request(rtnl.delete_link(ifname))
        return True
    except rtnl.NetlinkError as exc:
        if exc.errno == errno.ENODEV:
            return False
        raise failed(exc) from None


def create_veth(host: rtnl.Rtnl, cfg: PodNetworkConfig, host_veth: str, bridge_index: int,
                netns_fd: int) -> None:
    """The pod's veth pair: ``host_veth`` on the bridge, ``eth0`` directly in
    the pod's namespace. A link already named ``host_veth`` is a leftover
    of this same pod (the name derives from the pod key): it is replaced."""
    if host.link(host_veth) is not None:
        log.debug("replace leftover link %s", host_veth)
        delete_link(host, host_veth)
    log.debug("create veth %s (bridge %s) with peer %s in netns fd %d", host_veth, cfg.bridge,
              POD_IFNAME, netns_fd)
    try:
        host.request(rtnl.new_veth(host_veth, bridge_index, cfg.mtu, POD_IFNAME, netns_fd))
    except rtnl.NetlinkError as exc:
        if exc.errno == errno.EEXIST:
            raise NetworkError(f"create veth {host_veth}: the pod's network namespace already has "
                               f"an {POD_IFNAME}") from None
        raise failed(exc) from None


def configure_pod_side(cfg: PodNetworkConfig, netns_fd: int, ip: str) -> None:
    """Inside the pod's namespace: ``eth0`` up with its address, and the
    default route via the bridge. Loopback is the sandbox's job (pause's
    plan brings ``lo`` up)."""
    log.debug("netns fd %d: %s up, %s/%d, default via %s", netns_fd, POD_IFNAME, ip, cfg.prefix,
              cfg.gateway)
    try:
        with rtnl.Rtnl(netns_fd) as pod:
            eth0 = pod.link(POD_IFNAME)
            if eth0 is None:
                raise NetworkError(f"{POD_IFNAME} is missing from the pod's network namespace")
            pod.batch([
                rtnl.set_up(eth0.index, POD_IFNAME),
                rtnl.new_address(eth0.index, ip, cfg.prefix, str(cfg.network.broadcast_address),
                                 POD_IFNAME),
                rtnl.new_default_route(cfg.gateway, eth0.index),
            ])
    except rtnl.NetlinkError as exc:
        raise failed(exc) from None
    except OSError as exc:  # setns into the pod's namespace
        raise NetworkError(f"enter the pod's network namespace (fd {netns_fd}): {exc}") from None
