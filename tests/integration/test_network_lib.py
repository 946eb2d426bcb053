"""minipod.network against the real kernel, as root.

Every test has its own bridge ("mpt" + 6 hex), its own subnet in 10.213.x.0/24,
its own state directory, and network namespaces it creates with ``ip netns``
(standing in for pause's). A finalizer removes every namespace, link, table
and process the test made, whatever happened; the tests themselves assert
that teardown alone left nothing behind.

Traffic goes only to loopback, to the host's own addresses (DNAT turns it
into traffic to a pod) and to namespaces made here.
"""

from __future__ import annotations

import json
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import time
import uuid

import pytest

from minipod.errors import NetworkError
from minipod.network import (PodNetworkConfig, check_host_ports, list_allocations, remove_network,
                             setup_pod_network, teardown_pod_network)

pytestmark = pytest.mark.integration

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A server run inside a namespace: answers each TCP connection or UDP
# datagram with "<tag> <peer address>", so a test sees both who answered
# and whom the answer was for (NAT visible).
SERVER = r"""
import socket, sys
proto, port, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
if proto == "tcp":
    s.listen(16)
print("ready", flush=True)
while True:
    if proto == "tcp":
        c, peer = s.accept()
        c.sendall(f"{tag} {peer[0]}".encode())
        c.close()
    else:
        data, peer = s.recvfrom(100)
        s.sendto(f"{tag} {peer[0]}".encode(), peer)
"""

CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "tcp":
    s = socket.create_connection((host, port), timeout=5)
    print(s.recv(100).decode())
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"hi", (host, port))
    print(s.recv(100).decode())
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def table_exists(cfg: PodNetworkConfig) -> bool:
    return sh("nft", "list", "table", "inet", cfg.nft_table, check=False).returncode == 0


def route_in_use(prefix: str) -> bool:
    return prefix in sh("ip", "-4", "route", "show", "table", "all").stdout + sh("ip", "-4", "addr").stdout


def free_port(kind=socket.SOCK_STREAM) -> int:
    while True:
        port = random.randint(20000, 60000)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
                return port
            except OSError:
                continue


def host_address() -> str | None:
    """The host's main IPv4 address (an address of its own, not loopback)."""
    out = sh("ip", "-4", "-o", "addr", "show", "scope", "global").stdout
    for line in out.splitlines():
        fields = line.split()
        if not fields[1].startswith(("mpt", "mp")):
            return fields[3].split("/")[0]
    return None


