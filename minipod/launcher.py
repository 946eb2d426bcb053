"""Start a pod's supervisor as a daemon and wait for its word.

The supervisor must outlive the ``run`` command, belong to no terminal and
be nobody's zombie: the classic double fork with ``setsid`` in between. When
the caller is single-threaded (the CLI), forking it is the fastest start —
the modules are already imported. A multi-threaded caller (a library user's
program) must not fork and keep running Python in the child, so it starts a
fresh interpreter instead (``python -m minipod.supervisor``).

The supervisor reports back over a pipe with one JSON line: whether every
container was started, or why the sandbox could not be built.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from .config import Config
from .errors import MinipodError
from .state import PodDir


def _redirect_stdio(log_path: str) -> None:
    devnull = os.open("/dev/null", os.O_RDONLY)
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(logfd, 1)
    os.dup2(logfd, 2)
    os.close(devnull)
    os.close(logfd)


def _supervisor_main(config: Config, pod_dir: PodDir, ready_fd: int) -> int:
    import logging

    # The caller's handlers (a test runner's, say) point at descriptors this
    # process no longer has: drop them without closing them.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if config.debug else logging.INFO)
    from .supervisor import run_supervisor

    return run_supervisor(config, pod_dir, ready_fd)


def _daemonize(child) -> None:
    """Run ``child()`` (its return value is the exit code) in a grandchild
    in a new session, and return once the middle process has left."""
    pid = os.fork()
    if pid == 0:  # first child: new session, then fork again and leave
        code = 1
        try:
            os.setsid()
            code = child() if os.fork() == 0 else 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _keep_only_fds(*keep: int) -> None:
    """Inherit nothing of the caller's but ``keep``: an open pipe of the
    caller's caller would otherwise never see EOF."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)


def _become_supervisor(config: Config, pod_dir: PodDir, ready_w: int) -> int:
    _redirect_stdio(pod_dir.supervisor_log)
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", closefd=False)
    try:
        return _supervisor_main(config, pod_dir, ready_w)
    except BaseException:  # the log is the only place left to say it
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.stderr.flush()


def _fork_supervisor(config: Config, pod_dir: PodDir, ready_w: int) -> None:
    def child() -> int:
        os.chdir("/")
        _keep_only_fds(ready_w)
        return _become_supervisor(config, pod_dir, ready_w)

    _daemonize(child)


def _exec_supervisor(config: Config, pod_dir: PodDir, ready_w: int) -> None:
    import subprocess  # ~4 ms, and the CLI (single-threaded) never comes here

    args = [sys.executable, "-m", "minipod.supervisor", pod_dir.path, str(ready_w),
            json.dumps(config.to_dict())]
    with open(pod_dir.supervisor_log, "ab") as logf:
        proc = subprocess.Popen(args, pass_fds=[ready_w], stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=logf, start_new_session=True, cwd="/")
    proc.wait()  # the module forks again and its first process leaves at once


