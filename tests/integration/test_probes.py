"""Probes run by the supervisor, on the real kernel, against real servers.

The image used here has no curl, wget or nc: httpGet and tcpSocket probes
are made by the supervisor itself from inside the pod's network namespace.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

PROBE_IMAGE = "localhost/busybox:no-net-tools"


@pytest.fixture
def mpp(mp, busybox_rootfs, tmp_path):
    """``mp`` with an image that has no HTTP or TCP client at all."""
    rootfs = str(tmp_path / "rootfs")
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    for tool in ("wget", "nc", "curl", "telnet", "ftpget"):
        for d in ("bin", "usr/bin", "sbin", "usr/sbin"):
            path = os.path.join(rootfs, d, tool)
            if os.path.lexists(path):
                os.unlink(path)
    mp.runtime().import_image(rootfs, PROBE_IMAGE)
    return mp


def _pod(name: str, container: str, extra_spec: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
{extra_spec}  containers:
  - name: app
    image: {PROBE_IMAGE}
{container}"""


HTTPD = '    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && httpd -f -p 8080 -h /www"]\n'


def _events(pod, reason: str) -> list[str]:
    return [e["message"] for e in pod.events if e["reason"] == reason]


def test_image_really_has_no_http_client(mpp):
    pod = mpp.runtime().run(_pod("tools", '    command: ["sleep", "3600"]\n'))
    pod.wait(lambda p: p.phase == "Running", timeout=10)
    # (busybox sh would still find its own applets: the files are what count)
    for tool in ("wget", "nc", "curl"):
        for d in ("/bin", "/usr/bin", "/sbin", "/usr/sbin"):
            assert pod.exec("app", ["test", "-e", f"{d}/{tool}"]).returncode == 1
    pod.remove(timeout=0)


