"""IP address management on files, in the manner of CNI's host-local plugin.

Every change (and every consistent read) holds ``flock`` on the directory
``<state_dir>/ipam`` itself, so pods started at the same moment by different
processes never get the same address. The lock is on a directory that is
never removed: deleting a lock file while another process waits on it would
let two processes each hold "the" lock on different inodes.

``<state_dir>/ipam/<bridge>/`` holds one entry per allocated address: a
symbolic link named by the address whose target is the pod key (``ls -l``
shows ``10.144.0.5 -> default_web``). A symlink is created with its content
in one atomic step that fails if the name exists, and read with one system
call, so scanning the pool stays cheap as pods add up. Plus:

* ``last_reserved_ip`` (a symlink to an address) — allocation continues
  after the address handed out last instead of refilling the lowest hole,
  so an address just released is not given to the next pod while stale
  connections or ARP entries may still point at it.

Files, not a database: the state is visible with ``ls``, survives a killed
supervisor (teardown releases by pod key, no record needed), and vanishes at
reboot with the rest of ``/run``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os

from ..errors import NetworkError
from .model import PodNetworkConfig, pod_ref

LAST_RESERVED_FILE = "last_reserved_ip"


def ipam_dir(cfg: PodNetworkConfig) -> str:
    return os.path.join(cfg.state_dir, "ipam", cfg.bridge)


@contextlib.contextmanager
def locked(cfg: PodNetworkConfig, *, shared: bool = False):
    """Hold the pool's lock; yields a ``Pool`` valid only inside the block."""
    top = os.path.join(cfg.state_dir, "ipam")
    try:
        os.makedirs(top, 0o700, exist_ok=True)
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"IPAM directory {top}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield Pool(cfg, ipam_dir(cfg))
    finally:
        os.close(fd)  # closing drops the flock


def _is_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


class Pool:
    """The allocations of one bridge. Use it only under ``locked()``."""

    def __init__(self, cfg: PodNetworkConfig, directory: str):
        self.cfg = cfg
        self.directory = directory

    def allocations(self) -> dict[str, str]:
        """``{ip: pod_key}`` for every allocated address."""
        result = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return result
        for name in names:
            if not _is_address(name):
                continue
            try:
                result[name] = os.readlink(os.path.join(self.directory, name))
            except FileNotFoundError:
                continue
            except OSError:  # not a symlink: not ours, but keep the address out of use
                result[name] = ""
        return result

    def address_of(self, pod_key: str) -> str | None:
        for ip, owner in self.allocations().items():
            if owner == pod_key:
                return ip
        return None

    def allocate(self, pod_key: str) -> str:
        """An address for ``pod_key``: the one it already holds (a retry after
        a crash keeps its address), else the next free one after the last
        handed out. Raises NetworkError when the subnet is full."""
        taken = self.allocations()
        for ip, owner in taken.items():
            if owner == pod_key:
                return ip
        os.makedirs(self.directory, 0o700, exist_ok=True)
        network = self.cfg.network
        # Usable: after the gateway (network + 1) and before the broadcast.
        first = int(network.network_address) + 2
        last = int(network.broadcast_address) - 1
        start = self._last_reserved()
        start = start + 1 if start is not None and first <= start <= last else first
        size = last - first + 1
        for step in range(size):
            candidate = str(ipaddress.IPv4Address(first + (start - first + step) % size))
            if candidate in taken:
                continue
            if self._claim(candidate, pod_key):
                self._write_last_reserved(candidate)
                return candidate
        raise NetworkError(f"no free address left in subnet {self.cfg.subnet} "
                           f"({len(taken)} allocated) for pod {pod_ref(pod_key)}")

    def release(self, pod_key: str) -> list[str]:
        """Free every address held by ``pod_key``; returns them (may be none)."""
        released = []
        for ip, owner in self.allocations().items():
            if owner == pod_key:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, ip))
                released.append(ip)
        return released

    # ------------------------------------------------------------ files
    def _claim(self, ip: str, pod_key: str) -> bool:
        try:
            os.symlink(pod_key, os.path.join(self.directory, ip))
            return True
        except FileExistsError:
            return False

    def _last_reserved(self) -> int | None:
        try:
            return int(ipaddress.IPv4Address(os.readlink(os.path.join(self.directory, LAST_RESERVED_FILE))))
        except (OSError, ValueError):
            return None

    def _write_last_reserved(self, ip: str) -> None:
        path = os.path.join(self.directory, LAST_RESERVED_FILE)
        tmp = f"{path}.{os.getpid()}.tmp"
        os.symlink(ip, tmp)
        os.replace(tmp, path)

    def remove_if_empty(self) -> bool:
        """Delete the pool's directory when no address is allocated, so a
        torn-down network leaves no file behind. Returns whether it is gone."""
        if self.allocations():
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, LAST_RESERVED_FILE))
        try:
            os.rmdir(self.directory)
        except FileNotFoundError:
            pass
        except OSError:
            return False  # something that is not ours lives there: keep it
        return True
