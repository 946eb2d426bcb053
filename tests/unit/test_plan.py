"""The spawn plan as data: flag names, step descriptions (what --debug
shows), and how minipod._sys checks and encodes a plan. No root needed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from minipod import _sys
from minipod.errors import KernelError, MinipodError, SpawnError
from minipod.plan import (
    CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, MNT_DETACH, MS_BIND,
    MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, ChDir, Clone, Dup2, Exec,
    Identity, LinkUp, MkDir, MkFile, MkNod, Mount, NoNewPrivs, PivotRoot, Plan, SetCtty,
    SetHostname, SetNs, SetSid, Symlink, Umount, Unshare, WriteFile, mount_flag_names,
    ns_flag_names,
)


def test_ns_flag_names():
    assert ns_flag_names(0) == "none"
    assert ns_flag_names(CLONE_NEWNET) == "net"
    assert ns_flag_names(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) == "net,ipc,uts"
    assert ns_flag_names(CLONE_NEWPID | CLONE_NEWNS) == "pid,mnt"


def test_mount_flag_names():
    assert mount_flag_names(0) == "0"
    assert mount_flag_names(MS_REC | MS_PRIVATE) == "rec,private"
    assert mount_flag_names(MS_BIND | MS_REMOUNT | MS_RDONLY) == "ro,remount,bind"
    assert mount_flag_names(MS_NOSUID | MS_NODEV) == "nosuid,nodev"


@pytest.mark.parametrize("op, text", [
    (SetNs(5, CLONE_NEWNET, "/proc/42/ns/net"), "setns net from /proc/42/ns/net"),
    (SetNs(5, CLONE_NEWIPC), "setns ipc from fd 5"),
    (Clone(CLONE_NEWNS | CLONE_NEWPID), "clone with new namespaces: pid,mnt"),
    (Clone(0), "clone with new namespaces: none"),
    (Unshare(CLONE_NEWNS), "unshare mnt"),
    (Mount(None, "/", None, MS_REC | MS_PRIVATE), "mount on / [rec,private]"),
    (Mount("proc", "/r/proc", "proc", MS_NOSUID), "mount proc proc on /r/proc [nosuid]"),
    (Mount("/src", "/dst", None, MS_BIND | MS_REC), "mount bind /src on /dst [bind,rec]"),
    (Mount("tmpfs", "/r/dev", "tmpfs", 0, "mode=755"), "mount tmpfs tmpfs on /r/dev [0] (mode=755)"),
    (Umount("/old"), "umount /old"),
    (MkDir("/r/dev/pts", 0o755), "mkdir -p /r/dev/pts (755)"),
    (MkFile("/r/etc/hosts"), "touch /r/etc/hosts"),
    (MkNod("/r/dev/null", stat.S_IFCHR | 0o666, 1, 3), "mknod /r/dev/null c 1 3 (666)"),
    (Symlink("/proc/self/fd", "/r/dev/fd"), "symlink /r/dev/fd -> /proc/self/fd"),
    (MkFile("/r/etc/hosts", root="/r"), "touch /r/etc/hosts (resolved inside the container root)"),
    (Mount("/h", "/r/etc/hosts", None, MS_BIND, root="/r"),
     "mount bind /h on /r/etc/hosts [bind] (resolved inside the container root)"),
    (WriteFile("/sys/fs/cgroup/x/cgroup.procs", "0"), "write '0' to /sys/fs/cgroup/x/cgroup.procs"),
    (PivotRoot("/r"), "pivot_root into /r and detach the old root"),
    (SetHostname("web"), "sethostname web"),
    (LinkUp(), "ip link set lo up"),
    (SetSid(), "setsid"),
    (SetCtty(0), "controlling terminal from fd 0"),
    (Dup2(7, 1), "dup2 fd 7 -> 1"),
    (ChDir("/app"), "chdir /app"),
    (Identity(1000, 1000, (1000, 27), bounding=0x5, effective=0x1, ambient=0),
     "become uid 1000 gid 1000 groups 1000,27; caps bounding=0x5 effective=0x1 ambient=0x0"),
    (Identity(), "become uid 0 gid 0 groups none; caps bounding=0x0 effective=0x0 ambient=0x0"),
    (NoNewPrivs(), "prctl(PR_SET_NO_NEW_PRIVS)"),
    (Exec("sh", ("sh", "-c", "echo hi")), "exec sh ['-c', 'echo hi']"),
])
def test_describe(op, text):
    # whitespace-normalized: a missing source/fstype must not matter
    assert " ".join(op.describe().split()) == " ".join(text.split())


def test_plan_describe_numbers_steps_and_add_chains():
    plan = Plan()
    assert plan.add(Clone(CLONE_NEWUTS), SetHostname("a")) is plan
    plan.add(Exec("/bin/true", ("true",)))
    assert plan.describe() == [
        " 0. clone with new namespaces: uts",
        " 1. sethostname a",
        " 2. exec /bin/true []",
    ]


def test_optional_only_where_declared():
    assert Umount("/x", MNT_DETACH, optional=True).optional
    assert not Mount("a", "b").optional
    assert not hasattr(ChDir("/"), "optional")


# ------------------------------------------------------- minipod._sys, pure

def test_capabilities_table():
    caps = _sys.CAPABILITIES
    assert caps["CAP_CHOWN"] == 0
    assert caps["CAP_NET_BIND_SERVICE"] == 10
    assert caps["CAP_SYS_ADMIN"] == 21
    assert caps["CAP_AUDIT_READ"] == 37
    assert caps["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.values()) == list(range(41))


def test_cap_last_cap_is_a_sane_number():
    assert 36 <= _sys.cap_last_cap() <= 63


@pytest.mark.parametrize("ops, message", [
    ([], "must end with an Exec"),
    ([ChDir("/")], "must end with an Exec"),
    ([Exec("/bin/true", ("true",)), Exec("/bin/true", ("true",))], "Exec step before its end"),
    ([Clone(0), Clone(0), Exec("/bin/true", ("true",))], "more than one Clone"),
])
def test_bad_plan_shapes_are_refused_before_forking(ops, message):
    with pytest.raises(MinipodError, match=message):
        _sys.spawn(Plan(ops=ops))


@pytest.fixture
def native():
    """The compiled module: the encoder needs it, not the kernel."""
    return pytest.importorskip("minipod._native", reason="native module not built (run make)")


def test_nul_bytes_are_refused(native):
    with pytest.raises(MinipodError, match="NUL"):
        _sys.spawn(Plan().add(Exec("/bin/true", ("tr\0ue",))))


def test_pause_binary_honours_env(tmp_path, monkeypatch):
    fake = tmp_path / "pause"
    fake.write_bytes(b"")
    fake.chmod(0o755)
    monkeypatch.setenv("MINIPOD_PAUSE", str(fake))
    assert _sys.pause_binary() == str(fake)
    fake.chmod(0o644)
    with pytest.raises(MinipodError, match="not executable") as caught:
        _sys.pause_binary()
    assert "make" in caught.value.hint
    monkeypatch.setenv("MINIPOD_PAUSE", str(tmp_path / "missing"))
    with pytest.raises(MinipodError, match="not found"):
        _sys.pause_binary()


def test_importing_sys_does_not_load_the_native_module():
    code = "import sys, minipod._sys; print('minipod._native' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=_repo_root())
    assert out.stdout.strip() == "False"


def test_spawn_error_names_the_step():
    op = ChDir("/nowhere")
    err = SpawnError(3, op, 2)
    assert (err.step, err.op, err.errno) == (3, op, 2)
    assert isinstance(err, KernelError)
    assert err.args[0] == "step 3 (chdir /nowhere): No such file or directory"


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



def test_encoder_fills_flat_records(native):
    enc = _sys._Encoder(native)
    ffi, lib = native.ffi, native.lib
    recs = ffi.new("struct mp_op[]", 4)
    enc.fill(recs[0], SetNs(9, CLONE_NEWNET, "x"))
    enc.fill(recs[1], Mount(None, "/t", "tmpfs", MS_NOSUID, "size=1m"))
    enc.fill(recs[2], Identity(1000, 100, (1, 2), bounding=0xF, effective=1, permitted=3,
                               inheritable=2, ambient=1 << 40))
    enc.fill(recs[3], Exec("sh", ("sh", "-c", "x"), ("A=1",), "/bin:/usr/bin"))

    assert (recs[0].kind, recs[0].fd, recs[0].flags) == (lib.MP_SETNS, 9, CLONE_NEWNET)
    assert recs[1].kind == lib.MP_MOUNT and recs[1].a == ffi.NULL
    assert ffi.string(recs[1].b) == b"/t" and ffi.string(recs[1].c) == b"tmpfs"
    assert ffi.string(recs[1].d) == b"size=1m" and recs[1].flags == MS_NOSUID
    ident = recs[2]
    assert (ident.uid, ident.gid, ident.ngroups) == (1000, 100, 2)
    assert [ident.groups[i] for i in range(2)] == [1, 2]
    assert list(ident.caps) == [0xF, 1, 3, 2, 1 << 40]
    assert ident.last_cap == _sys.cap_last_cap()
    ex = recs[3]
    assert ffi.string(ex.b) == b"sh" and ffi.string(ex.a) == b"/bin:/usr/bin"
    assert [ffi.string(ex.argv[i]) for i in range(3)] == [b"sh", b"-c", b"x"]
    assert ex.argv[3] == ffi.NULL
    assert ffi.string(ex.envp[0]) == b"A=1" and ex.envp[1] == ffi.NULL


def test_optional_flag_is_encoded(native):
    enc = _sys._Encoder(native)
    rec = native.ffi.new("struct mp_op *")
    enc.fill(rec[0], Umount("/x", optional=True))
    assert rec.optional == 1 and rec.kind == native.lib.MP_UMOUNT and rec.flags == MNT_DETACH


def test_root_is_encoded_and_defaults_to_null(native):
    enc = _sys._Encoder(native)
    ffi = native.ffi
    recs = ffi.new("struct mp_op[]", 4)
    enc.fill(recs[0], MkFile("/r/etc/hosts", root="/r"))
    enc.fill(recs[1], Mount("/h", "/r/etc/hosts", None, MS_BIND, root="/r/"))
    enc.fill(recs[2], MkDir("/r", root="/r"))
    enc.fill(recs[3], MkDir("/r/etc"))
    assert ffi.string(recs[0].root) == b"/r" and ffi.string(recs[0].b) == b"/r/etc/hosts"
    assert ffi.string(recs[1].root) == b"/r/" and ffi.string(recs[1].b) == b"/r/etc/hosts"
    assert ffi.string(recs[2].root) == b"/r"
    assert recs[3].root == ffi.NULL


@pytest.mark.parametrize("op", [
    MkFile("/other/etc/hosts", root="/r"),
    MkDir("/rootfs2/etc", root="/rootfs"),  # a shared prefix is not "under"
    Mount(None, "/r/../etc", None, MS_BIND, root="/r"),
    Symlink("x", "/etc/y", root="/r"),
])
def test_a_path_outside_its_root_is_refused(native, op):
    rec = native.ffi.new("struct mp_op *")
    with pytest.raises(MinipodError, match="is not inside the root"):
        _sys._Encoder(native).fill(rec[0], op)
