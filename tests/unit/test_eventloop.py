"""The supervisor's event loop: timers, fds, children and signals, for real.

No root needed: pipes, forked children that exit at once, and signals sent
to ourselves. Every test that installs signal handlers puts the previous
ones (and the previous wakeup fd) back, so the rest of the session is not
left writing to a closed pipe.
"""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from minipod.eventloop import Loop, now


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.close()


@pytest.fixture
def signal_loop():
    """A loop that catches SIGUSR1 and SIGUSR2 (and so SIGCHLD), with the
    process's previous signal state restored afterwards."""
    caught = (signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2)
    previous = {signum: signal.getsignal(signum) for signum in caught}
    previous_wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(previous_wakeup)
    loop = Loop()
    loop.catch_signals(signal.SIGUSR1, signal.SIGUSR2)
    try:
        yield loop
    finally:
        # The wakeup fd first: the loop is about to close it.
        signal.set_wakeup_fd(previous_wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        loop.close()


def run_until(loop: Loop, condition, timeout: float = 5.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the loop did not get there in time"
        loop.run_once(step)


def fork_exit(code: int) -> int:
    pid = os.fork()
    if pid == 0:  # the child: nothing but exit (no pytest machinery in here)
        os._exit(code)
    return pid


# ----------------------------------------------------------------- timers

def test_timers_run_in_time_order_and_ties_in_scheduling_order(loop):
    calls = []
    base = now() + 0.02
    loop.call_at(base + 0.02, lambda: calls.append("late"))
    loop.call_at(base, lambda: calls.append("tie-1"))
    loop.call_at(base, lambda: calls.append("tie-2"))
    loop.call_at(base - 0.01, lambda: calls.append("early"))
    loop.call_at(base, lambda: calls.append("tie-3"))
    run_until(loop, lambda: len(calls) == 5)
    assert calls == ["early", "tie-1", "tie-2", "tie-3", "late"]


def test_a_timer_does_not_run_before_its_time(loop):
    calls = []
    loop.call_later(0.3, lambda: calls.append(now()))
    scheduled = now()
    loop.run_once(0.05)
    assert calls == []
    run_until(loop, lambda: calls)
    assert calls[0] - scheduled >= 0.3 - 0.001  # monotonic clock; a hair of float slack


def test_run_once_waits_only_until_the_next_timer(loop):
    calls = []
    loop.call_later(0.05, lambda: calls.append(1))
    began = now()
    loop.run_once(10.0)  # max_wait is an upper bound, the timer comes first
    assert now() - began < 5.0
    run_until(loop, lambda: calls)


def test_a_cancelled_timer_never_runs(loop):
    calls = []
    doomed = loop.call_later(0.01, lambda: calls.append("doomed"))
    loop.call_later(0.02, lambda: calls.append("kept"))
    doomed.cancel()
    run_until(loop, lambda: calls)
    loop.run_once(0.05)
    assert calls == ["kept"]


def test_a_timer_may_cancel_another_due_in_the_same_round(loop):
    calls = []
    when = now() + 0.01
    second = None

    def first():
        calls.append("first")
        second.cancel()

    loop.call_at(when, first)
    second = loop.call_at(when, lambda: calls.append("second"))
    time.sleep(0.02)  # both are due when the round looks at them
    loop.run_once(0)
    loop.run_once(0.05)
    assert calls == ["first"]


def test_cancelling_a_timer_that_already_ran_is_harmless(loop):
    calls = []
    timer = loop.call_later(0, lambda: calls.append(1))
    loop.run_once(0.1)
    assert calls == [1] and timer.cancelled
    timer.cancel()
    loop.run_once(0)
    assert calls == [1]


def test_call_later_with_a_negative_delay_runs_at_the_next_round(loop):
    calls = []
    loop.call_later(-5, lambda: calls.append(1))
    loop.run_once(0)
    assert calls == [1]


def test_a_timer_scheduled_by_a_timer_for_now_waits_for_the_next_round(loop):
    # Otherwise a callback that keeps rescheduling itself at delay 0 would
    # starve the fds forever.
    calls = []

    def again():
        calls.append(len(calls))
        loop.call_later(0, again)

    loop.call_later(0, again)
    loop.run_once(0)
    assert calls == [0]
    loop.run_once(0)
    assert calls == [0, 1]


def test_a_raising_timer_is_logged_and_the_loop_goes_on(loop, caplog):
    calls = []

    def broken():
        raise ValueError("boom")

    when = now()
    loop.call_at(when, broken)
    loop.call_at(when, lambda: calls.append("after"))
    with caplog.at_level(logging.ERROR, logger="minipod.loop"):
        loop.run_once(0)
    assert calls == ["after"]
    assert any(r.name == "minipod.loop" and r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


# ----------------------------------------------------------------- fds

def test_a_readable_fd_calls_its_callback(loop):
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        got = []
        loop.add_reader(r, lambda: got.append(os.read(r, 100)))
        loop.run_once(0)
        assert got == []
        os.write(w, b"hello")
        loop.run_once(1.0)
        assert got == [b"hello"]
    finally:
        loop.forget(r)
        os.close(r)
        os.close(w)


def test_a_writable_fd_and_watch_changes_what_it_waits_for(loop):
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        seen = []
        loop.add_writer(w, lambda: seen.append("writable"))
        loop.run_once(0)
        assert seen == ["writable"]
        # Now the same fd waits to be readable, which a write end never is.
        loop.watch(w, 1, lambda: seen.append("readable?"))
        loop.run_once(0)
        assert seen == ["writable"]
        # watch() also registers an fd it has not seen.
        os.write(w, b"x")
        loop.watch(r, 1, lambda: seen.append("read end"))
        loop.run_once(0)
        assert seen == ["writable", "read end"]
    finally:
        loop.forget(r)
        loop.forget(w)
        os.close(r)
        os.close(w)


def test_forget_is_quiet_for_an_unknown_fd(loop):
    loop.forget(12345)  # no KeyError
    loop.forget(-1)     # no ValueError


def test_a_callback_that_closes_another_ready_fd_spares_its_callback(loop):
    """Both pipes are readable in the same round; whichever callback runs
    first closes the other pipe, whose callback must then not run."""
    pipes = [os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) for _ in range(2)]
    open_fds = {fd for pair in pipes for fd in pair}
    calls = []

    def make(i: int):
        def callback():
            calls.append(i)
            other = pipes[1 - i][0]
            loop.forget(other)
            os.close(other)
            open_fds.discard(other)
        return callback

    try:
        for i, (r, w) in enumerate(pipes):
            os.write(w, b"x")
            loop.add_reader(r, make(i))
        loop.run_once(1.0)
        assert len(calls) == 1
    finally:
        for fd in open_fds:
            loop.forget(fd)
            os.close(fd)


def test_a_callback_that_reuses_a_closed_ready_fd_number_does_not_call_the_new_owner_early(loop):
    """The closed fd's number is taken at once by a new pipe: in this round
    the old event must go to nobody (the new owner has not been readable
    yet as far as the round knows); the next round serves the new owner."""
    pipes = [os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) for _ in range(2)]
    open_fds = {fd for pair in pipes for fd in pair}
    calls = []

    def make(i: int):
        def callback():
            calls.append(i)
            if len(calls) > 1:
                return
            other = pipes[1 - i][0]
            loop.forget(other)
            new_r, new_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            os.dup2(new_r, other, inheritable=False)  # the same number, a new file
            os.close(new_r)
            open_fds.add(new_w)
            os.write(new_w, b"y")
            loop.add_reader(other, lambda: (calls.append("new"), os.read(other, 10)))
        return callback

    try:
        for i, (r, w) in enumerate(pipes):
            os.write(w, b"x")
            loop.add_reader(r, make(i))
        loop.run_once(1.0)
        assert len(calls) == 1 and calls[0] in (0, 1)
        loop.run_once(1.0)
        assert "new" in calls
    finally:
        for fd in open_fds:
            loop.forget(fd)
            os.close(fd)


def test_a_raising_fd_callback_is_logged_and_timers_still_run(loop, caplog):
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        calls = []

        def broken():
            os.read(r, 10)
            raise KeyError("fd callback")

        loop.add_reader(r, broken)
        loop.call_later(0, lambda: calls.append("timer"))
        os.write(w, b"x")
        with caplog.at_level(logging.ERROR, logger="minipod.loop"):
            loop.run_once(1.0)
        assert calls == ["timer"]
        assert any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in caplog.records)
    finally:
        loop.forget(r)
        os.close(r)
        os.close(w)


