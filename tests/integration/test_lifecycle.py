"""Pod life: init containers, restart policies, exit codes, stop, rm -f, crashes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from minipod.errors import StateError

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
"""


def test_init_containers_run_in_order_before_app(mpi):
    rt = mpi.runtime()
    pod = rt.run("""
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  initContainers:
  - name: first
    image: localhost/busybox:demo
    command: ["sh", "-c", "echo first >> /work/order; sleep 0.3"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: localhost/busybox:demo
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sh", "-c", "echo app >> /work/order; exec sleep 3600"]
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
""")
    pod.wait(lambda p: p.ready, timeout=10)
    pod.wait(lambda p: p.exec("app", ["cat", "/work/order"]).text == "first\nsecond\napp\n", timeout=5)
    inits = pod.status["initContainerStatuses"]
    assert [c["state"]["terminated"]["reason"] for c in inits] == ["Completed", "Completed"]
    assert pod.status["conditions"][1] == {**pod.status["conditions"][1], "type": "Initialized", "status": "True"}
    pod.remove(timeout=0)


def test_failing_init_container_with_never_fails_the_pod(mpi):
    rt = mpi.runtime()
    pod = rt.run("""
apiVersion: v1
kind: Pod
metadata: {name: badinit}
spec:
  restartPolicy: Never
  initContainers:
  - {name: setup, image: localhost/busybox:demo, command: ["sh", "-c", "exit 3"]}
  containers:
  - {name: app, image: localhost/busybox:demo, command: ["sleep", "3600"]}
""")
    pod.wait_phase("Failed", timeout=10)
    status = pod.status
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert "running" not in status["containerStatuses"][0]["state"]  # never started
    pod.remove(timeout=0)


def test_restart_policies_and_exit_codes(mpi):
    rt = mpi.runtime()
    pod = rt.run("""
apiVersion: v1
kind: Pod
metadata: {name: flaky}
spec:
  restartPolicy: OnFailure
  containers:
  - name: once
    image: localhost/busybox:demo
    # fails on its first run, succeeds on the second (the emptyDir remembers)
    command: ["sh", "-c", "if [ -e /state/ran ]; then echo second; exit 0; fi; touch /state/ran; echo first; exit 4"]
    volumeMounts: [{name: state, mountPath: /state}]
  volumes: [{name: state, emptyDir: {}}]
""")
    pod.wait_phase("Succeeded", timeout=15)
    c = pod.container_status("once")
    assert c["restartCount"] == 1
    assert c["lastState"]["terminated"]["exitCode"] == 4
    assert c["state"]["terminated"]["reason"] == "Completed"
    assert list(pod.logs("once")) == ["second\n"]
    assert list(pod.logs("once", previous=True)) == ["first\n"]
    pod.remove(timeout=0)


