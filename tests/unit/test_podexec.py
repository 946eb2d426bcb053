"""The copying loops of ``minipod exec``, run against local processes (no
root, no container): input and output through pipes without deadlock, and a
terminal that passes on the end of piped input."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from minipod.podexec import _relay, communicate


def _cat(stdin, stdout, stderr=None, **kw) -> subprocess.Popen:
    return subprocess.Popen(["cat"], stdin=stdin, stdout=stdout, stderr=stderr, **kw)


def _pipes():
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    return in_r, in_w, out_r, out_w


def _finish_in(seconds: float, proc: subprocess.Popen):
    """Kill ``proc`` (our child) if the test is still stuck after ``seconds``,
    so a deadlock fails the test instead of hanging it."""
    timer = threading.Timer(seconds, proc.kill)
    timer.start()
    return timer


def test_communicate_large_input_to_an_echoing_command():
    in_r, in_w, out_r, out_w = _pipes()
    proc = _cat(in_r, out_w)
    os.close(in_r)
    os.close(out_w)
    timer = _finish_in(10, proc)
    try:
        data = bytes(range(256)) * 8000  # 2 MB: far more than both pipe buffers
        outputs, timed_out = communicate(in_w, data, [out_r])
    finally:
        timer.cancel()
        os.close(out_r)
    assert proc.wait() == 0
    assert not timed_out
    assert outputs[out_r] == data


def test_communicate_without_input_gives_eof_at_once():
    in_r, in_w, out_r, out_w = _pipes()
    proc = _cat(in_r, out_w)
    os.close(in_r)
    os.close(out_w)
    outputs, timed_out = communicate(in_w, b"", [out_r], timeout=5)
    os.close(out_r)
    assert proc.wait() == 0
    assert (outputs[out_r], timed_out) == (b"", False)
    with pytest.raises(OSError):
        os.fstat(in_w)  # closed by communicate


def test_communicate_command_that_stops_reading():
    """The rest of the input is dropped (EPIPE), not an error."""
    in_r, in_w, out_r, out_w = _pipes()
    proc = subprocess.Popen(["head", "-c", "10"], stdin=in_r, stdout=out_w)
    os.close(in_r)
    os.close(out_w)
    outputs, timed_out = communicate(in_w, b"y" * 1_000_000, [out_r], timeout=10)
    os.close(out_r)
    proc.wait()
    assert (outputs[out_r], timed_out) == (b"y" * 10, False)


def test_communicate_timeout():
    in_r, in_w, out_r, out_w = _pipes()
    proc = subprocess.Popen(["sh", "-c", "echo started; exec sleep 30"], stdin=in_r, stdout=out_w)
    os.close(in_r)
    os.close(out_w)
    try:
        outputs, timed_out = communicate(in_w, b"", [out_r], timeout=0.5)
    finally:
        proc.kill()  # our own child
        proc.wait()
        os.close(out_r)
    assert timed_out
    assert outputs[out_r] == b"started\n"


@pytest.mark.parametrize("typed", [b"hi\n", b"no newline at the end", b""])
def test_relay_passes_the_end_of_piped_input_to_the_terminal(typed):
    """``echo hi | minipod exec -it P -- cat``: cat on a terminal must see
    EOF once the pipe ends (the terminal's VEOF key), also after a partial
    line."""
    master, peer = os.openpty()
    os.set_inheritable(master, False)
    proc = _cat(peer, peer, peer, start_new_session=True)
    os.close(peer)
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    os.write(stdin_w, typed)
    os.close(stdin_w)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    timer = _finish_in(10, proc)
    try:
        _relay(master, stdin_r, out_w)
    finally:
        timer.cancel()
        os.close(master)
        os.close(stdin_r)
        os.close(out_w)
    assert proc.wait() == 0, "cat was killed: it never saw the end of its input"
    with os.fdopen(out_r, "rb") as f:
        shown = f.read()
    if typed:
        # the terminal echoes the keys, then cat writes them back
        assert shown.replace(b"\r\n", b"\n").count(typed.rstrip(b"\n")) == 2, shown
