"""The escape-attempt suite: from inside an ordinary container (default
securityContext unless a test says otherwise), try what an attacker would,
and check that the specific error comes back and the host is unchanged.

The subPath symlink escape is in test_volumes_env.py. Attacks that need
exact errno values use ``mptool``, a tiny static program built here (busybox
applets report errors in their own words, and drop setuid on their own).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import textwrap
import uuid

import pytest

SUID_IMAGE = "localhost/busybox:escape"

# One static program, several attacks; prints "ok" or "errno=<n>".
MPTOOL_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int result(long rc) {
    if (rc < 0) { printf("errno=%d\n", errno); return 1; }
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "euid")) {           /* setuid-root escalation */
        printf("euid=%d\n", (int)geteuid());
        return 0;
    }
    if (!strcmp(argv[1], "unshare-user"))
        return result(unshare(CLONE_NEWUSER));
    if (!strcmp(argv[1], "unshare-mnt"))
        return result(unshare(CLONE_NEWNS));
    if (!strcmp(argv[1], "init-module")) {
        static char image[64];
        return result(syscall(SYS_init_module, image, sizeof image, ""));
    }
    if (!strcmp(argv[1], "open") && argc > 2)
        return result(open(argv[2], O_RDONLY));
    if (!strcmp(argv[1], "keyctl"))          /* KEYCTL_GET_KEYRING_ID of the session keyring */
        return result(syscall(SYS_keyctl, 0, -3, 0));
    return 2;
}
"""


@pytest.fixture(scope="session")
def escape_rootfs(busybox_rootfs, tmp_path_factory) -> str:
    """The busybox image plus ``/bin/mptool`` (static) and a setuid-root copy."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the escape-attempt helper")
    work = tmp_path_factory.mktemp("escape")
    src = work / "mptool.c"
    src.write_text(MPTOOL_C)
    dest = str(work / "rootfs")
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    subprocess.run(["gcc", "-static", "-O1", "-o", os.path.join(dest, "bin", "mptool"), str(src)], check=True)
    shutil.copy(os.path.join(dest, "bin", "mptool"), os.path.join(dest, "bin", "suid-mptool"))
    os.chown(os.path.join(dest, "bin", "suid-mptool"), 0, 0)
    os.chmod(os.path.join(dest, "bin", "suid-mptool"), 0o4755)
    return dest


@pytest.fixture
def mpe(mpi, escape_rootfs):
    mpi.runtime().import_image(escape_rootfs, SUID_IMAGE)
    return mpi


def _pod(mp, name: str = "escape", container_extra: str = "", pod_extra: str = "", second: bool = False):
    containers = f"""
  - name: app
    image: {SUID_IMAGE}
    command: [sleep, "3600"]
{textwrap.indent(container_extra, "    ")}"""
    if second:
        containers += f"""
  - name: other
    image: {SUID_IMAGE}
    command: [sleep, "3600"]"""
    pod = mp.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
{textwrap.indent(pod_extra, "  ")}
  containers:{containers}
""")
    pod.wait(lambda p: p.ready, timeout=10)
    return pod


def _sh(pod, cmd: str, container: str = "app"):
    return pod.exec(container, ["sh", "-c", cmd])


def _tool(pod, *args: str, container: str = "app") -> str:
    return pod.exec(container, ["mptool", *args]).text.strip()


def test_host_processes_can_be_neither_seen_nor_signalled(mpe):
    """Attack: list the host's processes and signal one (the pod has its own PID namespace)."""
    host = subprocess.Popen(["sleep", "60"])
    try:
        pod = _pod(mpe)
        ps = _sh(pod, "ps -o pid,comm").text
        assert str(host.pid) not in ps.split() and "sleep" in ps  # only the container's own
        res = _sh(pod, f"kill -9 {host.pid}")
        assert res.returncode != 0 and b"No such process" in res.stderr
        assert _sh(pod, "readlink /proc/1/exe").text.strip() == "/bin/busybox"  # pid 1 is the container's
        assert host.poll() is None
        pod.remove(timeout=0)
    finally:
        host.kill()
        host.wait()


