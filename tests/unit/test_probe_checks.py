"""One attempt of each handler kind, driven by a real loop over real loopback sockets.

``net_fd=None`` keeps the sockets in this process's own network namespace
(no setns, no root); exec checks get a stand-in ``spawn_exec`` that starts
a real local process with the check's pipe as its stdout and stderr.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from minipod.errors import MinipodError
from minipod.eventloop import Loop, now
from minipod.probes.checks import EXEC_OUTPUT_LIMIT, CheckContext, resolve_port, start_check
from minipod.probes.result import Result
from minipod.probes.runner import ContainerProbes
from minipod.probes.schedule import ProbeSpec

HOST = "127.0.0.1"


# ----------------------------------------------------------------- helpers

@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.close()


class Spawner:
    """A stand-in for the supervisor's ``spawn_in``: argv runs here, not in
    a container, with ``out_fd`` as its stdout and stderr."""

    def __init__(self):
        self.pids: list[int] = []

    def __call__(self, argv: list[str], out_fd: int) -> int:
        actions = [(os.POSIX_SPAWN_DUP2, out_fd, 1), (os.POSIX_SPAWN_DUP2, out_fd, 2)]
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin"}, file_actions=actions)
        self.pids.append(pid)
        return pid


@pytest.fixture
def spawner():
    spawner = Spawner()
    yield spawner
    for pid in spawner.pids:  # a failing test must not leave its processes behind
        try:
            # Only a child not reaped yet is still ours: a reaped one's pid
            # may already belong to someone else.
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def context(loop: Loop, spawner=None, port_names=()) -> CheckContext:
    return CheckContext(loop=loop, default_host=HOST, net_fd=None, port_names=tuple(port_names),
                        spawn_exec=spawner)


def run(loop: Loop, handler: dict, timeout: float | None = 2.0, ctx: CheckContext | None = None,
        limit: float = 5.0) -> Result:
    """Start one check and turn the loop until it answers."""
    results: list[Result] = []
    check = start_check(ctx or context(loop), handler, timeout, results.append)
    deadline = time.monotonic() + limit
    while not results:
        assert time.monotonic() < deadline, "the check never answered"
        loop.run_once(0.05)
    assert check.done and len(results) == 1
    loop.run_once(0)  # nothing may answer a second time
    assert len(results) == 1
    return results[0]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def listener(backlog: int = 16) -> socket.socket:
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(backlog)
    return sock


def free_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server():
    """Listens, never accepts: connects succeed, nothing is ever answered."""
    sock = listener()
    yield sock
    sock.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append((self.path, dict(self.headers)))
        self.send_response(server.status)
        for name, value in server.extra_headers:
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A tiny threaded HTTP server on loopback; set ``.status`` to choose the answer."""
    server = http.server.ThreadingHTTPServer((HOST, 0), _Handler)
    server.daemon_threads = True
    server.status, server.extra_headers, server.requests = 200, [], []
    server.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def wait_gone(loop: Loop, pid: int, limit: float = 5.0) -> None:
    """Turn the loop until ``pid`` has been reaped (its /proc entry, zombie
    included, is gone)."""
    deadline = time.monotonic() + limit
    while os.path.exists(f"/proc/{pid}"):
        assert time.monotonic() < deadline, f"process {pid} was not killed and reaped"
        loop.run_once(0.02)


# ----------------------------------------------------------------- ports

def test_resolve_port_by_number_and_by_name():
    assert resolve_port(8080, ()) == 8080
    assert resolve_port("web", (("metrics", 9090), ("web", 8080))) == 8080
    with pytest.raises(MinipodError, match='port "admin" names no port of the container'):
        resolve_port("admin", (("web", 8080),))


def test_an_unknown_handler_is_an_error(loop):
    with pytest.raises(MinipodError, match="unknown handler"):
        start_check(context(loop), {"carrierPigeon": {}}, 1.0, lambda result: None)


# ----------------------------------------------------------------- tcpSocket

