"""Volumes (emptyDir, memory, hostPath, configMap, secret, subPath) and the environment."""

from __future__ import annotations


import pytest

from minipod.errors import MinipodError


def _run_and_wait(mpi, manifest: str):
    pod = mpi.runtime().run(manifest)
    pod.wait(lambda p: p.ready, timeout=10)
    return pod


def test_configmap_secret_hostpath_memory_and_readonly(mpi, tmp_path):
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("host data\n")
    pod = _run_and_wait(mpi, f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello, color: blue}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: vols}}
spec:
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: sec, mountPath: /etc/sec, readOnly: true}}
    - {{name: host, mountPath: /host}}
    - {{name: made, mountPath: /made}}
    - {{name: mem, mountPath: /mem}}
    - {{name: cfg, mountPath: /one/color.txt, subPath: color}}
  volumes:
  - {{name: cfg, configMap: {{name: settings, items: [{{key: greeting, path: greet/text}}, {{key: color, path: color}}]}}}}
  - {{name: sec, secret: {{secretName: creds, defaultMode: 0400}}}}
  - {{name: host, hostPath: {{path: {host_dir}, type: Directory}}}}
  - {{name: made, hostPath: {{path: {tmp_path}/created, type: DirectoryOrCreate}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 8Mi}}}}
""")
    sh = lambda cmd: pod.exec("app", ["sh", "-c", cmd])  # noqa: E731
    assert sh("cat /etc/cfg/greet/text").text == "hello"
    assert sh("cat /one/color.txt").text == "blue"
    assert sh("cat /etc/sec/password").text == "s3cret"
    assert sh("stat -c %a /etc/sec/password").text.strip() == "400"
    assert sh("touch /etc/sec/new").returncode != 0  # read-only mount
    assert sh("cat /host/from-host").text == "host data\n"
    assert sh("echo back > /host/written").returncode == 0
    assert (host_dir / "written").read_text() == "back\n"
    assert (tmp_path / "created").is_dir()
    mounts = sh("cat /proc/mounts").text
    assert any(line.split()[1] == "/mem" and line.split()[2] == "tmpfs" for line in mounts.splitlines())
    assert "size=8192k" in [line for line in mounts.splitlines() if " /mem " in line][0]
    pod.remove(timeout=0)
    assert (host_dir / "from-host").exists()  # hostPath content is the host's: never deleted


def test_hostpath_type_mismatch_fails_and_leaves_nothing(mpi, tmp_path):
    with pytest.raises(MinipodError, match="is not a Directory|does not exist"):
        mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: badhost}}
spec:
  containers:
  - {{name: app, image: localhost/busybox:demo, command: [sleep, "60"],
      volumeMounts: [{{name: h, mountPath: /h}}]}}
  volumes:
  - {{name: h, hostPath: {{path: {tmp_path}/missing, type: Directory}}}}
""")
    assert mpi.runtime().pods() == []
    assert mpi.leaks() == []


def test_subpath_symlink_cannot_escape_the_volume(mpi, tmp_path):
    """A container plants a symlink to / in a shared volume; a later
    container that mounts it as subPath must not get the host's root."""
    rt = mpi.runtime()
    pod = rt.run("""
apiVersion: v1
kind: Pod
metadata: {name: escape}
spec:
  restartPolicy: Never
  initContainers:
  - {name: plant, image: localhost/busybox:demo, command: ["ln", "-s", "/", "/vol/evil"],
     volumeMounts: [{name: v, mountPath: /vol}]}
  containers:
  - {name: victim, image: localhost/busybox:demo, command: ["ls", "/mnt/evil"],
     volumeMounts: [{name: v, mountPath: /mnt/evil, subPath: evil}]}
  volumes: [{name: v, emptyDir: {}}]
""")
    pod.wait_phase("Failed", "Succeeded", timeout=10)
    state = pod.container_status("victim")["state"]["terminated"]
    assert state["reason"] == "StartError"
    assert "leads outside the volume" in state["message"]
    pod.remove(timeout=0)