def start_supervisor(config: Config, pod_dir: PodDir) -> dict:
    """Launch the supervisor and return its report: ``{"ok": True,
    "failures": {container: message}}`` or ``{"ok": False, "error": …}``."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    try:
        if threading.active_count() == 1:
            _fork_supervisor(config, pod_dir, ready_w)
        else:
            _exec_supervisor(config, pod_dir, ready_w)
    finally:
        os.close(ready_w)
    return _read_report(ready_r, pod_dir)


def _read_report(ready_r: int, pod_dir: PodDir) -> dict:
    with os.fdopen(ready_r, "rb") as f:
        line = f.readline()
    if not line:
        raise MinipodError("the pod's supervisor died while starting it" + _log_tail(pod_dir.supervisor_log))
    return json.loads(line)


# What a supervisor imports as it builds a sandbox: loaded by an early
# supervisor while it waits for its pod (about 80 ms of imports here).
PRELOAD = ("minipod.supervisor", "minipod._sys", "minipod.cgroups", "minipod.cgroups.limits",
           "minipod.network", "minipod.network.pod", "minipod.volumes", "minipod.devices",
           "minipod.rootfs", "minipod.sandbox", "minipod.teardown", "minipod.users",
           "minipod.envvars", "minipod.seccomp", "minipod.container", "minipod.logs")


class EarlySupervisor:
    """A supervisor forked before the manifest is even read.

    ``run`` spends tens of milliseconds parsing, validating and looking up
    images, and the supervisor as long again importing what it needs to
    build a sandbox. Forked first, the supervisor does its imports on the
    other core meanwhile, then waits for its pod's directory and minipod's
    configuration; if ``run`` fails before that (a bad manifest, a taken
    name), the pipe closes and it exits without having touched anything.
    """

    def __init__(self, command_w: int, ready_r: int):
        self.command_w: int | None = command_w
        self.ready_r: int | None = ready_r

    @classmethod
    def fork(cls) -> "EarlySupervisor | None":
        """None where forking is not safe (a multi-threaded caller)."""
        if threading.active_count() != 1:
            return None
        command_r, command_w = os.pipe2(os.O_CLOEXEC)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)

        def child() -> int:
            os.chdir("/")
            _keep_only_fds(command_r, ready_w)
            _redirect_stdio("/dev/null")  # nobody's terminal or captured pipe is held
            return _wait_for_pod(command_r, ready_w)

        try:
            _daemonize(child)
        finally:
            os.close(command_r)
            os.close(ready_w)
        return cls(command_w, ready_r)

    def start(self, config: Config, pod_dir: PodDir) -> dict:
        """Hand the supervisor its pod (state directory and spec.json ready)
        and return its report, as ``start_supervisor`` does."""
        try:
            order = {"pod": pod_dir.path, "config": config.to_dict()}
            os.write(self.command_w, json.dumps(order).encode() + b"\n")
        finally:
            os.close(self.command_w)
            self.command_w = None
        ready_r, self.ready_r = self.ready_r, None
        return _read_report(ready_r, pod_dir)

    def discard(self) -> None:
        """Not needed after all: the supervisor sees EOF and exits."""
        for fd in (self.command_w, self.ready_r):
            if fd is not None:
                os.close(fd)
        self.command_w = self.ready_r = None


def _wait_for_pod(command_r: int, ready_w: int) -> int:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from . import _sys

    _sys._native()  # the cffi module, loaded once
    with os.fdopen(command_r, "rb") as f:
        line = f.readline()
    if not line:
        return 0
    order = json.loads(line)
    return _become_supervisor(Config.from_dict(order["config"]), PodDir(order["pod"]), ready_w)


# Forked by the ``minipod`` command itself, before it parses its arguments
# (see ``minipod.__main__``), and taken by the first pod that ``run`` starts.
_preforked: EarlySupervisor | None = None


def prefork() -> None:
    """Fork a supervisor now, for a ``run`` about to start. If forking
    fails here, nothing is lost: ``run`` forks one later and reports the
    failure then, as one clear error."""
    global _preforked
    if _preforked is None and os.geteuid() == 0:
        try:
            _preforked = EarlySupervisor.fork()
        except OSError:
            _preforked = None


def early_supervisor() -> EarlySupervisor | None:
    """The supervisor forked by ``prefork`` (taken: once), else a new one."""
    global _preforked
    early, _preforked = _preforked, None
    return early if early is not None else EarlySupervisor.fork()


def _log_tail(path: str, lines: int = 5) -> str:
    """The end of the supervisor's log, for the error (the pod directory is
    removed right after)."""
    try:
        with open(path, errors="replace") as f:
            tail = f.read().strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (":\n  " + "\n  ".join(tail)) if tail else ""


def main(argv: list[str]) -> int:
    """``python -m minipod.supervisor POD_DIR READY_FD CONFIG_JSON``."""
    pod_dir, ready_fd, config = PodDir(argv[0]), int(argv[1]), Config.from_dict(json.loads(argv[2]))
    if os.fork():
        return 0
    os.setsid()
    try:
        return _supervisor_main(config, pod_dir, ready_fd)
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