def test_http_liveness_failure_restarts_the_container(mpp):
    pod = mpp.runtime().run(_pod("live", HTTPD + """\
    ports: [{name: web, containerPort: 8080}]
    livenessProbe:
      httpGet: {path: /healthz, port: web}
      periodSeconds: 1
      failureThreshold: 2
"""))
    pod.wait(lambda p: p.ready, timeout=10)
    time.sleep(2.5)  # several probes pass: nothing happens
    assert pod.container_status("app")["restartCount"] == 0
    pod.exec("app", ["rm", "/www/healthz"])  # httpd now answers 404
    pod.wait(lambda p: p.container_status("app")["restartCount"] == 1, timeout=15)
    pod.wait(lambda p: p.ready, timeout=10)  # the new instance has its file again
    # (a first probe may also have found httpd not listening yet: one failure, under the threshold)
    assert "Liveness probe failed: HTTP probe failed with statuscode: 404" in _events(pod, "Unhealthy")
    assert "Container app failed liveness probe, will be restarted" in _events(pod, "Killing")
    last = pod.container_status("app")["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143)
    pod.remove(timeout=0)


def test_readiness_flips_ready_column_both_ways(mpp):
    pod = mpp.runtime().run(_pod("ready", HTTPD + """\
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
"""))
    pod.wait(lambda p: p.phase == "Running", timeout=10)
    time.sleep(1.5)
    assert not pod.ready and pod.container_status("app")["ready"] is False
    assert mpp.cli("ps").stdout.splitlines()[1].split()[1] == "0/1"
    pod.exec("app", ["sh", "-c", "echo yes > /www/ready"])
    pod.wait(lambda p: p.ready, timeout=10)
    assert mpp.cli("ps").stdout.splitlines()[1].split()[1] == "1/1"
    pod.exec("app", ["rm", "/www/ready"])
    pod.wait(lambda p: not p.ready, timeout=10)
    assert mpp.cli("ps").stdout.splitlines()[1].split()[1] == "0/1"
    conditions = {c["type"]: c for c in pod.status["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["ContainersReady"]["reason"] == "ContainersNotReady"
    assert pod.container_status("app")["restartCount"] == 0  # readiness never restarts
    pod.remove(timeout=0)


def test_tcp_readiness_follows_the_listener(mpp):
    pod = mpp.runtime().run(_pod("tcp", """\
    command: ["sh", "-c", "sleep 1.5; mkdir -p /www; exec httpd -f -p 9000 -h /www"]
    readinessProbe:
      tcpSocket: {port: 9000}
      periodSeconds: 1
"""))
    pod.wait(lambda p: p.phase == "Running", timeout=10)
    assert not pod.ready
    pod.wait(lambda p: p.ready, timeout=10)
    assert any("connect: Connection refused" in m for m in _events(pod, "Unhealthy"))
    pod.remove(timeout=0)


def test_startup_probe_holds_back_liveness(mpp):
    # The liveness probe would fail at once (nothing listens on 9999); it
    # must not run, and so not restart anything, before startup succeeds.
    pod = mpp.runtime().run(_pod("startup", """\
    command: ["sleep", "3600"]
    startupProbe:
      exec: {command: ["cat", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 60
    livenessProbe:
      tcpSocket: {port: 9999}
      periodSeconds: 1
      failureThreshold: 1
"""))
    pod.wait(lambda p: p.phase == "Running", timeout=10)
    time.sleep(3)
    status = pod.container_status("app")
    assert status["restartCount"] == 0 and status["started"] is False and status["ready"] is False
    assert any(m.startswith("Startup probe failed: cat: can't open '/tmp/started'") for m in _events(pod, "Unhealthy"))
    assert not any(m.startswith("Liveness") for m in _events(pod, "Unhealthy"))
    pod.exec("app", ["touch", "/tmp/started"])
    pod.wait(lambda p: p.container_status("app")["restartCount"] == 1, timeout=15)
    assert any(m.startswith("Liveness probe failed: dial tcp ") for m in _events(pod, "Unhealthy"))
    pod.remove(timeout=0)


def test_startup_probe_failing_for_good_restarts(mpp):
    pod = mpp.runtime().run(_pod("neverstarts", """\
    command: ["sleep", "3600"]
    startupProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 2
"""))
    pod.wait(lambda p: p.container_status("app")["restartCount"] >= 1, timeout=15)
    assert "Container app failed startup probe, will be restarted" in _events(pod, "Killing")
    pod.remove(timeout=0)


def test_exec_probe_timeout_kills_the_command(mpp):
    pod = mpp.runtime().run(_pod("slowexec", """\
    command: ["sleep", "3600"]
    readinessProbe:
      exec: {command: ["sleep", "30"]}
      timeoutSeconds: 1
      periodSeconds: 20
"""))
    pod.wait(lambda p: any("timed out" in m for m in _events(p, "Unhealthy")), timeout=15)
    assert not pod.ready
    # The timed-out command was killed: only the container's own sleep is left.
    listing = pod.exec("app", ["ps", "-o", "args"]).text
    assert "sleep 30" not in listing
    pod.remove(timeout=0)


def test_grpc_readiness_against_a_real_health_server(mp, busybox_rootfs):
    grpc = pytest.importorskip("grpc", reason="grpcio is in the test extra")
    from concurrent import futures

    status = {"": 1}  # SERVING

    def check(request: bytes, context) -> bytes:
        return b"\x08" + bytes([status[""]])

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=None, response_serializer=None)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        mp.runtime().import_image(busybox_rootfs, "localhost/busybox:demo")
        # hostNetwork: the probe reaches the test's server on the host's loopback.
        pod = mp.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: grpcprobe}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
    readinessProbe:
      grpc: {{port: {port}}}
      periodSeconds: 1
      failureThreshold: 1
""")
        pod.wait(lambda p: p.ready, timeout=10)
        status[""] = 2  # NOT_SERVING
        pod.wait(lambda p: not p.ready, timeout=10)
        assert any('service unhealthy (responded with "NOT_SERVING")' in m for m in _events(pod, "Unhealthy"))
        pod.remove(timeout=0)
    finally:
        server.stop(None)


def test_https_probe_does_not_verify_certificates(mpp, tmp_path):
    """An HTTPS probe against a self-signed server succeeds, as kubelet's does."""
    ssl = pytest.importorskip("ssl")
    import subprocess

    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                           "-days", "1", "-subj", "/CN=probe"], capture_output=True)
    if made.returncode != 0:
        pytest.skip("openssl is needed to make a self-signed certificate")
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        pod = mpp.runtime().run(_pod("https", f"""\
    command: ["sleep", "3600"]
    readinessProbe:
      httpGet: {{scheme: HTTPS, port: {port}, path: /}}
      periodSeconds: 1
""", extra_spec="  hostNetwork: true\n"))
        pod.wait(lambda p: p.ready, timeout=10)
        pod.remove(timeout=0)
    finally:
        stop.set()
        thread.join()
        listener.close()