def test_tcp_to_a_listening_port_succeeds(loop):
    with listener() as sock:
        assert run(loop, {"tcpSocket": {"port": sock.getsockname()[1]}}) == Result(True)


def test_tcp_by_port_name(loop):
    with listener() as sock:
        ctx = context(loop, port_names=[("web", sock.getsockname()[1])])
        assert run(loop, {"tcpSocket": {"port": "web"}}, ctx=ctx).ok


def test_tcp_to_a_closed_port_is_refused_in_kubelets_words(loop):
    port = free_port()
    assert run(loop, {"tcpSocket": {"port": port}}) == Result(
        False, f"dial tcp 127.0.0.1:{port}: connect: Connection refused")


def test_tcp_host_in_the_handler_wins_over_the_pods(loop):
    port = free_port()
    result = run(loop, {"tcpSocket": {"host": "127.0.0.2", "port": port}})
    assert result.message == f"dial tcp 127.0.0.2:{port}: connect: Connection refused"


def test_tcp_connect_that_hangs_times_out(loop):
    # A listener with a full accept queue drops new SYNs: the connect hangs
    # (on loopback, with no traffic anywhere else).
    with listener(backlog=0) as sock:
        port = sock.getsockname()[1]
        fillers = [socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK) for _ in range(2)]
        try:
            for filler in fillers:
                filler.connect_ex((HOST, port))
            time.sleep(0.05)
            began = time.monotonic()
            result = run(loop, {"tcpSocket": {"port": port}}, timeout=0.15)
            assert result == Result(False, f"dial tcp 127.0.0.1:{port}: i/o timeout")
            assert time.monotonic() - began >= 0.14
        finally:
            for filler in fillers:
                filler.close()


# ----------------------------------------------------------------- httpGet

def test_http_200(loop, http_server):
    handler = {"httpGet": {"path": "/healthz", "port": http_server.port,
                           "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}
    assert run(loop, handler) == Result(True, "HTTP probe succeeded with statuscode: 200")
    path, headers = http_server.requests[0]
    assert path == "/healthz"
    assert headers["Host"] == f"127.0.0.1:{http_server.port}" and headers["X-Probe"] == "yes"
    assert headers["User-Agent"].startswith("kube-probe/")


def test_http_500(loop, http_server):
    http_server.status = 500
    assert run(loop, {"httpGet": {"port": http_server.port}}) == Result(
        False, "HTTP probe failed with statuscode: 500")


def test_http_redirect_to_another_host_warns(loop, http_server):
    http_server.status = 302
    http_server.extra_headers = [("Location", "http://login.example/")]
    result = run(loop, {"httpGet": {"port": http_server.port}})
    assert result.ok and "redirect to http://login.example/" in result.warning


def test_http_by_port_name(loop, http_server):
    ctx = context(loop, port_names=[("web", http_server.port)])
    assert run(loop, {"httpGet": {"path": "/x", "port": "web"}}, ctx=ctx).ok


def test_http_server_that_never_answers_times_out(loop, silent_server):
    port = silent_server.getsockname()[1]
    began = time.monotonic()
    result = run(loop, {"httpGet": {"path": "/healthz", "port": port}}, timeout=0.15)
    assert result == Result(False, f'Get "http://127.0.0.1:{port}/healthz": context deadline exceeded '
                                   "(Client.Timeout exceeded while awaiting headers)")
    assert time.monotonic() - began >= 0.14


def test_http_to_a_closed_port(loop):
    port = free_port()
    assert run(loop, {"httpGet": {"path": "/healthz", "port": port}}) == Result(
        False, f'Get "http://127.0.0.1:{port}/healthz": connect: Connection refused')


def test_http_failure_message_for_a_path_without_a_leading_slash(loop):
    port = free_port()
    assert run(loop, {"httpGet": {"path": "healthz", "port": port}}).message == (
        f'Get "http://127.0.0.1:{port}/healthz": connect: Connection refused')


def test_http_server_that_hangs_up_without_answering(loop):
    with listener() as sock:
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), lambda: sock.accept()[0].close())
        try:
            result = run(loop, {"httpGet": {"port": sock.getsockname()[1]}})
        finally:
            loop.forget(sock.fileno())
    assert result == Result(False, "HTTP probe failed: connection closed before any response")