def test_kernel_interfaces_are_masked_or_read_only(mpe):
    """Attack: read /proc/kcore, /proc/keys, /sys/firmware; write /proc/sys/kernel/* and /proc/sysrq-trigger."""
    pod = _pod(mpe)
    # /proc/keys lists the host's keys: masked by /dev/null (char 1:3), reads empty.
    assert _sh(pod, "stat -c %t:%T /proc/keys").text.strip() == "1:3"
    assert _sh(pod, "wc -c < /proc/keys").text.strip() == "0"
    for path in ("/proc/kcore", "/proc/sysrq-trigger"):
        inside = _sh(pod, f"head -c 16 {path} | wc -c")
        if os.path.exists(path):
            assert inside.text.strip() == "0"
        else:  # this kernel has none: nothing to reach either
            assert b"No such file" in inside.stderr
    assert os.listdir("/sys/firmware")  # the host has firmware tables...
    assert _sh(pod, "ls -A /sys/firmware").text == ""  # ...the container sees an empty tmpfs
    before = open("/proc/sys/kernel/core_pattern").read()
    res = _sh(pod, "echo '|/tmp/evil' > /proc/sys/kernel/core_pattern")
    assert res.returncode != 0 and b"Read-only file system" in res.stderr
    assert open("/proc/sys/kernel/core_pattern").read() == before
    if os.path.exists("/proc/sysrq-trigger"):
        res = _sh(pod, "echo h > /proc/sysrq-trigger")
        assert res.returncode != 0 and b"Read-only file system" in res.stderr
    pod.remove(timeout=0)


def test_mount_module_and_hostname_are_refused(mpe):
    """Attack: mount a filesystem, load a kernel module, rename the host."""
    host_name = open("/proc/sys/kernel/hostname").read()
    pod = _pod(mpe)
    res = _sh(pod, "mount -t tmpfs evil /tmp")
    assert res.returncode != 0 and b"permission denied" in res.stderr
    # No CAP_SYS_MODULE: EPERM; a kernel built without modules says ENOSYS first.
    expected = {f"errno={errno.EPERM}"} | ({f"errno={errno.ENOSYS}"} if not os.path.exists("/proc/modules") else set())
    assert _tool(pod, "init-module") in expected
    res = _sh(pod, "hostname evil")
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    assert _sh(pod, "hostname").text.strip() == "escape"  # the pod's own UTS name
    assert open("/proc/sys/kernel/hostname").read() == host_name
    pod.remove(timeout=0)


def test_a_device_node_made_in_the_container_cannot_be_opened(mpe):
    """Attack: mknod the host's block device (CAP_MKNOD is in the default set) and read it."""
    majors = [(name, os.major(os.stat(f"/dev/{name}").st_rdev), os.minor(os.stat(f"/dev/{name}").st_rdev))
              for name in sorted(os.listdir("/sys/block")) if os.path.exists(f"/dev/{name}")]
    readable = [m for m in majors if _host_can_open(f"/dev/{m[0]}")]
    if not readable:
        pytest.skip("no block device the host itself can open")
    name, major, minor = readable[0]
    pod = _pod(mpe)
    assert _sh(pod, f"mknod /tmp/disk b {major} {minor}").returncode == 0  # making it is allowed...
    assert _tool(pod, "open", "/tmp/disk") == f"errno={errno.EPERM}"  # ...using it is not
    assert _tool(pod, "open", "/dev/null") == "ok"  # default devices still work
    pod.remove(timeout=0)


def _host_can_open(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY))
        return True
    except OSError:
        return False


def test_the_old_root_and_host_root_are_out_of_reach(mpe, tmp_path):
    """Attack: climb out of the root after pivot_root, through /.. or /proc/1/root, or pivot again."""
    marker = tmp_path / f"host-marker-{uuid.uuid4().hex}"
    marker.write_text("host\n")
    pod = _pod(mpe)
    for path in (str(marker), f"/..{marker}", f"/proc/1/root{marker}", f"/proc/self/root/../..{marker}"):
        res = _sh(pod, f"cat {path}")
        assert res.returncode != 0 and b"No such file" in res.stderr, path
    assert _sh(pod, "readlink /proc/1/root").text.strip() == "/"
    mountinfo = _sh(pod, "cat /proc/self/mountinfo").text
    roots = [line.split()[4] for line in mountinfo.splitlines() if line.split()[4] == "/"]
    assert roots == ["/"]  # only the overlay: no old root stacked under or over it
    res = _sh(pod, "mkdir -p /old && pivot_root / /old")
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    res = _sh(pod, "nsenter -t 1 -m true")  # no way into another mount namespace either
    assert res.returncode != 0
    pod.remove(timeout=0)


