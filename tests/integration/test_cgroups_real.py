"""The pod cgroup tree on this host's real cgroups (root only).

Each test uses its own parent ``minipod-test-<random>``; the fixture's
teardown destroys every pod under it and the parent itself, so nothing is
left behind even when an assertion fails, and fails if anything remains.
"""

import os
import signal
import subprocess
import time
import uuid

import pytest

from minipod.errors import CgroupError
from minipod.cgroups import (UNIFIED, Layout, detect_layout, hierarchy_roots, list_pod_cgroups,
                             open_pod_cgroup, remove_parent_if_empty)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups"),
]


def _layouts():
    """The host's own layout and, on a hybrid host, its (controller-less)
    cgroup2 tree as a unified layout, so v2 code runs on a real kernel too."""
    layouts = [pytest.param("host", id="host")]
    try:
        host = detect_layout()
    except CgroupError:  # no cgroups at all: the tests below report it
        return layouts
    if host.kind != UNIFIED and host.unified:
        layouts.append(pytest.param("unified", id="unified-tree"))
    return layouts


@pytest.fixture(params=_layouts())
def layout(request):
    host = detect_layout()
    if request.param == "unified":
        return Layout(kind=UNIFIED, unified=host.unified, mounts={})
    return host


@pytest.fixture
def parent(layout):
    name = f"minipod-test-{uuid.uuid4().hex[:8]}"
    yield name
    # Whatever a test did, leave no cgroup behind.
    for pod_id in list_pod_cgroups(name, layout=layout):
        open_pod_cgroup(name, pod_id, layout=layout).destroy()
    remove_parent_if_empty(name, layout=layout)
    leftovers = [r for r in hierarchy_roots(layout) if os.path.exists(os.path.join(r, name))]
    assert leftovers == [], f"cgroup parent {name} left in {leftovers}"


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def own_cgroup_paths(pid):
    """{hierarchy id: path} from /proc/<pid>/cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        return {line.split(":", 2)[0]: line.split(":", 2)[2].strip() for line in f}


def test_detects_this_host():
    layout = detect_layout()
    for controller, mountpoint in layout.mounts.items():
        assert os.path.isdir(mountpoint), controller
    if layout.kind != UNIFIED:
        assert {"memory", "pids", "freezer", "cpuset"} <= set(layout.mounts)


def test_pod_lifecycle_with_a_real_process(layout, parent, procs):
    pod = open_pod_cgroup(parent, "default_web_1a2b3c4d", layout=layout)
    pod.create()
    pod.create()
    pause = pod.child("pause")
    pause.create()
    app = pod.child("app")
    app.create()
    assert pod.path == f"/{parent}/default_web_1a2b3c4d"
    assert list_pod_cgroups(parent, layout=layout) == ["default_web_1a2b3c4d"]

    sleeper = subprocess.Popen(["sleep", "60"])
    procs.append(sleeper)
    app.add(sleeper.pid)
    assert app.pids() == [sleeper.pid]
    assert pod.pids() == [sleeper.pid]
    assert pause.pids() == []
    # the kernel agrees: the process is in the app cgroup of every hierarchy
    paths = set(own_cgroup_paths(sleeper.pid).values())
    assert f"/{parent}/default_web_1a2b3c4d/app" in paths
    assert not app.oom_killed()

    assert pod.kill_all(signal.SIGKILL, timeout=5) is True
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert pod.pids() == []

    pod.destroy()
    assert not pod.exists()
    for d in pod.dirs() + app.dirs() + pause.dirs():
        assert not os.path.exists(d)
    pod.destroy()  # idempotent
    assert remove_parent_if_empty(parent, layout=layout) is True


def test_a_process_joins_by_writing_zero_to_each_procs_file(layout, parent, procs):
    """What a spawn plan does: the child writes "0" to every procs file."""
    pod = open_pod_cgroup(parent, "p", layout=layout)
    pod.create()
    app = pod.child("app")
    app.create()
    writes = "; ".join(f"echo 0 > {f}" for f in app.procs_files())
    child = subprocess.Popen(["sh", "-c", f"{writes}; exec sleep 60"])
    procs.append(child)
    deadline = time.monotonic() + 5
    while app.pids() != [child.pid] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.pids() == [child.pid]
    pod.destroy()
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert not pod.exists()


def test_destroy_kills_a_forking_tree(layout, parent, procs):
    pod = open_pod_cgroup(parent, "p", layout=layout)
    pod.create()
    app = pod.child("app")
    app.create()
    # The shell waits for a line before forking, so that its children are
    # born inside the cgroup.
    shell = subprocess.Popen(["sh", "-c", "read go; sleep 60 & sleep 60 & wait"],
                             stdin=subprocess.PIPE)
    procs.append(shell)
    app.add(shell.pid)
    shell.stdin.write(b"go\n")
    shell.stdin.close()
    deadline = time.monotonic() + 5
    while len(pod.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    children = [pid for pid in pod.pids() if pid != shell.pid]
    assert len(children) == 2

    pod.destroy(timeout=5)
    assert shell.wait(timeout=5) == -signal.SIGKILL
    for pid in children:
        # orphans are reparented and reaped late on this host: a zombie is dead
        assert _dead(pid), f"pid {pid} survived destroy"
    assert not pod.exists()


def test_sigterm_is_sent_once_and_not_waited_for(layout, parent, procs):
    pod = open_pod_cgroup(parent, "p", layout=layout)
    pod.create()
    app = pod.child("app")
    app.create()
    # ignores SIGTERM, so the cgroup stays populated
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; read x"], stdin=subprocess.PIPE)
    procs.append(stubborn)
    _wait_ignoring(stubborn.pid, signal.SIGTERM)
    app.add(stubborn.pid)
    started = time.monotonic()
    assert pod.kill_all(signal.SIGTERM, timeout=5) is False
    assert time.monotonic() - started < 1
    assert stubborn.poll() is None
    pod.destroy()
    assert stubborn.wait(timeout=5) == -signal.SIGKILL


def _dead(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_ignoring(pid, sig, timeout=5):
    """Wait until ``pid`` ignores ``sig`` (its shell ran the trap)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            ignored = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
        if ignored & (1 << (sig - 1)):
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never ignored signal {sig}")
