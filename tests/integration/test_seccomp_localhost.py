"""seccomp Localhost profiles on the real kernel: profiles in the test's own
``<root>/var/lib/minipod/seccomp/``, compiled with libseccomp, installed by
the spawn plan, seen from inside the container."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

IMAGE = "localhost/busybox:demo"

# Enough for busybox sh and its applets, and for the spawn steps that run
# after the filter (set*id, capset, prctl, close_range, execve): the
# allow-list idea of Docker's default profile, much shorter. mkdir and
# mkdirat are left out on purpose.
BUSYBOX_SYSCALLS = """
    access arch_prctl brk capget capset chdir chmod chown close close_range dup dup2 dup3 execve exit
    exit_group faccessat faccessat2 fchdir fchmod fchmodat fchown fchownat fcntl fstat fstatfs futex getcwd
    getdents64 getegid geteuid getgid getgroups getpgid getpgrp getpid getppid getrandom getresgid
    getresuid getrlimit getsid gettid gettimeofday getuid ioctl kill lseek lstat madvise mmap mprotect
    munmap nanosleep clock_nanosleep clock_gettime newfstatat open openat pipe pipe2 poll ppoll prctl
    pread64 prlimit64 pselect6 read readlink readlinkat readv rename renameat renameat2 rmdir rseq
    rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend sched_getaffinity sched_yield select
    set_robust_list set_tid_address setgid setgroups setpgid setresgid setresuid setsid setuid sigaltstack
    stat statfs statx sysinfo tgkill umask uname unlink unlinkat utimensat vfork wait4 waitid write writev
""".split()
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET


def seccomp_dir(mp) -> str:
    path = os.path.join(mp.root, "var", "lib", "minipod", "seccomp")
    os.makedirs(path, exist_ok=True)
    return path


def write_profile(mp, name: str, data) -> str:
    path = os.path.join(seccomp_dir(mp), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    return path


DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
ALLOW_LIST = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,  # ENOSYS: "Function not implemented"
    "syscalls": [
        {"names": BUSYBOX_SYSCALLS, "action": "SCMP_ACT_ALLOW"},
        # fork, but no new namespaces: a condition on an argument, as Docker's profile has
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ],
}


def run_pod(mp, profile_yaml: str, command: str = 'sleep 3600', extra: str = ""):
    pod = mp.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: sc}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: {IMAGE}
    command: [sh, -c, '{command}']
    securityContext:
      seccompProfile: {profile_yaml}
{textwrap.indent(extra, "  ")}
""")
    return pod


def sh(pod, cmd: str, container: str = "app"):
    return pod.exec(container, ["sh", "-c", cmd])


def status(pod) -> dict[str, str]:
    lines = sh(pod, "cat /proc/self/status").text.splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.fixture(autouse=True)
def _x86_64_only():
    if os.uname().machine != "x86_64":
        pytest.skip("the profiles here name x86 architectures")


def test_a_profile_that_denies_mkdir_with_eperm(mpi):
    write_profile(mpi, "profiles/deny-mkdir.json", DENY_MKDIR)
    pod = run_pod(mpi, "{type: Localhost, localhostProfile: profiles/deny-mkdir.json}",
                  command="mkdir /tmp/made 2>&1; touch /tmp/file && echo touched; sleep 3600")
    pod.wait(lambda p: p.ready, timeout=10)
    pod.wait(lambda p: "touched" in "".join(p.logs("app")), timeout=5)
    log = "".join(pod.logs("app"))
    assert "can't create directory '/tmp/made': Operation not permitted" in log  # errnoRet 1 = EPERM
    st = status(pod)
    assert st["Seccomp"] == "2" and st["Seccomp_filters"] == "1"
    # exec'd processes get the filter the container got, even once the file is gone.
    os.unlink(os.path.join(seccomp_dir(mpi), "profiles", "deny-mkdir.json"))
    res = sh(pod, "mkdir /tmp/again")
    assert res.returncode != 0 and b"Operation not permitted" in res.stderr
    assert sh(pod, "echo x > /tmp/f && mv /tmp/f /tmp/g && rm /tmp/g /tmp/file && echo ok").text == "ok\n"
    pod.remove()


def test_default_deny_with_an_allow_list_runs_busybox_sh(mpi):
    write_profile(mpi, "allow.json", ALLOW_LIST)
    pod = run_pod(mpi, "{type: Localhost, localhostProfile: allow.json}")
    pod.wait(lambda p: p.ready, timeout=10)
    # Ordinary work: fork (clone, allowed by its argument condition), exec, pipes, files.
    assert sh(pod, "echo a | sed s/a/b/ > /tmp/out & wait; cat /tmp/out; ls / | grep -c proc").text == "b\n1\n"
    # What the list leaves out answers defaultErrnoRet (ENOSYS).
    res = sh(pod, "mkdir /tmp/d")
    assert res.returncode != 0 and b"Function not implemented" in res.stderr
    res = sh(pod, "unshare -n true")
    assert res.returncode != 0 and b"Function not implemented" in res.stderr
    assert status(pod)["Seccomp"] == "2"
    pod.remove()


def test_a_broken_profile_is_refused_before_anything_exists(mpi):
    write_profile(mpi, "notify.json", {"defaultAction": "SCMP_ACT_ALLOW",
                                       "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: refused}}
spec:
  securityContext:
    seccompProfile: {{type: Localhost, localhostProfile: notify.json}}
  containers:
  - {{name: app, image: {IMAGE}, command: [sleep, "1"]}}
"""
    res = mpi.cli("run", "-d", "-", input=manifest)
    assert res.returncode != 0
    assert ("error: spec.securityContext.seccompProfile.localhostProfile: seccomp profile "
            f"{seccomp_dir(mpi)}/notify.json: syscalls[0].action: SCMP_ACT_NOTIFY is not supported") in res.stderr
    res = mpi.cli("run", "-d", "-", input=manifest.replace("notify.json", "missing.json"))
    assert res.returncode != 0 and "missing.json: no such profile" in res.stderr
    assert mpi.cli("ps", "-a", check=True).stdout.count("refused") == 0
    assert not os.path.exists(os.path.join(mpi.root, "var", "lib", "minipod", "pods")) or \
        os.listdir(os.path.join(mpi.root, "var", "lib", "minipod", "pods")) == []


def test_a_profile_broken_after_run_is_the_container_s_start_error(mpi):
    """The profile is read again when each container starts: an init
    container (with the profile directory as a hostPath) breaks it, so the
    app container, which the check at ``run`` let through, cannot start."""
    write_profile(mpi, "deny.json", DENY_MKDIR)
    pod = mpi.runtime().run(f"""
apiVersion: v1
kind: Pod
metadata: {{name: broken}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  initContainers:
  - name: breaker
    image: {IMAGE}
    command: [sh, -c, 'echo "{{oops" > /profiles/deny.json']
    volumeMounts: [{{name: profiles, mountPath: /profiles}}]
  containers:
  - name: app
    image: {IMAGE}
    command: [sleep, "3600"]
    securityContext:
      seccompProfile: {{type: Localhost, localhostProfile: deny.json}}
  volumes:
  - name: profiles
    hostPath: {{path: {seccomp_dir(mpi)}, type: Directory}}
""")
    pod.wait(lambda p: "terminated" in p.container_status("app").get("state", {}), timeout=10)
    term = pod.container_status("app")["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert term["message"].startswith(f"seccomp profile {seccomp_dir(mpi)}/deny.json: not valid JSON")
    pod.remove()
