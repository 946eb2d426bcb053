"""``minipod exec``: one more process inside a running container.

The new process is spawned by the same native code as the container itself:
it joins the container's cgroup and every one of its namespaces (mount
last), lands in its PID namespace through a clone, takes the container's
user and capabilities, and execs. The caller owns it, as ``nsenter`` or
``kubectl exec`` would: it is not part of the pod's lifecycle.
"""

from __future__ import annotations

import os
import selectors
import signal
import sys

from .container import exec_plan
from .errors import MinipodError, SpawnError, StateError


class ExecResult:
    """What a captured ``exec`` gave back. (Plain class: ``dataclasses``
    would cost ``exec`` and ``logs`` milliseconds of start-up.)"""

    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: bytes = b"", stderr: bytes = b""):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __eq__(self, other):
        if not isinstance(other, ExecResult):
            return NotImplemented
        return (self.returncode, self.stdout, self.stderr) == (other.returncode, other.stdout, other.stderr)

    __hash__ = None

    def __repr__(self) -> str:
        return f"ExecResult(returncode={self.returncode!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


def _container_record(state: dict, name: str | None) -> dict:
    runs = state.get("containers") or []
    pod_name = state["pod"]["metadata"]["name"]
    apps = [c for c in runs if not c.get("init")]
    if name is None:
        if len(apps) != 1:
            names = ", ".join(c["name"] for c in apps)
            raise StateError(f'pod "{pod_name}" has several containers ({names}): choose one with -c')
        return apps[0]
    for c in runs:
        if c["name"] == name:
            return c
    raise StateError(f'container "{name}" not found in pod "{pod_name}"')


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def spawn_exec(state: dict, container: str | None, argv: list[str], stdio: tuple[int, int, int],
               tty: bool) -> int:
    """Start ``argv`` in the container; returns its pid (our child)."""
    from . import _sys

    if not argv:
        raise MinipodError("exec: no command given")
    record = _container_record(state, container)
    pid = record.get("pid")
    if not pid or "running" not in (record.get("state") or {}):
        raise StateError(f'container "{record["name"]}" is not running')
    launch = record.get("launch") or {}
    env = dict(launch.get("env") or {})
    if tty:
        env.setdefault("TERM", "xterm")
    try:
        plan = exec_plan(record=launch, container_pid=pid, argv=argv, env=env,
                         cgroup_procs=record.get("cgroupProcs") or [], stdio=stdio, tty=tty)
    except FileNotFoundError:
        raise StateError(f'container "{record["name"]}" is not running') from None
    ns_fds = [fd for fd in plan.keep_fds if fd not in stdio]
    try:
        return _sys.spawn(plan)
    except SpawnError as exc:
        if exc.op.__class__.__name__ == "Exec":
            reason = "executable file not found in $PATH" if exc.errno == 2 else os.strerror(exc.errno)
            raise MinipodError(f'exec: "{argv[0]}": {reason}') from None
        raise
    finally:
        for fd in ns_fds:
            os.close(fd)


def run_attached(state: dict, container: str | None, argv: list[str]) -> int:
    """Run with the caller's own stdin/stdout/stderr (no copying at all)."""
    pid = spawn_exec(state, container, argv, (0, 1, 2), tty=False)
    return _wait(pid)


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return _exit_status(status)
        except InterruptedError:
            continue


def run_captured(state: dict, container: str | None, argv: list[str], input: bytes | None = None,
                 timeout: float | None = None) -> ExecResult:
    """Run and collect stdout and stderr (the library's ``pod.exec``)."""
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = spawn_exec(state, container, argv, (in_r, out_w, err_w), tty=False)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    if input:
        try:
            os.write(in_w, input)
        except BrokenPipeError:
            pass
    os.close(in_w)
    chunks = {out_r: [], err_r: []}
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        open_fds = set(chunks)
        import time

        deadline = time.monotonic() + timeout if timeout else None
        while open_fds:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                os.kill(pid, signal.SIGKILL)
                break
            for key, _ in sel.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
                    open_fds.discard(key.fd)
    for fd in chunks:
        os.close(fd)
    return ExecResult(_wait(pid), b"".join(chunks[out_r]), b"".join(chunks[err_r]))


def run_tty(state: dict, container: str | None, argv: list[str], interactive: bool) -> int:
    """``exec -it``: a new pseudo-terminal whose far end is the process's
    controlling terminal; this side relays keys and output in raw mode."""
    import termios
    import tty as ttymod

    master, slave = os.openpty()
    os.set_inheritable(master, False)
    try:
        _copy_winsize(sys.stdin.fileno(), master)
        pid = spawn_exec(state, container, argv, (slave, slave, slave), tty=True)
    finally:
        os.close(slave)
    saved = None
    stdin_fd = sys.stdin.fileno()
    if interactive and os.isatty(stdin_fd):
        saved = termios.tcgetattr(stdin_fd)
        ttymod.setraw(stdin_fd)
    signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(stdin_fd, master))
    try:
        _relay(master, stdin_fd if interactive else None)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        os.close(master)
    return _wait(pid)


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _relay(master: int, stdin_fd: int | None) -> None:
    with selectors.DefaultSelector() as sel:
        sel.register(master, selectors.EVENT_READ)
        if stdin_fd is not None:
            sel.register(stdin_fd, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                try:
                    data = os.read(key.fd, 65536)
                except OSError:  # EIO: the terminal's far side closed
                    data = b""
                if key.fd == master:
                    if not data:
                        return
                    os.write(1, data)
                elif data:
                    os.write(master, data)
                else:
                    sel.unregister(stdin_fd)
