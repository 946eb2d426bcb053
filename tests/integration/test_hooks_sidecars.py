"""Lifecycle hooks, native sidecars, graceful termination and events, for real."""

from __future__ import annotations

import os
import time

DEMO = "localhost/busybox:demo"

# PID 1 of a pid namespace ignores signals it has no handler for: a
# container that wants to stop on SIGTERM says so.
POLITE = """["sh", "-c", "trap 'echo TERM >> /shared/order; exit 0' TERM; sleep 3600 & wait"]"""


def _messages(pod, reason: str) -> list[str]:
    return [e["message"] for e in pod.events if e["reason"] == reason]


def _shared(tmp_path) -> str:
    shared = tmp_path / "shared"
    shared.mkdir()
    return str(shared)


def test_post_start_and_pre_stop_run_in_order(mpi, tmp_path):
    shared = _shared(tmp_path)
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: {DEMO}
    command: {POLITE}
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo postStart >> /shared/order"]}}}}
      preStop: {{exec: {{command: ["sh", "-c", "sleep 0.3; echo preStop >> /shared/order"]}}}}
  volumes:
  - {{name: shared, hostPath: {{path: {shared}}}}}
""")
    pod.wait(lambda p: p.ready, timeout=10)
    assert open(os.path.join(shared, "order")).read() == "postStart\n"
    started = time.monotonic()
    pod.stop()
    elapsed = time.monotonic() - started
    # preStop ran to its end before the signal; the stop did not wait out the grace period.
    assert open(os.path.join(shared, "order")).read() == "postStart\npreStop\nTERM\n"
    assert elapsed < 8, f"stop took {elapsed:.1f}s of a 10 s grace period"
    assert pod.phase == "Succeeded"
    reasons = [e["reason"] for e in pod.events]
    assert reasons.index("Started") < reasons.index("Killing")
    pod.remove()


def test_failed_post_start_kills_the_container(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: badhook}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {DEMO}
    command: ["sleep", "3600"]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo no way >&2; exit 3"]}}}}
""")
    pod.wait_phase("Failed", timeout=15)
    assert _messages(pod, "FailedPostStartHook") == ["PostStartHook failed: no way"]
    assert pod.container_status("app")["state"]["terminated"]["exitCode"] == 137
    pod.remove()


def test_pre_stop_sleep_and_stop_signal_from_lifecycle(mpi, tmp_path):
    shared = _shared(tmp_path)
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: usr1}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: {DEMO}
    command: ["sh", "-c", "trap 'echo USR1 >> /shared/order; exit 0' USR1; trap '' TERM; sleep 3600 & wait"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    lifecycle:
      stopSignal: SIGUSR1
      preStop: {{sleep: {{seconds: 1}}}}
  volumes:
  - {{name: shared, hostPath: {{path: {shared}}}}}
""")
    pod.wait(lambda p: p.ready, timeout=10)
    time.sleep(0.2)
    started = time.monotonic()
    pod.stop()
    assert time.monotonic() - started >= 0.9  # the preStop sleep came first
    assert open(os.path.join(shared, "order")).read() == "USR1\n"
    assert pod.container_status("app")["state"]["terminated"]["exitCode"] == 0
    pod.remove()


def test_stop_timeout_overrides_the_grace_period(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - name: app
    image: {DEMO}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
""")
    pod.wait(lambda p: p.ready, timeout=10)
    started = time.monotonic()
    res = mpi.cli("stop", "-t", "1", "stubborn", check=True)
    elapsed = time.monotonic() - started
    assert res.stdout.strip() == "stubborn"
    assert 0.9 <= elapsed < 20
    assert pod.container_status("app")["state"]["terminated"]["exitCode"] == 137
    mpi.cli("rm", "stubborn", check=True)