def test_writes_never_reach_the_image_layers(mpe):
    """Attack: change the image (lower layers) so another container runs the change."""
    pod = _pod(mpe, second=True)
    assert _sh(pod, "echo evil > /bin/busybox-note && echo 'x::0:0::/:/bin/sh' >> /etc/passwd").returncode == 0
    assert _sh(pod, "rm /bin/mptool").returncode == 0
    assert _sh(pod, "cat /bin/busybox-note", container="other").returncode != 0
    assert "x::0:0" not in _sh(pod, "cat /etc/passwd", container="other").text
    assert _tool(pod, "euid", container="other").startswith("euid=")
    pod.remove(timeout=0)
    pod = _pod(mpe, name="escape2")  # a new pod from the same image: pristine too
    assert _sh(pod, "test -e /bin/busybox-note").returncode != 0
    assert _tool(pod, "euid").startswith("euid=")
    pod.remove(timeout=0)


def test_setuid_binary_gives_nothing_with_no_new_privs(mpe):
    """Attack: a non-root user runs a setuid-root program (allowPrivilegeEscalation: false)."""
    pod = _pod(mpe, container_extra="securityContext: {runAsUser: 1000, allowPrivilegeEscalation: false}")
    assert _sh(pod, "grep NoNewPrivs /proc/self/status").text.split() == ["NoNewPrivs:", "1"]
    assert _sh(pod, "id -u").text.strip() == "1000"
    assert pod.exec("app", ["suid-mptool", "euid"]).text.strip() == "euid=1000"
    pod.remove(timeout=0)
    # The same program without no_new_privs does raise: the attack is real.
    pod = _pod(mpe, name="escape3", container_extra="securityContext: {runAsUser: 1000}")
    assert pod.exec("app", ["suid-mptool", "euid"]).text.strip() == "euid=0"
    pod.remove(timeout=0)


def _status(pod, container: str = "app") -> dict[str, str]:
    lines = _sh(pod, "cat /proc/self/status", container).text.splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_runtime_default_seccomp_refuses_user_namespaces_and_keys(mpe):
    """Attack: ``unshare -U`` to get a full capability set in a new user namespace, then mount."""
    pod = _pod(mpe, pod_extra="securityContext: {seccompProfile: {type: RuntimeDefault}}", second=True,
               container_extra="securityContext: {seccompProfile: {type: Unconfined}}")
    # The attack works without a filter (Kubernetes' default is Unconfined)...
    assert _status(pod)["Seccomp"] == "0"
    assert _tool(pod, "unshare-user") == "ok"
    # ...and RuntimeDefault (the pod's, for "other") stops it, in exec'd processes too.
    status = _status(pod, "other")
    assert status["Seccomp"] == "2" and status["Seccomp_filters"] == "1"
    assert _tool(pod, "unshare-user", container="other") == f"errno={errno.EPERM}"
    assert _tool(pod, "unshare-mnt", container="other") == f"errno={errno.EPERM}"
    assert _tool(pod, "keyctl", container="other") == f"errno={errno.EPERM}"
    res = _sh(pod, "unshare -Urm true", "other")
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    # Ordinary work goes on: fork, exec, pipes, background jobs.
    assert _sh(pod, "echo a | sed s/a/b/ & wait", "other").text == "b\n"
    pod.remove(timeout=0)


def test_security_context_shows_in_id_and_status(mpe):
    """uid/gid/groups, capability sets, NoNewPrivs and seccomp mode as Kubernetes documents them."""
    pod = _pod(mpe, pod_extra="securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}",
               container_extra=textwrap.dedent("""\
                   securityContext:
                     allowPrivilegeEscalation: false
                     seccompProfile: {type: RuntimeDefault}
                     capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}"""))
    uid, gid, groups = _sh(pod, "id").text.split()
    assert (uid, gid) == ("uid=1000", "gid=3000") and "4000" in groups.split("=")[1].split(",")
    status = _status(pod)
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert status["CapEff"] == status["CapPrm"] == "0000000000000000"  # non-root: none effective
    assert status["CapBnd"] == f"{1 << 10:016x}"  # NET_BIND_SERVICE only
    pod.remove(timeout=0)


# ------------------------------------------------ symlinks planted in the image
#
# The runtime makes mount points and mounts the pod's files and volumes
# before pivot_root, while its root is still the host's "/": every such path
# must be resolved inside the container's root, or an image symlink would make
# the runtime itself create files and directories on the host.