def test_environment_rules(mpi):
    pod = _run_and_wait(mpi, """
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {LEVEL: debug, MODE: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {TOKEN: dG9wc2VjcmV0}
---
apiVersion: v1
kind: Pod
metadata:
  name: envy
  labels: {tier: backend}
spec:
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
    workingDir: /srv/app
    envFrom:
    - configMapRef: {name: cm}
      prefix: CM_
    env:
    - {name: GREETING, value: hello}
    - {name: MESSAGE, value: "$(GREETING) world, $$(GREETING) stays, $(UNDEFINED) too"}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_NS
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: TIER
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}
    - name: LEVEL
      valueFrom: {configMapKeyRef: {name: cm, key: LEVEL}}
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: sec, key: TOKEN}}
""")
    env = dict(line.split("=", 1) for line in pod.exec("app", ["env"]).text.splitlines() if "=" in line)
    assert env["MESSAGE"] == "hello world, $(GREETING) stays, $(UNDEFINED) too"
    assert env["POD_NAME"] == "envy" and env["POD_NS"] == "default" and env["TIER"] == "backend"
    assert env["LEVEL"] == "debug" and env["CM_MODE"] == "fast" and env["TOKEN"] == "topsecret"
    assert env["HOSTNAME"] == "envy" and env["HOME"] == "/root"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert pod.exec("app", ["pwd"]).text.strip() == "/srv/app"
    pod.remove(timeout=0)


def test_container_sees_a_container_world(mpi):
    """/dev, /proc, /sys, masked paths, capabilities, user, hostname files."""
    pod = _run_and_wait(mpi, """
apiVersion: v1
kind: Pod
metadata: {name: world}
spec:
  containers:
  - {name: root, image: localhost/busybox:demo, command: ["sleep", "3600"]}
  - name: www
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
    securityContext: {runAsUser: 33, capabilities: {drop: [ALL]}}
""")
    sh = lambda c, cmd: pod.exec(c, ["sh", "-c", cmd]).text  # noqa: E731
    devs = sh("root", "ls /dev").split()
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx"):
        assert name in devs, devs
    assert "sda" not in devs and "vda" not in devs
    assert sh("root", "cat /proc/kcore | wc -c").strip() == "0"  # masked
    assert pod.exec("root", ["sh", "-c", "echo 1 > /proc/sys/kernel/domainname"]).returncode != 0
    assert pod.exec("root", ["touch", "/sys/x"]).returncode != 0  # sysfs read-only
    status = sh("root", "grep -E '^Cap(Eff|Bnd)' /proc/self/status")
    assert "CapEff:\t00000000a80425fb" in status, status  # containerd's default set
    assert sh("www", "id -u; id -g").split() == ["33", "33"]
    assert "CapBnd:\t0000000000000000" in sh("www", "grep CapBnd /proc/self/status")
    assert sh("root", "cat /etc/hostname").strip() == "world"
    assert "world" in sh("root", "cat /etc/hosts")
    assert sh("root", "cat /proc/1/cmdline | tr '\\0' ' '").strip() == "sleep 3600"
    pod.remove(timeout=0)


def test_downward_api_and_projected_volumes(mpi):
    pod = _run_and_wait(mpi, """
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {mode: fast}
---
apiVersion: v1
kind: Pod
metadata:
  name: downward
  labels: {tier: web}
spec:
  containers:
  - name: app
    image: localhost/busybox:demo
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: info, mountPath: /etc/podinfo}
    - {name: all, mountPath: /etc/all}
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
  - name: all
    projected:
      sources:
      - configMap: {name: cm}
      - downwardAPI:
          items:
          - {path: ns, fieldRef: {fieldPath: metadata.namespace}}
""")
    cat = lambda path: pod.exec("app", ["cat", path]).text  # noqa: E731
    assert cat("/etc/podinfo/name") == "downward"
    assert cat("/etc/podinfo/labels") == 'tier="web"'
    assert cat("/etc/all/mode") == "fast"
    assert cat("/etc/all/ns") == "default"
    pod.remove(timeout=0)