def _serve_raw_once(loop: Loop, sock: socket.socket, answer: bytes) -> None:
    """On ``loop`` (the only thread): accept one connection, and once its
    request has arrived, answer ``answer`` and hang up."""
    sock.setblocking(False)

    def accept():
        conn, _ = sock.accept()
        loop.forget(sock.fileno())

        def answer_request():
            conn.recv(4096)
            loop.forget(conn.fileno())
            conn.sendall(answer)
            conn.close()

        loop.add_reader(conn.fileno(), answer_request)

    loop.add_reader(sock.fileno(), accept)


def test_http_malformed_answer(loop):
    with listener() as sock:
        _serve_raw_once(loop, sock, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        result = run(loop, {"httpGet": {"port": sock.getsockname()[1]}})
        loop.forget(sock.fileno())
    assert result == Result(False, "HTTP probe failed: malformed status line 'SSH-2.0-OpenSSH_9.6'")


def test_http_status_with_a_non_ascii_digit_is_malformed_promptly(loop):
    with listener() as sock:
        _serve_raw_once(loop, sock, b"HTTP/1.1 \xb200 OK\r\n\r\n")
        result = run(loop, {"httpGet": {"port": sock.getsockname()[1]}}, timeout=0.15)
        loop.forget(sock.fileno())
    assert "malformed status line" in result.message


def test_https_to_a_plain_http_server_fails_its_handshake(loop, http_server):
    result = run(loop, {"httpGet": {"port": http_server.port, "scheme": "HTTPS"}})
    assert not result.ok
    assert result.message.startswith(f'Get "https://127.0.0.1:{http_server.port}/": TLS handshake: ')


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool to make a test certificate")
def test_https_does_not_verify_the_certificate(loop, tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=nobody", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer((HOST, 0), _Handler)
    server.daemon_threads = True
    server.status, server.extra_headers, server.requests = 204, [], []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        result = run(loop, {"httpGet": {"path": "/tls", "port": server.server_address[1], "scheme": "HTTPS"}})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result == Result(True, "HTTP probe succeeded with statuscode: 204")
    assert server.requests[0][0] == "/tls"


# ----------------------------------------------------------------- sleep

def test_sleep_succeeds_after_its_time_and_ignores_the_timeout(loop):
    began = time.monotonic()
    # A sleep handler (a hook) has no timeout of its own: one given is not used.
    assert run(loop, {"sleep": {"seconds": 0.1}}, timeout=0.01) == Result(True)
    assert time.monotonic() - began >= 0.099


# ----------------------------------------------------------------- exec

def test_exec_exit_0_succeeds_with_its_output(loop, spawner):
    ctx = context(loop, spawner)
    assert run(loop, {"exec": {"command": ["/bin/sh", "-c", "echo all good"]}}, ctx=ctx) == Result(True, "all good\n")
    wait_gone(loop, spawner.pids[0])


def test_exec_exit_1_fails_with_its_output(loop, spawner):
    ctx = context(loop, spawner)
    result = run(loop, {"exec": {"command": ["/bin/sh", "-c", "echo not ready; echo to stderr >&2; exit 1"]}},
                 ctx=ctx)
    assert result == Result(False, "not ready\nto stderr")


def test_exec_failure_without_output_names_the_command_and_code(loop, spawner):
    ctx = context(loop, spawner)
    argv = ["/bin/sh", "-c", "exit 3"]
    assert run(loop, {"exec": {"command": argv}}, ctx=ctx) == Result(False, f"command {argv!r} exited with 3")


def test_exec_killed_by_a_signal_counts_as_128_plus_the_signal(loop, spawner):
    ctx = context(loop, spawner)
    argv = ["/bin/sh", "-c", "kill -9 $$"]
    assert run(loop, {"exec": {"command": argv}}, ctx=ctx) == Result(False, f"command {argv!r} exited with 137")


def test_exec_output_is_kept_to_the_limit(loop, spawner):
    ctx = context(loop, spawner)
    result = run(loop, {"exec": {"command": ["/bin/sh", "-c", "head -c 30000 /dev/zero | tr '\\0' a; exit 1"]}},
                 ctx=ctx)
    assert not result.ok and result.message == "a" * EXEC_OUTPUT_LIMIT


def test_exec_timeout_kills_and_reaps_the_process(loop, spawner):
    ctx = context(loop, spawner)
    argv = ["/bin/sh", "-c", "exec sleep 30"]
    before = open_fds()
    result = run(loop, {"exec": {"command": argv}}, timeout=0.1, ctx=ctx)
    assert result == Result(False, f"command {argv!r} timed out")
    wait_gone(loop, spawner.pids[0])
    assert open_fds() == before


def test_exec_that_cannot_be_spawned_fails_at_once_without_leaking(loop):
    def broken_spawn(argv, out_fd):
        raise MinipodError("no such container process")

    before = open_fds()
    results = []
    check = start_check(context(loop, broken_spawn), {"exec": {"command": ["true"]}}, 1.0, results.append)
    assert check.done and results == [Result(False, "no such container process")]
    assert open_fds() == before
    loop.run_once(0)  # its timeout timer was cancelled too
    assert len(results) == 1


def test_exec_output_larger_than_a_pipe_does_not_fail_the_command(loop, spawner):
    ctx = context(loop, spawner)
    results = []
    start_check(ctx, {"exec": {"command": ["/bin/sh", "-c", "head -c 200000 /dev/zero"]}}, 10.0, results.append)
    pid = spawner.pids[0]
    # Let the command write before the loop reads anything: with a blocking
    # stdout it waits for the reader; with a non-blocking one it fails.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and _state(pid) != "Z":
        time.sleep(0.02)
    deadline = time.monotonic() + 10
    while not results:
        assert time.monotonic() < deadline, "the check never answered"
        loop.run_once(0.05)
    assert results[0].ok, "the command failed while writing its output"


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


# ----------------------------------------------------------------- cancel

def test_cancel_exec_kills_the_process_and_closes_the_pipe(loop, spawner):
    before = open_fds()
    results = []
    check = start_check(context(loop, spawner), {"exec": {"command": ["/bin/sh", "-c", "exec sleep 30"]}}, 5.0,
                        results.append)
    assert open_fds() != before  # the pipe's read end is held while it runs
    check.cancel()
    assert open_fds() == before
    wait_gone(loop, spawner.pids[0])
    assert results == [] and check.done


def test_cancel_tcp_connect_in_flight(loop, silent_server):
    before = open_fds()
    results = []
    check = start_check(context(loop), {"tcpSocket": {"port": silent_server.getsockname()[1]}}, 5.0, results.append)
    assert not check.done  # the connect is only seen through the loop, which has not turned
    check.cancel()
    assert open_fds() == before
    loop.run_once(0.05)
    assert results == []


def test_cancel_http_waiting_for_headers(loop, silent_server):
    before = open_fds()
    results = []
    check = start_check(context(loop), {"httpGet": {"port": silent_server.getsockname()[1]}}, 5.0, results.append)
    deadline = time.monotonic() + 5
    while not check.connected:  # connected and the request sent: now it waits for an answer
        assert time.monotonic() < deadline
        loop.run_once(0.02)
    check.cancel()
    assert open_fds() == before
    loop.run_once(0.1)
    assert results == []


def test_cancel_sleep(loop):
    before = open_fds()
    results = []
    check = start_check(context(loop), {"sleep": {"seconds": 0.05}}, None, results.append)
    check.cancel()
    time.sleep(0.1)
    loop.run_once(0)
    assert results == [] and open_fds() == before


def test_a_cancelled_check_ignores_a_late_timeout(loop, silent_server):
    results = []
    check = start_check(context(loop), {"httpGet": {"port": silent_server.getsockname()[1]}}, 0.05, results.append)
    check.cancel()
    time.sleep(0.1)
    loop.run_once(0)
    assert results == []


# ================================================================= ContainerProbes
# The runner with real checks against servers on the same loop. Periods are
# tiny floats for speed (ProbeSpec.of only makes whole seconds, the
# constructor takes anything); the assertions wait for events, never for an
# exact time.

class Recorder:
    """A ProbeListener that remembers what it was told, in order."""

    def __init__(self):
        self.calls: list[tuple] = []

    def probe_started(self):
        self.calls.append(("started",))

    def probe_ready(self, ready):
        self.calls.append(("ready", ready))

    def probe_failed(self, spec, message):
        self.calls.append(("failed", spec, message))

    def probe_event(self, kind, reason, message):
        self.calls.append(("event", kind, reason, message))

    def of(self, what: str) -> list[tuple]:
        return [call[1:] for call in self.calls if call[0] == what]

    @property
    def ready(self) -> list[bool]:
        return [call[0] for call in self.of("ready")]

    def messages(self, reason: str = "Unhealthy") -> list[str]:
        return [message for _, why, message in self.of("event") if why == reason]


class LoopServer:
    """A TCP server on the test's loop that can go down and come back on the
    same port; it accepts and hangs up, counting connections."""

    def __init__(self, loop: Loop):
        self.loop = loop
        self.sock: socket.socket | None = None
        self.port = 0
        self.accepts = 0

    def up(self) -> "LoopServer":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self.port))
        sock.listen(64)
        sock.setblocking(False)
        self.sock, self.port = sock, sock.getsockname()[1]
        self.loop.add_reader(sock.fileno(), self._accept)
        return self

    def down(self) -> "LoopServer":
        if self.sock is not None:
            self.loop.forget(self.sock.fileno())
            self.sock.close()
            self.sock = None
        return self

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        self.accepts += 1
        conn.close()


