"""The cgroup v2 device program on the real kernel.

On a hybrid host (v1 controllers + a cgroup2 tree with no controllers) the
program is attached to a cgroup of our own in the cgroup2 tree and a process
moved into it tries device nodes made in a temp dir: the kernel runs the
program of a process's cgroup2 cgroup on every open and mknod of a device,
whatever the v1 devices controller says. On a pure cgroup v2 host a real pod
goes through the supervisor's path (``restrict_devices``).

Only nodes made in a temp dir are opened, read-only, and closed at once:
nothing here writes to a block device.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from minipod.cgroups import UNIFIED, detect_layout
from minipod.errors import CgroupError

# Reads one command per stdin line, answers "ok" or "errno=<n>" per line.
CHILD = textwrap.dedent("""
    import os, sys
    for line in sys.stdin:
        verb, path, *rest = line.split()
        try:
            if verb == "open":
                os.close(os.open(path, os.O_RDWR if rest == ["rw"] else os.O_RDONLY))
            elif verb == "mknod":
                kind, major, minor = rest
                mode = (stat.S_IFBLK if kind == "b" else stat.S_IFCHR) | 0o600
                os.mknod(path, mode, os.makedev(int(major), int(minor)))
            print("ok", flush=True)
        except OSError as exc:
            print(f"errno={exc.errno}", flush=True)
""").replace("import os, sys", "import os, stat, sys")

EPERM = f"errno={errno.EPERM}"


def _unified_root() -> str:
    layout = detect_layout()
    if not layout.unified:
        pytest.skip("no cgroup2 tree is mounted on this host")
    return layout.unified


class _Child:
    """A python process that does what it is told, one line at a time."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def do(self, *words: str) -> str:
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


@pytest.fixture
def own_cgroup():
    """A uniquely named cgroup in the cgroup2 tree, removed afterwards."""
    path = os.path.join(_unified_root(), f"minipod-devbpf-{uuid.uuid4().hex[:10]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        # The child was killed and reaped first; a dying task can still hold the cgroup a moment.
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                time.sleep(0.01)
        else:
            os.rmdir(path)


@pytest.fixture
def nodes(tmp_path):
    """Device nodes in a temp dir: null (allowed), mem, kmsg and loop0 (denied)."""
    made = {}
    for name, kind, major, minor in (("null", stat.S_IFCHR, 1, 3), ("mem", stat.S_IFCHR, 1, 1),
                                     ("kmsg", stat.S_IFCHR, 1, 11), ("loop0", stat.S_IFBLK, 7, 0)):
        made[name] = str(tmp_path / name)
        os.mknod(made[name], kind | 0o600, os.makedev(major, minor))
    return made


@pytest.fixture
def child():
    c = _Child()
    yield c
    c.stop()


def test_the_program_allows_the_default_devices_and_denies_the_rest(own_cgroup, nodes, child, tmp_path):
    from minipod.devices_bpf import attach_device_program

    with open(os.path.join(own_cgroup, "cgroup.procs"), "w") as f:
        f.write(str(child.proc.pid))
    # Control: in the cgroup, before any program, kmsg opens (so a later EPERM is the program's).
    assert child.do("open", nodes["kmsg"]) == "ok"
    attach_device_program(own_cgroup)
    assert child.do("open", "/dev/null", "rw") == "ok"
    assert child.do("open", nodes["null"], "rw") == "ok"   # the node, not the path, counts
    assert child.do("open", "/dev/urandom") == "ok"
    assert child.do("open", nodes["mem"]) == EPERM         # /dev/mem
    assert child.do("open", nodes["kmsg"]) == EPERM
    assert child.do("open", nodes["loop0"]) == EPERM       # a block device, read-only
    # Making any node stays allowed (image unpacking, build scripts); using it does not.
    made = str(tmp_path / "made-by-child")
    assert child.do("mknod", made, "b", "8", "0") == "ok"
    assert child.do("open", made) == EPERM
    # The same nodes outside the cgroup: the host is untouched.
    os.close(os.open(nodes["kmsg"], os.O_RDONLY))


def test_attaching_again_replaces_the_earlier_program(own_cgroup, nodes, child):
    from minipod.devices_bpf import assemble, attach_device_program, attached_program_ids

    with open(os.path.join(own_cgroup, "cgroup.procs"), "w") as f:
        f.write(str(child.proc.pid))
    attach_device_program(own_cgroup, assemble([("c", "1", "11", "r")]))  # kmsg only
    first = attached_program_ids(own_cgroup)
    assert len(first) == 1
    assert child.do("open", nodes["kmsg"]) == "ok" and child.do("open", "/dev/null") == EPERM
    attach_device_program(own_cgroup)  # a restarted container: the default list
    second = attached_program_ids(own_cgroup)
    assert len(second) == 1 and second != first
    assert child.do("open", nodes["kmsg"]) == EPERM and child.do("open", "/dev/null") == "ok"


def test_restrict_devices_attaches_on_a_v2_cgroup(own_cgroup, nodes, child):
    """The supervisor's call, on a V2Cgroup of this host's cgroup2 tree."""
    from minipod.cgroups import Layout, open_cgroup
    from minipod.devices import restrict_devices
    from minipod.devices_bpf import attached_program_ids

    root = _unified_root()
    cgroup = open_cgroup(os.path.basename(own_cgroup), layout=Layout(UNIFIED, {}, root))
    assert cgroup.kind == "v2"
    assert restrict_devices(cgroup, privileged=True) == []
    assert attached_program_ids(own_cgroup) == []  # privileged: nothing
    assert restrict_devices(cgroup, privileged=False) == []
    assert len(attached_program_ids(own_cgroup)) == 1
    cgroup.add(child.proc.pid)
    assert child.do("open", nodes["mem"]) == EPERM


def _pure_v2() -> bool:
    try:
        return detect_layout().kind == UNIFIED
    except CgroupError:
        return False


ONLY_ON_V2 = pytest.mark.skipif(not _pure_v2(), reason="needs a pure cgroup v2 host (the VM lane)")


def _pod(mp, name: str, security_context: str = "{}"):
    pod = mp.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: app
    image: localhost/busybox:demo
    command: [sleep, "3600"]
    securityContext: {security_context}
""")
    pod.wait(lambda p: p.ready, timeout=10)
    return pod


@ONLY_ON_V2
def test_a_pod_on_cgroup_v2_uses_only_the_default_devices(mpi):
    pod = _pod(mpi, "devbpf")
    assert pod.exec("app", ["cat", "/dev/null"]).returncode == 0
    assert pod.exec("app", ["sh", "-c", "echo hi > /dev/null"]).returncode == 0
    assert pod.exec("app", ["mknod", "/tmp/mem", "c", "1", "1"]).returncode == 0  # making is allowed
    res = pod.exec("app", ["cat", "/tmp/mem"])
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    res = pod.exec("app", ["sh", "-c", "mknod /tmp/kmsg c 1 11 && : < /tmp/kmsg"])
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    pod.remove(timeout=0)


@ONLY_ON_V2
def test_a_privileged_container_on_cgroup_v2_keeps_every_device(mpi):
    pod = _pod(mpi, "devbpf-priv", "{privileged: true}")
    # Opened and closed at once, nothing read: /dev/kmsg (c 1:11) is denied to ordinary containers.
    res = pod.exec("app", ["sh", "-c", "mknod /tmp/kmsg c 1 11 && : < /tmp/kmsg"])
    assert res.returncode == 0, res.stderr
    pod.remove(timeout=0)
