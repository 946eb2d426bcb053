"""One attempt of a probe or hook handler, driven by the supervisor's loop.

``start_check`` picks the kind from the handler (``exec``, ``httpGet``,
``tcpSocket``, ``grpc``, ``sleep``) and returns a running ``Check`` that
calls ``on_done(Result)`` exactly once, unless it is cancelled first.

Network checks create their socket *inside the pod's network namespace*:
the supervisor (single-threaded, so nothing else can notice) switches to
the pod's namespace with ``setns``, creates the socket, and switches back.
A socket keeps the namespace it was created in, so the connect, TLS and
the conversation then happen in the pod: the image needs no curl, and a
pod with no IP of its own is probed on its loopback.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Callable

from ..errors import MinipodError
from ..eventloop import Loop, Timer
from ..record import Record
from .result import Exchange, Result

CLONE_NEWNET = 0x40000000
EXEC_OUTPUT_LIMIT = 10 * 1024  # kubelet keeps at most this much of an exec probe's output


class CheckContext(Record):
    """What a check needs to know about its container and pod."""

    loop: Loop
    default_host: str              # the pod's IP, or loopback for a pod without one
    net_fd: int | None = None      # the pod's network namespace (None: the host's)
    host_net_fd: int | None = None  # the supervisor's own, to come back to
    port_names: tuple = ()         # ((name, number), …) of the container's ports
    # Starts argv inside the container with the given stdout/stderr fd and
    # returns the pid (a child of the supervisor).
    spawn_exec: Callable[[list[str], int], int] | None = None


class Check:
    def __init__(self, ctx: CheckContext, timeout: float | None, on_done: Callable[[Result], None]):
        self.ctx = ctx
        self.on_done = on_done
        self.done = False
        self.timer: Timer | None = None
        if timeout is not None:
            self.timer = ctx.loop.call_later(timeout, self._timed_out)

    def start(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Give back what the attempt holds (fds, processes)."""

    def timeout_message(self) -> str:
        return "timed out"

    def _timed_out(self) -> None:
        self.timer = None
        self.finish(Result(False, self.timeout_message()))

    def finish(self, result: Result) -> None:
        if self.done:
            return
        self.done = True
        if self.timer:
            self.timer.cancel()
        self.cleanup()
        self.on_done(result)

    def cancel(self) -> None:
        if not self.done:
            self.done = True
            if self.timer:
                self.timer.cancel()
            self.cleanup()


def start_check(ctx: CheckContext, handler: dict, timeout: float | None,
                on_done: Callable[[Result], None]) -> Check:
    if "exec" in handler:
        check: Check = ExecCheck(ctx, timeout, on_done, list(handler["exec"]["command"]))
    elif "sleep" in handler:
        check = SleepCheck(ctx, None, on_done, float(handler["sleep"]["seconds"]))
    elif "httpGet" in handler:
        get = handler["httpGet"]
        host = get.get("host") or ctx.default_host
        port = resolve_port(get["port"], ctx.port_names)
        from .http import HttpGetExchange

        exchange = HttpGetExchange(host, port, get.get("path") or "/", get.get("httpHeaders") or ())
        check = SocketCheck(ctx, timeout, on_done, host, port, exchange,
                            tls=get.get("scheme") == "HTTPS", url_path=exchange.path)
    elif "tcpSocket" in handler:
        tcp = handler["tcpSocket"]
        host = tcp.get("host") or ctx.default_host
        check = SocketCheck(ctx, timeout, on_done, host, resolve_port(tcp["port"], ctx.port_names), None)
    elif "grpc" in handler:
        from .grpc import GrpcHealthExchange

        grpc = handler["grpc"]
        host, port = ctx.default_host, int(grpc["port"])
        check = SocketCheck(ctx, timeout, on_done, host, port,
                            GrpcHealthExchange(f"{host}:{port}", grpc.get("service") or ""))
    else:  # validation lets nothing else through
        raise MinipodError(f"unknown handler: {sorted(handler)}")
    check.start()
    return check


def resolve_port(port, port_names) -> int:
    if isinstance(port, int):
        return port
    for name, number in port_names:
        if name == port:
            return int(number)
    raise MinipodError(f'port "{port}" names no port of the container')


# --------------------------------------------------------------------- sleep

class SleepCheck(Check):
    def __init__(self, ctx, timeout, on_done, seconds: float):
        super().__init__(ctx, timeout, on_done)
        self.seconds = seconds
        self.sleeping: Timer | None = None

    def start(self) -> None:
        self.sleeping = self.ctx.loop.call_later(self.seconds, lambda: self.finish(Result(True)))

    def cleanup(self) -> None:
        if self.sleeping:
            self.sleeping.cancel()


# --------------------------------------------------------------------- exec

