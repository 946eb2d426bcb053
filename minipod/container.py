"""One container: what it runs (argv, env, user, capabilities) and the spawn
plan that makes it — join the pod's namespaces, a new mount (and PID)
namespace, the overlay root, volumes, then exec.

``exec_plan`` builds the plan of ``minipod exec``: the same namespaces,
root, cgroup and user as a running container, for one more process.
"""

from __future__ import annotations

import errno
import os

from .capabilities import container_caps
from .envvars import DEFAULT_PATH, command_line, container_env
from .errors import MinipodError, SpawnError
from .plan import (
    CLONE_NEWCGROUP, CLONE_NEWNS, CLONE_NEWPID, NAMESPACE_FLAGS, ChDir, Clone, Dup2, Exec, Identity,
    MkDir, NoNewPrivs, Plan, Seccomp, SetCtty, SetNs, SetSid, WriteFile,
)
from .record import Record
from .rootfs import container_rootfs_steps
from .users import User, resolve_user


class ImageInfo(Record):
    """What a container needs of its image, kept in the pod's spec.json so the
    supervisor does not have to open the image store."""

    ref: str
    id: str
    digest: str
    config: dict
    layer_dirs: list
    __hash__ = None  # holds a dict and a list

    @property
    def image_id_ref(self) -> str:
        """``imageID`` as kubelet shows it: repository@digest."""
        repo = self.ref.rsplit(":", 1)[0] if "@" not in self.ref else self.ref.split("@")[0]
        return f"{repo}@{self.digest}"

    def to_dict(self) -> dict:
        return {"ref": self.ref, "id": self.id, "digest": self.digest, "config": self.config,
                "layer_dirs": self.layer_dirs}

    @classmethod
    def from_dict(cls, d: dict) -> "ImageInfo":
        return cls(d["ref"], d["id"], d["digest"], d.get("config") or {}, list(d["layer_dirs"]))

    @classmethod
    def of(cls, image) -> "ImageInfo":
        return cls(image.ref, image.id, image.digest, dict(image.config or {}), list(image.layer_dirs))


class Launch(Record):
    """Everything about a container's process that does not depend on where
    it is started: the answer to "what would run, as whom?". ``binds`` is
    filled in by the supervisor once the volumes exist."""

    _frozen = False
    name: str
    argv: list
    env: dict
    user: User
    caps: int
    workdir: str
    no_new_privs: bool = False
    privileged: bool = False
    readonly_root: bool = False
    tty: bool = False
    binds: tuple = ()
    seccomp: str = "Unconfined"  # the seccompProfile type in effect
    seccomp_profile: str = ""    # its localhostProfile, for Localhost
    seccomp_program: bytes = b""  # the compiled Localhost profile

    def envp(self) -> tuple[str, ...]:
        return tuple(f"{k}={v}" for k, v in self.env.items())

    def search_path(self) -> str:
        return self.env.get("PATH", DEFAULT_PATH)

    def to_record(self) -> dict:
        """What ``exec`` needs later, kept in state.json."""
        return {
            "argv": self.argv, "env": self.env, "uid": self.user.uid, "gid": self.user.gid,
            "groups": list(self.user.groups), "caps": self.caps, "workdir": self.workdir,
            "noNewPrivs": self.no_new_privs, "seccomp": self.seccomp, "privileged": self.privileged,
            **localhost_record(self.seccomp_profile, self.seccomp_program),
        }


