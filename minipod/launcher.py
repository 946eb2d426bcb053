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


def _fork_supervisor(config: Config, pod_dir: PodDir, ready_w: int) -> None:
    pid = os.fork()
    if pid == 0:  # first child: new session, then fork again and leave
        code = 1
        try:
            os.setsid()
            if os.fork() == 0:
                os.chdir("/")
                # Inherit nothing of the caller's but the report pipe: an open
                # pipe of the caller's caller would otherwise never see EOF.
                os.closerange(3, ready_w)
                os.closerange(ready_w + 1, 65536)
                _redirect_stdio(pod_dir.supervisor_log)
                sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)
                sys.stderr = sys.__stderr__ = open(2, "w", closefd=False)
                try:
                    code = _supervisor_main(config, pod_dir, ready_w)
                except BaseException:  # the log is the only place left to say it
                    import traceback

                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stderr.flush()
            else:
                code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


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
    with os.fdopen(ready_r, "rb") as f:
        line = f.readline()
    if not line:
        raise MinipodError("the pod's supervisor died while starting it" + _log_tail(pod_dir.supervisor_log))
    return json.loads(line)


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
