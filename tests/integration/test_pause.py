"""minipod-pause (native/pause.c), run for real: stops cleanly on SIGTERM
and SIGINT, reaps orphans as PID 1 of a pod's pid namespace, stays tiny."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from minipod import _sys
from minipod.plan import CLONE_NEWPID, Clone, Exec, Plan, SetNs, open_namespace

BUSYBOX = "/bin/busybox"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates pid namespaces"),
]

SIGNAL_BITS = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGCHLD - 1))


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def wait_for_handlers(pid: int, timeout: float = 5.0) -> None:
    """Signalling before pause installed its handlers would kill it by the
    default action and prove nothing: wait until they are in place."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(proc_status(pid)["SigCgt"], 16) & SIGNAL_BITS == SIGNAL_BITS:
            return
        time.sleep(0.005)
    raise AssertionError("minipod-pause did not install its signal handlers")


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is ``pid``, zombies too."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def wait_until(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pause():
    """Start minipod-pause with subprocess; killed and reaped at the end."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([_sys.pause_binary()])
        started.append(proc)
        wait_for_handlers(proc.pid)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_version_flag():
    out = subprocess.run([_sys.pause_binary(), "-v"], capture_output=True, text=True, timeout=5)
    assert out.returncode == 0
    assert out.stdout.startswith("minipod-pause ")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_exits_zero_on_stop_signal(pause, sig):
    proc = pause()
    time.sleep(0.05)
    assert proc.poll() is None, "pause keeps running until told to stop"
    proc.send_signal(sig)
    assert proc.wait(timeout=5) == 0


def test_other_signals_do_not_wake_it_into_exiting(pause):
    proc = pause()
    os.kill(proc.pid, signal.SIGCHLD)
    os.kill(proc.pid, signal.SIGWINCH)
    time.sleep(0.05)
    assert proc.poll() is None


def test_rss_is_well_under_one_mib(pause):
    proc = pause()
    rss_kb = int(proc_status(proc.pid)["VmRSS"].split()[0])
    assert rss_kb < 1024, f"VmRSS {rss_kb} kB"


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs busybox-static (/bin/busybox)")
def test_reaps_orphans_as_pid_1_of_the_pod():
    pause_pid = _sys.spawn(Plan().add(Clone(CLONE_NEWPID), Exec(_sys.pause_binary(), ("minipod-pause",))))
    worker = None
    try:
        wait_for_handlers(pause_pid)
        assert proc_status(pause_pid)["NSpid"].split()[-1] == "1"
        pid_ns = open_namespace(pause_pid, "pid")
        try:
            # The worker joins the pod's pid namespace, starts a grandchild
            # in the background and exits: the grandchild is orphaned and
            # reparented to the namespace's init, pause.
            worker = _sys.spawn(Plan(keep_fds=[pid_ns]).add(
                SetNs(pid_ns, CLONE_NEWPID, f"/proc/{pause_pid}/ns/pid"),
                Clone(0),
                Exec(BUSYBOX, ("sh", "-c", "sleep 0.5 & exit 0")),
            ))
        finally:
            os.close(pid_ns)
        assert os.waitstatus_to_exitcode(os.waitpid(worker, 0)[1]) == 0
        worker = None
        orphans = wait_until(lambda: children_of(pause_pid), what="the orphan to be reparented to pause")
        assert len(orphans) == 1
        # once the grandchild exits, pause reaps it: no zombie remains
        wait_until(lambda: not children_of(pause_pid), what="pause to reap the orphan")
        assert os.waitpid(pause_pid, os.WNOHANG) == (0, 0), "pause is still running"
        os.kill(pause_pid, signal.SIGTERM)
        assert os.waitstatus_to_exitcode(os.waitpid(pause_pid, 0)[1]) == 0
        pause_pid = None
    finally:
        for pid in (worker, pause_pid):
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in (worker, pause_pid):
            if pid is not None:
                os.waitpid(pid, 0)
