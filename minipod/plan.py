"""A spawn plan: the steps a new container process takes before ``execve``.

Python builds the plan; the native module (``native/spawn.c`` through
``minipod._sys.spawn``) carries it out in the child, in C only, because
Python must not run between ``fork`` and ``exec`` and because joining a
mount namespace is refused to a multi-threaded process. The plan is plain
data so that ``--debug`` can print it, step by step, for people who want to
see how a Pod is really made.

How the steps run:

* The caller forks a first child. That child runs the steps in order.
* ``Clone`` splits the plan: the first child clones a second one with the
  given namespace flags and ``CLONE_PARENT`` (so the second child is the
  caller's own child, not a grandchild), reports its pid, and exits. The
  second child runs the remaining steps. Namespaces joined by ``SetNs``
  *before* the clone apply to the second child, which is how a process enters
  an existing PID namespace; ``CLONE_NEWPID`` and ``CLONE_NEWNS`` in the clone
  give it new ones.
* Before ``Exec`` the child always resets signal dispositions and the signal
  mask, and marks every descriptor from 3 up close-on-exec.
* If a step fails, the child reports ``(step index, errno)`` over a
  close-on-exec pipe and exits 127; ``spawn`` then raises ``SpawnError``
  naming the step. A step with ``optional=True`` that fails with ENOENT is
  skipped (masked paths that a kernel does not have).
* ``root``: ``MkDir``, ``MkFile``, ``MkNod``, ``Symlink`` and ``Mount`` may
  name the container's root (the rootfs path). Their path (a mount's
  target) must then be ``root`` or under it, and the part below ``root`` is
  resolved *inside* it, as if ``root`` were ``/`` (``openat2`` with
  ``RESOLVE_IN_ROOT``): before ``PivotRoot`` the process's root is still the
  host's ``/``, and an image's symlink (``/etc/hosts -> /root/x``, ``/etc ->
  /``) must not make the runtime create or mount anything on the host. A
  mount goes onto the resolved target through its fd. Without ``root``
  (``None``) paths are host paths, used as they are.
"""

from __future__ import annotations

import os

from .record import Record

# Namespace flags (linux/sched.h); os.CLONE_* exist only from Python 3.12.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "net": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "pid": CLONE_NEWPID,
    "mnt": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
}

# Mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

