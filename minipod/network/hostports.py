"""Who holds which hostPort: other pods (claim files) and host processes
(sockets bound to the port).

A pod's hostPorts are DNAT rules, not sockets, so the kernel would not stop
two pods — or a pod and a host daemon — from publishing the same port: the
first matching rule would silently win. minipod refuses instead, before it
creates anything.

Claims live in ``<state_dir>/hostports/``, one symbolic link per published
port, named ``<protocol>_<port>_<hostIP or any>`` and pointing at the pod key
(as in ``ipam``: atomic to create, one system call to read). They are
host-wide (not per bridge): a port on the host belongs to one pod whatever
its bridge. Changes hold ``flock`` on that directory, so two pods started
at once cannot both claim a port.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket

from ..errors import NetworkError
from .model import HostPort, PodNetworkConfig, pod_ref

ANY = "any"  # file-name spelling of "every address of the host"
IP_FREEBIND = 15  # <linux/in.h>; not exported by Python's socket module


def claims_dir(cfg: PodNetworkConfig) -> str:
    return os.path.join(cfg.state_dir, "hostports")


def _claim_name(port: HostPort) -> str:
    return f"{port.protocol.lower()}_{port.host_port}_{port.host_ip or ANY}"


def _parse_claim_name(name: str) -> HostPort | None:
    parts = name.split("_")
    if len(parts) != 3 or parts[0].upper() not in ("TCP", "UDP") or not parts[1].isdigit():
        return None
    host_ip = "" if parts[2] == ANY else parts[2]
    return HostPort(int(parts[1]), 0, parts[0].upper(), host_ip)


@contextlib.contextmanager
def locked(cfg: PodNetworkConfig, *, shared: bool = False):
    directory = claims_dir(cfg)
    try:
        os.makedirs(directory, 0o700, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"hostPort directory {directory}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def claims(cfg: PodNetworkConfig) -> list[tuple[HostPort, str]]:
    """Every claimed hostPort with the key of the pod holding it."""
    directory = claims_dir(cfg)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    result = []
    for name in names:
        port = _parse_claim_name(name)
        if port is None:
            continue
        try:
            result.append((port, os.readlink(os.path.join(directory, name))))
        except FileNotFoundError:
            continue
        except OSError:
            result.append((port, ""))  # not ours: still counts as taken
    return result


def check_claims(cfg: PodNetworkConfig, pod_key: str, ports: list[HostPort]) -> None:
    """Raise NetworkError if another pod publishes one of ``ports``."""
    taken = claims(cfg)
    for port in ports:
        for other, owner in taken:
            if owner != pod_key and other.overlaps(port):
                raise NetworkError(f"hostPort {port.label} is already used by pod {pod_ref(owner)}")


def claim(cfg: PodNetworkConfig, pod_key: str, ports: list[HostPort]) -> None:
    """Record ``ports`` as published by ``pod_key``, checking other pods'
    claims under the same lock so that two concurrent claims cannot both
    succeed. Idempotent for the same pod."""
    if not ports:
        return
    with locked(cfg):
        check_claims(cfg, pod_key, ports)
        for port in ports:
            path = os.path.join(claims_dir(cfg), _claim_name(port))
            try:
                os.symlink(pod_key, path)
            except FileExistsError:
                pass  # this pod's own claim from an earlier attempt (checked above)


def release(cfg: PodNetworkConfig, pod_key: str) -> int:
    """Drop every claim of ``pod_key``; returns how many there were."""
    count = 0
    if not os.path.isdir(claims_dir(cfg)):
        return 0
    with locked(cfg):
        for port, owner in claims(cfg):
            if owner == pod_key:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(claims_dir(cfg), _claim_name(port)))
                count += 1
    return count


# ---------------------------------------------------------------- host sockets
def _probe(port: HostPort) -> OSError | None:
    """Try to bind the hostPort the way a server would; the error if that
    fails. Binding sends nothing and the socket is closed at once.

    Asking the kernel is exact where reading ``/proc/net/tcp`` is not (and
    that file walks every connection bucket: ~10 ms here). For TCP,
    SO_REUSEADDR makes only a *listening* socket on an overlapping address
    (the wildcard, the same address, or a dual-stack ``[::]``) a conflict,
    not connections in TIME_WAIT. For UDP any bound socket conflicts.
    IP_FREEBIND lets a hostIP that is not (yet) on this host be probed."""
    kind = socket.SOCK_STREAM if port.protocol == "TCP" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC) as probe:
        if port.protocol == "TCP":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        try:
            probe.bind((port.host_ip or "0.0.0.0", port.host_port))
        except OSError as exc:
            return exc
    return None


def check_host_sockets(ports: list[HostPort]) -> None:
    """Raise NetworkError if a process on the host (in the caller's network
    namespace) serves one of ``ports``: DNAT would silently steal its
    traffic. Only IPv4 matters: the rules are IPv4, an IPv6-only socket is
    not affected."""
    for port in ports:
        failure = _probe(port)
        if failure is None:
            continue
        if failure.errno == errno.EADDRINUSE:
            raise NetworkError(f"hostPort {port.label} is in use by a process on this host",
                               hint=f"something already listens on {port.host_ip or '0.0.0.0'}:"
                                    f"{port.host_port}/{port.protocol}")
        raise NetworkError(f"hostPort {port.label}: cannot check {port.host_ip or '0.0.0.0'}:"
                           f"{port.host_port}: {failure.strerror}")
