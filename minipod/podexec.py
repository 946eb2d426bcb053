"""``minipod exec``: one more process inside a running container.

The new process is spawned by the same native code as the container itself:
it joins the container's cgroup and every one of its namespaces (mount
last), lands in its PID namespace through a clone, takes the container's
user and capabilities, and execs. The caller owns it, as ``nsenter`` or
``kubectl exec`` would: it is not part of the pod's lifecycle.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import sys

from .container import exec_failure, exec_plan
from .errors import KernelError, MinipodError, SpawnError, StateError
from .record import Record

# Linux pty ioctls Python's ``termios`` does not name (values for x86 and
# arm; the "T" ioctl numbers differ only on alpha, mips, powerpc, sparc).
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): lock/unlock the peer
TIOCGPTPEER = 0x5441     # _IO('T', 0x41): open the peer of a master fd

CHUNK = 65536


class ExecResult(Record):
    """What a captured ``exec`` gave back."""

    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""

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


def _running_record(state: dict, name: str | None) -> dict:
    """The container's record, which must name a running process."""
    record = _container_record(state, name)
    if not record.get("pid") or "running" not in (record.get("state") or {}):
        raise _not_running(record)
    return record


def _not_running(record: dict) -> StateError:
    return StateError(f'container "{record["name"]}" is not running')


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def spawn_exec(state: dict, container: str | None, argv: list[str], stdio: tuple[int, int, int],
               tty: bool) -> int:
    """Start ``argv`` in the container; returns its pid (our child)."""
    if not argv:
        raise MinipodError("exec: no command given")
    return spawn_in_container(_running_record(state, container), argv, stdio, tty)


def spawn_in_container(record: dict, argv: list[str], stdio: tuple[int, int, int], tty: bool) -> int:
    """Start ``argv`` in the container ``record`` describes (its state.json
    entry); returns the pid, a child of the caller."""
    from . import _sys

    launch = record.get("launch") or {}
    env = dict(launch.get("env") or {})
    if tty:
        env.setdefault("TERM", "xterm")
    try:
        plan = exec_plan(record=launch, container_pid=record["pid"], argv=argv, env=env,
                         cgroup_procs=record.get("cgroupProcs") or [], stdio=stdio, tty=tty)
    except FileNotFoundError:
        raise _not_running(record) from None
    ns_fds = [fd for fd in plan.keep_fds if fd not in stdio]
    try:
        return _sys.spawn(plan)
    except SpawnError as exc:
        message = exec_failure(argv[0], exc)
        if message:
            raise MinipodError(message) from None
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


# ---------------------------------------------------------------- captured


def run_captured(state: dict, container: str | None, argv: list[str], input: bytes | None = None,
                 timeout: float | None = None) -> ExecResult:
    """Run and collect stdout and stderr (the library's ``pod.exec``);
    ``input`` is the command's whole stdin. At ``timeout`` seconds the
    command is killed and what it gave so far is returned."""
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            pid = spawn_exec(state, container, argv, (in_r, out_w, err_w), tty=False)
        except BaseException:
            os.close(in_w)
            raise
        finally:
            # Only the child keeps these ends: with ours closed, the command
            # ending is EOF on out_r/err_r, and our in_w sees EPIPE.
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        outputs, timed_out = communicate(in_w, input or b"", [out_r, err_r], timeout)
        if timed_out:
            os.kill(pid, signal.SIGKILL)  # our own child
        return ExecResult(_wait(pid), outputs[out_r], outputs[err_r])
    finally:
        os.close(out_r)
        os.close(err_r)