@pytest.fixture
def servers(loop):
    made: list[LoopServer] = []

    def make(up: bool = True) -> LoopServer:
        server = LoopServer(loop).up()  # up once to own a port number
        made.append(server)
        return server if up else server.down()

    yield make
    for server in made:
        server.down()


def tcp(kind: str, port: int, period: float = 0.03, failure: int = 1, success: int = 1,
        delay: float = 0.0, timeout: float = 1.0) -> ProbeSpec:
    return ProbeSpec(kind, {"tcpSocket": {"port": port}}, initial_delay=delay, period=period, timeout=timeout,
                     success_threshold=success, failure_threshold=failure)


def turn(loop: Loop, until=None, seconds: float = 5.0) -> None:
    """Turn the loop until ``until()`` is true (failing after ``seconds``),
    or for ``seconds`` when there is no condition."""
    deadline = time.monotonic() + seconds
    while until is None or not until():
        if time.monotonic() >= deadline:
            assert until is None, "the probes never got there"
            return
        loop.run_once(0.01)


@pytest.fixture
def probes(loop):
    """Make a ContainerProbes (started at once) that is stopped after the test."""
    made: list[ContainerProbes] = []

    def make(specs: dict, recorder: Recorder, started_at: float | None = None, spawner=None) -> ContainerProbes:
        runner = ContainerProbes(loop, context(loop, spawner), specs, recorder,
                                 now() if started_at is None else started_at)
        made.append(runner)
        runner.start()
        return runner

    yield make
    for runner in made:
        runner.stop()


