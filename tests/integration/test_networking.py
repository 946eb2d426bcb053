"""Pods on the bridge: an IP each, pod-to-pod, host-to-pod, hostPort, clean teardown.

Traffic goes only to loopback and to the pods' own addresses, inside the
network namespaces these tests create."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from minipod.errors import MinipodError

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")


def web_pod(name: str, host_port: int | None = None, text: str | None = None) -> str:
    port = f"\n      hostPort: {host_port}" if host_port else ""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: web
    image: localhost/busybox:demo
    command: ["sh", "-c", "mkdir -p /www && echo {text or name} > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - containerPort: 8080{port}
    env:
    - name: MY_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
"""


def http_get(host: str, port: int, timeout: float = 5.0) -> str:
    """A tiny HTTP client, retried while the server comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            return data.split(b"\r\n\r\n", 1)[1].decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_pods_get_ips_and_talk(mpi):
    rt = mpi.runtime()
    a = rt.run(web_pod("alpha"))
    b = rt.run(web_pod("beta"))
    for pod in (a, b):
        pod.wait_ready(10)
    ip_a, ip_b = a.ip, b.ip
    assert ip_a and ip_b and ip_a != ip_b
    assert ip_a.startswith(mpi.subnet.rsplit(".", 2)[0])
    # the host reaches a pod by its IP
    assert http_get(ip_a, 8080) == "alpha\n"
    # pod to pod by IP
    res = b.exec("web", ["wget", "-q", "-O", "-", f"http://{ip_a}:8080/"])
    assert res.returncode == 0 and res.text == "alpha\n", res.stderr
    # the pod knows its own address
    assert b.exec("web", ["sh", "-c", "echo $MY_IP"]).text.strip() == ip_b
    assert f"{ip_b}\tbeta" in b.exec("web", ["cat", "/etc/hosts"]).text
    wide = mpi.cli("ps", "-o", "wide", check=True).stdout
    assert ip_a in wide and ip_b in wide
    a.remove(timeout=0)
    b.remove(timeout=0)
    assert mpi.network_leaks() == []


def test_host_port_on_loopback(mpi):
    pod = mpi.runtime().run(web_pod("published", host_port=18080, text="via-hostport"))
    pod.wait_ready(10)
    assert http_get("127.0.0.1", 18080) == "via-hostport\n"
    obj = json.loads(mpi.cli("inspect", "published", check=True).stdout)
    assert obj["spec"]["containers"][0]["ports"][0]["hostPort"] == 18080
    pod.remove(timeout=0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 18080), timeout=0.5).close()


def test_host_port_conflict_is_a_clear_error_and_leaves_nothing(mpi):
    rt = mpi.runtime()
    first = rt.run(web_pod("first", host_port=18081))
    with pytest.raises(MinipodError, match="hostPort 18081/TCP is already used by pod default/first"):
        rt.run(web_pod("second", host_port=18081))
    assert [p.name for p in rt.pods()] == ["first"]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 18082))
    listener.listen()
    try:
        res = mpi.cli("run", "-d", "-", input=web_pod("third", host_port=18082))
        assert res.returncode != 0 and "hostPort 18082/TCP is in use by a process on this host" in res.stderr
    finally:
        listener.close()
    first.remove(timeout=0)
    assert mpi.leaks() == []


def test_publish_option_adds_a_host_port(mpi, tmp_path):
    path = tmp_path / "kubia.yaml"
    path.write_text(open(os.path.join(EXAMPLES, "kubia.yaml")).read())
    res = mpi.cli("run", "-d", "--publish", "18083:8080", str(path))
    assert res.returncode == 0, res.stderr
    mpi.runtime().pod("kubia").wait_ready(10)
    assert http_get("127.0.0.1", 18083) == "You've hit kubia\n"
    mpi.cli("rm", "-f", "-t", "0", "kubia", check=True)


def test_rm_after_supervisor_sigkill_releases_the_network(mpi):
    import signal

    pod = mpi.runtime().run(web_pod("orphan", host_port=18084))
    pod.wait_ready(10)
    os.kill(pod.status["minipod"]["supervisorPid"], signal.SIGKILL)
    pod.wait(lambda p: p.phase == "Unknown", timeout=5)
    pod.remove(force=True, timeout=0)
    assert mpi.leaks() == []


def test_twenty_pods_get_distinct_ips_and_leave_nothing(mpi):
    docs = "---".join(web_pod(f"p{i}") for i in range(20))
    res = mpi.cli("run", "-d", "-", input=docs, timeout=120)
    assert res.returncode == 0, res.stderr
    pods = mpi.runtime().pods()
    ips = {p.ip for p in pods}
    assert len(pods) == 20 and len(ips) == 20 and None not in ips
    res = mpi.cli("rm", "-f", "-t", "0", *[p.name for p in pods], timeout=120)
    assert res.returncode == 0, res.stderr
    assert mpi.leaks() == []


def test_the_network_stays_after_the_last_pod_until_network_rm(mpi):
    """As docker0 and CNI's cni0: the bridge and table outlive the pods
    (deleting a bridge costs the kernel ~50 ms); ``network rm`` removes
    them, and refuses while a pod is on the bridge."""
    pod = mpi.runtime().run(web_pod("lone"))
    pod.wait_ready(10)
    res = mpi.cli("network", "rm")
    assert res.returncode == 1 and "still used by 1 pod(s): default/lone" in res.stderr, res.stderr
    assert os.path.exists(f"/sys/class/net/{mpi.bridge}")
    mpi.cli("rm", "-f", "-t", "0", "lone", check=True)
    assert mpi.network_leaks() == []
    assert os.path.exists(f"/sys/class/net/{mpi.bridge}"), "the bridge stays after the last pod"
    # Another subnet on the same bridge is a clear error, not a second gateway.
    other = mpi.cli("--subnet", "10.213.250.0/24", "run", "-d", "-", input=web_pod("elsewhere"))
    assert other.returncode != 0 and f"bridge {mpi.bridge} is minipod's network for {mpi.subnet}" in other.stderr
    assert mpi.cli("network", "rm", check=True).stdout.strip() == mpi.bridge
    assert mpi.shared_network_left() == []
    assert mpi.cli("network", "rm", check=True).stdout == "", "nothing left to remove is not an error"
