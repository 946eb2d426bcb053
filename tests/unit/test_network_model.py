"""Network configuration, hostPort parsing, records, claims and netlink encoding."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys

import pytest

from minipod.errors import NetworkError
from minipod.network import HostPort, PodNetwork, PodNetworkConfig, parse_host_ports
from minipod.network import hostports, rtnl


# ------------------------------------------------------------------ config
def test_config_derives_gateway_prefix_and_names(tmp_path):
    cfg = PodNetworkConfig(bridge="mptabc123", subnet="10.213.4.0/24", state_dir=str(tmp_path))
    assert (cfg.gateway, cfg.prefix) == ("10.213.4.1", 24)
    name = cfg.host_veth_name("default_web")
    assert re.fullmatch(r"mp[0-9a-f]{8}", name)
    assert cfg.host_veth_name("default_web") == name
    assert cfg.host_veth_name("default_web2") != name
    assert PodNetworkConfig(bridge="other", subnet="10.213.4.0/24").host_veth_name("default_web") != name


def test_config_from_minipod_config(tmp_path):
    from minipod.config import Config

    cfg = PodNetworkConfig.from_config(Config(root=str(tmp_path), bridge="mptcfg", subnet="10.213.3.0/24"))
    assert (cfg.bridge, cfg.subnet, cfg.mtu) == ("mptcfg", "10.213.3.0/24", 1500)
    assert cfg.state_dir == str(tmp_path / "run" / "minipod" / "net")


@pytest.mark.parametrize("kwargs, message", [
    ({"bridge": "a-very-long-bridge-name"}, "bridge name"),
    ({"bridge": "br 0"}, "bridge name"),
    ({"subnet": "10.213.4.1/24"}, "subnet"),
    ({"subnet": "nonsense"}, "subnet"),
    ({"subnet": "10.213.4.0/31"}, "too small"),
    ({"mtu": 100}, "mtu"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(NetworkError, match=message):
        PodNetworkConfig(**kwargs)


def test_config_is_immutable():
    cfg = PodNetworkConfig()
    with pytest.raises(AttributeError):
        cfg.bridge = "other"


# ------------------------------------------------------------------ ports
def test_parse_host_ports_keeps_only_published_ports_with_defaults():
    ports = parse_host_ports([
        {"containerPort": 80},
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 53, "protocol": "udp", "hostIP": "0.0.0.0"},
        {"containerPort": 9, "hostPort": 9, "hostIP": "127.0.0.1"},
    ])
    assert ports == [HostPort(8080, 80, "TCP", ""), HostPort(53, 53, "UDP", ""), HostPort(9, 9, "TCP", "127.0.0.1")]
    assert ports[0].to_dict() == {"hostPort": 8080, "containerPort": 80, "protocol": "TCP"}
    assert ports[2].to_dict()["hostIP"] == "127.0.0.1"


@pytest.mark.parametrize("port, message", [
    ({"hostPort": 70000, "containerPort": 80}, r"ports\[0\].hostPort: must be 1-65535"),
    ({"hostPort": 80}, r"ports\[0\].containerPort: must be 1-65535"),
    ({"hostPort": 80, "containerPort": 80, "protocol": "SCTP"}, "TCP and UDP, not SCTP"),
    ({"hostPort": 80, "containerPort": 80, "hostIP": "::1"}, "not an IPv4 address"),
    ("8080:80", "expected a mapping"),
])
def test_parse_host_ports_rejects_bad_entries(port, message):
    with pytest.raises(NetworkError, match=message):
        parse_host_ports([port])


def test_same_port_twice_in_one_pod_is_refused_unless_protocol_or_address_differ():
    parse_host_ports([{"hostPort": 80, "containerPort": 80},
                      {"hostPort": 80, "containerPort": 80, "protocol": "UDP"}])
    parse_host_ports([{"hostPort": 80, "containerPort": 80, "hostIP": "127.0.0.1"},
                      {"hostPort": 80, "containerPort": 81, "hostIP": "127.0.0.2"}])
    with pytest.raises(NetworkError, match="hostPort 80/TCP is published twice"):
        parse_host_ports([{"hostPort": 80, "containerPort": 80},
                          {"hostPort": 80, "containerPort": 81, "hostIP": "127.0.0.1"}])


def test_record_round_trips_through_json():
    net = PodNetwork(ip="10.213.4.5", prefix=24, gateway="10.213.4.1", host_veth="mp01234567",
                     ports=[{"hostPort": 8080, "containerPort": 80, "protocol": "TCP"}],
                     bridge="mptabc", pod_key="default_web")
    record = json.loads(json.dumps(net.to_record()))
    assert record["ip"] == "10.213.4.5" and record["hostVeth"] == "mp01234567"
    assert PodNetwork.from_record(record) == net


# ------------------------------------------------------------------ claims
def test_claims_conflict_between_pods_not_within_one(tmp_path):
    cfg = PodNetworkConfig(bridge="mptclaim", subnet="10.213.4.0/24", state_dir=str(tmp_path))
    web = parse_host_ports([{"hostPort": 8080, "containerPort": 80}])
    hostports.claim(cfg, "default_web", web)
    hostports.claim(cfg, "default_web", web)  # a retry of the same pod
    with pytest.raises(NetworkError, match=r"^hostPort 8080/TCP is already used by pod default/web$"):
        hostports.claim(cfg, "prod_api", web)
    # a specific address overlaps the wildcard one
    with pytest.raises(NetworkError, match="already used by pod default/web"):
        hostports.check_claims(cfg, "prod_api",
                               parse_host_ports([{"hostPort": 8080, "containerPort": 1, "hostIP": "127.0.0.1"}]))
    # other protocol, other port: free
    hostports.claim(cfg, "prod_api", parse_host_ports([{"hostPort": 8080, "containerPort": 1, "protocol": "UDP"},
                                                        {"hostPort": 8081, "containerPort": 1}]))
    assert sorted((p.label, owner) for p, owner in hostports.claims(cfg)) == [
        ("8080/TCP", "default_web"), ("8080/UDP", "prod_api"), ("8081/TCP", "prod_api")]
    assert hostports.release(cfg, "default_web") == 1
    hostports.claim(cfg, "prod_api", web)


def test_claims_on_distinct_host_addresses_coexist(tmp_path):
    cfg = PodNetworkConfig(state_dir=str(tmp_path))
    hostports.claim(cfg, "default_a", parse_host_ports([{"hostPort": 80, "containerPort": 80, "hostIP": "127.0.0.1"}]))
    hostports.claim(cfg, "default_b", parse_host_ports([{"hostPort": 80, "containerPort": 80, "hostIP": "127.0.0.2"}]))
    with pytest.raises(NetworkError, match="default/a"):
        hostports.claim(cfg, "default_c", parse_host_ports([{"hostPort": 80, "containerPort": 80}]))


def test_pod_keys_that_could_break_out_of_files_or_nft_comments_are_refused(tmp_path):
    from minipod.network.model import check_pod_key

    check_pod_key("default_web-1")
    for bad in ('x" accept', "../etc", "", "a b", "Default_web"):
        with pytest.raises(NetworkError, match="invalid pod key"):
            check_pod_key(bad)


# ------------------------------------------------------------------ netlink encoding
def test_attributes_are_padded_to_four_bytes_and_nest():
    name = rtnl.attr(rtnl.IFLA_IFNAME, "eth0")
    assert name == struct.pack("=HH", 9, rtnl.IFLA_IFNAME) + b"eth0\0" + b"\0\0\0"
    assert rtnl.attr(rtnl.IFLA_MTU, 1500) == struct.pack("=HHI", 8, rtnl.IFLA_MTU, 1500)
    nested = rtnl.attr(rtnl.IFLA_LINKINFO, [rtnl.attr(rtnl.IFLA_INFO_KIND, "veth")])
    assert struct.unpack_from("=HH", nested) == (4 + 12, rtnl.IFLA_LINKINFO)
    assert rtnl.parse_attrs(nested, 4) == {rtnl.IFLA_INFO_KIND: b"veth\0"}


def test_request_header_carries_length_type_flags_and_sequence():
    request = rtnl.new_address(3, "10.213.4.5", 24, "10.213.4.255", "eth0")
    data = request.encode(seq=42)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", data)
    assert (length, kind, seq, pid) == (len(data), rtnl.RTM_NEWADDR, 42, 0)
    assert flags & rtnl.NLM_F_REQUEST and flags & rtnl.NLM_F_ACK and flags & rtnl.NLM_F_CREATE
    family, prefixlen, _flags, _scope, index = struct.unpack_from("=BBBBi", data, 16)
    assert (family, prefixlen, index) == (socket.AF_INET, 24, 3)
    attrs = rtnl.parse_attrs(data, 16 + 8)
    assert attrs[rtnl.IFA_LOCAL] == socket.inet_aton("10.213.4.5")
    assert attrs[rtnl.IFA_BROADCAST] == socket.inet_aton("10.213.4.255")


def test_veth_request_puts_the_peer_in_the_target_namespace():
    data = rtnl.new_veth("mp01234567", 7, 1500, "eth0", 9).encode(1)
    attrs = rtnl.parse_attrs(data, 16 + 16)
    assert attrs[rtnl.IFLA_IFNAME] == b"mp01234567\0"
    assert struct.unpack("=I", attrs[rtnl.IFLA_MASTER]) == (7,)
    info = rtnl.parse_attrs(attrs[rtnl.IFLA_LINKINFO], 0)
    assert info[rtnl.IFLA_INFO_KIND] == b"veth\0"
    peer = rtnl.parse_attrs(rtnl.parse_attrs(info[rtnl.IFLA_INFO_DATA], 0)[rtnl.VETH_INFO_PEER], 16)
    assert peer[rtnl.IFLA_IFNAME] == b"eth0\0"
    assert struct.unpack("=I", peer[rtnl.IFLA_NET_NS_FD]) == (9,)


def test_importing_the_package_loads_nothing_kernel_facing():
    code = ("import sys, minipod.network as n; n.PodNetworkConfig(); "
            "bad = [m for m in sys.modules if m.startswith('pyroute2') or m in "
            "('minipod.network.rtnl', 'minipod.network.nft', 'minipod.network.pod', 'ctypes', 'minipod._sys')]; "
            "print(bad)")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=repo, env={**os.environ, "PYTHONPATH": repo}).stdout
    assert out.strip() == "[]"
