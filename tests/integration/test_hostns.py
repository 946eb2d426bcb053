"""hostNetwork, hostIPC and hostPID: the pod uses the host's namespace
instead of one of its own, and sees what the host sees."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest


def _host_pod(mpi, name: str, **flags: bool):
    lines = "".join(f"  {key}: {'true' if value else 'false'}\n" for key, value in flags.items())
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
{lines}  containers:
  - {{name: c, image: localhost/busybox:demo, command: ["sleep", "3600"]}}
""")
    pod.wait_ready(10)
    return pod


def _sh(pod, script: str) -> str:
    res = pod.exec("c", ["sh", "-c", script])
    assert res.returncode == 0, res.stderr
    return res.text


def _host_ns(kind: str) -> int:
    """The inode of the host's namespace: PID 1's, or where PID 1 is
    protected from us (a VM agent may be), this test process's own; it runs
    in the host's namespaces."""
    try:
        link = os.readlink(f"/proc/1/ns/{kind}")  # "net:[4026531833]"
    except PermissionError:
        link = os.readlink(f"/proc/self/ns/{kind}")
    return int(link.split("[")[1].rstrip("]"))


def _interfaces(proc_net_dev: str) -> list[str]:
    return sorted(line.split(":")[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line)


def test_host_network_sees_the_hosts_interfaces_and_name(mpi):
    pod = _host_pod(mpi, "hostnet", hostNetwork=True)
    ns = pod.status["minipod"]["namespaces"]
    assert ns["c"]["net"] == ns["pause"]["net"] == _host_ns("net")
    assert ns["c"]["uts"] == _host_ns("uts")  # Kubernetes: hostNetwork means the host's hostname too
    assert ns["c"]["ipc"] != _host_ns("ipc") and ns["c"]["pid"] != _host_ns("pid")  # only the network
    assert _sh(pod, "readlink /proc/self/ns/net").strip() == f"net:[{_host_ns('net')}]"
    with open("/proc/net/dev") as f:
        host_interfaces = _interfaces(f.read())
    assert len(host_interfaces) > 1  # more than lo: the comparison means something
    assert _interfaces(_sh(pod, "cat /proc/net/dev")) == host_interfaces
    host = socket.gethostname()
    assert _sh(pod, "hostname").strip() == host
    assert _sh(pod, "cat /etc/hostname").strip() == host


def test_host_network_hostname_variable_is_the_hosts(mpi):
    """$HOSTNAME must agree with `hostname` (the host's name here), as the
    container runtimes set it for host-network pods."""
    pod = _host_pod(mpi, "hostnetenv", hostNetwork=True)
    assert _sh(pod, "echo $HOSTNAME").strip() == socket.gethostname()


def test_host_network_reaches_a_host_listener_on_loopback(mpi):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        answer = threading.Thread(target=_answer_once, args=(srv,), daemon=True)
        answer.start()
        pod = _host_pod(mpi, "hostlo", hostNetwork=True)
        res = pod.exec("c", ["nc", "127.0.0.1", str(port)], timeout=4)
        answer.join(5)
    assert res.returncode == 0, res.stderr
    assert res.text == "pong\n"


def _answer_once(srv: socket.socket) -> None:
    srv.settimeout(8)
    try:
        conn, _ = srv.accept()
    except OSError:
        return
    with conn:
        conn.sendall(b"pong\n")


def test_host_ipc_shares_the_hosts_ipc_namespace_and_dev_shm(mpi):
    pod = _host_pod(mpi, "hostipc", hostIPC=True)
    ns = pod.status["minipod"]["namespaces"]
    assert ns["c"]["ipc"] == ns["pause"]["ipc"] == _host_ns("ipc")
    assert ns["c"]["net"] != _host_ns("net")
    assert _sh(pod, "readlink /proc/self/ns/ipc").strip() == f"ipc:[{_host_ns('ipc')}]"
    # POSIX shared memory lives in /dev/shm: with hostIPC it is the host's
    # (containerd and docker --ipc=host bind the host's /dev/shm).
    probe = f"/dev/shm/minipod-test-{uuid.uuid4().hex[:8]}"
    with open(probe, "w") as f:
        f.write("from-host")
    try:
        assert pod.exec("c", ["cat", probe]).text == "from-host"
    finally:
        os.unlink(probe)


def test_host_pid_sees_host_processes(mpi):
    pod = _host_pod(mpi, "hostpid", hostPID=True)
    ns = pod.status["minipod"]["namespaces"]
    assert ns["c"]["pid"] == _host_ns("pid")
    me = os.getpid()
    with open(f"/proc/{me}/comm") as f:
        my_comm = f.read()
    assert _sh(pod, f"cat /proc/{me}/comm") == my_comm  # this very test process
    assert _sh(pod, "cat /proc/1/comm") != "sleep\n"  # PID 1 is the host's init, not the container
    sup = pod.status["minipod"]["supervisorPid"]
    assert str(sup) in _sh(pod, "ps -o pid").split()


@pytest.mark.parametrize("kind", ["net", "ipc", "uts", "pid"])
def test_without_host_flags_nothing_is_the_hosts(mpi, kind):
    pod = _host_pod(mpi, f"own{kind}")
    ns = pod.status["minipod"]["namespaces"]
    assert ns["c"][kind] != _host_ns(kind)
    assert _sh(pod, f"readlink /proc/self/ns/{kind}").strip() != f"{kind}:[{_host_ns(kind)}]"