# ----------------------------------------------------------------- children

def test_watched_children_are_reaped_and_their_status_handed_over(loop):
    statuses = {}
    pids = {fork_exit(code): code for code in (0, 3, 7)}
    for pid in pids:
        loop.watch_child(pid, lambda status, pid=pid: statuses.__setitem__(pid, status))
    run_until(loop, lambda: len(statuses) == len(pids))
    assert {pid: os.waitstatus_to_exitcode(s) for pid, s in statuses.items()} == pids
    for pid in pids:  # reaped by the loop: nothing is left to wait for
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_an_unwatched_child_is_reaped_too(loop):
    pid = fork_exit(0)
    run_until(loop, lambda: not os.path.exists(f"/proc/{pid}"))
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_a_child_killed_by_a_signal_reports_it(loop):
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(30)
        finally:
            os._exit(0)
    statuses = []
    loop.watch_child(pid, statuses.append)
    os.kill(pid, signal.SIGKILL)
    run_until(loop, lambda: statuses)
    assert os.WIFSIGNALED(statuses[0]) and os.WTERMSIG(statuses[0]) == signal.SIGKILL


def test_reap_without_children_returns(loop):
    loop.reap()  # ECHILD is the normal state of a supervisor with no containers


# ----------------------------------------------------------------- signals

def test_signals_are_queued_in_order_and_taken_once(signal_loop):
    os.kill(os.getpid(), signal.SIGUSR1)
    os.kill(os.getpid(), signal.SIGUSR2)
    signal_loop.run_once(1.0)
    assert signal_loop.take_signals() == [signal.SIGUSR1, signal.SIGUSR2]
    assert signal_loop.take_signals() == []


def test_a_signal_wakes_a_long_select(signal_loop):
    began = now()
    os.kill(os.getpid(), signal.SIGUSR1)
    signal_loop.run_once(10.0)
    assert now() - began < 5.0
    assert signal_loop.take_signals() == [signal.SIGUSR1]


def test_sigchld_wakes_the_loop_and_is_not_queued(signal_loop):
    statuses = []
    pid = fork_exit(5)
    signal_loop.watch_child(pid, statuses.append)
    deadline = now() + 5.0
    while not statuses and now() < deadline:
        signal_loop.run_once(10.0)  # only SIGCHLD can end this early
    assert statuses and os.waitstatus_to_exitcode(statuses[0]) == 5
    assert signal_loop.take_signals() == []


def test_the_wakeup_pipe_is_drained_between_rounds(signal_loop):
    os.kill(os.getpid(), signal.SIGUSR1)
    signal_loop.run_once(1.0)
    signal_loop.take_signals()
    # Nothing new happened: a second round must wait its full time, not
    # spin on a wakeup byte left over from the first.
    began = now()
    signal_loop.run_once(0.2)
    assert now() - began >= 0.15
