"""minipod-pause (native/pause.c), run for real: stops cleanly on SIGTERM
and SIGINT, reaps orphans as PID 1 of a pod's pid namespace, stays tiny.

Its signals follow the Kubernetes pause container: SIGINT and SIGTERM exit
0, SIGCHLD reaps, any other signal keeps its default action, which as PID 1
of a pid namespace means it is not delivered at all (only SIGKILL from the
parent namespace gets through)."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import time

import pytest

from minipod import _sys
from minipod.plan import CLONE_NEWPID, Clone, Exec, Plan, SetNs, open_namespace

BUSYBOX = "/bin/busybox"
RSS_LIMIT_KB = 512

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates pid namespaces"),
]

needs_busybox = pytest.mark.skipif(not os.path.exists(BUSYBOX),
                                   reason="needs busybox-static (/bin/busybox)")
stop_signals = pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def proc_pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise AssertionError("no Pss line in smaps_rollup")


def wait_until_waiting(pid: int, timeout: float = 5.0) -> None:
    """Signalling pause before it blocked its signals would kill it by the
    default action and prove nothing: wait until it sleeps in
    rt_sigtimedwait, which it enters only once the mask is in place. (While
    it waits, /proc shows an empty SigBlk: the kernel lifts the waited
    signals from the mask for the duration, so the mask cannot be read.)"""
    deadline = time.monotonic() + timeout
    wchan = ""
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
        if "sigtimedwait" in wchan:
            return
        time.sleep(0.005)
    raise AssertionError(f"minipod-pause did not reach rt_sigtimedwait (wchan {wchan!r})")


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


def still_running(pid: int) -> bool:
    return os.waitpid(pid, os.WNOHANG) == (0, 0)


def reap(pid: int, timeout: float = 5.0) -> int:
    """Wait for our child ``pid`` to end, within ``timeout`` seconds (a pause
    that misses its stop signal must fail the test, not hang it); return its
    exit code, -N if signal N killed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not exit within {timeout} s")


@pytest.fixture
def pause():
    """Start minipod-pause with subprocess; killed and reaped at the end."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([_sys.pause_binary()])
        started.append(proc)
        wait_until_waiting(proc.pid)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def pod_pause():
    """Start minipod-pause as PID 1 of a new pid namespace, as for a pod
    with shareProcessNamespace; yields ``{"pid": its pid in ours}``. Unless
    a test reaped it (reap_pod_pause), it is SIGKILLed and reaped at the end."""
    state = {"pid": _sys.spawn(Plan().add(Clone(CLONE_NEWPID),
                                          Exec(_sys.pause_binary(), ("minipod-pause",))))}
    try:
        wait_until_waiting(state["pid"])
        assert proc_status(state["pid"])["NSpid"].split()[-1] == "1"
        yield state
    finally:
        if state["pid"] is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], signal.SIGKILL)
            os.waitpid(state["pid"], 0)


def reap_pod_pause(state: dict) -> int:
    """reap() the pod_pause fixture's pause: then it has nothing to clean."""
    code = reap(state["pid"])
    state["pid"] = None
    return code


def run_in_pid_namespace(pause_pid: int, argv: tuple[str, ...]) -> int:
    """Run a busybox command in the pid namespace of which pause is PID 1;
    return its exit code."""
    pid_ns = open_namespace(pause_pid, "pid")
    try:
        worker = _sys.spawn(Plan(keep_fds=[pid_ns]).add(
            SetNs(pid_ns, CLONE_NEWPID, f"/proc/{pause_pid}/ns/pid"),
            Clone(0),
            Exec(BUSYBOX, argv),
        ))
    finally:
        os.close(pid_ns)
    try:
        return reap(worker)
    except BaseException:
        os.kill(worker, signal.SIGKILL)
        os.waitpid(worker, 0)
        raise


# ------------------------------------------------------------ a plain child

def test_version_flag():
    out = subprocess.run([_sys.pause_binary(), "-v"], capture_output=True, text=True, timeout=5)
    assert out.returncode == 0
    assert out.stdout.startswith("minipod-pause ")


@stop_signals
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


def test_other_signals_keep_their_default_action(pause):
    """As the Kubernetes pause: only SIGINT, SIGTERM and SIGCHLD are taken;
    outside a pid namespace SIGUSR1 kills it like any program."""
    proc = pause()
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=5) == -signal.SIGUSR1


