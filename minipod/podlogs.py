"""Reading a pod's container logs: ``minipod logs`` and the foreground ``run``.

Each start of a container writes a new CRI log file (``<restart>.log``), so
``--previous`` is the file before the current one, and following a
container moves on to the next file when it restarts.
"""

from __future__ import annotations

import os
import time
from typing import Iterator

from .errors import StateError


def _pick_container(state: dict, container: str | None) -> dict:
    from .podexec import _container_record

    if container is None and len(state.get("containers") or []) == 0:
        raise StateError("the pod has no containers yet")
    return _container_record(state, container)


def _log_file(state: dict, name: str, restart: int) -> str:
    return os.path.join(state["logDir"], name, f"{restart}.log")


def container_log_lines(runtime, ref: str, container: str | None, *, follow: bool = False,
                        previous: bool = False, timestamps: bool = False,
                        tail: int | None = None) -> Iterator[str]:
    from .logs import follow_logs, read_log

    pod_dir = runtime.table.find(ref)
    state = pod_dir.read()
    record = _pick_container(state, container)
    name = record["name"]
    restart = record.get("restartCount", 0)
    if previous:
        # Waiting to restart, the run that just ended is the previous one
        # (its file is still the current number); otherwise the one before.
        waiting = "waiting" in (record.get("state") or {}) and record.get("lastState")
        if not waiting and restart == 0:
            raise StateError(f'previous terminated container "{name}" not found')
        number = restart if waiting else restart - 1
        yield from read_log(_log_file(state, name, number), timestamps=timestamps, tail=tail)
        return
    path = _log_file(state, name, restart)
    if not follow:
        if os.path.exists(path):
            yield from read_log(path, timestamps=timestamps, tail=tail)
        return

    def current() -> str:
        rec = _current_record(pod_dir, name)
        return _log_file(state, name, rec.get("restartCount", 0)) if rec else path

    def done() -> bool:
        rec = _current_record(pod_dir, name)
        return not pod_dir.supervisor_alive() or rec is None or bool(rec.get("final"))

    yield from follow_logs(current, stop=done, timestamps=timestamps, tail=tail)


def _current_record(pod_dir, name: str) -> dict | None:
    try:
        state = pod_dir.read()
    except StateError:
        return None
    for c in state.get("containers") or []:
        if c["name"] == name:
            return c
    return None


def stream_pod(runtime, ref: str, write, poll: float = 0.05) -> None:
    """Follow every container of a pod, each line prefixed with its
    container name, until the pod's supervisor has finished."""
    from .logs import LineAssembler

    pod_dir = runtime.table.find(ref)
    offsets: dict[str, int] = {}
    assemblers: dict[str, LineAssembler] = {}  # per log file: P records wait for their F
    while True:
        alive = pod_dir.supervisor_alive()
        state = pod_dir.read()
        containers = state.get("containers") or []
        width = max((len(c["name"]) for c in containers), default=0)
        for c in containers:
            for restart in range(0, c.get("restartCount", 0) + 1):
                path = _log_file(state, c["name"], restart)
                try:
                    with open(path, "rb") as f:
                        f.seek(offsets.get(path, 0))
                        data = f.read()
                except FileNotFoundError:
                    continue
                cut = data.rfind(b"\n") + 1  # whole records only; the rest next round
                offsets[path] = offsets.get(path, 0) + cut
                assembler = assemblers.setdefault(path, LineAssembler(False, ("stdout", "stderr")))
                for record in data[:cut].split(b"\n")[:-1]:
                    text = assembler.feed(record)
                    if text is not None:
                        write(f"{c['name']:<{width}} | {text}")
                if not alive:  # the last words of a stream that ended without a newline
                    for text in assembler.flush():
                        write(f"{c['name']:<{width}} | {text}\n")
        if not alive:
            return
        time.sleep(poll)