def test_foreground_run_exit_code_and_prefixed_output(mpi, tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text("""
apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  restartPolicy: Never
  containers:
  - {name: a, image: localhost/busybox:demo, command: ["sh", "-c", "echo from-a"]}
  - {name: bb, image: localhost/busybox:demo, command: ["sh", "-c", "sleep 0.2; echo from-bb; exit 5"]}
""")
    res = mpi.cli("run", str(manifest))
    assert res.returncode == 5, res.stderr
    lines = sorted(res.stdout.splitlines())
    assert lines == ["a  | from-a", "bb | from-bb"]
    assert mpi.cli("rm", "job", check=True).returncode == 0


def test_executable_not_found_is_a_clear_container_error(mpi):
    rt = mpi.runtime()
    reports = rt.start("""
apiVersion: v1
kind: Pod
metadata: {name: typo}
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: localhost/busybox:demo, command: ["nosuchprogram", "--flag"]}
""")
    assert reports[0].failures == {"app": 'exec: "nosuchprogram": executable file not found in $PATH'}
    pod = reports[0].pod
    pod.wait_phase("Failed", timeout=5)
    term = pod.container_status("app")["state"]["terminated"]
    assert term["reason"] == "StartError" and "executable file not found" in term["message"]
    pod.remove(timeout=0)


def test_stop_is_graceful_then_rm(mpi):
    rt = mpi.runtime()
    pod = rt.run(SLEEPER.replace('["sleep", "3600"]',
                                 '["sh", "-c", "trap \'echo got TERM; exit 0\' TERM; while true; do sleep 0.1; done"]'))
    pod.wait(lambda p: p.ready, timeout=10)
    time.sleep(0.2)  # let the shell install its trap
    pod.stop()
    assert pod.phase == "Succeeded"
    assert list(pod.logs("main")) == ["got TERM\n"]
    assert pod.container_status("main")["state"]["terminated"]["exitCode"] == 0
    pod.remove(force=False)
    with pytest.raises(StateError):
        rt.pod("sleeper")


def test_stop_kills_after_grace_period(mpi):
    rt = mpi.runtime()
    pod = rt.run(SLEEPER.replace("terminationGracePeriodSeconds: 5", "terminationGracePeriodSeconds: 1")
                 .replace('["sleep", "3600"]', '["sh", "-c", "trap \'\' TERM; while true; do sleep 0.1; done"]'))
    pod.wait(lambda p: p.ready, timeout=10)
    time.sleep(0.2)
    started = time.monotonic()
    pod.stop()
    assert time.monotonic() - started >= 0.9
    term = pod.container_status("main")["state"]["terminated"]
    assert term["exitCode"] == 137 and term["signal"] == signal.SIGKILL
    pod.remove(timeout=0)


def test_rm_force_after_supervisor_sigkill_leaves_nothing(mpi):
    rt = mpi.runtime()
    pod = rt.run(SLEEPER)
    pod.wait(lambda p: p.ready, timeout=10)
    sup = pod.status["minipod"]["supervisorPid"]
    os.kill(sup, signal.SIGKILL)
    pod.wait(lambda p: p.phase == "Unknown", timeout=5)
    assert mpi.cli("ps").stdout.splitlines()[1].split()[2] == "Unknown"
    pod.remove(force=True, timeout=0)
    assert mpi.leaks() == []


def test_second_run_of_same_name_is_refused_unless_replace(mpi):
    rt = mpi.runtime()
    first = rt.run(SLEEPER)
    first.wait(lambda p: p.ready, timeout=10)
    uid = first.uid
    res = mpi.cli("run", "-d", "-", input=SLEEPER)
    assert res.returncode != 0 and 'pod "sleeper" already exists' in res.stderr
    assert first.uid == uid
    res = mpi.cli("run", "-d", "--replace", "-", input=SLEEPER)
    assert res.returncode == 0, res.stderr
    assert first.uid != uid
    first.remove(timeout=0)


def test_two_concurrent_runs_exactly_one_wins(mpi):
    results = []

    def start():
        results.append(mpi.cli("run", "-d", "-", input=SLEEPER))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    assert codes[0] == 0 and codes[1] != 0, [r.stderr for r in results]
    assert len(mpi.runtime().pods()) == 1
    mpi.runtime().pod("sleeper").remove(timeout=0)


def test_restart_always_keeps_pod_ip_namespaces(mpi):
    """A container restart keeps the sandbox: same pause, same net namespace."""
    rt = mpi.runtime()
    pod = rt.run("""
apiVersion: v1
kind: Pod
metadata: {name: crashy}
spec:
  containers:
  - {name: app, image: localhost/busybox:demo, command: ["sh", "-c", "echo run; sleep 0.3; exit 1"]}
""")
    pod.wait(lambda p: p.container_status("app")["restartCount"] >= 1, timeout=10)
    status = pod.status
    assert status["phase"] == "Running"
    ns = status["minipod"]["namespaces"]
    assert ns["pause"]["net"] == ns["app"]["net"]
    pod.remove(timeout=0)


def _same_program_pids() -> set[int]:
    """Processes running this very command line (forks of this test run)."""
    me = open("/proc/self/cmdline", "rb").read()
    found = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if open(f"/proc/{pid}/cmdline", "rb").read() == me:
                    found.add(int(pid))
            except OSError:
                pass
    return found


def test_an_early_supervisor_leaves_when_run_fails(mpi):
    """run forks the supervisor before reading the manifest; when run then
    fails (here: the name is taken), that process must go away by itself."""
    rt = mpi.runtime()
    first = rt.run(SLEEPER)
    before = _same_program_pids()
    with pytest.raises(StateError, match="already exists"):
        rt.run(SLEEPER)
    deadline = time.monotonic() + 5
    while _same_program_pids() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _same_program_pids() - before
    first.remove(timeout=0)


def _processes_with_arg(arg: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if arg.encode() in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0"):
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("case", ["bad manifest", "name taken", "usage error"])
def test_the_supervisor_forked_before_parsing_leaves_when_the_command_fails(mpi, tmp_path, case):
    """``minipod run`` forks its supervisor before click parses the command
    line; whatever makes the command fail, that process goes away too."""
    manifest = tmp_path / f"prefork-{case.replace(' ', '-')}.yaml"
    manifest.write_text(SLEEPER if case != "bad manifest" else SLEEPER.replace("containers:", "containerz:"))
    if case == "name taken":  # by a pod started from another file (its supervisor keeps that cmdline)
        first = tmp_path / "first.yaml"
        first.write_text(SLEEPER)
        mpi.cli("run", "-d", str(first), check=True)
    args = ["run", "-d", str(manifest)] if case != "usage error" else ["run", "--no-such-option", str(manifest)]
    res = mpi.cli(*args)
    assert res.returncode != 0
    deadline = time.monotonic() + 5
    while _processes_with_arg(str(manifest)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with_arg(str(manifest)) == []
    if case == "name taken":
        mpi.cli("rm", "-f", "-t", "0", "sleeper", check=True)
