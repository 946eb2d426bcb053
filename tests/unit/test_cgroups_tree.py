"""The pod cgroup tree on a simulated cgroupfs in a temp dir (no root needed).

``FakeCgroupFS`` stands in for the three cgroupfs operations minipod does
through ``minipod.cgroups.fs`` (mkdir fills in interface files, rmdir removes
them and refuses while processes are inside, writes are commands); reads are
ordinary file reads of the files it maintains.
"""

import errno
import os
import signal
import subprocess

import pytest

from minipod.cgroups import (HYBRID, LEGACY, UNIFIED, Layout, fs, list_pod_cgroups,
                             open_pod_cgroup, remove_parent_if_empty)
from minipod.errors import CgroupError

V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


class FakeCgroupFS:
    def __init__(self, base, kind, v2_controllers="cpuset cpu io memory hugetlb pids"):
        self.base = str(base)
        self.kind = kind
        self.writes = []  # (path, text) in order
        if kind == UNIFIED:
            os.makedirs(self.base)
            self.layout = Layout(kind=UNIFIED, unified=self.base,
                                 mounts={c: self.base for c in v2_controllers.split()})
            self._files(self.base, {"cgroup.procs": "", "cgroup.controllers": v2_controllers,
                                    "cgroup.subtree_control": ""})
        else:
            mounts = {}
            for ctrl in V1_CONTROLLERS:
                root = os.path.join(self.base, ctrl)
                os.makedirs(root)
                mounts[ctrl] = root
                self._files(root, {"cgroup.procs": "", "tasks": ""})
            self._files(mounts["cpuset"], {"cpuset.cpus": "0-3", "cpuset.mems": "0"})
            self._files(mounts["memory"], {"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"})
            self.layout = Layout(kind=kind, mounts=mounts,
                                 unified=os.path.join(self.base, "unified") if kind == HYBRID else None)

    @staticmethod
    def _files(path, files):
        for name, text in files.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(text)

    def _controller_of(self, path):
        rel = os.path.relpath(path, self.base)
        return rel.split(os.sep)[0]

    def mkdir(self, path):
        os.mkdir(path)
        files = {"cgroup.procs": ""}
        if self.kind == UNIFIED:
            with open(os.path.join(os.path.dirname(path), "cgroup.subtree_control")) as f:
                files["cgroup.controllers"] = f.read()
            files.update({"cgroup.subtree_control": "", "cgroup.kill": "", "cgroup.events": "populated 0\n"})
            if "memory" in files["cgroup.controllers"].split():
                files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"
        else:
            ctrl = self._controller_of(path)
            if ctrl == "cpuset":
                files.update({"cpuset.cpus": "", "cpuset.mems": ""})
            elif ctrl == "freezer":
                files["freezer.state"] = "THAWED"
            elif ctrl == "memory":
                files["memory.oom_control"] = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
        self._files(path, files)

    def rmdir(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if any(e.is_dir() for e in os.scandir(path)):
            raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY), path)
        with open(os.path.join(path, "cgroup.procs")) as f:
            if f.read().split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        for entry in os.scandir(path):
            os.unlink(entry.path)
        os.rmdir(path)

    def write(self, path, text):
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        self.writes.append((path, text))
        name, cgdir = os.path.basename(path), os.path.dirname(path)
        if name == "cgroup.subtree_control":
            available = open(os.path.join(cgdir, "cgroup.controllers")).read().split()
            enabled = open(path).read().split()
            op, ctrl = text[0], text[1:]
            if ctrl not in available:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
            if cgdir != self.base and open(os.path.join(cgdir, "cgroup.procs")).read().split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)  # no internal processes
            enabled = [c for c in enabled if c != ctrl] + ([ctrl] if op == "+" else [])
            text = " ".join(enabled)
            for child in os.scandir(cgdir):  # what children are offered follows at once
                if child.is_dir():
                    self._files(child.path, {"cgroup.controllers": text})
        elif name == "cgroup.procs":
            if self.kind == UNIFIED and open(os.path.join(cgdir, "cgroup.subtree_control")).read().split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
            if self._controller_of(path) == "cpuset" and not open(os.path.join(cgdir, "cpuset.cpus")).read().strip():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            text = open(path).read() + text.strip() + "\n"
        with open(path, "w") as f:
            f.write(text)


def install(fake, monkeypatch):
    for name in ("mkdir", "rmdir", "write"):
        monkeypatch.setattr(fs, name, getattr(fake, name))
    return fake


@pytest.fixture(params=[HYBRID, LEGACY, UNIFIED])
def cgfs(request, tmp_path, monkeypatch):
    return install(FakeCgroupFS(tmp_path / "cg", request.param), monkeypatch)


