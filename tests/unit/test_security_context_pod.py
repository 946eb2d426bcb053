"""The pod-level securityContext fields: sysctls, fsGroup, procMount (pure parts)."""

import copy
import os
import stat

import pytest

from minipod import sandbox, volumes
from minipod.errors import SpecError
from minipod.plan import Clone, Exec, WriteFile
from minipod.spec import load_manifest
from minipod.spec.sysctls import dotted, namespace_of, proc_path

BASE = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "app", "image": "busybox"}]},
}


def load(spec=None, container=None):
    pod = copy.deepcopy(BASE)
    pod["spec"].update(spec or {})
    pod["spec"]["containers"][0].update(container or {})
    return load_manifest([pod])


def problems(spec=None, container=None) -> list[str]:
    try:
        load(spec, container)
    except SpecError as err:
        return err.problems
    return []


# -- sysctls ------------------------------------------------------------------------


@pytest.mark.parametrize("name, path", [
    ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
    ("net/ipv4/ip_unprivileged_port_start", "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
    # A slash-separated name keeps the dot of a VLAN interface inside one part.
    ("net/ipv4/conf/eth0.100/rp_filter", "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"),
    ("kernel.shmmax", "/proc/sys/kernel/shmmax"),
])
def test_sysctl_paths(name, path):
    assert proc_path(name) == path


def test_sysctl_namespaces_follow_kubernetes():
    assert dotted("net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"
    assert namespace_of("net.core.somaxconn") == "net"
    for ipc in ("kernel.shmmax", "kernel.shm_rmid_forced", "kernel.msgmax", "kernel.sem", "fs.mqueue.msg_max"):
        assert namespace_of(ipc) == "ipc", ipc
    for host in ("kernel.hostname_x", "vm.swappiness", "kernel.pid_max", "fs.file-max", "kernel.semx"):
        assert namespace_of(host) is None, host


def test_namespaced_sysctls_are_accepted_without_warning():
    manifest = load({"securityContext": {"sysctls": [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"},
        {"name": "kernel.shmmax", "value": "65536"}]}})
    assert manifest.warnings == []


def test_host_wide_sysctl_is_a_validation_error_with_its_path():
    found = problems({"securityContext": {"sysctls": [
        {"name": "net.core.somaxconn", "value": "1024"}, {"name": "vm.swappiness", "value": "10"}]}})
    assert len(found) == 1
    assert found[0].startswith('spec.securityContext.sysctls[1].name: "vm.swappiness" is not a namespaced sysctl')


@pytest.mark.parametrize("host_field, name", [("hostNetwork", "net.ipv4.ip_forward"), ("hostIPC", "kernel.shmmax")])
def test_sysctl_of_a_host_namespace_is_refused(host_field, name):
    found = problems({host_field: True, "securityContext": {"sysctls": [{"name": name, "value": "1"}]}})
    assert found == [f'spec.securityContext.sysctls[0].name: sysctl "{name}" is not allowed with {host_field}: '
                     "it would change the host"]


def test_sysctl_of_another_namespace_is_fine_with_a_host_namespace():
    assert problems({"hostNetwork": True, "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "9"}]}}) == []


def test_pause_plan_writes_sysctls_after_the_clone():
    plan = sandbox.pause_plan("/bin/minipod-pause", sandbox.SandboxShape(), "web", ["/cg/cgroup.procs"], 9,
                              [{"name": "net.ipv4.ip_forward", "value": "1"}, {"name": "kernel.shmmax", "value": "4096"}])
    kinds = [type(op) for op in plan.ops]
    writes = [op for op in plan.ops if isinstance(op, WriteFile) and op.path.startswith("/proc/sys/")]
    assert [(w.path, w.content) for w in writes] == [("/proc/sys/net/ipv4/ip_forward", "1"),
                                                     ("/proc/sys/kernel/shmmax", "4096")]
    assert kinds.index(Clone) < plan.ops.index(writes[0]) and isinstance(plan.ops[-1], Exec)


# -- procMount, fsGroup -------------------------------------------------------------


def test_proc_mount_default_is_silent_and_unmasked_an_error():
    assert load(container={"securityContext": {"procMount": "Default"}}).warnings == []
    found = problems(container={"securityContext": {"procMount": "Unmasked"}})
    assert found == ["spec.containers[0].securityContext.procMount: Unmasked is not supported by minipod: "
                     "it needs user namespaces (hostUsers: false)"]


def test_fs_group_is_no_longer_a_warning():
    assert load({"securityContext": {"fsGroup": 2000, "fsGroupChangePolicy": "OnRootMismatch"}}).warnings == []


def _tree(tmp_path):
    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_text("x")
    (root / "link").symlink_to("/etc/passwd")
    os.chmod(root, 0o755)
    os.chmod(root / "sub", 0o700)
    os.chmod(root / "sub" / "file", 0o600)
    return root


def test_apply_fs_group_read_write(tmp_path):
    root = _tree(tmp_path)
    gid = os.getgid()
    passwd_mode = os.stat("/etc/passwd").st_mode
    volumes.apply_fs_group(str(root), gid)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o2775
    assert stat.S_IMODE(os.stat(root / "sub").st_mode) == 0o2770
    assert stat.S_IMODE(os.stat(root / "sub" / "file").st_mode) == 0o660
    assert os.stat(root / "sub" / "file").st_gid == gid
    assert os.stat("/etc/passwd").st_mode == passwd_mode  # the symlink was not followed


def test_apply_fs_group_read_only_volume(tmp_path):
    root = _tree(tmp_path)
    volumes.apply_fs_group(str(root), os.getgid(), read_only=True)
    assert stat.S_IMODE(os.stat(root / "sub" / "file").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(root / "sub").st_mode) == 0o2750


def test_on_root_mismatch_skips_a_volume_whose_root_matches(tmp_path):
    root = _tree(tmp_path)
    os.chmod(root, 0o2775)
    volumes.apply_fs_group(str(root), os.getgid(), policy="OnRootMismatch")
    assert stat.S_IMODE(os.stat(root / "sub" / "file").st_mode) == 0o600
    os.chmod(root, 0o755)  # no setgid: a mismatch, so the whole tree is changed
    volumes.apply_fs_group(str(root), os.getgid(), policy="OnRootMismatch")
    assert stat.S_IMODE(os.stat(root / "sub" / "file").st_mode) == 0o660


def test_prepare_volumes_applies_fs_group_but_not_to_host_paths(tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    os.chmod(host_dir, 0o700)
    pod = {"metadata": {"namespace": "default", "name": "web"}, "spec": {
        "securityContext": {"fsGroup": os.getgid()},
        "volumes": [{"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": str(host_dir)}}]}}
    result = volumes.prepare_volumes(pod, str(tmp_path / "data"), {}, {}, mount_tmpfs=None)
    scratch = os.stat(result["scratch"].host_path)
    assert stat.S_IMODE(scratch.st_mode) == 0o2777 and scratch.st_gid == os.getgid()
    assert stat.S_IMODE(os.stat(host_dir).st_mode) == 0o700


def test_fs_group_joins_every_container_s_groups():
    from minipod.container import ImageInfo, make_launch

    pod = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000],
                                        "fsGroup": 2000},
                    "containers": [{"name": "app", "image": "busybox", "command": ["id"]}]}}
    image = ImageInfo("busybox:latest", "sha256:1", "sha256:2", {}, [])
    launch = make_launch(pod, pod["spec"]["containers"][0], "spec.containers[0]", image, "web", {}, {}, {})
    assert (launch.user.uid, launch.user.gid, launch.user.groups) == (1000, 3000, (4000, 2000))


@pytest.mark.parametrize("where", ["pod", "container"])
def test_localhost_seccomp_passes_validation_with_a_relative_path_only(where):
    def found(name):
        context = {"seccompProfile": {"type": "Localhost", "localhostProfile": name}}
        return problems(*([{"securityContext": context}, None] if where == "pod"
                          else [None, {"securityContext": context}]))

    prefix = "spec.securityContext" if where == "pod" else "spec.containers[0].securityContext"
    assert found("profiles/audit.json") == []  # the file is read at run (minipod/seccomp_localhost.py)
    assert found("../audit.json") == [f"{prefix}.seccompProfile.localhostProfile: \"../audit.json\" must not contain '..'"]
