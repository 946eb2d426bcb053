"""A container's last words: ``terminationMessagePath`` and its policy.

As kubelet does it: an empty host file is bind-mounted at the path the
container names (``/dev/termination-log`` by default), writable by any
user; after the container exits, what it wrote there (at most 4 KiB)
becomes ``state.terminated.message``. With ``FallbackToLogsOnError``, a
container that failed and wrote nothing there gets the end of its log
instead (the last 80 lines, at most 2 KiB).
"""

from __future__ import annotations

import os

from .errors import MinipodError

FILE_NAME = "termination-log"
MAX_MESSAGE = 4096
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048


def create_message_file(layer_dir: str) -> str:
    path = os.path.join(layer_dir, FILE_NAME)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        os.fchmod(fd, 0o666)  # whatever user the container runs as may write it
    finally:
        os.close(fd)
    return path


def termination_message(message_file: str | None, policy: str, exit_code: int, log_path: str | None) -> str:
    text = ""
    if message_file:
        try:
            fd = os.open(message_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                text = os.read(fd, MAX_MESSAGE).decode(errors="replace")
            finally:
                os.close(fd)
    if not text and policy == "FallbackToLogsOnError" and exit_code != 0 and log_path:
        from .logs import read_log

        try:
            text = "".join(read_log(log_path, tail=FALLBACK_LINES))[-FALLBACK_BYTES:]
        except (MinipodError, OSError):
            text = ""
    return text