def make_launch(pod: dict, container: dict, c_field: str, image, hostname: str,
                config_maps: dict, secrets: dict, status: dict, seccomp_dir: str | None = None) -> Launch:
    """Apply the Kubernetes rules to the image's config: command/args over
    Entrypoint/Cmd, env over the image's Env, securityContext over User.
    A Localhost seccomp profile is read from ``seccomp_dir`` and compiled."""
    image_config = image.config or {}
    pod_sc = pod["spec"].get("securityContext") or {}
    sc = container.get("securityContext") or {}

    def pick(key):
        return sc.get(key, pod_sc.get(key))

    # kubelet adds fsGroup to every container's groups: it is what lets a
    # non-root user write the volumes given to that group.
    supplemental = list(pod_sc.get("supplementalGroups") or [])
    if pod_sc.get("fsGroup") is not None:
        supplemental.append(pod_sc["fsGroup"])
    user = resolve_user(image.layer_dirs, image_config.get("User"), pick("runAsUser"),
                        pick("runAsGroup"), supplemental,
                        image_groups=pod_sc.get("supplementalGroupsPolicy", "Merge") != "Strict")
    if pick("runAsNonRoot") and user.uid == 0:
        raise MinipodError("container has runAsNonRoot and image will run as root "
                           f"(pod: {pod['metadata']['name']}, container: {container['name']})")
    env = container_env(pod, container, c_field, image_config.get("Env"), config_maps, secrets, status)
    env.setdefault("HOSTNAME", hostname)
    env.setdefault("HOME", user.home)
    if container.get("tty"):
        env.setdefault("TERM", "xterm")
    argv = command_line(container, image_config, env)
    if not argv:
        raise MinipodError(f"{c_field}: no command specified (the image has no Entrypoint or Cmd)")
    privileged = bool(sc.get("privileged"))
    seccomp = seccomp_profile_type(pod_sc, sc, c_field)
    no_new_privs = sc.get("allowPrivilegeEscalation") is False and not privileged
    caps = container_caps(sc)
    profile_name, program = "", b""
    if seccomp == "Localhost" and not privileged:
        from .seccomp_localhost import localhost_filter

        profile, where = seccomp_profile_of(pod_sc, sc, c_field)
        profile_name = profile["localhostProfile"]
        if not seccomp_dir:
            raise MinipodError(f"{where}: no directory to read Localhost profiles from")
        program = localhost_filter(seccomp_dir, profile_name, caps)
    return Launch(
        name=container["name"],
        argv=argv,
        env=env,
        user=user,
        caps=caps,
        workdir=container.get("workingDir") or image_config.get("WorkingDir") or "/",
        no_new_privs=no_new_privs,
        privileged=privileged,
        readonly_root=bool(sc.get("readOnlyRootFilesystem")),
        tty=bool(container.get("tty")),
        seccomp=seccomp,
        seccomp_profile=profile_name,
        seccomp_program=program,
    )


def seccomp_profile_of(pod_sc: dict, sc: dict, c_field: str) -> tuple[dict, str]:
    """The seccompProfile in effect, the container's else the pod's (``{}``
    for none), and the field path of the one that was given."""
    if sc.get("seccompProfile"):
        return sc["seccompProfile"], f"{c_field}.securityContext.seccompProfile"
    return pod_sc.get("seccompProfile") or {}, "spec.securityContext.seccompProfile"


def seccomp_profile_type(pod_sc: dict, sc: dict, c_field: str) -> str:
    """The container's seccompProfile type, else the pod's, else Unconfined
    (Kubernetes' default)."""
    profile, where = seccomp_profile_of(pod_sc, sc, c_field)
    kind = profile.get("type", "Unconfined")
    if kind not in ("RuntimeDefault", "Unconfined", "Localhost"):
        raise MinipodError(f"{where}: type {kind} is not supported by minipod "
                           "(use RuntimeDefault, Unconfined or Localhost)")
    return kind


def localhost_record(name: str, program: bytes) -> dict:
    """A Localhost filter as state.json keeps it for ``exec``: the very
    program the container got, whatever happened to the file since."""
    if not program:
        return {}
    import base64

    return {"seccompProfile": name, "seccompProgram": base64.b64encode(program).decode()}


def seccomp_step(seccomp: str, caps: int, privileged: bool, program: bytes = b"",
                 profile: str = "") -> Seccomp | None:
    """The plan's seccomp filter: none when Unconfined or privileged,
    RuntimeDefault's for ``caps``, or a compiled Localhost ``program``."""
    if privileged or seccomp == "Unconfined":
        return None
    if seccomp == "RuntimeDefault":
        from .seccomp import runtime_default_filter

        return Seccomp(runtime_default_filter(caps), "RuntimeDefault")
    if seccomp == "Localhost" and program:
        return Seccomp(program, f"Localhost {profile}")
    # Never run unfiltered what asked for a filter.
    raise MinipodError(f"seccompProfile {seccomp} {profile}".rstrip() + ": no compiled filter to install")


def privilege_steps(identity: Identity, no_new_privs: bool, seccomp: str, privileged: bool,
                    program: bytes = b"", profile: str = "") -> list:
    """Identity, no_new_privs and the seccomp filter, in an order that works:
    installing a filter needs no_new_privs or CAP_SYS_ADMIN, so without
    no_new_privs it goes in while the child is still fully privileged root
    (the filter must allow the set*id/capset calls that follow: RuntimeDefault
    does, a Localhost profile that does not makes the start fail), else last.
    ``program`` and ``profile`` are a Localhost filter and its name."""
    steps: list = [identity]
    if no_new_privs:
        steps.append(NoNewPrivs())
    step = seccomp_step(seccomp, identity.bounding, privileged, program, profile)
    if step is not None:
        if no_new_privs:
            steps.append(step)
        else:
            steps.insert(0, step)
    return steps


