"""The data of pod networking: the host-wide configuration, a pod's hostPorts
and the record of what was set up for a pod.

Pure Python and cheap to import (plain classes, no dataclasses), so the CLI
can read records without loading anything that talks to the kernel.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zlib

from ..errors import NetworkError

# A pod key is "<namespace>_<name>": both halves are DNS names, so the key
# never holds a quote, a space or a slash. Checking it keeps it safe to use
# in file contents and in nft comments.
_POD_KEY = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
# What the kernel accepts as an interface name, minus what would need quoting.
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
PROTOCOLS = ("TCP", "UDP")


def check_pod_key(pod_key: str) -> str:
    if not isinstance(pod_key, str) or not _POD_KEY.match(pod_key):
        raise NetworkError(f"invalid pod key {pod_key!r}: expected <namespace>_<name>")
    return pod_key


def pod_ref(pod_key: str) -> str:
    """``default_web`` → ``default/web``, the way users name a pod. Neither
    a namespace nor a pod name may contain "_", so the first one splits."""
    namespace, _, name = pod_key.partition("_")
    return f"{namespace}/{name}" if name else pod_key


class PodNetworkConfig:
    """Host-wide network settings (from ``Config``) and where IPAM keeps its
    files. Tests pass a bridge, subnet and state directory of their own.
    Immutable once made; invalid values raise NetworkError."""

    __slots__ = ("bridge", "subnet", "state_dir", "mtu", "_network")

    def __init__(self, bridge: str = "minipod0", subnet: str = "10.144.0.0/24",
                 state_dir: str = "/run/minipod/net", mtu: int = 1500):
        if not isinstance(bridge, str) or not _IFNAME.match(bridge):
            raise NetworkError(f"bridge name {bridge!r}: must be 1-15 letters, digits, '-', '_' or '.'")
        try:
            network = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as exc:
            raise NetworkError(f"subnet {subnet!r}: {exc}") from None
        if network.prefixlen > 30:
            raise NetworkError(f"subnet {subnet}: too small, need at least a /30 (a gateway and a pod)")
        if isinstance(mtu, bool) or not isinstance(mtu, int) or not 576 <= mtu <= 65535:
            raise NetworkError(f"mtu {mtu!r}: must be 576-65535")
        for name, value in (("bridge", bridge), ("subnet", str(network)), ("state_dir", state_dir),
                            ("mtu", mtu), ("_network", network)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("PodNetworkConfig is immutable")

    def __repr__(self) -> str:
        return (f"PodNetworkConfig(bridge={self.bridge!r}, subnet={self.subnet!r}, "
                f"state_dir={self.state_dir!r}, mtu={self.mtu})")

    def __eq__(self, other) -> bool:
        return isinstance(other, PodNetworkConfig) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    @classmethod
    def from_config(cls, config, mtu: int = 1500) -> "PodNetworkConfig":
        """Settings for a ``minipod.config.Config``: its bridge and subnet, and
        IPAM files under ``<run_dir>/net`` (gone at reboot, like the links)."""
        return cls(bridge=config.bridge, subnet=config.subnet,
                   state_dir=os.path.join(config.run_dir, "net"), mtu=mtu)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return self._network

    @property
    def gateway(self) -> str:
        """The bridge's address: the subnet's first host address."""
        return str(self.network.network_address + 1)

    @property
    def prefix(self) -> int:
        return self.network.prefixlen

    @property
    def nft_table(self) -> str:
        """minipod's nftables table for this bridge (family ``inet``). One
        table per bridge, so tests with a bridge of their own never touch
        the rules of a real installation."""
        return "minipod_" + re.sub(r"[^A-Za-z0-9_]", "_", self.bridge)

    def host_veth_name(self, pod_key: str) -> str:
        """``mp`` + 8 hex digits, derived from the bridge and the pod key, so
        teardown finds the link even when the pod's record was never
        written (supervisor killed half-way)."""
        # CRC-32: 8 hex digits fill the 15-byte interface name limit nicely,
        # and zlib loads in a fraction of hashlib's time (OpenSSL).
        return f"mp{zlib.crc32(f'{self.bridge}/{pod_key}'.encode()):08x}"


class HostPort:
    """One published port: host ``host_ip:host_port`` → pod ``container_port``.
    An empty ``host_ip`` means every address of the host."""

    __slots__ = ("host_port", "container_port", "protocol", "host_ip")

    def __init__(self, host_port: int, container_port: int, protocol: str = "TCP", host_ip: str = ""):
        self.host_port = host_port
        self.container_port = container_port
        self.protocol = protocol
        self.host_ip = host_ip

    def __repr__(self) -> str:
        return (f"HostPort({self.host_port}, {self.container_port}, {self.protocol!r}, "
                f"{self.host_ip!r})")

    def __eq__(self, other) -> bool:
        return isinstance(other, HostPort) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    @property
    def label(self) -> str:
        return f"{self.host_port}/{self.protocol}"

    def overlaps(self, other: "HostPort") -> bool:
        """Whether both would catch the same packets."""
        if (self.host_port, self.protocol) != (other.host_port, other.protocol):
            return False
        return not self.host_ip or not other.host_ip or self.host_ip == other.host_ip

    def to_dict(self) -> dict:
        out = {"hostPort": self.host_port, "containerPort": self.container_port, "protocol": self.protocol}
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


def _port_number(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise NetworkError(f"{what}: must be 1-65535, not {value!r}")
    return value


def parse_host_ports(ports) -> list[HostPort]:
    """Kubernetes container ports (``{hostPort, containerPort, protocol,
    hostIP}``) → the ones published on the host. Entries without a
    hostPort are not published and are skipped, so a caller may pass every
    port of every container."""
    result: list[HostPort] = []
    for index, port in enumerate(ports or []):
        if isinstance(port, HostPort):
            result.append(port)
            continue
        if not isinstance(port, dict):
            raise NetworkError(f"ports[{index}]: expected a mapping, not {type(port).__name__}")
        if not port.get("hostPort"):
            continue
        host_port = _port_number(port["hostPort"], f"ports[{index}].hostPort")
        container_port = _port_number(port.get("containerPort"), f"ports[{index}].containerPort")
        protocol = str(port.get("protocol") or "TCP").upper()
        if protocol not in PROTOCOLS:
            raise NetworkError(f"ports[{index}].protocol: hostPort supports TCP and UDP, not {protocol}")
        host_ip = port.get("hostIP") or ""
        if host_ip:
            try:
                parsed = ipaddress.IPv4Address(host_ip)
            except ValueError:
                raise NetworkError(f"ports[{index}].hostIP: {host_ip!r} is not an IPv4 address") from None
            host_ip = "" if parsed.is_unspecified else str(parsed)
        hp = HostPort(host_port, container_port, protocol, host_ip)
        for earlier in result:
            if earlier.overlaps(hp):
                raise NetworkError(f"hostPort {hp.label} is published twice by this pod")
        result.append(hp)
    return result


class PodNetwork:
    """What ``setup_pod_network`` made for one pod; ``to_record()`` is what
    the supervisor stores in ``state.json`` and what teardown reads back."""

    __slots__ = ("ip", "prefix", "gateway", "host_veth", "ports", "bridge", "pod_key")

    def __init__(self, ip: str, prefix: int, gateway: str, host_veth: str, ports: list[dict] | None = None,
                 bridge: str = "", pod_key: str = ""):
        self.ip = ip
        self.prefix = prefix
        self.gateway = gateway
        self.host_veth = host_veth
        self.ports = list(ports or [])
        self.bridge = bridge
        self.pod_key = pod_key

    def __repr__(self) -> str:
        return (f"PodNetwork(ip={self.ip!r}, prefix={self.prefix}, gateway={self.gateway!r}, "
                f"host_veth={self.host_veth!r}, ports={self.ports!r})")

    def __eq__(self, other) -> bool:
        return isinstance(other, PodNetwork) and self.to_record() == other.to_record()

    def to_record(self) -> dict:
        return {
            "ip": self.ip,
            "prefix": self.prefix,
            "gateway": self.gateway,
            "hostVeth": self.host_veth,
            "bridge": self.bridge,
            "podKey": self.pod_key,
            "ports": [dict(p) for p in self.ports],
        }

    @classmethod
    def from_record(cls, record: dict) -> "PodNetwork":
        return cls(ip=record.get("ip", ""), prefix=int(record.get("prefix", 0)),
                   gateway=record.get("gateway", ""), host_veth=record.get("hostVeth", ""),
                   ports=list(record.get("ports") or []), bridge=record.get("bridge", ""),
                   pod_key=record.get("podKey", ""))
