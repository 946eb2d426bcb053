"""Pure rules of a container's start: env, command line, user, capabilities,
the rootfs step order, hosts and resolv.conf files."""

from __future__ import annotations

import os

import pytest

from minipod import capabilities, envvars, rootfs, sandbox, users
from minipod.container import identity_step
from minipod.errors import MinipodError, SpecError
from minipod.plan import Exec, Mount, PivotRoot, SetNs, WriteFile


def test_expand_follows_kubernetes():
    env = {"A": "1", "B": "two"}
    assert envvars.expand("$(A)-$(B)", env) == "1-two"
    assert envvars.expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert envvars.expand("$$(A) is escaped", env) == "$(A) is escaped"
    assert envvars.expand("$$$(A)", env) == "$1"
    assert envvars.expand("no refs $A", env) == "no refs $A"


@pytest.mark.parametrize("container, image, expected", [
    ({"command": ["a"], "args": ["b"]}, {"Entrypoint": ["e"], "Cmd": ["c"]}, ["a", "b"]),
    ({"command": ["a"]}, {"Entrypoint": ["e"], "Cmd": ["c"]}, ["a"]),
    ({"args": ["b"]}, {"Entrypoint": ["e"], "Cmd": ["c"]}, ["e", "b"]),
    ({}, {"Entrypoint": ["e"], "Cmd": ["c"]}, ["e", "c"]),
    ({}, {"Cmd": ["c", "d"]}, ["c", "d"]),
    ({"args": ["$(X)"]}, {"Entrypoint": ["e"]}, ["e", "x-value"]),
])
def test_command_line_rules(container, image, expected):
    assert envvars.command_line(container, image, {"X": "x-value"}) == expected


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"},
                    "annotations": {}}, "spec": {}}


def test_env_precedence_and_sources():
    cms = {("ns", "cm"): {"data": {"K": "from-cm", "PATH": "/cm"}}}
    secrets = {("ns", "s"): {"data": {"T": "c2VjcmV0"}}}
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}}],
        "env": [
            {"name": "K", "value": "explicit $(K)"},
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "T"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        ],
    }
    env = envvars.container_env(POD, container, "c", ["PATH=/image", "IMG=1"], cms, secrets,
                                {"podIP": "10.0.0.5"})
    assert env["PATH"] == "/cm"  # envFrom over the image's Env
    assert env["IMG"] == "1"
    assert env["K"] == "explicit from-cm"
    assert env["T"] == "secret"
    assert env["APP"] == "web" and env["IP"] == "10.0.0.5"
    assert "OPT" not in env


def test_env_missing_reference_is_an_error():
    with pytest.raises(SpecError, match=r"c.env\[0\].valueFrom: configMap 'nope' not found"):
        envvars.container_env(POD, {"env": [{"name": "X", "valueFrom": {
            "configMapKeyRef": {"name": "nope", "key": "k"}}}]}, "c", [], {}, {}, {})


def _layer(tmp_path, passwd: str, group: str = "") -> list[str]:
    etc = tmp_path / "layer" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    return [str(tmp_path / "layer")]


def test_resolve_user_from_image_files(tmp_path):
    layers = _layer(tmp_path, "root:x:0:0::/root:/bin/sh\nweb:x:33:44::/srv:/bin/false\n",
                    "web:x:44:\nextra:x:50:web\n")
    assert users.resolve_user(layers, None) == users.User(0, 0, (), "/root")
    assert users.resolve_user(layers, "web") == users.User(33, 44, (50,), "/srv")
    assert users.resolve_user(layers, "33:extra").gid == 50
    assert users.resolve_user(layers, "1234") == users.User(1234, 0, (), "/")
    assert users.resolve_user(layers, "web", run_as_user=0).home == "/root"
    assert users.resolve_user(layers, None, run_as_group=7, supplemental=[8]).groups == (8,)
    with pytest.raises(MinipodError, match="unable to find user nobody"):
        users.resolve_user(layers, "nobody")


def test_resolve_user_does_not_follow_symlinks_out_of_the_image(tmp_path):
    layer = tmp_path / "l" / "etc"
    layer.mkdir(parents=True)
    os.symlink("/etc/passwd", layer / "passwd")  # would read the host's file
    assert users.resolve_user([str(tmp_path / "l")], "1000").home == "/"


def test_resolve_user_does_not_follow_a_symlinked_directory_out_of_the_image(tmp_path):
    layer = tmp_path / "l"
    layer.mkdir()
    host_etc = tmp_path / "hostetc"
    host_etc.mkdir()
    (host_etc / "passwd").write_text("web:x:33:33::/srv:/bin/sh\n")
    os.symlink(str(host_etc), layer / "etc")  # an image's /etc pointing at a host directory
    with pytest.raises(MinipodError, match="unable to find user web"):
        users.resolve_user([str(layer)], "web")


def test_capabilities():
    every = (1 << 41) - 1
    default = capabilities.container_caps({}, last_cap=40, held=every)
    assert default == 0xA80425FB
    assert capabilities.container_caps({"privileged": True}, last_cap=40, held=every) == every
    sc = {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "cap_chown"]}}
    assert capabilities.container_caps(sc, last_cap=40, held=every) == (1 << 10) | 1
    assert capabilities.container_caps({"capabilities": {"drop": ["KILL"]}}, last_cap=40,
                                       held=every) == default & ~(1 << 5)


