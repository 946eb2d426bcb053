"""Pod-level securityContext on the real kernel: fsGroup on volumes and in
every container's groups, and namespaced sysctls set in the pod's own
namespaces while the host keeps its values."""

from __future__ import annotations

import os

import pytest

DEMO_IMAGE = "localhost/busybox:demo"  # imported by the mpi fixture


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_fs_group_owns_the_volumes_and_joins_the_groups(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: fsgroup}}
spec:
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}}
  containers:
  - name: app
    image: {DEMO_IMAGE}
    command: [sleep, "3600"]
    volumeMounts:
    - {{name: data, mountPath: /data}}
    - {{name: info, mountPath: /info}}
  volumes:
  - {{name: data, emptyDir: {{}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
""")
    try:
        pod.wait(lambda p: p.ready, timeout=10)
        ids = pod.exec("app", ["id"]).text
        assert "uid=1000" in ids and "gid=3000" in ids
        assert set(pod.exec("app", ["id", "-G"]).text.split()) == {"3000", "2000"}
        # The volume root: group 2000, group-writable, setgid so new files inherit the group.
        assert pod.exec("app", ["stat", "-c", "%g %a", "/data"]).text.strip() == "2000 2777"
        made = pod.exec("app", ["sh", "-c", "echo hi > /data/made && stat -c '%u %g' /data/made"])
        assert made.returncode == 0, made.stderr
        assert made.text.strip() == "1000 2000"
        # A projected kind is regrouped too, read-only for the group.
        assert pod.exec("app", ["stat", "-c", "%g", "/info/name"]).text.strip() == "2000"
        assert pod.exec("app", ["cat", "/info/name"]).text.strip() == "fsgroup"
    finally:
        pod.remove(timeout=0)


def test_namespaced_sysctls_are_set_in_the_pod_only(mpi):
    port_file = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    shm_file = "/proc/sys/kernel/shmmax"
    host_port, host_shm = _read(port_file), _read(shm_file)
    assert host_port != "80" and host_shm != "65536", "pick other values for this host"
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: sysctls}}
spec:
  securityContext:
    sysctls:
    - {{name: net.ipv4.ip_unprivileged_port_start, value: "80"}}
    - {{name: kernel/shmmax, value: "65536"}}
  containers:
  - name: app
    image: {DEMO_IMAGE}
    command: [sleep, "3600"]
""")
    try:
        pod.wait(lambda p: p.ready, timeout=10)
        assert pod.exec("app", ["cat", port_file]).text.strip() == "80"
        assert pod.exec("app", ["cat", shm_file]).text.strip() == "65536"
        assert (_read(port_file), _read(shm_file)) == (host_port, host_shm)
    finally:
        pod.remove(timeout=0)
    assert (_read(port_file), _read(shm_file)) == (host_port, host_shm)


@pytest.mark.parametrize("extra, sysctl, message", [
    ("", "kernel.pid_max", 'spec.securityContext.sysctls[0].name: "kernel.pid_max" is not a namespaced sysctl'),
    ("hostNetwork: true", "net.ipv4.ip_forward",
     'spec.securityContext.sysctls[0].name: sysctl "net.ipv4.ip_forward" is not allowed with hostNetwork'),
])
def test_invalid_sysctls_are_validation_errors(mpi, tmp_path, extra, sysctl, message):
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(f"""
apiVersion: v1
kind: Pod
metadata: {{name: badsysctl}}
spec:
  {extra}
  securityContext:
    sysctls: [{{name: {sysctl}, value: "1"}}]
  containers:
  - {{name: app, image: {DEMO_IMAGE}, command: [sleep, "3600"]}}
""")
    res = mpi.cli("run", "-d", str(manifest))
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not os.path.exists(os.path.join(mpi.root, "run", "minipod", "pods", "badsysctl"))


@pytest.mark.parametrize("policy, groups", [("Merge", "33 100 4000"), ("Strict", "33 4000")])
def test_supplemental_groups_policy(mpi, policy, groups):
    """The demo image's /etc/group puts www-data (33) in users (100): Merge
    keeps that, Strict keeps only what the manifest says."""
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: groups}}
spec:
  securityContext: {{runAsUser: 33, supplementalGroups: [4000], supplementalGroupsPolicy: {policy}}}
  containers:
  - name: app
    image: {DEMO_IMAGE}
    command: [sleep, "3600"]
""")
    pod.wait(lambda p: p.phase == "Running", timeout=10)
    assert pod.exec("app", ["id", "-G"]).text.split() == groups.split()
    user = pod.container_status("app")["user"]["linux"]
    assert (user["uid"], user["gid"]) == (33, 33)
    assert user["supplementalGroups"] == [int(g) for g in groups.split()]
    pod.remove(timeout=0)


def test_privileged_lifts_masks_devices_and_capabilities_but_not_namespaces(mpi):
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: priv}}
spec:
  containers:
  - name: priv
    image: {DEMO_IMAGE}
    command: [sleep, "3600"]
    securityContext: {{privileged: true}}
  - name: plain
    image: {DEMO_IMAGE}
    command: [sleep, "3600"]
""")
    pod.wait(lambda p: p.phase == "Running", timeout=10)

    def sh(container: str, script: str):
        return pod.exec(container, ["sh", "-c", script])

    from minipod.capabilities import held_caps_mask

    cap_eff = {c: int(sh(c, "grep CapEff /proc/self/status").text.split()[1], 16) for c in ("priv", "plain")}
    assert cap_eff["priv"] == held_caps_mask() & cap_eff["priv"] and cap_eff["priv"] & (1 << 21)  # SYS_ADMIN
    assert not cap_eff["plain"] & (1 << 21)
    # Masked paths: /proc/keys has /dev/null mounted over it in the plain container only.
    masked = "grep -c ' /proc/keys ' /proc/mounts"
    assert sh("plain", masked).text.strip() == "1"
    assert sh("priv", masked).text.strip() == "0"
    # Devices: a node for the kernel log opens only where the cgroup allows it.
    for c in ("priv", "plain"):
        assert sh(c, "mknod /tmp/kmsg c 1 11").returncode == 0
    assert sh("priv", "head -c 1 /tmp/kmsg >/dev/null").returncode == 0
    assert "Operation not permitted" in sh("plain", "head -c 1 /tmp/kmsg").stderr.decode()
    # Mounting works, inside the container's own mount namespace only.
    assert sh("priv", "mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && grep -c ' /mnt/t ' /proc/mounts").text.strip() == "1"
    assert "/mnt/t" not in open("/proc/self/mounts").read()
    # Still the pod's namespaces: its own hostname and PID 1.
    assert sh("priv", "hostname").text.strip() == "priv"
    assert sh("priv", "cat /proc/1/comm").text.strip() == "sleep"
    pod.remove(timeout=0)