@pytest.fixture
def v1fs(tmp_path, monkeypatch):
    return install(FakeCgroupFS(tmp_path / "cg", HYBRID), monkeypatch)


@pytest.fixture
def v2fs(tmp_path, monkeypatch):
    return install(FakeCgroupFS(tmp_path / "cg", UNIFIED), monkeypatch)


def read(path):
    with open(path) as f:
        return f.read()


V1_TREE_ROOTS = ("memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "cpuset", "devices")


# -- paths ---------------------------------------------------------------------

def test_paths_in_every_v1_hierarchy_minipod_uses(v1fs):
    pod = open_pod_cgroup("minipod", "default_web_1a2b3c4d", layout=v1fs.layout)
    assert pod.path == "/minipod/default_web_1a2b3c4d"
    assert pod.dirs() == [os.path.join(v1fs.base, c, "minipod/default_web_1a2b3c4d") for c in V1_TREE_ROOTS]
    app = pod.child("app")
    assert app.path == "/minipod/default_web_1a2b3c4d/app"
    assert app.procs_files() == [os.path.join(v1fs.base, c, "minipod/default_web_1a2b3c4d/app/cgroup.procs")
                                 for c in V1_TREE_ROOTS]
    # devices too: a container's device rules live there (minipod/devices.py)
    assert any("/devices/" in d for d in pod.dirs())


def test_comounted_v1_controllers_share_one_directory(tmp_path):
    cpu = str(tmp_path / "cpu,cpuacct")
    layout = Layout(kind=LEGACY, mounts={"cpu": cpu, "cpuacct": cpu, "memory": str(tmp_path / "memory")})
    pod = open_pod_cgroup("minipod", "p", layout=layout)
    assert pod.dirs() == [str(tmp_path / "memory/minipod/p"), cpu + "/minipod/p"]


def test_one_procs_file_on_v2(v2fs):
    app = open_pod_cgroup("minipod", "p", layout=v2fs.layout).child("app")
    assert app.procs_files() == [os.path.join(v2fs.base, "minipod/p/app/cgroup.procs")]


def test_nested_parent_is_allowed(v2fs):
    pod = open_pod_cgroup("/tests/minipod-x/", "p", layout=v2fs.layout)
    assert pod.path == "/tests/minipod-x/p"


@pytest.mark.parametrize("parent,pod_id", [("minipod", ""), ("minipod", "a/b"), ("minipod", ".."),
                                           ("", "p"), ("a/../b", "p"), ("minipod", "x\0y")])
def test_bad_names_are_refused_before_anything_is_made(v2fs, parent, pod_id):
    with pytest.raises(CgroupError, match="not a valid cgroup"):
        open_pod_cgroup(parent, pod_id, layout=v2fs.layout)
    assert v2fs.writes == []


def test_bad_child_name_is_refused(v2fs):
    pod = open_pod_cgroup("minipod", "p", layout=v2fs.layout)
    with pytest.raises(CgroupError, match="not a valid cgroup name"):
        pod.child("../escape")


# -- create / exists -----------------------------------------------------------

def test_create_is_idempotent_and_makes_every_dir(cgfs):
    pod = open_pod_cgroup("minipod", "p", layout=cgfs.layout)
    assert not pod.exists()
    pod.create()
    pod.create()
    app = pod.child("app")
    app.create()
    app.create()
    assert pod.exists() and app.exists()
    for d in app.dirs():
        assert os.path.isdir(d)


def test_v1_cpuset_values_are_copied_into_every_new_dir(v1fs):
    pod = open_pod_cgroup("minipod", "p", layout=v1fs.layout)
    pod.create()
    app = pod.child("app")
    app.create()
    cpuset = v1fs.layout.mounts["cpuset"]
    for rel in ("minipod", "minipod/p", "minipod/p/app"):
        assert read(os.path.join(cpuset, rel, "cpuset.cpus")) == "0-3"
        assert read(os.path.join(cpuset, rel, "cpuset.mems")) == "0"
    # ...which is what lets a process join (the fake refuses an empty cpuset)
    app.add(os.getpid())
    assert read(os.path.join(cpuset, "minipod/p/app/cgroup.procs")).split() == [str(os.getpid())]


def test_v1_cpuset_already_set_is_left_alone(v1fs):
    cpuset = v1fs.layout.mounts["cpuset"]
    v1fs.mkdir(os.path.join(cpuset, "minipod"))
    v1fs.write(os.path.join(cpuset, "minipod/cpuset.cpus"), "1")
    v1fs.write(os.path.join(cpuset, "minipod/cpuset.mems"), "0")
    open_pod_cgroup("minipod", "p", layout=v1fs.layout).create()
    assert read(os.path.join(cpuset, "minipod/cpuset.cpus")) == "1"
    assert read(os.path.join(cpuset, "minipod/p/cpuset.cpus")) == "1"


def test_v2_enables_wanted_controllers_down_to_the_pod_only(v2fs):
    pod = open_pod_cgroup("minipod", "p", layout=v2fs.layout)
    pod.create()
    base = v2fs.base
    # ready for children as soon as the pod exists
    assert set(read(os.path.join(base, "minipod/p/cgroup.subtree_control")).split()) == {"cpu", "io", "memory", "pids"}
    pod.child("app").create()
    for rel in (".", "minipod", "minipod/p"):
        assert set(read(os.path.join(base, rel, "cgroup.subtree_control")).split()) == {"cpu", "io", "memory", "pids"}
    # the container is a leaf: nothing enabled, so processes may live there
    assert read(os.path.join(base, "minipod/p/app/cgroup.subtree_control")) == ""
    pod.child("app").add(os.getpid())
    # cpuset and hugetlb are offered but not wanted
    assert not any("cpuset" in text or "hugetlb" in text for _p, text in v2fs.writes)


def test_v2_create_twice_writes_nothing_new(v2fs):
    pod = open_pod_cgroup("minipod", "p", layout=v2fs.layout)
    pod.create()
    before = list(v2fs.writes)
    pod.create()
    assert v2fs.writes == before


def test_v2_only_enables_what_is_offered(tmp_path, monkeypatch):
    fake = install(FakeCgroupFS(tmp_path / "cg", UNIFIED, v2_controllers="memory pids"), monkeypatch)
    open_pod_cgroup("minipod", "p", layout=fake.layout).create()
    assert set(read(os.path.join(fake.base, "minipod/p/cgroup.subtree_control")).split()) == {"memory", "pids"}


def test_v2_busy_parent_is_a_warning_not_a_failure(v2fs, caplog):
    # Someone put a process straight into the parent: it cannot delegate.
    v2fs.mkdir(os.path.join(v2fs.base, "minipod"))
    with open(os.path.join(v2fs.base, "minipod/cgroup.procs"), "w") as f:
        f.write("1\n")
    pod = open_pod_cgroup("minipod", "p", layout=v2fs.layout)
    pod.create()
    assert pod.exists()
    assert "cannot enable cpu in" in caplog.text and "Device or resource busy" in caplog.text


def test_create_failure_names_the_path(v1fs, monkeypatch):
    def refuse(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    monkeypatch.setattr(fs, "mkdir", refuse)
    pod = open_pod_cgroup("minipod", "x", layout=v1fs.layout)
    with pytest.raises(CgroupError) as info:
        pod.create()
    memory = v1fs.layout.mounts["memory"]
    assert str(info.value) == f"create cgroup {memory}/minipod: Permission denied"


# -- add / pids / memory events -------------------------------------------------

def test_add_writes_the_pid_to_every_procs_file(cgfs):
    pod = open_pod_cgroup("minipod", "p", layout=cgfs.layout)
    pod.create()
    app = pod.child("app")
    app.create()
    app.add(4242)
    for procs in app.procs_files():
        assert read(procs).split() == ["4242"]
    assert app.pids() == [4242]


def test_pod_pids_are_collected_recursively(cgfs):
    pod = open_pod_cgroup("minipod", "p", layout=cgfs.layout)
    pod.create()
    for name, pid in (("pause", 10), ("app", 30), ("sidecar", 20)):
        c = pod.child(name)
        c.create()
        c.add(pid)
    assert pod.pids() == [10, 20, 30]
    assert pod.child("sidecar").pids() == [20]


def test_pids_of_a_missing_cgroup_is_empty(cgfs):
    assert open_pod_cgroup("minipod", "nope", layout=cgfs.layout).pids() == []


def test_add_to_a_missing_cgroup_names_the_file(cgfs):
    app = open_pod_cgroup("minipod", "p", layout=cgfs.layout).child("app")
    with pytest.raises(CgroupError, match=r"move pid 7 into .*/minipod/p/app/cgroup.procs: No such file"):
        app.add(7)


def test_oom_kill_counts(cgfs):
    pod = open_pod_cgroup("minipod", "p", layout=cgfs.layout)
    pod.create()
    app = pod.child("app")
    app.create()
    assert app.memory_events()["oom_kill"] == 0
    assert not app.oom_killed()
    if cgfs.kind == UNIFIED:
        events = os.path.join(app.dirs()[0], "memory.events")
        text = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"
    else:
        events = os.path.join(cgfs.layout.mounts["memory"], app.relpath, "memory.oom_control")
        text = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
    with open(events, "w") as f:
        f.write(text)
    assert app.oom_killed()
    assert app.memory_events()["oom_kill"] == 1


def test_no_memory_controller_means_no_events(tmp_path):
    layout = Layout(kind=LEGACY, mounts={"pids": str(tmp_path)})
    app = open_pod_cgroup("minipod", "p", layout=layout).child("app")
    assert app.memory_events() == {}
    assert not app.oom_killed()


# -- kill / destroy -----------------------------------------------------------

@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_v1_kill_all_freezes_signals_and_thaws(v1fs, sleeper):
    pod = open_pod_cgroup("minipod", "p", layout=v1fs.layout)
    pod.create()
    app = pod.child("app")
    app.create()
    app.add(sleeper.pid)
    # The fake does not drop dead pids from cgroup.procs, so it never empties.
    assert pod.kill_all(signal.SIGKILL, timeout=0.05) is False
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    state = os.path.join(v1fs.layout.mounts["freezer"], "minipod/p/freezer.state")
    states = [text for path, text in v1fs.writes if path == state]
    assert states[:2] == ["FROZEN", "THAWED"]
    assert read(state) == "THAWED"


def test_v2_kill_all_uses_cgroup_kill(v2fs):
    pod = open_pod_cgroup("minipod", "p", layout=v2fs.layout)
    pod.create()
    assert pod.kill_all() is True
    assert (os.path.join(v2fs.base, "minipod/p/cgroup.kill"), "1") in v2fs.writes


def test_v2_kill_all_without_cgroup_kill_signals_each_pid(v2fs, sleeper):
    pod = open_pod_cgroup("minipod", "p", layout=v2fs.layout)
    pod.create()
    app = pod.child("app")
    app.create()
    app.add(sleeper.pid)
    os.unlink(os.path.join(v2fs.base, "minipod/p/cgroup.kill"))  # a kernel before 5.14
    pod.kill_all(signal.SIGTERM)
    assert sleeper.wait(timeout=5) == -signal.SIGTERM


def test_destroy_removes_the_pod_and_nothing_else(cgfs):
    layout = cgfs.layout
    keep = open_pod_cgroup("minipod", "keep", layout=layout)
    keep.create()
    keep.child("app").create()
    pod = open_pod_cgroup("minipod", "p", layout=layout)
    pod.create()
    for name in ("pause", "app"):
        pod.child(name).create()
    pod.destroy()
    assert not pod.exists()
    assert keep.child("app").exists()
    assert list_pod_cgroups("minipod", layout=layout) == ["keep"]
    pod.destroy()  # idempotent
    assert remove_parent_if_empty("minipod", layout=layout) is False
    keep.destroy()
    assert remove_parent_if_empty("minipod", layout=layout) is True
    assert remove_parent_if_empty("minipod", layout=layout) is True
    for root in ([cgfs.base] if cgfs.kind == UNIFIED else [os.path.join(cgfs.base, c) for c in V1_TREE_ROOTS]):
        assert not os.path.exists(os.path.join(root, "minipod"))


def test_destroy_of_a_half_made_pod(v1fs):
    pod = open_pod_cgroup("minipod", "p", layout=v1fs.layout)
    # only the memory hierarchy got the pod before a failure
    memory = v1fs.layout.mounts["memory"]
    v1fs.mkdir(os.path.join(memory, "minipod"))
    v1fs.mkdir(os.path.join(memory, "minipod/p"))
    assert pod.exists()
    assert list_pod_cgroups("minipod", layout=v1fs.layout) == ["p"]
    pod.destroy()
    assert not pod.exists()


def test_destroy_gives_up_on_a_busy_cgroup_with_its_path(v2fs, sleeper):
    pod = open_pod_cgroup("minipod", "p", layout=v2fs.layout)
    pod.create()
    app = pod.child("app")
    app.create()
    app.add(sleeper.pid)  # the fake keeps listing it after it dies: EBUSY forever
    with pytest.raises(CgroupError) as info:
        pod.destroy(timeout=0.1)
    assert str(info.value) == f"remove cgroup {v2fs.base}/minipod/p/app: Device or resource busy"
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    # once the kernel lets go, destroy finishes the job
    with open(os.path.join(app.dirs()[0], "cgroup.procs"), "w") as f:
        f.write("")
    pod.destroy()
    assert not pod.exists()


def test_list_pod_cgroups_without_parent_is_empty(cgfs):
    assert list_pod_cgroups("minipod", layout=cgfs.layout) == []
