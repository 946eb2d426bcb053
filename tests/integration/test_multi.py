"""Several pods at once: one manifest with two Pods and a ConfigMap,
`down`, pods that do not touch each other, namespaces, and a `run` that
fails half-way."""

from __future__ import annotations

import json
import os
import signal

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}{namespace}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sh", "-c", "trap 'exit 0' TERM; echo {name}-up; while true; do sleep 0.1; done"]
"""


def _pod(name: str, namespace: str | None = None) -> str:
    return POD.format(name=name, namespace=f", namespace: {namespace}" if namespace else "")


TWO_PODS_AND_A_CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: shared-settings}
data: {greeting: hello-from-the-configmap}
---
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sh", "-c", "trap 'exit 0' TERM; cat /cfg/greeting; echo; while true; do sleep 0.1; done"]
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes: [{name: cfg, configMap: {name: shared-settings}}]
---
apiVersion: v1
kind: Pod
metadata: {name: envuser}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sh", "-c", "trap 'exit 0' TERM; echo $GREETING; while true; do sleep 0.1; done"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: shared-settings, key: greeting}}
"""


def _names(mpi, *flags: str) -> list[str]:
    return [line.split()[0] for line in mpi.cli("ps", *flags, check=True).stdout.splitlines()[1:]]


def _wait_up(pod, timeout: float = 10):
    pod.wait_ready(timeout)
    pod.wait(lambda p: bool(list(p.logs("app"))), timeout=5)
    return pod


def test_two_pods_and_a_configmap_in_one_file_then_down(mpi, tmp_path):
    manifest = tmp_path / "two.yaml"
    manifest.write_text(TWO_PODS_AND_A_CONFIGMAP)
    res = mpi.cli("run", "-d", str(manifest))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["reader", "envuser"]
    rt = mpi.runtime()
    for name in ("reader", "envuser"):
        _wait_up(rt.pod(name))
        assert mpi.cli("logs", name, check=True).stdout == "hello-from-the-configmap\n"
    assert sorted(_names(mpi)) == ["envuser", "reader"]
    res = mpi.cli("down", "-t", "0", str(manifest))
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.split()) == ["envuser", "reader"]
    assert _names(mpi, "-a") == []
    assert mpi.leaks() == []
    # nothing left to take down: not an error, nothing printed
    res = mpi.cli("down", "-t", "0", str(manifest))
    assert res.returncode == 0 and res.stdout == "", (res.stdout, res.stderr)


def test_down_removes_only_the_pods_of_its_file(mpi, tmp_path):
    rt = mpi.runtime()
    keep = _wait_up(rt.run(_pod("keeper")))
    manifest = tmp_path / "one.yaml"
    manifest.write_text(_pod("goner"))
    mpi.cli("run", "-d", str(manifest), check=True)
    _wait_up(rt.pod("goner"))
    assert mpi.cli("down", "-t", "0", str(manifest), check=True).stdout.split() == ["goner"]
    assert _names(mpi, "-a") == ["keeper"]
    assert keep.exec("app", ["true"]).returncode == 0


def test_pods_have_separate_sandboxes(mpi):
    rt = mpi.runtime()
    one, two = _wait_up(rt.run(_pod("one"))), _wait_up(rt.run(_pod("two")))
    ns1, ns2 = one.status["minipod"]["namespaces"], two.status["minipod"]["namespaces"]
    for kind in ("net", "ipc", "uts", "mnt", "pid"):
        assert ns1["app"][kind] != ns2["app"][kind], kind
    assert one.exec("app", ["hostname"]).text == "one\n"
    assert two.exec("app", ["hostname"]).text == "two\n"
    # a file in one pod's root filesystem is not in the other's
    assert one.exec("app", ["sh", "-c", "echo mine > /tmp/private"]).returncode == 0
    assert two.exec("app", ["cat", "/tmp/private"]).returncode != 0


def test_a_dead_supervisor_or_a_removed_pod_does_not_touch_another(mpi):
    rt = mpi.runtime()
    victim, bystander = _wait_up(rt.run(_pod("victim"))), _wait_up(rt.run(_pod("bystander")))
    os.kill(victim.status["minipod"]["supervisorPid"], signal.SIGKILL)
    victim.wait(lambda p: p.phase == "Unknown", timeout=5)
    assert bystander.phase == "Running" and bystander.ready
    assert bystander.exec("app", ["echo", "still-here"]).text == "still-here\n"
    assert mpi.cli("rm", "-f", "-t", "0", "victim", check=True).stdout.strip() == "victim"
    assert bystander.phase == "Running"
    assert bystander.exec("app", ["true"]).returncode == 0
    assert _names(mpi, "-a") == ["bystander"]


def test_same_name_in_two_namespaces(mpi, tmp_path):
    rt = mpi.runtime()
    mine = _wait_up(rt.run(_pod("twin")))
    theirs = _wait_up(rt.run(_pod("twin", namespace="other")))
    assert mine.uid != theirs.uid
    wide = [line.split() for line in mpi.cli("ps", "-o", "wide", check=True).stdout.splitlines()[1:]]
    assert sorted((row[0], row[6]) for row in wide) == [("twin", "default"), ("twin", "other")]
    assert mpi.cli("logs", "other/twin", check=True).stdout == "twin-up\n"
    obj = json.loads(mpi.cli("inspect", "other/twin", check=True).stdout)
    assert obj["metadata"]["namespace"] == "other" and obj["metadata"]["uid"] == theirs.uid
    manifest = tmp_path / "other.yaml"
    manifest.write_text(_pod("twin", namespace="other"))
    assert mpi.cli("down", "-t", "0", str(manifest), check=True).stdout.split() == ["twin"]
    assert mine.phase == "Running"  # default/twin is not other/twin
    assert [p.ref for p in rt.pods()] == ["default/twin"]


def test_foreground_run_of_two_pods(mpi):
    res = mpi.cli("run", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  restartPolicy: Never
  containers:
  - {name: worker, image: localhost/busybox:demo, command: ["sh", "-c", "echo good-done"]}
---
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  restartPolicy: Never
  containers:
  - {name: failer, image: localhost/busybox:demo, command: ["sh", "-c", "sleep 0.3; echo bad-done; exit 9"]}
""")
    assert res.returncode == 9, res.stderr
    assert sorted(res.stdout.splitlines()) == ["failer | bad-done", "worker | good-done"]
    rows = {line.split()[0]: line.split()[2] for line in mpi.cli("ps", "-a", check=True).stdout.splitlines()[1:]}
    assert rows == {"good": "Completed", "bad": "Error"}


def test_a_run_that_fails_on_a_taken_name_starts_nothing(mpi, tmp_path):
    """The second pod's name is taken: `run` fails, and the first pod of the
    file must not be left running behind the user's back."""
    rt = mpi.runtime()
    _wait_up(rt.run(_pod("taken")))
    manifest = tmp_path / "both.yaml"
    manifest.write_text(_pod("newcomer") + "---\n" + _pod("taken"))
    res = mpi.cli("run", str(manifest), timeout=20)
    assert res.returncode != 0
    assert 'pod "taken" already exists' in res.stderr, res.stderr
    assert _names(mpi, "-a") == ["taken"], "run failed, yet left pod(s) behind"