def _image_with_symlink(mp, busybox_rootfs: str, work, ref: str, link: str, points_to: str,
                        dirs_in_image: tuple[str, ...] = ()) -> str:
    """The busybox image with ``link`` replaced by a symlink to ``points_to``
    (and ``dirs_in_image`` created in it), imported as ``ref``."""
    dest = work / "rootfs"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    path = dest / link.lstrip("/")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    os.symlink(points_to, path)
    for d in dirs_in_image:
        os.makedirs(dest / d.lstrip("/"), exist_ok=True)
    mp.runtime().import_image(str(dest), ref)
    return ref


def _symlink_pod(mp, image: str, volume_path: str | None = None):
    volumes = mounts = ""
    if volume_path:
        mounts = f"\n    volumeMounts: [{{name: v, mountPath: {volume_path!r}}}]"
        volumes = "\n  volumes: [{name: v, emptyDir: {}}]"
    return mp.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: planted}}
spec:
  containers:
  - name: app
    image: {image}
    command: [sleep, "3600"]{mounts}{volumes}
""")


def test_image_hosts_symlink_to_a_host_path_creates_nothing_on_the_host(mpi, busybox_rootfs, tmp_path):
    """Attack: the image's /etc/hosts is an absolute symlink to a host path, so that
    the mount point for the pod's hosts file is made, and mounted on, on the host."""
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    victim = host_dir / "pwned"
    # The same directory exists in the image: the symlink resolves there, inside.
    image = _image_with_symlink(mpi, busybox_rootfs, tmp_path, "localhost/busybox:hosts-link",
                                "/etc/hosts", str(victim), dirs_in_image=(str(host_dir),))
    pod = _symlink_pod(mpi, image)
    pod.wait(lambda p: p.ready, timeout=10)
    assert not victim.exists() and os.listdir(host_dir) == []
    # The pod's hosts file is mounted where the symlink leads inside the container.
    assert "localhost" in _sh(pod, f"cat /etc/hosts {victim}").text
    pod.remove(timeout=0)
    assert not victim.exists() and os.listdir(host_dir) == []


def test_image_hosts_symlink_to_a_missing_dir_fails_cleanly(mpi, busybox_rootfs, tmp_path):
    """The same attack when the symlink's directory exists only on the host: inside
    the container it leads nowhere, so the container cannot start, and says why."""
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    victim = host_dir / "pwned"
    image = _image_with_symlink(mpi, busybox_rootfs, tmp_path, "localhost/busybox:hosts-dangling",
                                "/etc/hosts", str(victim))
    pod = _symlink_pod(mpi, image)
    pod.wait(lambda p: "terminated" in p.container_status("app").get("lastState", {}), timeout=10)
    failed = pod.container_status("app")["lastState"]["terminated"]
    assert failed["reason"] == "StartError" and not pod.ready
    assert "etc/hosts (resolved inside the container root)): No such file or directory" in failed["message"]
    pod.remove(force=True, timeout=0)
    assert not victim.exists() and os.listdir(host_dir) == []


def test_image_etc_symlink_to_root_creates_nothing_on_the_host(mpi, busybox_rootfs, tmp_path):
    """Attack: the image's /etc is a symlink to "/", so that /etc/<volume> (made on
    the host before pivot_root) becomes /<volume> on the host."""
    host_path = tmp_path / "volume-here"
    image = _image_with_symlink(mpi, busybox_rootfs, tmp_path, "localhost/busybox:etc-link", "/etc", "/")
    pod = _symlink_pod(mpi, image, volume_path=f"/etc{host_path}")
    pod.wait(lambda p: p.ready, timeout=10)
    assert not host_path.exists()
    # Inside, /etc is "/": the volume and the pod's files land in the container's root.
    assert _sh(pod, f"test -d {host_path} && touch {host_path}/x").returncode == 0
    assert "localhost" in _sh(pod, "cat /etc/hosts").text
    pod.remove(timeout=0)
    assert not host_path.exists()


def test_image_etc_symlink_to_a_host_dir_creates_no_file_there(mpi, busybox_rootfs, tmp_path):
    """Attack: the image's /etc is a symlink to a host directory, so that the mount
    points for the pod's /etc/hosts, /etc/hostname, /etc/resolv.conf are made there."""
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir()
    image = _image_with_symlink(mpi, busybox_rootfs, tmp_path, "localhost/busybox:etc-dir-link", "/etc",
                                str(host_dir), dirs_in_image=(str(host_dir),))
    pod = _symlink_pod(mpi, image)
    pod.wait(lambda p: p.ready, timeout=10)
    assert os.listdir(host_dir) == []
    assert "localhost" in _sh(pod, f"cat /etc/hosts {host_dir}/hosts").text
    pod.remove(timeout=0)
    assert os.listdir(host_dir) == []