def communicate(in_w: int, data: bytes, readers: list[int],
                timeout: float | None = None) -> tuple[dict[int, bytes], bool]:
    """Write ``data`` to ``in_w`` (then close it) while reading ``readers``
    to their EOF; returns what each reader gave and whether ``timeout``
    seconds ran out first. ``in_w`` is closed in any case; ``readers`` stay
    open.

    Writing and reading share one loop on purpose: a command that echoes
    its input (``cat``) fills its output pipe and stops reading; a blocking
    write of all the input before reading any output would then wait on it
    forever."""
    import time

    chunks: dict[int, list[bytes]] = {fd: [] for fd in readers}
    pending = memoryview(data)
    deadline = time.monotonic() + timeout if timeout else None
    with selectors.DefaultSelector() as sel:
        for fd in readers:
            sel.register(fd, selectors.EVENT_READ)
        writing = bool(pending)
        if writing:
            os.set_blocking(in_w, False)  # write what fits, never wait in write
            sel.register(in_w, selectors.EVENT_WRITE)
        else:
            os.close(in_w)  # no input: EOF at once
        try:
            while sel.get_map():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return {fd: b"".join(c) for fd, c in chunks.items()}, True
                for key, _ in sel.select(left):
                    if key.fd == in_w:
                        try:
                            pending = pending[os.write(in_w, pending[:CHUNK]):]
                        except BlockingIOError:
                            continue  # the pipe filled up again in between
                        except BrokenPipeError:
                            pending = pending[:0]  # the command stopped reading: drop the rest
                        if not pending:
                            sel.unregister(in_w)
                            os.close(in_w)  # all written: the command sees EOF
                            writing = False
                        continue
                    got = os.read(key.fd, CHUNK)
                    if got:
                        chunks[key.fd].append(got)
                    else:
                        sel.unregister(key.fd)
        finally:
            if writing:
                os.close(in_w)
    return {fd: b"".join(c) for fd, c in chunks.items()}, False


# -------------------------------------------------------------------- tty


def run_tty(state: dict, container: str | None, argv: list[str], interactive: bool) -> int:
    """``exec -it``: a new pseudo-terminal whose far end is the process's
    controlling terminal; this side relays keys and output in raw mode."""
    import termios
    import tty as ttymod

    if not argv:
        raise MinipodError("exec: no command given")
    record = _running_record(state, container)
    try:
        master, peer = open_container_pty(record["pid"])
    except KernelError as exc:
        if exc.errno == errno.ENOENT:  # /proc/<pid> gone: it just ended
            raise _not_running(record) from None
        raise
    try:
        # The terminal is the exec'd user's, as a login would make it
        # (devpts creates it as root's, mode 0620).
        uid = (record.get("launch") or {}).get("uid") or 0
        if uid:
            os.fchown(peer, uid, -1)
        _copy_winsize(_caller_terminal(), master)
        pid = spawn_in_container(record, argv, (peer, peer, peer), tty=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        # Only the child holds the terminal now: when it (and whatever it
        # started) is gone, reading the master fails with EIO and we stop.
        os.close(peer)
    saved = None
    stdin_fd = sys.stdin.fileno()
    # Raw mode only on a real terminal: keys (Ctrl-C included) go to the
    # container's terminal, which does the line editing and signals. A
    # pipe has no modes; its EOF is passed on by _relay.
    if interactive and os.isatty(stdin_fd):
        saved = termios.tcgetattr(stdin_fd)
        ttymod.setraw(stdin_fd)
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(_caller_terminal(), master))
    try:
        _relay(master, stdin_fd if interactive else None)
    finally:
        signal.signal(signal.SIGWINCH, previous)
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        os.close(master)
    return _wait(pid)


def open_container_pty(container_pid: int) -> tuple[int, int]:
    """A new pseudo-terminal of the container's own devpts: (master, peer),
    both close-on-exec; the peer is the container's ``/dev/pts/N``.

    Why not ``os.openpty()``: that makes a terminal of the host's devpts,
    and every container mounts a private devpts instance (``newinstance``,
    see rootfs.py). The process would hold a terminal it cannot name:
    ``tty`` says "not a tty" and /proc/self/fd/0 points at a /dev/pts/N
    that does not exist in there. So the ptmx is opened through the
    container's root (its devpts' own ptmx, mode 0666), and the peer with
    TIOCGPTPEER rather than by path: the fd comes from the master itself,
    no path lookup on our side that the container could redirect."""
    import fcntl
    import struct

    ptmx = f"/proc/{container_pid}/root/dev/pts/ptmx"
    try:
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError("open", exc.errno, ptmx) from None
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # a new pty starts locked
        peer = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(master)
        raise KernelError("open the terminal of", exc.errno, ptmx) from None
    return master, peer