_MOUNT_FLAG_NAMES = [
    (MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"),
    (MS_REMOUNT, "remount"), (MS_NOATIME, "noatime"), (MS_BIND, "bind"), (MS_MOVE, "move"),
    (MS_REC, "rec"), (MS_PRIVATE, "private"), (MS_SLAVE, "slave"), (MS_STRICTATIME, "strictatime"),
]


def ns_flag_names(flags: int) -> str:
    names = [name for name, bit in NAMESPACE_FLAGS.items() if flags & bit]
    return ",".join(names) or "none"


def mount_flag_names(flags: int) -> str:
    names = [name for bit, name in _MOUNT_FLAG_NAMES if flags & bit]
    return ",".join(names) or "0"


def _in_root(root: str | None) -> str:
    """The describe() suffix of a step resolved inside a container root
    (the path already starts with that root; no need to say it twice)."""
    return " (resolved inside the container root)" if root else ""


class Op(Record):
    """One step: an immutable record (see ``minipod.record``). ``optional``
    steps that fail with ENOENT are skipped.
    """

    def describe(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


class SetNs(Op):
    """``setns(fd, nstype)``: join the namespace open at ``fd``. ``label``
    says where the fd came from (e.g. ``/proc/123/ns/net``)."""

    fd: int
    nstype: int
    label: str = ""

    def describe(self) -> str:
        return f"setns {ns_flag_names(self.nstype)} from {self.label or f'fd {self.fd}'}"


class Clone(Op):
    """Clone the process that carries on with the rest of the plan, with new
    namespaces ``flags`` (may be 0). At most one per plan."""

    flags: int

    def describe(self) -> str:
        return f"clone with new namespaces: {ns_flag_names(self.flags)}"


class Unshare(Op):
    flags: int

    def describe(self) -> str:
        return f"unshare {ns_flag_names(self.flags)}"


class Mount(Op):
    """``mount(source, target, fstype, flags, data)``; with ``root``, the
    target is resolved inside it and ``source`` stays a host path, except a
    ``source`` equal to ``target`` (bind a path onto itself): that is the
    resolved target too."""

    source: str | None
    target: str
    fstype: str | None = None
    flags: int = 0
    data: str | None = None
    optional: bool = False
    root: str | None = None

    def describe(self) -> str:
        if self.flags & MS_BIND:
            what = f"bind {self.source}"
        else:
            what = " ".join(x for x in (self.fstype, self.source) if x)
        extra = f" ({self.data})" if self.data else ""
        what = f" {what}" if what else ""
        return f"mount{what} on {self.target} [{mount_flag_names(self.flags)}]{extra}{_in_root(self.root)}"


class Umount(Op):
    target: str
    flags: int = MNT_DETACH
    optional: bool = False

    def describe(self) -> str:
        return f"umount {self.target}"


class MkDir(Op):
    """``mkdir -p path`` with ``mode`` for the directories it creates."""

    path: str
    mode: int = 0o755
    root: str | None = None

    def describe(self) -> str:
        return f"mkdir -p {self.path} ({self.mode:o}){_in_root(self.root)}"


class MkFile(Op):
    """Create an empty regular file (and its parent directories) if nothing
    exists at ``path`` — a mount point for a bind-mounted file. With
    ``root``, a dangling symlink at ``path`` is followed inside the root."""

    path: str
    mode: int = 0o644
    root: str | None = None

    def describe(self) -> str:
        return f"touch {self.path}{_in_root(self.root)}"


class MkNod(Op):
    """``mknod(path, mode, makedev(major, minor))``; ``mode`` includes the
    file type (``stat.S_IFCHR``)."""

    path: str
    mode: int
    major: int
    minor: int
    root: str | None = None

    def describe(self) -> str:
        return f"mknod {self.path} c {self.major} {self.minor} ({self.mode & 0o7777:o}){_in_root(self.root)}"


class Symlink(Op):
    target: str
    path: str
    root: str | None = None

    def describe(self) -> str:
        return f"symlink {self.path} -> {self.target}{_in_root(self.root)}"


class WriteFile(Op):
    """Open ``path`` for writing (no create, no truncate) and write
    ``content``: joins a cgroup (``cgroup.procs`` ← ``0``), sets
    ``oom_score_adj``, a sysctl…"""

    path: str
    content: str
    optional: bool = False

    def describe(self) -> str:
        return f"write {self.content!r} to {self.path}"


class PivotRoot(Op):
    """Make ``new_root`` the root: chdir into it, ``pivot_root(".", ".")``,
    detach the old root (``umount2(".", MNT_DETACH)``), ``chdir("/")``."""

    new_root: str

    def describe(self) -> str:
        return f"pivot_root into {self.new_root} and detach the old root"


class SetHostname(Op):
    hostname: str

    def describe(self) -> str:
        return f"sethostname {self.hostname}"


class LinkUp(Op):
    """Bring a network interface up in the current network namespace
    (``lo`` in a new pod sandbox)."""

    ifname: str = "lo"

    def describe(self) -> str:
        return f"ip link set {self.ifname} up"


class SetSid(Op):
    def describe(self) -> str:
        return "setsid"


class SetCtty(Op):
    """Make the terminal at ``fd`` the controlling terminal (``TIOCSCTTY``);
    comes after ``SetSid``."""

    fd: int = 0

    def describe(self) -> str:
        return f"controlling terminal from fd {self.fd}"


class Dup2(Op):
    """``dup2(fd, target)``: wire stdin/stdout/stderr."""

    fd: int
    target: int

    def describe(self) -> str:
        return f"dup2 fd {self.fd} -> {self.target}"


class ChDir(Op):
    path: str

    def describe(self) -> str:
        return f"chdir {self.path}"


class Identity(Op):
    """Become ``uid``/``gid`` with supplementary ``groups`` and exactly these
    capability sets (bit masks of CAP_* numbers).

    Order, as runc does it: drop from the bounding set everything not in
    ``bounding`` (needs CAP_SETPCAP, so first); ``setgroups``; ``setresgid``;
    ``PR_SET_KEEPCAPS``; ``setresuid``; ``capset`` effective, permitted,
    inheritable; raise ``ambient`` ones."""

    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0

    def describe(self) -> str:
        groups = ",".join(str(g) for g in self.groups) or "none"
        return (f"become uid {self.uid} gid {self.gid} groups {groups}; "
                f"caps bounding={self.bounding:#x} effective={self.effective:#x} ambient={self.ambient:#x}")


class NoNewPrivs(Op):
    def describe(self) -> str:
        return "prctl(PR_SET_NO_NEW_PRIVS)"


class Seccomp(Op):
    """Install a seccomp filter: ``program`` is the bytes of a ``struct
    sock_filter`` array (``minipod.seccomp``). Needs no_new_privs or
    CAP_SYS_ADMIN, so it comes after ``NoNewPrivs`` or before ``Identity``
    drops capabilities; every later step must be a syscall it allows."""

    program: bytes
    label: str = ""

    def describe(self) -> str:
        return f"seccomp filter {self.label or 'from the plan'} ({len(self.program) // 8} instructions)"


class Exec(Op):
    """``execve``. A ``path`` without a slash is looked up in ``search_path``
    (a PATH string) inside the container's root, as ``execvp`` would; if no
    directory has it, the step fails with ENOENT."""

    path: str
    argv: tuple[str, ...]
    envp: tuple[str, ...] = ()
    search_path: str = ""

    def describe(self) -> str:
        return f"exec {self.path} {list(self.argv[1:])}"


class Plan:
    """An ordered list of steps, plus fds the caller keeps open until the
    spawn is done (namespace files, pipe ends) so their numbers stay valid."""

    def __init__(self, ops: list[Op] | None = None, keep_fds: list[int] | None = None):
        self.ops: list[Op] = ops if ops is not None else []
        self.keep_fds: list[int] = keep_fds if keep_fds is not None else []

    def __eq__(self, other):
        if not isinstance(other, Plan):
            return NotImplemented
        return (self.ops, self.keep_fds) == (other.ops, other.keep_fds)

    def __repr__(self) -> str:
        return f"Plan(ops={self.ops!r}, keep_fds={self.keep_fds!r})"

    def add(self, *ops: Op) -> "Plan":
        self.ops.extend(ops)
        return self

    def describe(self) -> list[str]:
        return [f"{i:2d}. {op.describe()}" for i, op in enumerate(self.ops)]


def open_namespace(pid: int | str, ns: str) -> int:
    """Open ``/proc/<pid>/ns/<ns>`` (close-on-exec) for a ``SetNs`` step."""
    return os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