def test_runner_without_a_startup_probe_counts_as_started_at_once(loop, probes, servers):
    rec = Recorder()
    probes({"liveness": tcp("liveness", servers().port)}, rec)
    assert rec.calls == [("started",)]  # before the loop turned at all


def test_runner_without_any_probe_is_started_and_idle(loop, probes):
    rec = Recorder()
    runner = probes({}, rec)
    turn(loop, seconds=0.05)
    assert rec.calls == [("started",)] and runner.timers == {} and runner.checks == {}


def test_runner_startup_probe_holds_back_liveness_and_readiness(loop, probes, servers):
    gate, app = servers(up=False), servers()
    rec = Recorder()
    probes({"startup": tcp("startup", gate.port, failure=1000),
            "liveness": tcp("liveness", app.port), "readiness": tcp("readiness", app.port)}, rec)
    turn(loop, lambda: len(rec.messages()) >= 3)
    assert rec.of("started") == [] and rec.ready == [] and app.accepts == 0
    assert set(rec.messages()) == {f"Startup probe failed: dial tcp 127.0.0.1:{gate.port}: connect: Connection refused"}
    gate.up()
    turn(loop, lambda: rec.ready == [True])
    assert rec.calls.index(("started",)) < rec.calls.index(("ready", True))
    assert len(rec.of("started")) == 1
    turn(loop, lambda: app.accepts > 0)
    # The startup probe is done for good once it has passed.
    turn(loop, seconds=0.05)
    settled = gate.accepts
    turn(loop, seconds=0.15)  # five periods
    assert gate.accepts == settled