# Forks a child, waits until it is a zombie (without reaping it), then
# becomes pause, which inherits the zombie.
EXEC_PAUSE_OVER_A_ZOMBIE = """
import os, sys, time
child = os.fork()
if child == 0:
    os._exit(0)
while open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.005)
os.execv(sys.argv[1], [sys.argv[1]])
"""


def test_reaps_children_that_exited_before_it_started():
    """A child that exited before pause blocked SIGCHLD raised no signal
    pause could take: it reaps such zombies on start all the same."""
    proc = subprocess.Popen([sys.executable, "-c", EXEC_PAUSE_OVER_A_ZOMBIE, _sys.pause_binary()])
    try:
        wait_until_waiting(proc.pid)
        assert children_of(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"),
                    reason="pause is built over libc on this CPU (setup.py): ~700 kB")
def test_rss_is_under_512_kib(pause, record_property):
    proc = pause()
    rss_kb = int(proc_status(proc.pid)["VmRSS"].split()[0])
    pss_kb = proc_pss_kb(proc.pid)
    record_property("pause_vmrss_kb", rss_kb)
    record_property("pause_pss_kb", pss_kb)
    print(f"minipod-pause VmRSS {rss_kb} kB, Pss {pss_kb} kB")
    assert rss_kb < RSS_LIMIT_KB, f"VmRSS {rss_kb} kB (Pss {pss_kb} kB)"


# ---------------------------------------- PID 1 of a pod's pid namespace

@stop_signals
def test_exits_zero_on_stop_signal_from_the_host_as_pid_1(pod_pause, sig):
    os.kill(pod_pause["pid"], sig)
    assert reap_pod_pause(pod_pause) == 0


@needs_busybox
@stop_signals
def test_exits_zero_on_stop_signal_from_inside_the_pod_as_pid_1(pod_pause, sig):
    """`kill 1` from a container of the pod: the case a signal handler or a
    blocked signal is needed for, since init drops default-action signals."""
    killer = run_in_pid_namespace(pod_pause["pid"], ("kill", f"-{sig.value}", "1"))
    # When its init exits the kernel SIGKILLs the rest of the namespace:
    # `kill` may be caught by that before it exits on its own.
    assert killer in (0, -signal.SIGKILL)
    assert reap_pod_pause(pod_pause) == 0


@needs_busybox
def test_other_signals_are_not_delivered_as_pid_1(pod_pause):
    pid = pod_pause["pid"]
    assert run_in_pid_namespace(pid, ("sh", "-c", "kill -HUP 1 && kill -USR1 1")) == 0
    os.kill(pid, signal.SIGHUP)
    os.kill(pid, signal.SIGUSR1)
    time.sleep(0.05)
    assert still_running(pid), "pause died of a signal it has no handler for"
    # From the parent namespace, SIGKILL always gets through.
    os.kill(pid, signal.SIGKILL)
    assert reap_pod_pause(pod_pause) == -signal.SIGKILL


@needs_busybox
def test_reaps_orphans_as_pid_1_of_the_pod(pod_pause):
    pause_pid = pod_pause["pid"]
    # The worker joins the pod's pid namespace, starts a grandchild in the
    # background and exits: the grandchild is orphaned and reparented to
    # the namespace's init, pause.
    assert run_in_pid_namespace(pause_pid, ("sh", "-c", "sleep 0.5 & exit 0")) == 0
    orphans = wait_until(lambda: children_of(pause_pid), what="the orphan to be reparented to pause")
    assert len(orphans) == 1
    # once the grandchild exits, pause reaps it: no zombie remains
    wait_until(lambda: not children_of(pause_pid), what="pause to reap the orphan")
    assert still_running(pause_pid)
    os.kill(pause_pid, signal.SIGTERM)
    assert reap_pod_pause(pod_pause) == 0


@needs_busybox
def test_reaps_several_orphans_that_exit_at_once_as_pid_1(pod_pause):
    """Exits that land together may raise only one SIGCHLD: all are reaped."""
    pause_pid = pod_pause["pid"]
    script = "for i in 1 2 3 4 5 6 7 8; do sleep 0.5 & done; exit 0"
    assert run_in_pid_namespace(pause_pid, ("sh", "-c", script)) == 0
    assert len(wait_until(lambda: len(children_of(pause_pid)) == 8 and children_of(pause_pid),
                          what="eight orphans reparented to pause")) == 8
    wait_until(lambda: not children_of(pause_pid), what="pause to reap every orphan")
    assert still_running(pause_pid)