class ExecCheck(Check):
    """The command runs inside the container (its namespaces, root, user);
    exit status 0 is a success. Its output becomes the failure's message."""

    def __init__(self, ctx, timeout, on_done, argv: list[str]):
        super().__init__(ctx, timeout, on_done)
        self.argv = argv
        self.pid: int | None = None
        self.read_fd: int | None = None
        self.output = b""

    def timeout_message(self) -> str:
        return f"command {self.argv!r} timed out"

    def start(self) -> None:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_fd, False)  # ours only: the command writes as it pleases
        try:
            self.pid = self.ctx.spawn_exec(self.argv, write_fd)
        except (MinipodError, OSError) as exc:
            os.close(read_fd)
            self.finish(Result(False, str(exc)))
            return
        finally:
            os.close(write_fd)
        self.read_fd = read_fd
        self.ctx.loop.add_reader(read_fd, self._read)
        self.ctx.loop.watch_child(self.pid, self._exited)

    def _read(self) -> None:
        if self.read_fd is None:
            return
        try:
            data = os.read(self.read_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self._close_pipe()
        elif len(self.output) < EXEC_OUTPUT_LIMIT:
            self.output = (self.output + data)[:EXEC_OUTPUT_LIMIT]

    def _exited(self, status: int) -> None:
        self.pid = None
        self._read()  # what it wrote last; a child of its own may keep the pipe open
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            self.finish(Result(True, self.output.decode(errors="replace")))
            return
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        text = self.output.decode(errors="replace").strip()
        self.finish(Result(False, text or f"command {self.argv!r} exited with {code}"))

    def _close_pipe(self) -> None:
        if self.read_fd is not None:
            self.ctx.loop.forget(self.read_fd)
            os.close(self.read_fd)
            self.read_fd = None

    def cleanup(self) -> None:
        self._close_pipe()
        if self.pid is not None:
            # Still running (timed out or cancelled): the loop reaps it.
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.ctx.loop.watch_child(self.pid, lambda status: None)
            self.pid = None


# --------------------------------------------------------------------- sockets

class SocketCheck(Check):
    """Connect (inside the pod), optionally TLS, then an exchange; with no
    exchange (``tcpSocket``) the connection alone is the success."""

    def __init__(self, ctx, timeout, on_done, host: str, port: int, exchange: Exchange | None,
                 tls: bool = False, url_path: str = ""):
        super().__init__(ctx, timeout, on_done)
        self.host, self.port = host, port
        self.exchange = exchange
        self.tls = tls
        self.url_path = url_path
        self.sock = None
        self.outgoing = b""
        self.connected = False

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def describe_failure(self, what: str) -> str:
        """kubelet's wording, so messages read the same as on a cluster."""
        if self.url_path or self.tls:
            scheme = "https" if self.tls else "http"
            return f'Get "{scheme}://{self.target}{self.url_path}": {what}'
        if self.exchange is not None:  # grpc
            return f"failed to connect service {self.target!r}: {what}"
        return f"dial tcp {self.target}: {what}"

    def timeout_message(self) -> str:
        if not self.connected:
            return self.describe_failure("i/o timeout" if self.exchange is None else "context deadline exceeded")
        return self.describe_failure("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")

    def start(self) -> None:
        try:
            self.sock = _socket_in_pod(self.ctx, self.host)
            err = self.sock.connect_ex((self.host, self.port))
        except OSError as exc:
            self.finish(Result(False, self.describe_failure(f"connect: {exc.strerror or exc}")))
            return
        if err not in (0, errno.EINPROGRESS):
            self.finish(Result(False, self.describe_failure(f"connect: {os.strerror(err)}")))
            return
        self.ctx.loop.add_writer(self.sock.fileno(), self._connected)

    def _connected(self) -> None:
        import socket

        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.finish(Result(False, self.describe_failure(f"connect: {os.strerror(err)}")))
            return
        self.connected = True
        if self.exchange is None:
            self.finish(Result(True))
            return
        if self.tls:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # as kubelet: HTTPS probes do not verify
            self.sock = context.wrap_socket(self.sock, do_handshake_on_connect=False,
                                            server_hostname=None if _is_ip(self.host) else self.host)
            self._handshake()
            return
        self._begin_exchange()

    def _handshake(self) -> None:
        import ssl

        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.ctx.loop.watch(self.sock.fileno(), _READ, self._handshake)
            return
        except ssl.SSLWantWriteError:
            self.ctx.loop.watch(self.sock.fileno(), _WRITE, self._handshake)
            return
        except (ssl.SSLError, OSError) as exc:
            self.finish(Result(False, self.describe_failure(f"TLS handshake: {exc}")))
            return
        self._begin_exchange()

    def _begin_exchange(self) -> None:
        self.outgoing = self.exchange.opening()
        self._pump()

    def _pump(self) -> None:
        """Send what is pending, then wait for the answer (or for room)."""
        import ssl

        while self.outgoing:
            try:
                sent = self.sock.send(self.outgoing)
            except (BlockingIOError, ssl.SSLWantWriteError):
                self.ctx.loop.watch(self.sock.fileno(), _WRITE, self._pump)
                return
            except ssl.SSLWantReadError:
                break
            except OSError as exc:
                self.finish(Result(False, self.describe_failure(f"write: {exc.strerror or exc}")))
                return
            self.outgoing = self.outgoing[sent:]
        self.ctx.loop.watch(self.sock.fileno(), _READ, self._readable)

    def _readable(self) -> None:
        import ssl

        while not self.done:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                return
            except ssl.SSLWantWriteError:
                self.ctx.loop.watch(self.sock.fileno(), _WRITE, self._readable)
                return
            except OSError as exc:
                self.finish(Result(False, self.describe_failure(f"read: {exc.strerror or exc}")))
                return
            reply, result = self.exchange.feed(data)
            if result is None and not data:
                result = Result(False, self.describe_failure("connection closed before an answer"))
            if result is not None:
                self.finish(result)
                return
            if reply:
                self.outgoing += reply
                self._pump()
                return

    def cleanup(self) -> None:
        if self.sock is not None:
            self.ctx.loop.forget(self.sock.fileno())
            self.sock.close()
            self.sock = None


_READ, _WRITE = 1, 2  # selectors.EVENT_READ, EVENT_WRITE


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _socket_in_pod(ctx: CheckContext, host: str):
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    if ctx.net_fd is None:
        return socket.socket(family, kind)
    from .. import _sys

    _sys.setns(ctx.net_fd, CLONE_NEWNET)
    try:
        return socket.socket(family, kind)
    finally:
        # Back home before anything else happens: the supervisor's own
        # sockets and links must keep being made in the host's namespace.
        _sys.setns(ctx.host_net_fd, CLONE_NEWNET)