def test_runner_startup_failure_fails_the_container_without_other_probes(loop, probes, servers):
    app = servers()
    dead = servers(up=False)
    rec = Recorder()
    startup = tcp("startup", dead.port, failure=3)
    runner = probes({"startup": startup, "readiness": tcp("readiness", app.port)}, rec)
    turn(loop, lambda: rec.of("failed"))
    turn(loop, seconds=0.1)
    refused = f"dial tcp 127.0.0.1:{dead.port}: connect: Connection refused"
    assert rec.of("failed") == [(startup, refused)]
    assert rec.messages() == [f"Startup probe failed: {refused}"] * 3
    assert rec.of("started") == [] and app.accepts == 0
    assert runner.stopped and runner.timers == {} and runner.checks == {}


def test_runner_readiness_flips_with_the_server(loop, probes, servers):
    server = servers(up=False)
    rec = Recorder()
    probes({"readiness": tcp("readiness", server.port, failure=2)}, rec)
    turn(loop, lambda: len(rec.messages()) >= 3)
    assert rec.ready == []  # not ready from the start: failures are no news
    assert rec.messages()[0] == f"Readiness probe failed: dial tcp 127.0.0.1:{server.port}: connect: Connection refused"
    server.up()
    turn(loop, lambda: rec.ready == [True])
    before = len(rec.messages())
    server.down()
    turn(loop, lambda: rec.ready == [True, False])
    assert len(rec.messages()) - before >= 2  # failureThreshold failures in a row first
    server.up()
    turn(loop, lambda: rec.ready == [True, False, True])
    assert rec.of("failed") == []  # readiness never kills


def test_runner_liveness_failure_stops_everything_and_is_reported_once(loop, probes, servers):
    app, dead = servers(), servers(up=False)
    rec = Recorder()
    liveness = tcp("liveness", dead.port, failure=3)
    runner = probes({"liveness": liveness, "readiness": tcp("readiness", app.port)}, rec)
    turn(loop, lambda: rec.of("failed"))
    refused = f"dial tcp 127.0.0.1:{dead.port}: connect: Connection refused"
    assert rec.of("failed") == [(liveness, refused)]
    assert runner.stopped and runner.timers == {} and runner.checks == {}
    turn(loop, seconds=0.05)
    settled = (app.accepts, len(rec.calls))
    turn(loop, seconds=0.15)  # five periods
    assert (app.accepts, len(rec.calls)) == settled  # nothing more is tried or said
    assert rec.messages() == [f"Liveness probe failed: {refused}"] * 3
    assert len(rec.of("failed")) == 1