def _caller_terminal() -> int:
    """The caller's terminal to take the window size from: stdin, or stdout
    for ``exec -t`` with stdin from elsewhere."""
    for fd in (0, 1):
        if os.isatty(fd):
            return fd
    return 0


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass  # not a terminal: the pty keeps its default size


def _eof_key(master: int) -> bytes:
    """The terminal's end-of-file character (VEOF, normally Ctrl-D)."""
    import termios

    try:
        key = termios.tcgetattr(master)[6][termios.VEOF]
    except (OSError, termios.error):
        key = b""
    return key if isinstance(key, bytes) and key != b"\0" else b"\x04"


def _relay(master: int, stdin_fd: int | None, out_fd: int = 1) -> None:
    """Copy ``stdin_fd`` (when given) to the terminal's master and the
    master to ``out_fd``, until the terminal's far side is closed by every
    process that had it.

    A terminal has no "close the input" of its own: a program reading it
    sees EOF when the line discipline gets the VEOF key. So at EOF on
    ``stdin_fd`` (a pipe, say) that key is sent, twice after a partial
    line (the first only ends the line). Without it, ``echo hi | minipod
    exec -it P -- cat`` would wait forever.

    The master is non-blocking and keys are written as it takes them: a
    blocking write could wait on a full terminal while the program waits on
    us to read its output."""
    os.set_blocking(master, False)
    pending = b""        # keys read but not yet taken by the terminal
    last_key = b"\n"     # whether the terminal's current line is empty
    reading = stdin_fd is not None
    with selectors.DefaultSelector() as sel:
        sel.register(master, selectors.EVENT_READ)
        while True:
            # Read more keys only once the last ones are in: back-pressure
            # to the caller instead of an ever growing buffer.
            _want(sel, stdin_fd, selectors.EVENT_READ if reading and not pending else 0)
            _want(sel, master, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0))
            for key, events in sel.select():
                if key.fd == master and events & selectors.EVENT_READ:
                    try:
                        data = os.read(master, CHUNK)
                    except BlockingIOError:
                        data = None
                    except OSError:  # EIO: the terminal's far side closed
                        data = b""
                    if data == b"":
                        return
                    if data:
                        try:
                            _write_all(out_fd, data)
                        except BrokenPipeError:
                            return  # nobody reads the output; closing the master hangs up the program
                if key.fd == master and events & selectors.EVENT_WRITE and pending:
                    try:
                        pending = pending[os.write(master, pending):]
                    except BlockingIOError:
                        pass
                if key.fd == stdin_fd:
                    try:
                        data = os.read(stdin_fd, CHUNK)
                    except OSError:  # EIO: the caller's terminal hung up
                        data = b""
                    if data:
                        pending += data
                        last_key = data[-1:]
                    else:
                        reading = False
                        eof = _eof_key(master)
                        pending += eof if last_key in (b"\n", b"\r") else eof * 2


def _want(sel: selectors.BaseSelector, fd: int | None, events: int) -> None:
    """Have ``sel`` watch ``fd`` for exactly ``events`` (0: not at all)."""
    if fd is None:
        return
    watched = sel.get_map().get(fd)
    if watched is None:
        if events:
            sel.register(fd, events)
    elif not events:
        sel.unregister(fd)
    elif watched.events != events:
        sel.modify(fd, events)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # a non-blocking stdout we share: wait for room
            select.select([], [fd], [])