def identity_step(user: User, caps: int) -> Identity:
    """root keeps the container's capabilities effective; any other user
    keeps them only in the bounding set, as containerd does."""
    active = caps if user.uid == 0 else 0
    return Identity(uid=user.uid, gid=user.gid, groups=user.groups, bounding=caps,
                    effective=active, permitted=active, inheritable=0, ambient=0)


def _stdio_steps(stdin: int, stdout: int, stderr: int, tty: bool) -> list:
    steps = [SetSid()]
    steps += [Dup2(stdin, 0), Dup2(stdout, 1), Dup2(stderr, 2)]
    if tty:
        steps.append(SetCtty(0))
    return steps


def container_plan(
    *,
    launch: Launch,
    pause_ns_fds: dict[str, int],
    new_pid_ns: bool,
    cgroup_procs: list[str],
    rootfs: str,
    lower_dirs: list[str],
    upper: str,
    work: str,
    shm_source: str | None,
    stdio: tuple[int, int, int],
) -> Plan:
    """The steps of a container start, in order.

    The first child joins the container's cgroup and the pod's namespaces
    (by fds opened on the pause process); the clone then gives the
    container its own mount namespace, its own PID namespace unless the pod
    shares one, and a cgroup namespace rooted at its cgroup."""
    plan = Plan(keep_fds=[*pause_ns_fds.values(), *stdio])
    plan.add(*[WriteFile(path, "0") for path in cgroup_procs])
    for ns, fd in pause_ns_fds.items():
        plan.add(SetNs(fd, NAMESPACE_FLAGS[ns], f"pause /proc/<pause>/ns/{ns}"))
    plan.add(Clone(CLONE_NEWNS | (CLONE_NEWPID if new_pid_ns else 0) | CLONE_NEWCGROUP))
    plan.add(*container_rootfs_steps(
        rootfs=rootfs, lower_dirs=lower_dirs, upper=upper, work=work, binds=launch.binds,
        shm_source=shm_source, privileged=launch.privileged, readonly_root=launch.readonly_root,
    ))
    plan.add(MkDir(launch.workdir), ChDir(launch.workdir))
    plan.add(*_stdio_steps(*stdio, launch.tty))
    plan.add(*privilege_steps(identity_step(launch.user, launch.caps), launch.no_new_privs, launch.seccomp,
                              launch.privileged, launch.seccomp_program, launch.seccomp_profile))
    plan.add(Exec(launch.argv[0], tuple(launch.argv), launch.envp(), launch.search_path()))
    return plan


def exec_plan(*, record: dict, container_pid: int, argv: list[str], env: dict[str, str],
              cgroup_procs: list[str], stdio: tuple[int, int, int], tty: bool) -> Plan:
    """Run ``argv`` inside a running container: its cgroup, then every
    namespace of its process, the mount namespace last (after it, host
    paths are gone), then a clone so the new process is inside the
    container's PID namespace."""
    fds = {}
    for ns in ("net", "ipc", "uts", "pid", "cgroup", "mnt"):
        fds[ns] = os.open(f"/proc/{container_pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    plan = Plan(keep_fds=[*fds.values(), *stdio])
    plan.add(*[WriteFile(path, "0", optional=True) for path in cgroup_procs])
    for ns, fd in fds.items():
        plan.add(SetNs(fd, NAMESPACE_FLAGS[ns], f"/proc/{container_pid}/ns/{ns}"))
    plan.add(Clone(0))
    plan.add(ChDir(record.get("workdir") or "/"))
    plan.add(*_stdio_steps(*stdio, tty))
    user = User(record.get("uid", 0), record.get("gid", 0), tuple(record.get("groups", ())))
    plan.add(*privilege_steps(identity_step(user, record.get("caps", 0)), bool(record.get("noNewPrivs")),
                              record.get("seccomp", "Unconfined"), bool(record.get("privileged")),
                              *localhost_from_record(record)))
    envp = tuple(f"{k}={v}" for k, v in env.items())
    plan.add(Exec(argv[0], tuple(argv), envp, env.get("PATH", DEFAULT_PATH)))
    return plan


def localhost_from_record(record: dict) -> tuple[bytes, str]:
    """The Localhost filter and profile name kept by ``localhost_record``."""
    if not record.get("seccompProgram"):
        return b"", ""
    import base64

    return base64.b64decode(record["seccompProgram"]), record.get("seccompProfile", "")


def exec_failure(argv0: str, exc: Exception) -> str | None:
    """The message Docker and containerd give when ``execve`` fails, or None
    when ``exc`` is not an exec failure."""
    from .plan import Exec

    if not isinstance(exc, SpawnError) or not isinstance(exc.op, Exec):
        return None
    if exc.errno == errno.ENOENT:
        return f'exec: "{argv0}": executable file not found in $PATH'
    return f'exec: "{argv0}": {os.strerror(exc.errno).lower()}'