def test_privileged_gets_only_what_minipod_holds():
    """A host (or VM) that withholds CAP_SYS_RESOURCE (24) from minipod: a
    privileged container, or one that adds ALL, gets everything but that."""
    held = ((1 << 41) - 1) & ~(1 << 24)
    assert capabilities.container_caps({"privileged": True}, last_cap=40, held=held) == held
    assert capabilities.container_caps({"capabilities": {"add": ["ALL"]}}, last_cap=40, held=held) == held
    assert capabilities.held_caps_mask() & (1 << 21)  # root running the tests holds CAP_SYS_ADMIN


def test_identity_keeps_caps_effective_only_for_root():
    root = identity_step(users.User(0, 0), 0xFF)
    assert (root.bounding, root.effective, root.permitted) == (0xFF, 0xFF, 0xFF)
    user = identity_step(users.User(1000, 1000, (5,)), 0xFF)
    assert (user.bounding, user.effective, user.permitted, user.groups) == (0xFF, 0, 0, (5,))


def test_rootfs_steps_order():
    steps = rootfs.container_rootfs_steps(
        rootfs="/r", lower_dirs=["/l/bottom", "/l/top"], upper="/u", work="/w",
        binds=[rootfs.BindMount("/host/data", "/data", readonly=True)], shm_source="/shm")
    first, overlay = steps[0], steps[1]
    assert first == Mount(None, "/", None, rootfs.MS_REC | rootfs.MS_PRIVATE)
    assert overlay.data == "lowerdir=/l/top:/l/bottom,upperdir=/u,workdir=/w"
    assert isinstance(steps[-1], PivotRoot) and steps[-1].new_root == "/r"
    targets = [s.target for s in steps if isinstance(s, Mount)]
    assert targets.index("/r/data") < targets.index("/r/proc/kcore")  # masks come after volumes
    remount = [s for s in steps if isinstance(s, Mount) and s.target == "/r/data"][-1]
    assert remount.flags & rootfs.MS_RDONLY and remount.flags & rootfs.MS_REMOUNT
    privileged = rootfs.container_rootfs_steps(rootfs="/r", lower_dirs=["/l"], upper="/u", work="/w",
                                               binds=[], shm_source=None, privileged=True)
    assert not [s for s in privileged if isinstance(s, Mount) and s.target == "/r/proc/kcore"]


def test_hosts_and_resolv_conf():
    hosts = sandbox.hosts_file("web", None, None, "default", [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}])
    assert "127.0.0.1\tlocalhost" in hosts and "127.0.1.1\tweb" in hosts and "1.2.3.4\ta b" in hosts
    sub = sandbox.hosts_file("web", "10.0.0.2", "svc", "prod", None)
    assert "10.0.0.2\tweb.svc.prod.svc.cluster.local\tweb" in sub
    host = "nameserver 127.0.0.53\nnameserver 9.9.9.9\nsearch lan\noptions edns0\n"
    assert sandbox.resolv_conf(host, "ClusterFirst", None, True) == \
        "nameserver 9.9.9.9\nsearch lan\noptions edns0\n"
    assert "nameserver 127.0.0.53" in sandbox.resolv_conf(host, "Default", None, False)
    custom = sandbox.resolv_conf(host, "None", {"nameservers": ["1.1.1.1"], "options": [
        {"name": "ndots", "value": "2"}]}, True)
    assert custom == "nameserver 1.1.1.1\noptions ndots:2\n"


def test_sandbox_shape():
    assert sandbox.SandboxShape.of({}).owned() == ["net", "ipc", "uts"]
    assert sandbox.SandboxShape.of({"shareProcessNamespace": True}).owned() == ["net", "ipc", "uts", "pid"]
    assert sandbox.SandboxShape.of({"hostNetwork": True, "hostIPC": True}).owned() == []
    assert sandbox.pod_hostname({"metadata": {"name": "a" * 70}, "spec": {}}) == "a" * 63


def test_pause_plan_is_readable():
    plan = sandbox.pause_plan("/bin/minipod-pause", sandbox.SandboxShape(), "web", ["/cg/cgroup.procs"], 9)
    text = "\n".join(plan.describe())
    assert "clone with new namespaces: net,ipc,uts" in text and "sethostname web" in text
    assert isinstance(plan.ops[-1], Exec) and not any(isinstance(op, SetNs) for op in plan.ops)


def test_pause_joins_its_cgroup_itself_after_the_clone():
    """So the namespaces exist (and the network can be wired) while the
    first move into a v1 cgroup waits for its RCU grace period."""
    plan = sandbox.pause_plan("/bin/minipod-pause", sandbox.SandboxShape(), "web", ["/a/cgroup.procs",
                                                                                   "/b/cgroup.procs"], 9)
    kinds = [type(op).__name__ for op in plan.ops]
    clone = kinds.index("Clone")
    writes = [i for i, op in enumerate(plan.ops) if isinstance(op, WriteFile) and op.path.endswith("cgroup.procs")]
    assert len(writes) == 2 and all(i > clone for i in writes)
    assert all(plan.ops[i].content == "0" for i in writes)
