"""A real multi-container pod: shared namespaces, localhost, volumes, exec, logs."""

from __future__ import annotations

import json
import os
import re
import time

TWO_CONTAINERS = """
apiVersion: v1
kind: Pod
metadata:
  name: duo
  labels: {app: duo}
spec:
  containers:
  - name: web
    image: localhost/busybox:demo
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && echo web up && exec httpd -f -p 8080 -h /www"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
  - name: client
    image: localhost/busybox:demo
    command: ["sh", "-c", "echo written-by-client > /data/note && echo client up && exec sleep 3600"]
    volumeMounts:
    - {name: shared, mountPath: /data}
  volumes:
  - name: shared
    emptyDir: {}
"""


def _wait_running(pod, timeout=10):
    """Running and ready, and every container has said it is up."""
    pod.wait(lambda p: p.phase == "Running" and p.ready, timeout=timeout)
    for name in ("web", "client"):
        pod.wait(lambda p: any("up" in line for line in p.logs(name)), timeout=timeout)
    return pod


def test_two_containers_share_net_ipc_uts_but_not_mnt(mpi):
    rt = mpi.runtime()
    pod = rt.run(TWO_CONTAINERS)
    _wait_running(pod)
    ns = pod.status["minipod"]["namespaces"]
    pause, web, client = ns["pause"], ns["web"], ns["client"]
    for kind in ("net", "ipc", "uts"):
        assert pause[kind] == web[kind] == client[kind], kind
    assert web["mnt"] != client["mnt"] != pause["mnt"]
    assert web["pid"] != client["pid"]  # no shareProcessNamespace: a PID namespace each
    # the pod's namespaces are not the host's
    assert pause["net"] != os.stat("/proc/self/ns/net").st_ino
    pod.remove(timeout=0)


def test_localhost_hostname_volume_exec_and_logs(mpi):
    rt = mpi.runtime()
    pod = rt.run(TWO_CONTAINERS)
    _wait_running(pod)
    # one container reaches the other's server at localhost
    deadline = time.monotonic() + 5
    while True:
        res = pod.exec("client", ["wget", "-q", "-O", "-", "http://localhost:8080/"])
        if res.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert res.returncode == 0, res.stderr
    assert res.text.strip() == "hello-from-web"
    # both see the pod's hostname
    assert pod.exec("web", ["hostname"]).text.strip() == "duo"
    assert pod.exec("client", ["cat", "/etc/hostname"]).text.strip() == "duo"
    # a file one writes into the emptyDir the other reads
    assert pod.exec("web", ["cat", "/shared/note"]).text.strip() == "written-by-client"
    # exec returns the command's exit code
    assert pod.exec("web", ["sh", "-c", "exit 7"]).returncode == 7
    # exec runs as the container: same mount namespace as the container
    inode = pod.status["minipod"]["namespaces"]["web"]["mnt"]
    out = pod.exec("web", ["readlink", "/proc/self/ns/mnt"]).text.strip()
    assert out == f"mnt:[{inode}]"
    # logs: what the container wrote, and the file on disk is CRI format
    lines = list(pod.logs("web"))
    assert lines == ["web up\n"]
    log_dir = pod.status["minipod"]["logDir"]
    raw = open(os.path.join(log_dir, "web", "0.log")).read()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout F web up\n", raw), raw
    pod.remove(timeout=0)


def test_cli_inspect_logs_exec_ps(mpi, tmp_path):
    manifest = tmp_path / "duo.yaml"
    manifest.write_text(TWO_CONTAINERS)
    out = mpi.cli("run", "-d", str(manifest), check=True)
    assert out.stdout.strip() == "duo"
    rt = mpi.runtime()
    _wait_running(rt.pod("duo"))
    ps = mpi.cli("ps", check=True).stdout.splitlines()
    assert ps[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert ps[1].split()[:4] == ["duo", "2/2", "Running", "0"]
    obj = json.loads(mpi.cli("inspect", "duo", check=True).stdout)
    assert obj["kind"] == "Pod" and obj["status"]["phase"] == "Running"
    assert {c["name"] for c in obj["status"]["containerStatuses"]} == {"web", "client"}
    assert obj["metadata"]["namespace"] == "default" and obj["metadata"]["uid"]
    assert mpi.cli("logs", "duo", "-c", "client", check=True).stdout == "client up\n"
    ts = mpi.cli("logs", "duo", "-c", "client", "--timestamps", check=True).stdout
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z client up\n", ts)
    assert mpi.cli("exec", "duo", "-c", "web", "--", "sh", "-c", "exit 3").returncode == 3
    res = mpi.cli("exec", "duo", "-c", "web", "--", "cat", "/shared/note", check=True)
    assert res.stdout == "written-by-client\n"
    bad = mpi.cli("exec", "duo", "--", "true")
    assert bad.returncode != 0 and "choose one with -c" in bad.stderr
    listing = json.loads(mpi.cli("ps", "-o", "json", check=True).stdout)
    assert [p["metadata"]["name"] for p in listing] == ["duo"]
    assert mpi.cli("rm", "duo").returncode != 0  # running: needs -f
    assert mpi.cli("rm", "-f", "-t", "0", "duo", check=True).stdout.strip() == "duo"
    assert mpi.cli("ps", "-a", check=True).stdout.splitlines()[1:] == []


def test_share_process_namespace(mpi):
    rt = mpi.runtime()
    pod = rt.run(TWO_CONTAINERS.replace("spec:\n", "spec:\n  shareProcessNamespace: true\n", 1))
    _wait_running(pod)
    ns = pod.status["minipod"]["namespaces"]
    assert ns["pause"]["pid"] == ns["web"]["pid"] == ns["client"]["pid"]
    ps = pod.exec("client", ["ps", "-o", "pid,comm"]).text
    assert "minipod-pause" in ps and "httpd" in ps
    assert re.search(r"^\s*1\s+minipod-pause", ps, re.M), ps  # pause is PID 1
    pod.remove(timeout=0)


def test_image_in_use_cannot_be_removed(mpi):
    rt = mpi.runtime()
    pod = rt.run(TWO_CONTAINERS)
    res = mpi.cli("image", "rm", "localhost/busybox:demo")
    assert res.returncode != 0
    assert 'image "localhost/busybox:demo" is used by pod default/duo' in res.stderr
    pod.remove(timeout=0)
    assert mpi.cli("image", "rm", "localhost/busybox:demo").returncode == 0
    assert mpi.cli("image", "ls", "-o", "json", check=True).stdout.strip() == "[]"