class Net:
    """One test's private network world, and its cleanup."""

    def __init__(self, tmp_path):
        self.suffix = uuid.uuid4().hex[:6]
        self.bridge = f"mpt{self.suffix}"
        for _ in range(50):
            third = random.randint(1, 254)
            if not route_in_use(f"10.213.{third}."):
                break
        self.cfg = PodNetworkConfig(bridge=self.bridge, subnet=f"10.213.{third}.0/24",
                                    state_dir=str(tmp_path / "net"))
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.pods: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.fds: list[int] = []

    # ---------------------------------------------------------------- make
    def netns(self, tag: str) -> str:
        name = f"{self.bridge}-{tag}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        # pause brings loopback up in a real pod; do the same here
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        return name

    def open_netns(self, name: str) -> int:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        self.fds.append(fd)
        return fd

    def pod(self, tag: str, ports=()) -> tuple[str, dict]:
        """A namespace with the pod network set up; returns (netns, record)."""
        name = self.netns(tag)
        key = f"default_{tag}"
        self.pods.append(key)
        net = setup_pod_network(self.cfg, key, self.open_netns(name), ports)
        return name, net.to_record()

    def serve(self, netns: str, proto: str, port: int, tag: str) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", SERVER, proto, str(port), tag],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready and proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.poll() else "no answer"

    def call_from(self, netns: str, proto: str, host: str, port: int) -> str:
        out = sh("ip", "netns", "exec", netns, sys.executable, "-c", CLIENT, proto, host, str(port), check=False)
        assert out.returncode == 0, f"{proto} {host}:{port} from {netns}: {out.stderr}"
        return out.stdout.strip()

    # ---------------------------------------------------------------- check
    def leftovers(self) -> list[str]:
        """What the pods' teardown should have removed and did not. The
        bridge and the table stay for the next pod (``remove_network``)."""
        found = []
        for key in self.pods:
            if link_exists(self.cfg.host_veth_name(key)):
                found.append(f"veth {self.cfg.host_veth_name(key)} of {key}")
        if table_exists(self.cfg):
            rules = sh("nft", "list", "table", "inet", self.cfg.nft_table).stdout
            found += [f"rule {line.strip()}" for line in rules.splitlines() if '"pod:' in line]
        if list_allocations(self.cfg):
            found.append(f"IPAM entries {list_allocations(self.cfg)}")
        path = os.path.join(self.cfg.state_dir, "hostports")
        if os.path.isdir(path) and os.listdir(path):
            found.append(f"files in {path}: {os.listdir(path)}")
        return found

    def network_left(self) -> list[str]:
        """After ``remove_network``: nothing of the shared network either."""
        found = [f"bridge {self.bridge}"] if link_exists(self.bridge) else []
        if table_exists(self.cfg):
            found.append(f"nft table {self.cfg.nft_table}")
        path = os.path.join(self.cfg.state_dir, "ipam", self.bridge)
        if os.path.isdir(path):
            found.append(f"{path}: {os.listdir(path)}")
        return found

    # ---------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        """Remove everything this test made, whatever state it is in: every
        step is tried even if an earlier one failed."""
        def attempt(step, *args):
            try:
                step(*args)
            except Exception as exc:  # keep cleaning; the leak check reports
                print(f"cleanup: {step.__name__}{args}: {exc}")

        def stop(proc):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()

        for proc in self.procs:
            attempt(stop, proc)
        for key in self.pods:
            attempt(teardown_pod_network, self.cfg, key, None)
        attempt(remove_network, self.cfg)
        for fd in self.fds:
            attempt(os.close, fd)
        for name in self.namespaces:
            sh("ip", "netns", "delete", name, check=False)
        for name in self.links + [self.cfg.host_veth_name(k) for k in self.pods] + [self.bridge]:
            if link_exists(name):
                sh("ip", "link", "delete", name, check=False)
        if table_exists(self.cfg):
            sh("nft", "delete", "table", "inet", self.cfg.nft_table, check=False)


@pytest.fixture
def net(tmp_path):
    world = Net(tmp_path)
    yield world
    world.cleanup()
    assert not world.leftovers(), world.leftovers()
    assert not world.network_left(), world.network_left()


# ====================================================================== tests
def test_two_pods_ping_and_talk_tcp_and_the_host_reaches_them(net):
    a, rec_a = net.pod("a")
    b, rec_b = net.pod("b")
    json.dumps(rec_a)  # the record goes into state.json
    cfg = net.cfg
    assert rec_a["ip"] != rec_b["ip"]
    for rec in (rec_a, rec_b):
        assert rec["prefix"] == 24 and rec["gateway"] == cfg.gateway
        assert f"master {cfg.bridge}" in sh("ip", "link", "show", rec["hostVeth"]).stdout
    inside = sh("ip", "netns", "exec", a, "ip", "-4", "addr", "show", "eth0").stdout
    assert f"inet {rec_a['ip']}/24" in inside and "UP" in inside
    assert f"default via {cfg.gateway} dev eth0" in sh("ip", "netns", "exec", a, "ip", "route").stdout
    assert sh("ip", "addr", "show", cfg.bridge).stdout.count(f"inet {cfg.gateway}/24") == 1
    assert open(f"/proc/sys/net/ipv4/conf/{cfg.bridge}/route_localnet").read().strip() == "1"
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"

    ping = sh("ip", "netns", "exec", a, "busybox", "ping", "-c", "2", "-W", "2", rec_b["ip"], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    port = 8080
    net.serve(b, "tcp", port, "b")
    # pod to pod: no NAT, b sees a's own address
    assert net.call_from(a, "tcp", rec_b["ip"], port) == f"b {rec_a['ip']}"
    # host to pod, by pod IP: the host speaks from its bridge address
    with socket.create_connection((rec_b["ip"], port), timeout=5) as s:
        assert s.recv(100).decode() == f"b {cfg.gateway}"

    teardown_pod_network(cfg, "default_a", rec_a)
    assert not link_exists(rec_a["hostVeth"])
    assert list_allocations(cfg) == {rec_b["ip"]: "default_b"}
    assert link_exists(cfg.bridge) and table_exists(cfg)  # b still uses them
    teardown_pod_network(cfg, "default_b", rec_b)
    assert net.leftovers() == []


def test_host_ports_tcp_and_udp_via_localhost_gateway_and_host_address(net):
    tcp_port, udp_port, local_only = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    a, rec_a = net.pod("a", [
        {"containerPort": 8080, "hostPort": tcp_port},
        {"containerPort": 5353, "hostPort": udp_port, "protocol": "UDP"},
        {"containerPort": 9999},  # not published
    ])
    b, rec_b = net.pod("b", [{"containerPort": 8080, "hostPort": local_only, "hostIP": "127.0.0.1"}])
    assert [p["hostPort"] for p in rec_a["ports"]] == [tcp_port, udp_port]
    net.serve(a, "tcp", 8080, "a")
    net.serve(a, "udp", 5353, "a")
    net.serve(b, "tcp", 8080, "b")
    gateway = net.cfg.gateway

    def tcp(host, port):
        with socket.create_connection((host, port), timeout=5) as s:
            return s.recv(100).decode()

    def udp(host, port):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"hi", (host, port))
            return s.recv(100).decode()

    # from 127.0.0.1 the source is masqueraded to the gateway address
    assert tcp("127.0.0.1", tcp_port) == f"a {gateway}"
    assert udp("127.0.0.1", udp_port) == f"a {gateway}"
    assert tcp(gateway, tcp_port).startswith("a ")
    assert udp(gateway, udp_port).startswith("a ")
    address = host_address()
    if address:
        assert tcp(address, tcp_port) == f"a {address}"
        assert udp(address, udp_port) == f"a {address}"
    # hostIP is honoured: b's port answers on 127.0.0.1 only
    assert tcp("127.0.0.1", local_only) == f"b {gateway}"
    with pytest.raises(ConnectionRefusedError):
        tcp(gateway, local_only)
    # a pod reaches another pod through the hostPort (masqueraded, so the answer finds its way back)
    assert net.call_from(b, "tcp", gateway, tcp_port) == f"a {gateway}"

    rules = sh("nft", "list", "chain", "inet", net.cfg.nft_table, "hostports").stdout
    assert rules.count('comment "pod:default_a"') == 2 and rules.count('comment "pod:default_b"') == 1
    teardown_pod_network(net.cfg, "default_a", rec_a)
    rules = sh("nft", "list", "chain", "inet", net.cfg.nft_table, "hostports").stdout
    assert "pod:default_a" not in rules and rules.count('comment "pod:default_b"') == 1
    with pytest.raises(ConnectionRefusedError):
        tcp("127.0.0.1", tcp_port)
    teardown_pod_network(net.cfg, "default_b", rec_b)
    assert net.leftovers() == []


def test_egress_is_masqueraded_to_the_hosts_address(net):
    # A simulated outside host: its own namespace, reached over a veth pair
    # with addresses from the benchmarking range, routed from the host.
    for _ in range(50):
        third = random.randint(0, 255)
        if not route_in_use(f"198.18.{third}."):
            break
    host_side, far_side = f"198.18.{third}.1", f"198.18.{third}.2"
    outside = net.netns("out")
    veth = f"mpo{net.suffix}"
    net.links.append(veth)
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", outside)
    sh("ip", "addr", "add", f"{host_side}/30", "dev", veth)
    sh("ip", "link", "set", veth, "up")
    sh("ip", "netns", "exec", outside, "ip", "addr", "add", f"{far_side}/30", "dev", "eth0")
    sh("ip", "netns", "exec", outside, "ip", "link", "set", "eth0", "up")
    net.serve(outside, "tcp", 7000, "outside")

    pod, rec = net.pod("a")
    # the outside host has no route to the pod subnet: only masquerade makes this work
    assert net.call_from(pod, "tcp", far_side, 7000) == f"outside {host_side}"
    teardown_pod_network(net.cfg, "default_a", rec)
    assert net.leftovers() == []


def test_twenty_pods_set_up_at_once_get_twenty_addresses_and_leave_nothing(net):
    names = [net.netns(f"c{i}") for i in range(20)]
    keys = [f"default_c{i}" for i in range(20)]
    net.pods.extend(keys)
    code = ("import json, os, sys; from minipod.network import PodNetworkConfig, setup_pod_network;"
            "cfg = PodNetworkConfig(bridge=sys.argv[1], subnet=sys.argv[2], state_dir=sys.argv[3]);"
            "fd = os.open('/run/netns/' + sys.argv[4], os.O_RDONLY);"
            "print(json.dumps(setup_pod_network(cfg, sys.argv[5], fd).to_record()))")
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [subprocess.Popen([sys.executable, "-c", code, net.bridge, net.cfg.subnet, net.cfg.state_dir, name, key],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name, key in zip(names, keys)]
    records = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        records.append(json.loads(out))
    ips = [r["ip"] for r in records]
    assert len(set(ips)) == 20
    assert list_allocations(net.cfg) == dict(zip(ips, keys))
    for name, rec in zip(names, records):
        assert f"inet {rec['ip']}/24" in sh("ip", "netns", "exec", name, "ip", "-4", "addr", "show", "eth0").stdout
    ping = sh("ip", "netns", "exec", names[0], "busybox", "ping", "-c", "1", "-W", "2", ips[19], check=False)
    assert ping.returncode == 0, ping.stdout

    # and torn down at once, each from its record, in separate processes
    code = ("import json, sys; from minipod.network import PodNetworkConfig, teardown_pod_network;"
            "cfg = PodNetworkConfig(bridge=sys.argv[1], subnet=sys.argv[2], state_dir=sys.argv[3]);"
            "teardown_pod_network(cfg, sys.argv[4], json.loads(sys.argv[5]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, net.bridge, net.cfg.subnet, net.cfg.state_dir, key,
                               json.dumps(rec)], stderr=subprocess.PIPE, text=True, env=env)
             for key, rec in zip(keys, records)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert net.leftovers() == []


def test_setup_time_per_pod(net, record_property):
    names = [net.netns(f"t{i}") for i in range(20)]
    fds = [net.open_netns(name) for name in names]
    times = []
    for i, fd in enumerate(fds):
        key = f"default_t{i}"
        net.pods.append(key)
        ports = [{"containerPort": 80, "hostPort": free_port()}] if i % 2 else []
        start = time.perf_counter()
        setup_pod_network(net.cfg, key, fd, ports)
        times.append((time.perf_counter() - start) * 1000)
    median = statistics.median(times)
    record_property("network_setup_ms_median", round(median, 2))
    print(f"\nnetwork set-up per pod: median {median:.2f} ms over 20, "
          f"min {min(times):.2f}, max {max(times):.2f} (first, creating the bridge: {times[0]:.2f})")
    start = time.perf_counter()
    for i in range(20):
        teardown_pod_network(net.cfg, f"default_t{i}", None)
    print(f"teardown of 20 pods: {(time.perf_counter() - start) * 1000:.0f} ms")
    assert net.leftovers() == []


def test_host_port_conflicts_are_refused_before_anything_is_made(net):
    port = free_port()
    a, rec_a = net.pod("a", [{"containerPort": 80, "hostPort": port}])
    b = net.netns("b")
    fd_b = net.open_netns(b)
    net.pods.append("default_b")

    for ports in ([{"containerPort": 81, "hostPort": port}],
                  [{"containerPort": 81, "hostPort": port, "hostIP": "127.0.0.1"}]):
        with pytest.raises(NetworkError, match=rf"^hostPort {port}/TCP is already used by pod default/a$"):
            check_host_ports(net.cfg, "default_b", ports)
        with pytest.raises(NetworkError, match="already used by pod default/a"):
            setup_pod_network(net.cfg, "default_b", fd_b, ports)
    # the same number over UDP is another port
    check_host_ports(net.cfg, "default_b", [{"containerPort": 81, "hostPort": port, "protocol": "UDP"}])
    # the pod's own ports are no conflict with itself
    check_host_ports(net.cfg, "default_a", [{"containerPort": 80, "hostPort": port}])

    # a host process listening on 127.0.0.1 (TCP) or bound (UDP)
    with socket.socket() as listener, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bound:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        busy = listener.getsockname()[1]
        bound.bind(("0.0.0.0", 0))
        busy_udp = bound.getsockname()[1]
        with pytest.raises(NetworkError, match=rf"^hostPort {busy}/TCP is in use by a process on this host$"):
            check_host_ports(net.cfg, "default_b", [{"containerPort": 80, "hostPort": busy}])
        with pytest.raises(NetworkError, match="in use by a process on this host"):
            check_host_ports(net.cfg, "default_b", [{"containerPort": 80, "hostPort": busy, "hostIP": "127.0.0.1"}])
        with pytest.raises(NetworkError, match=rf"^hostPort {busy_udp}/UDP is in use by a process"):
            check_host_ports(net.cfg, "default_b", [{"containerPort": 80, "hostPort": busy_udp, "protocol": "UDP"}])
        with pytest.raises(NetworkError, match="in use by a process on this host"):
            setup_pod_network(net.cfg, "default_b", fd_b, [{"containerPort": 80, "hostPort": busy}])
        # a listener on another address than the hostIP asked for is no conflict
        check_host_ports(net.cfg, "default_b", [{"containerPort": 80, "hostPort": busy, "hostIP": net.cfg.gateway}])

    # nothing of b was made by the refused set-ups
    assert not link_exists(net.cfg.host_veth_name("default_b"))
    assert list_allocations(net.cfg) == {rec_a["ip"]: "default_a"}
    assert "eth0" not in sh("ip", "netns", "exec", b, "ip", "link").stdout
    assert sh("nft", "list", "chain", "inet", net.cfg.nft_table, "hostports").stdout.count("dnat") == 1
    teardown_pod_network(net.cfg, "default_a", rec_a)
    assert net.leftovers() == []
    # and with no pod at all, a refused set-up creates no bridge either
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with pytest.raises(NetworkError):
            setup_pod_network(net.cfg, "default_b", fd_b, [{"containerPort": 80, "hostPort": listener.getsockname()[1]}])
    assert net.leftovers() == []


def test_failure_half_way_undoes_every_step(net):
    port = free_port()
    # /dev/null is no network namespace: the veth cannot be made, after the
    # claim, the address and the bridge were
    with open("/dev/null") as not_a_netns:
        net.pods.append("default_x")
        with pytest.raises(NetworkError, match="create veth"):
            setup_pod_network(net.cfg, "default_x", not_a_netns.fileno(), [{"containerPort": 80, "hostPort": port}])
    assert net.leftovers() == []


def test_teardown_without_record_twice_and_after_the_namespace_died(net):
    a, rec_a = net.pod("a", [{"containerPort": 80, "hostPort": free_port()}])
    b, rec_b = net.pod("b")
    teardown_pod_network(net.cfg, "default_a", None)  # the supervisor died before writing the record
    teardown_pod_network(net.cfg, "default_a", None)
    teardown_pod_network(net.cfg, "default_a", rec_a)
    assert not link_exists(rec_a["hostVeth"])
    assert "pod:default_a" not in sh("nft", "list", "table", "inet", net.cfg.nft_table).stdout
    # pause is gone: its namespace, and with it the veth pair, went first
    sh("ip", "netns", "delete", b)
    net.namespaces.remove(b)
    for _ in range(100):
        if not link_exists(rec_b["hostVeth"]):
            break
        time.sleep(0.02)
    teardown_pod_network(net.cfg, "default_b", rec_b)
    assert net.leftovers() == []


def test_setting_up_the_same_pod_again_replaces_its_leftovers(net):
    port = free_port()
    a, first = net.pod("a", [{"containerPort": 80, "hostPort": port}])
    # the supervisor was killed; a new namespace for the same pod
    sh("ip", "netns", "delete", a)
    net.namespaces.remove(a)
    again = net.netns("a2")
    second = setup_pod_network(net.cfg, "default_a", net.open_netns(again),
                               [{"containerPort": 80, "hostPort": port}]).to_record()
    assert second["ip"] == first["ip"] and second["hostVeth"] == first["hostVeth"]
    rules = sh("nft", "list", "chain", "inet", net.cfg.nft_table, "hostports").stdout
    assert rules.count("pod:default_a") == 1
    teardown_pod_network(net.cfg, "default_a", second)
    assert net.leftovers() == []


def test_a_bridge_minipod_did_not_create_is_left_alone(net):
    sh("ip", "link", "add", net.bridge, "type", "bridge")
    a, rec = net.pod("a")
    teardown_pod_network(net.cfg, "default_a", rec)
    assert not list_allocations(net.cfg)
    assert remove_network(net.cfg) is True  # its table
    assert link_exists(net.bridge) and not table_exists(net.cfg)
    sh("ip", "link", "delete", net.bridge)


def test_no_netlink_socket_leaks_into_children(net):
    net.pod("a", [{"containerPort": 80, "hostPort": free_port()}])
    netlink = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
        except OSError:
            continue
        probe = socket.socket(fileno=int(name))
        try:
            if probe.family == socket.AF_NETLINK:
                netlink.append(int(name))
        finally:
            probe.detach()
    assert netlink, "libnftables keeps its socket open in this process"
    assert [fd for fd in netlink if os.get_inheritable(fd)] == []


def test_the_nft_command_serves_when_libnftables_is_missing(net, monkeypatch):
    from minipod.network import nft

    monkeypatch.setattr(nft, "_backend", (os.getpid(), nft._Command()))
    port = free_port()
    a, rec = net.pod("a", [{"containerPort": 80, "hostPort": port}])
    assert f"tcp dport {port} dnat ip to {rec['ip']}:80" in sh("nft", "list", "table", "inet", net.cfg.nft_table).stdout
    teardown_pod_network(net.cfg, "default_a", rec)
    assert net.leftovers() == []