def test_runner_passing_liveness_says_nothing(loop, probes, servers):
    server = servers()
    rec = Recorder()
    probes({"liveness": tcp("liveness", server.port)}, rec)
    turn(loop, lambda: server.accepts >= 3)
    assert rec.calls == [("started",)]


def test_runner_initial_delay_counts_from_the_container_start(loop, probes, servers):
    server = servers()
    rec = Recorder()
    began = now()
    probes({"readiness": tcp("readiness", server.port, delay=0.25)}, rec, started_at=began)
    turn(loop, seconds=0.12)
    assert rec.ready == [] and server.accepts == 0  # the timer cannot fire before its time
    turn(loop, lambda: rec.ready == [True])
    assert now() - began >= 0.25 - 0.001


def test_runner_initial_delay_already_over_starts_at_once(loop, probes, servers):
    server = servers()
    rec = Recorder()
    began = now()
    probes({"readiness": tcp("readiness", server.port, delay=3.0)}, rec, started_at=began - 3.0)
    turn(loop, lambda: rec.ready == [True])
    assert now() - began < 2.0


def test_runner_attempts_no_more_often_than_the_period(loop, probes, servers):
    dead = servers(up=False)
    rec = Recorder()
    began = now()  # before the first attempt can be made
    probes({"readiness": tcp("readiness", dead.port, period=0.08)}, rec)
    turn(loop, seconds=0.3)
    elapsed = now() - began
    attempts = len(rec.messages())
    assert 2 <= attempts <= int(elapsed / 0.08) + 1


def test_runner_stop_cancels_an_attempt_in_flight(loop, probes, silent_server):
    before = open_fds()
    rec = Recorder()
    spec = ProbeSpec("readiness", {"httpGet": {"port": silent_server.getsockname()[1]}}, period=0.05, timeout=5.0)
    runner = probes({"readiness": spec}, rec)
    turn(loop, lambda: "readiness" in runner.checks and runner.checks["readiness"].connected)
    runner.stop()
    assert runner.checks == {} and runner.timers == {}
    assert open_fds() == before
    turn(loop, seconds=0.1)
    assert rec.calls == [("started",)]


def test_runner_http_redirect_elsewhere_is_a_probe_warning(loop, probes, http_server):
    http_server.status = 302
    http_server.extra_headers = [("Location", "http://login.example/")]
    rec = Recorder()
    spec = ProbeSpec("readiness", {"httpGet": {"path": "/", "port": http_server.port}}, period=0.05)
    probes({"readiness": spec}, rec)
    turn(loop, lambda: rec.ready == [True])
    assert rec.of("event")[0] == ("Warning", "ProbeWarning", "Readiness probe warning: Probe terminated redirects, "
                                  "Response body: (redirect to http://login.example/)")
    assert rec.messages() == []


def test_runner_http_liveness_failure_quotes_the_status(loop, probes, http_server):
    http_server.status = 500
    rec = Recorder()
    spec = ProbeSpec("liveness", {"httpGet": {"path": "/healthz", "port": http_server.port}}, period=0.05,
                     failure_threshold=2)
    probes({"liveness": spec}, rec)
    turn(loop, lambda: rec.of("failed"))
    assert rec.messages() == ["Liveness probe failed: HTTP probe failed with statuscode: 500"] * 2
    assert rec.of("failed") == [(spec, "HTTP probe failed with statuscode: 500")]
    assert rec.calls[0] == ("started",) and rec.calls[-1][0] == "failed"


def test_runner_exec_liveness_failure_quotes_the_output(loop, probes, spawner):
    rec = Recorder()
    spec = ProbeSpec("liveness", {"exec": {"command": ["/bin/sh", "-c", "echo database unreachable; exit 1"]}},
                     period=0.05, failure_threshold=1)
    probes({"liveness": spec}, rec, spawner=spawner)
    turn(loop, lambda: rec.of("failed"))
    assert rec.messages() == ["Liveness probe failed: database unreachable"]
    assert rec.of("failed") == [(spec, "database unreachable")]
    for pid in spawner.pids:
        wait_gone(loop, pid)