def test_native_sidecar_runs_beside_a_job_and_the_pod_completes(mpi, tmp_path):
    shared = _shared(tmp_path)
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: job}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: server
    image: {DEMO}
    restartPolicy: Always
    command: ["sh", "-c", "mkdir -p /www && echo served > /www/data && exec httpd -f -p 8080 -h /www"]
    startupProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
  - name: after-sidecar
    image: {DEMO}
    command: ["sh", "-c", "wget -q -O /shared/fetched http://127.0.0.1:8080/data"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  containers:
  - name: main
    image: {DEMO}
    command: ["sh", "-c", "wget -q -O- http://127.0.0.1:8080/data; sleep 1"]
  volumes:
  - {{name: shared, hostPath: {{path: {shared}}}}}
""")
    # The regular init container after the sidecar found it serving.
    pod.wait(lambda p: p.phase == "Running", timeout=15)
    assert open(os.path.join(shared, "fetched")).read() == "served\n"
    sidecar = pod.container_status("server")
    assert "running" in sidecar["state"] and sidecar["started"] is True
    assert mpi.cli("ps").stdout.splitlines()[1].split()[1] in ("1/2", "2/2")
    pod.wait_phase("Succeeded", timeout=20)
    assert list(pod.logs("main")) == ["served\n"]
    # The sidecar was stopped after the job: httpd dies of SIGTERM.
    pod.wait(lambda p: "terminated" in p.container_status("server")["state"], timeout=10)
    assert pod.phase == "Succeeded"
    killing = _messages(pod, "Killing")
    assert killing == ["Stopping container server"]
    pod.remove()


def test_sidecar_restarts_even_under_restart_policy_never(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: flaky}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: flaky
    image: {DEMO}
    restartPolicy: Always
    command: ["sh", "-c", "sleep 0.5; exit 1"]
  containers:
  - name: main
    image: {DEMO}
    command: ["sleep", "3600"]
""")
    pod.wait(lambda p: p.container_status("flaky")["restartCount"] >= 1, timeout=15)
    assert pod.container_status("main")["restartCount"] == 0
    pod.remove(timeout=0)


def test_describe_shows_events_in_order(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: crashy}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {DEMO}
    command: ["sh", "-c", "exit 1"]
""")
    pod.wait(lambda p: p.container_status("app")["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff",
             timeout=15)
    out = mpi.cli("describe", "crashy", check=True).stdout
    assert "Name:" in out and "crashy" in out
    events = out[out.index("Events:"):]
    order = [events.index(word) for word in ("Pulled", "Created", "Started", "BackOff")]
    assert order == sorted(order), events
    assert "Back-off restarting failed container app" in events
    assert "CrashLoopBackOff" in out
    pod.remove(timeout=0)


def test_termination_message_file_and_fallback_to_logs(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: lastwords}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000}}
  containers:
  - name: file
    image: {DEMO}
    command: ["sh", "-c", "echo -n 'disk full' > /dev/termination-log; exit 2"]
  - name: custom
    image: {DEMO}
    terminationMessagePath: /tmp/why
    command: ["sh", "-c", "echo -n done > /tmp/why"]
  - name: fallback
    image: {DEMO}
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first; echo 'panic: oops' >&2; exit 1"]
""")
    pod.wait_phase("Failed", timeout=15)
    assert pod.container_status("file")["state"]["terminated"]["message"] == "disk full"
    assert pod.container_status("custom")["state"]["terminated"]["message"] == "done"
    assert pod.container_status("fallback")["state"]["terminated"]["message"] == "first\npanic: oops\n"
    pod.remove()


def test_active_deadline_fails_the_pod(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: deadline}}
spec:
  activeDeadlineSeconds: 1
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {DEMO}
    command: ["sleep", "3600"]
""")
    pod.wait_phase("Failed", timeout=15)
    assert pod.status["reason"] == "DeadlineExceeded"
    pod.wait(lambda p: "terminated" in p.container_status("app")["state"], timeout=10)
    assert "DeadlineExceeded" in mpi.cli("ps", "-a").stdout
    assert pod.container_status("app")["state"]["terminated"]["exitCode"] == 137
    pod.remove()
