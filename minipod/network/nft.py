"""Run nft scripts: in-process through libnftables, or the ``nft`` command.

Why libnftables (the library behind Debian's ``nft`` command, loaded with
ctypes) rather than pyroute2's nftables support or one ``nft`` per change:

* the scripts are plain ``nft`` syntax (see ``nat.py``), the same a person
  types to inspect or debug, and the same parser validates them, whereas
  pyroute2 needs every rule spelled out as raw netlink expressions (and
  ``import pyroute2`` alone costs 250-320 ms here, see ``rtnl.py``);
* it is fast. Measured on this machine: a pod's whole rule set commits in
  about 0.5 ms through a context kept open, while running ``nft -f -``
  takes about 16 ms. The cost is not exec: after a commit, closing the
  nfnetlink socket waits for an RCU grace period in the kernel, and a
  process that exits pays it. So one context is opened per process and
  kept (never freed: the exit of the process closes it, off the pod's
  critical path).

When libnftables cannot be loaded the ``nft`` command is used with the same
scripts: slower, same result.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import threading

from ..errors import NetworkError

log = logging.getLogger(__name__)

# libnftables.h: enum nft_output_flags
OUTPUT_HANDLE = 1 << 3
OUTPUT_JSON = 1 << 4


class NftFailure(NetworkError):
    """An nft script was refused. ``detail`` is nft's own error text."""

    def __init__(self, what: str, detail: str):
        self.detail = detail
        first = next((line for line in detail.splitlines() if line.strip()), "failed")
        # "Error: …" or, from the command, "/dev/stdin:1:15-29: Error: …"
        super().__init__(f"nftables: {what}: {first.split('Error: ', 1)[-1]}")

    @property
    def not_found(self) -> bool:
        """The table or chain the script named does not exist."""
        return "No such file or directory" in self.detail


class _Library:
    """One libnftables context, kept for the life of the process."""

    def __init__(self, lib: ctypes.CDLL):
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib = lib
        before = _sockets()
        self.ctx = lib.nft_ctx_new(0)
        if not self.ctx:
            raise NetworkError("nftables: cannot create a libnftables context")
        _close_on_exec_new_netlink_sockets(before)
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)

    def run(self, script: str, flags: int) -> tuple[int, str, str]:
        self.lib.nft_ctx_output_set_flags(self.ctx, flags)
        rc = self.lib.nft_run_cmd_from_buffer(self.ctx, script.encode())
        out = (self.lib.nft_ctx_get_output_buffer(self.ctx) or b"").decode(errors="replace")
        err = (self.lib.nft_ctx_get_error_buffer(self.ctx) or b"").decode(errors="replace")
        return rc, out, err


def _sockets() -> dict[int, str]:
    """``{fd: "socket:[inode]"}`` of the process's open sockets."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the directory's own descriptor, already closed
        if target.startswith("socket:"):
            found[int(name)] = target
    return found


def _close_on_exec_new_netlink_sockets(before: dict[int, str]) -> None:
    """libnftables opens its netlink socket without O_CLOEXEC and does not
    expose it: find it among the sockets that appeared, and keep it from
    leaking into every container the supervisor later starts."""
    for fd, target in _sockets().items():
        if before.get(fd) == target:
            continue
        probe = socket.socket(fileno=fd)
        try:
            if probe.family == socket.AF_NETLINK:
                os.set_inheritable(fd, False)
        finally:
            probe.detach()  # the descriptor stays libnftables'


class _Command:
    """The ``nft`` program, when the library is not available."""

    def run(self, script: str, flags: int) -> tuple[int, str, str]:
        import subprocess

        argv = ["nft"]
        if flags & OUTPUT_JSON:
            argv.append("-j")
        if flags & OUTPUT_HANDLE:
            argv.append("-a")
        if flags:
            # nft prints a listing only for a command given as arguments
            # (one line: "list chain …"), not for one read with -f.
            argv += script.split()
        else:
            argv += ["-f", "-"]
        try:
            proc = subprocess.run(argv, input=None if flags else script, capture_output=True, text=True)
        except FileNotFoundError:
            raise NetworkError("nftables: neither libnftables nor the nft command is installed",
                               hint="install the 'nftables' package") from None
        return proc.returncode, proc.stdout, proc.stderr


_lock = threading.Lock()
_backend: tuple[int, object] | None = None  # (pid that made it, backend)


def _load_library() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libnftables.so.1")
    except OSError:
        # find_library runs ldconfig (slow): only when the usual soname fails.
        from ctypes.util import find_library

        name = find_library("nftables")
        if not name:
            raise
        return ctypes.CDLL(name)


def _get_backend():
    global _backend
    # A child of fork() shares the parent's socket: give it its own context.
    if _backend is None or _backend[0] != os.getpid():
        backend: object
        try:
            backend = _Library(_load_library())
        except OSError:
            backend = _Command()
        _backend = (os.getpid(), backend)
    return _backend[1]


def run(script: str, what: str, *, flags: int = 0) -> str:
    """Run an nft script as one transaction; returns its output. Raises
    NftFailure with nft's message when the script is refused."""
    log.debug("nft (%s):\n%s", what, script.rstrip())
    with _lock:
        rc, out, err = _get_backend().run(script, flags)
    if rc != 0:
        raise NftFailure(what, err or out)
    return out


def list_json(script: str, what: str) -> str:
    """Run a ``list`` command; JSON output with rule handles."""
    return run(script, what, flags=OUTPUT_JSON | OUTPUT_HANDLE)
