"""The native spawn (native/spawn.c through minipod._sys.spawn) against the
real kernel: namespaces, mounts, pivot_root, identity, fds and signals."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from minipod import _sys
from minipod.errors import SpawnError
from minipod.plan import (
    CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, MNT_DETACH, MS_BIND,
    MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_REC, ChDir, Clone, Dup2, Exec, Identity, LinkUp,
    MkDir, MkFile, MkNod, Mount, NoNewPrivs, PivotRoot, Plan, SetHostname, SetNs, Symlink, Umount,
    WriteFile, open_namespace,
)

BUSYBOX = "/bin/busybox"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates namespaces and mounts"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs busybox-static (/bin/busybox)"),
]


# ------------------------------------------------------------------ helpers

def children_of(pid: int) -> list[int]:
    """Every process (zombies included) whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def ns_inode(pid: int | str, ns: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{ns}").st_ino


def read_until_eof(fd: int, timeout: float = 10.0) -> str:
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out reading child output, got {out!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return out.decode()
        out += chunk


def read_lines(fd: int, count: int, timeout: float = 10.0) -> list[str]:
    """Read until ``count`` lines came (the writer may stay alive)."""
    out = b""
    deadline = time.monotonic() + timeout
    while out.count(b"\n") < count:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {count} lines, got {out!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"EOF after {out!r}"
            out += chunk
    return out.decode().splitlines()


def wait_exit_code(pid: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} did not exit")


@pytest.fixture
def spawned():
    """Spawn through this list-like helper: whatever is still running at the
    end of the test is killed and reaped (only these pids)."""
    pids: list[int] = []

    def spawn(plan: Plan) -> int:
        pid = _sys.spawn(plan)
        pids.append(pid)
        return pid

    yield spawn
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Newest first: the init of a pid namespace does not finish exiting
    # until we reaped the processes that joined its namespace.
    for pid in reversed(pids):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


@pytest.fixture
def pipe():
    """A pipe whose read end the test reads and whose write end becomes the
    child's stdout; both closed at the end."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def tmpdir_():
    path = tempfile.mkdtemp(prefix="minipod-spawn-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def sh(command: str, *, envp=("PATH=/bin:/usr/bin",)) -> Exec:
    return Exec(BUSYBOX, ("sh", "-c", command), envp)


# -------------------------------------------------------------------- tests

def test_exec_true_is_our_child_and_exits_zero(spawned):
    pid = spawned(Plan().add(Exec("/bin/true", ("true",))))
    assert pid in children_of(os.getpid())
    assert wait_exit_code(pid) == 0


def test_exit_code_of_the_program_comes_through(spawned):
    pid = spawned(Plan().add(sh("exit 7")))
    assert wait_exit_code(pid) == 7


def test_clone_new_namespaces_hostname_and_loopback(spawned, pipe):
    r, w = pipe
    flags = CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET
    plan = Plan().add(
        Clone(flags),
        SetHostname("pod-x"),
        LinkUp("lo"),
        Dup2(w, 1),
        sh("hostname; echo $$; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; exec sleep 30"),
    )
    pid = spawned(plan)
    os.close(w)
    assert pid in children_of(os.getpid()), "CLONE_PARENT: the clone child is the caller's child"
    hostname, shell_pid, _operstate, lo_flags = read_lines(r, 4)
    assert hostname == "pod-x"
    assert shell_pid == "1"
    assert int(lo_flags, 16) & 0x1, "lo is up (IFF_UP)"
    for ns in ("uts", "pid", "mnt", "ipc", "net"):
        # the shell exec'd sleep, which still holds every namespace
        assert ns_inode(pid, ns) != ns_inode("self", ns), ns
    assert os.uname().nodename != "pod-x"


def test_setns_joins_another_process_namespaces(spawned, pipe):
    r, w = pipe
    owner = spawned(Plan().add(
        Clone(CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWPID),
        SetHostname("owner-ns"),
        Exec(BUSYBOX, ("sleep", "30")),
    ))
    fds = [open_namespace(owner, ns) for ns in ("uts", "net", "pid")]
    try:
        uts, net, pid_ns = fds
        joiner = spawned(Plan(keep_fds=fds).add(
            SetNs(uts, CLONE_NEWUTS, f"/proc/{owner}/ns/uts"),
            SetNs(net, CLONE_NEWNET, f"/proc/{owner}/ns/net"),
            SetNs(pid_ns, CLONE_NEWPID, f"/proc/{owner}/ns/pid"),
            Clone(0),  # entering the pid namespace takes effect for the clone child
            Dup2(w, 1),
            sh("hostname; echo $$; exec sleep 30"),
        ))
    finally:
        for fd in fds:
            os.close(fd)
    os.close(w)
    hostname, shell_pid = read_lines(r, 2)
    assert hostname == "owner-ns"
    assert shell_pid != "1" and int(shell_pid) > 1, "pid inside the owner's namespace, where owner is 1"
    assert joiner in children_of(os.getpid())
    for ns in ("uts", "net", "pid"):
        assert ns_inode(joiner, ns) == ns_inode(owner, ns), ns
        assert ns_inode(joiner, ns) != ns_inode("self", ns), ns


@pytest.mark.parametrize("plan, step, err", [
    (Plan().add(Clone(CLONE_NEWNS), Mount("none", "/tmp", "nosuchfs-minipod"), Exec("/bin/true", ("true",))),
     1, errno.ENODEV),
    (Plan().add(ChDir("/nonexistent-minipod-dir"), Exec("/bin/true", ("true",))),
     0, errno.ENOENT),
    (Plan().add(ChDir("/"), Exec("nosuchcmd-minipod", ("nosuchcmd",), (), "/nonexistent:/usr/bin:/bin")),
     1, errno.ENOENT),
    (Plan().add(Exec("/nonexistent/prog", ("prog",))),
     0, errno.ENOENT),
], ids=["mount-unknown-fstype-after-clone", "chdir-missing", "exec-not-on-path", "exec-missing-path"])
def test_failing_step_raises_spawn_error_and_leaves_no_child(plan, step, err):
    before = children_of(os.getpid())
    with pytest.raises(SpawnError) as caught:
        _sys.spawn(plan)
    assert caught.value.step == step
    assert caught.value.errno == err
    assert caught.value.op is plan.ops[step]
    assert plan.ops[step].describe() in caught.value.args[0]
    assert children_of(os.getpid()) == before, "failed processes are reaped, no zombie left"


def test_stepwise_spawn_gives_the_clone_child_before_its_exec(pipe, tmpdir_):
    """start_spawn/clone_pid/finish: the Clone step's child and its new
    namespaces exist while its later steps still run (here: a wait on a
    FIFO that only this test opens), and finish() returns it once it exec'd."""
    r, w = pipe
    fifo = os.path.join(tmpdir_, "gate")
    os.mkfifo(fifo)
    plan = Plan(keep_fds=[w]).add(Clone(CLONE_NEWUTS | CLONE_NEWNET), SetHostname("stepwise"),
                                  WriteFile(fifo, "go"), Dup2(w, 1), sh("hostname"))
    spawning = _sys.start_spawn(plan)
    pid = spawning.clone_pid()
    try:
        assert pid in children_of(os.getpid())
        assert ns_inode(pid, "net") != ns_inode("self", "net"), "its namespace exists before its exec"
        with open(fifo) as gate:  # lets the child's WriteFile step through
            assert gate.read() == "go"
        assert spawning.finish() == pid
        assert spawning.finish() == pid, "finish() again gives the same outcome"
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # it may be stuck at the FIFO
        with contextlib.suppress(SpawnError):
            spawning.finish()
        raise
    os.close(w)
    assert read_until_eof(r).strip() == "stepwise"
    assert wait_exit_code(pid) == 0


@pytest.mark.parametrize("plan, step", [
    (Plan().add(ChDir("/nonexistent-minipod-dir"), Clone(CLONE_NEWUTS), Exec("/bin/true", ("true",))), 0),
    (Plan().add(Clone(CLONE_NEWUTS), ChDir("/nonexistent-minipod-dir"), Exec("/bin/true", ("true",))), 1),
], ids=["before-the-clone", "after-the-clone"])
def test_stepwise_spawn_failures_are_raised_and_reaped(plan, step):
    """A step before the clone fails in clone_pid(). One after it fails in
    finish(), or already in clone_pid() when the clone's child reports its
    failure before its parent has reported the clone: the two write to
    the same pipe, in no fixed order."""
    before = children_of(os.getpid())
    spawning = _sys.start_spawn(plan)
    with pytest.raises(SpawnError) as caught:
        assert spawning.clone_pid() > 0 and step > 0
        spawning.finish()
    assert caught.value.step == step and caught.value.errno == errno.ENOENT
    with pytest.raises(SpawnError):
        spawning.finish()  # the same failure again, nothing left to wait for
    assert children_of(os.getpid()) == before, "failed processes are reaped, no zombie left"


def test_exec_search_remembers_eacces(tmpdir_):
    not_executable = os.path.join(tmpdir_, "tool")
    with open(not_executable, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(not_executable, 0o644)
    plan = Plan().add(Exec("tool", ("tool",), (), f"/nonexistent:{tmpdir_}:/bin"))
    with pytest.raises(SpawnError) as caught:
        _sys.spawn(plan)
    assert (caught.value.step, caught.value.errno) == (0, errno.EACCES)


def test_exec_searches_path_in_order(spawned, pipe, tmpdir_):
    r, w = pipe
    # missing dirs and dirs without the program are skipped until a hit
    plan = Plan().add(Dup2(w, 1), Exec("echo", ("echo", "found"), (), f"/nonexistent:{tmpdir_}:/bin"))
    pid = spawned(plan)
    os.close(w)
    assert read_until_eof(r) == "found\n"
    assert wait_exit_code(pid) == 0


def test_optional_step_with_enoent_is_skipped(spawned, pipe):
    r, w = pipe
    plan = Plan().add(
        Clone(CLONE_NEWNS),
        Umount("/nonexistent-minipod", optional=True),
        WriteFile("/nonexistent-minipod/x", "1", optional=True),
        Dup2(w, 1),
        sh("echo reached"),
    )
    pid = spawned(plan)
    os.close(w)
    assert read_until_eof(r) == "reached\n"
    assert wait_exit_code(pid) == 0


def test_optional_step_fails_on_other_errors(tmpdir_):
    # umount of a directory that is not a mount point: EINVAL, not skipped
    plan = Plan().add(Clone(CLONE_NEWNS), Umount(tmpdir_, optional=True), Exec("/bin/true", ("true",)))
    with pytest.raises(SpawnError) as caught:
        _sys.spawn(plan)
    assert (caught.value.step, caught.value.errno) == (1, errno.EINVAL)


def test_same_step_not_optional_fails():
    plan = Plan().add(WriteFile("/nonexistent-minipod/x", "1"), Exec("/bin/true", ("true",)))
    with pytest.raises(SpawnError) as caught:
        _sys.spawn(plan)
    assert (caught.value.step, caught.value.errno) == (0, errno.ENOENT)


def test_container_like_plan(spawned, pipe, tmpdir_):
    r, w = pipe
    root = os.path.join(tmpdir_, "root")
    os.mkdir(root)
    caps = _sys.CAPABILITIES
    bounding = (1 << caps["CAP_CHOWN"]) | (1 << caps["CAP_NET_BIND_SERVICE"]) | (1 << caps["CAP_KILL"])
    kept = (1 << caps["CAP_CHOWN"]) | (1 << caps["CAP_NET_BIND_SERVICE"])
    ambient = 1 << caps["CAP_NET_BIND_SERVICE"]
    plan = Plan().add(
        Clone(CLONE_NEWNS | CLONE_NEWPID),
        Mount(None, "/", None, MS_REC | MS_PRIVATE),
        Mount("tmpfs", root, "tmpfs", MS_NOSUID, "mode=755"),
        MkFile(f"{root}/bin/busybox", 0o755),
        Mount(BUSYBOX, f"{root}/bin/busybox", None, MS_BIND),
        Symlink("busybox", f"{root}/bin/sh"),
        MkDir(f"{root}/dev", 0o755),
        MkNod(f"{root}/dev/null", stat.S_IFCHR | 0o666, 1, 3),
        MkDir(f"{root}/proc", 0o555),
        Mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC),
        MkDir(f"{root}/home/app", 0o755),
        PivotRoot(root),
        ChDir("/home/app"),
        Dup2(w, 1),
        Identity(uid=1000, gid=1000, groups=(1000, 2000), bounding=bounding, effective=kept,
                 permitted=kept, inheritable=kept, ambient=ambient),
        NoNewPrivs(),
        Exec("sh", ("sh", "-c",
                    "id -u; id -g; id -G; pwd; echo $$; ls /; echo x > /dev/null && echo devnull-ok;"
                    " grep -E '^(Cap|NoNewPrivs)' /proc/self/status"),
             ("PATH=/bin",), "/bin"),
    )
    pid = spawned(plan)
    os.close(w)
    lines = read_until_eof(r).splitlines()
    assert wait_exit_code(pid) == 0, lines
    uid, gid, groups, cwd, shell_pid, *rest = lines
    assert (uid, gid, cwd, shell_pid) == ("1000", "1000", "/home/app", "1")
    assert groups.split() == ["1000", "2000"]
    status = dict(line.split(":\t") for line in rest if ":\t" in line)
    listing = [line for line in rest if ":\t" not in line]
    assert listing[:-1] == ["bin", "dev", "home", "proc"], "the tmpfs is the root now"
    assert listing[-1] == "devnull-ok"
    assert int(status["CapBnd"], 16) == bounding
    assert int(status["CapInh"], 16) == kept
    # a non-root uid keeps across exec only its ambient capabilities
    assert int(status["CapEff"], 16) == ambient
    assert int(status["CapPrm"], 16) == ambient
    assert int(status["CapAmb"], 16) == ambient
    assert status["NoNewPrivs"] == "1"
    # the tmpfs lived in the child's mount namespace only
    assert os.listdir(root) == []


def test_pivot_root_leaves_no_host_mount(spawned, tmpdir_):
    root = os.path.join(tmpdir_, "root")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    pid = spawned(Plan().add(
        Clone(CLONE_NEWNS),
        Mount(None, "/", None, MS_REC | MS_PRIVATE),
        Mount(root, root, None, MS_BIND | MS_REC),  # pivot_root wants a mount point
        PivotRoot(root),
        Umount("/nothing-here", MNT_DETACH, optional=True),
        Exec("/bin/busybox", ("busybox", "true")),
    ))
    assert wait_exit_code(pid) == 0
    with open("/proc/self/mountinfo") as f:
        assert root not in f.read()


def test_dup2_and_default_signals_in_child(spawned, pipe):
    r, w = pipe
    old_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        # Python itself ignores SIGPIPE: the child must not inherit that.
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
        pid = spawned(Plan().add(Dup2(w, 1), Exec(BUSYBOX, ("cat", "/proc/self/status"))))
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        signal.signal(signal.SIGUSR2, old_usr2)
    os.close(w)
    status = dict(line.split(":\t", 1) for line in read_until_eof(r).splitlines() if ":\t" in line)
    assert wait_exit_code(pid) == 0
    assert int(status["SigIgn"], 16) == 0
    assert int(status["SigBlk"], 16) == 0
    assert int(status["SigCgt"], 16) == 0


def test_sigpipe_kills_child_by_default(spawned):
    r, w = os.pipe()
    os.close(r)  # writing to w now raises SIGPIPE
    try:
        pid = spawned(Plan().add(Dup2(w, 1), Exec(BUSYBOX, ("echo", "nobody reads this"))))
    finally:
        os.close(w)
    assert wait_exit_code(pid) == -signal.SIGPIPE


def test_no_fd_leaks_into_the_child(spawned, pipe):
    r, w = pipe
    leaky = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(leaky, True)
    os.set_inheritable(w, True)
    try:
        pid = spawned(Plan().add(Dup2(leaky, 0), Dup2(w, 1), Dup2(w, 2),
                                 Exec(BUSYBOX, ("sleep", "30"))))
    finally:
        os.close(leaky)
    # spawn returns once the child exec'd: its fd table is final
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]


def test_dup2_targets_above_2_stay_open(spawned, pipe):
    r, w = pipe
    assert not os.get_inheritable(w)
    high = w + 10  # a number nothing uses yet, maybe the report pipe's
    pid = spawned(Plan().add(Dup2(w, w), Dup2(w, high), Exec(BUSYBOX, ("sleep", "30"))))
    fds = os.listdir(f"/proc/{pid}/fd")
    assert sorted(fds, key=int) == ["0", "1", "2", str(w), str(high)]
    assert os.readlink(f"/proc/{pid}/fd/{high}") == os.readlink(f"/proc/self/fd/{w}")


def test_dup2_onto_the_report_pipe_number_is_safe(spawned, pipe):
    r, w = pipe
    # The report pipe takes the lowest free numbers: aim Dup2 at all of them.
    free = []
    probe = os.open("/dev/null", os.O_RDONLY)
    free.append(probe)
    free.append(os.dup(probe))
    for fd in free:
        os.close(fd)
    steps = [Dup2(w, fd) for fd in free]
    pid = spawned(Plan().add(*steps, Exec(BUSYBOX, ("sleep", "30"))))
    # spawn returned, so the caller saw EOF: the pipe was closed by exec
    fds = os.listdir(f"/proc/{pid}/fd")
    for fd in free:
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == os.readlink(f"/proc/self/fd/{w}")
    assert len(fds) == 3 + len(free)


def test_spawn_into_cgroup_like_file_write(spawned, tmpdir_):
    # WriteFile opens without create or truncate, then writes
    target = os.path.join(tmpdir_, "value")
    with open(target, "w") as f:
        f.write("abcdef")
    pid = spawned(Plan().add(WriteFile(target, "XY"), Exec("/bin/true", ("true",))))
    assert wait_exit_code(pid) == 0
    with open(target) as f:
        assert f.read() == "XYcdef"


WRAPPERS_SCRIPT = r"""
import errno, json, os, sys
from minipod import _sys
from minipod.errors import KernelError
from minipod.plan import CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWUTS, MNT_DETACH, MS_PRIVATE, MS_REC

d = sys.argv[1]
out = {}
_sys.unshare(CLONE_NEWNS | CLONE_NEWUTS)
_sys.mount(None, "/", None, MS_REC | MS_PRIVATE)
_sys.sethostname("wrapped")
out["hostname"] = os.uname().nodename
parent_uts = os.open(f"/proc/{os.getppid()}/ns/uts", os.O_RDONLY)
try:
    _sys.setns(parent_uts, CLONE_NEWNET)
except KernelError as e:
    out["setns_error"] = [e.errno, e.args[0]]
_sys.setns(parent_uts, CLONE_NEWUTS)
out["hostname_after_setns"] = os.uname().nodename
try:
    _sys.mount("none", d, "nosuchfs-minipod")
except KernelError as e:
    out["mount_error"] = [e.errno, e.args[0]]
_sys.mount("tmpfs", d, "tmpfs", 0, "size=1m")
os.mkdir(os.path.join(d, "old"))
with open(os.path.join(d, "marker"), "w") as f:
    f.write("x")
os.chdir(d)
_sys.pivot_root(".", "old")
os.chdir("/")
_sys.umount2("/old", MNT_DETACH)
out["root"] = sorted(os.listdir("/"))
print(json.dumps(out))
"""


def test_syscall_wrappers(tmpdir_):
    # In a child process: unshare and pivot_root would change pytest itself.
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", WRAPPERS_SCRIPT, tmpdir_], capture_output=True,
                          text=True, timeout=30, cwd=repo)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["hostname"] == "wrapped"
    assert out["hostname_after_setns"] == os.uname().nodename
    assert out["setns_error"][0] == errno.EINVAL
    assert out["setns_error"][1].startswith("setns net from fd ")
    assert out["mount_error"] == [errno.ENODEV, f"mount nosuchfs-minipod none on {tmpdir_}: No such device"]
    assert out["root"] == ["marker", "old"]
    assert os.listdir(tmpdir_) == [], "the tmpfs lived in the child's mount namespace only"
