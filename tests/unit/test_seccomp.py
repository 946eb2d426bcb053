"""The RuntimeDefault seccomp filter, run through a small classic-BPF
interpreter (the subset the filter uses), and where it sits in a plan."""

from __future__ import annotations

import errno
import struct

import pytest

from minipod import seccomp
from minipod.capabilities import DEFAULT_CAPABILITIES, all_caps_mask, mask
from minipod.container import identity_step, privilege_steps, seccomp_profile_type
from minipod.errors import MinipodError
from minipod.plan import Identity, NoNewPrivs, Seccomp
from minipod.users import User

DEFAULT = mask(DEFAULT_CAPABILITIES)
ALLOW = "allow"
X86_64 = seccomp.AUDIT_ARCH_X86_64
NR = seccomp.SYSCALLS["x86_64"]
CLONE_NEWUSER, SIGCHLD, CLONE_THREAD_ETC = 0x10000000, 17, 0x003D0F00


def run_filter(program: bytes, nr: int, arch: int = X86_64, arg0: int = 0):
    """Evaluate ``program`` on one syscall: "allow" or the errno it returns."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == seccomp.BPF_LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code in (seccomp.BPF_JEQ_K, seccomp.BPF_JGE_K, seccomp.BPF_JSET_K):
            taken = {seccomp.BPF_JEQ_K: acc == k, seccomp.BPF_JGE_K: acc >= k,
                     seccomp.BPF_JSET_K: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == seccomp.BPF_RET_K:
            if k == seccomp.SECCOMP_RET_ALLOW:
                return ALLOW
            assert k & 0xFFFF0000 == seccomp.SECCOMP_RET_ERRNO
            return k & 0xFFFF
        else:
            raise AssertionError(f"unexpected BPF code {code:#x}")


@pytest.fixture
def default_filter():
    return seccomp.runtime_default_filter(DEFAULT, "x86_64")


@pytest.mark.parametrize("name", ["mount", "umount2", "pivot_root", "unshare", "setns", "init_module",
                                  "finit_module", "kexec_load", "reboot", "keyctl", "add_key", "bpf",
                                  "open_by_handle_at", "fsopen", "move_mount", "perf_event_open", "syslog",
                                  "swapon", "iopl", "userfaultfd", "io_uring_setup", "settimeofday"])
def test_dangerous_syscalls_get_eperm(default_filter, name):
    assert run_filter(default_filter, NR[name]) == errno.EPERM


@pytest.mark.parametrize("nr", [0, 1, 2, 57, 59, 60, 231, 257])  # read write open fork execve exit...
def test_ordinary_syscalls_are_allowed(default_filter, nr):
    assert run_filter(default_filter, nr) == ALLOW


def test_clone_is_judged_by_its_flags(default_filter):
    assert run_filter(default_filter, NR["clone"], arg0=SIGCHLD) == ALLOW  # fork
    assert run_filter(default_filter, NR["clone"], arg0=CLONE_THREAD_ETC) == ALLOW  # pthread_create
    assert run_filter(default_filter, NR["clone"], arg0=CLONE_NEWUSER | SIGCHLD) == errno.EPERM
    assert run_filter(default_filter, NR["clone"], arg0=0x00020000) == errno.EPERM  # CLONE_NEWNS
    assert run_filter(default_filter, NR["clone3"]) == errno.ENOSYS  # libc falls back to clone


def test_other_abis_are_refused(default_filter):
    assert run_filter(default_filter, 1, arch=0x40000003) == errno.EPERM  # i386 via int 0x80
    assert run_filter(default_filter, seccomp.X32_SYSCALL_BIT | 1) == errno.EPERM  # x32


def test_capabilities_lift_their_group_only():
    with_admin = seccomp.runtime_default_filter(DEFAULT | mask(["SYS_ADMIN"]), "x86_64")
    assert run_filter(with_admin, NR["mount"]) == ALLOW
    assert run_filter(with_admin, NR["clone"], arg0=CLONE_NEWUSER) == ALLOW
    assert run_filter(with_admin, NR["init_module"]) == errno.EPERM
    assert run_filter(with_admin, NR["keyctl"]) == errno.EPERM  # never: keys are not namespaced
    everything = seccomp.runtime_default_filter(all_caps_mask(40), "x86_64")
    assert run_filter(everything, NR["init_module"]) == ALLOW
    assert run_filter(everything, NR["keyctl"]) == errno.EPERM


def test_aarch64_uses_its_own_numbers():
    program = seccomp.runtime_default_filter(DEFAULT, "aarch64")
    arm = seccomp.AUDIT_ARCH_AARCH64
    assert run_filter(program, 40, arch=arm) == errno.EPERM  # mount
    assert run_filter(program, 165, arch=arm) == ALLOW  # getrusage (mount on x86_64)
    assert run_filter(program, 40, arch=X86_64) == errno.EPERM  # wrong ABI


def test_filter_is_built_once_per_capability_set():
    assert seccomp.runtime_default_filter(DEFAULT, "x86_64") is seccomp.runtime_default_filter(DEFAULT, "x86_64")


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(MinipodError, match="not available on sparc"):
        seccomp.runtime_default_filter(DEFAULT, "sparc")


def test_seccomp_goes_last_with_no_new_privs_and_first_without():
    ident = identity_step(User(1000, 1000, ()), DEFAULT)
    steps = privilege_steps(ident, True, "RuntimeDefault", False)
    assert [type(s) for s in steps] == [Identity, NoNewPrivs, Seccomp]
    steps = privilege_steps(ident, False, "RuntimeDefault", False)
    assert [type(s) for s in steps] == [Seccomp, Identity]  # still root with CAP_SYS_ADMIN there
    assert steps[0].program == seccomp.runtime_default_filter(DEFAULT)
    assert privilege_steps(ident, False, "RuntimeDefault", True) == [ident]  # privileged: unfiltered
    assert privilege_steps(ident, False, "Unconfined", False) == [ident]


def test_profile_type_container_over_pod_and_unconfined_by_default():
    rd, unc = {"seccompProfile": {"type": "RuntimeDefault"}}, {"seccompProfile": {"type": "Unconfined"}}
    assert seccomp_profile_type({}, {}, "spec.containers[0]") == "Unconfined"
    assert seccomp_profile_type(rd, {}, "spec.containers[0]") == "RuntimeDefault"
    assert seccomp_profile_type(rd, unc, "spec.containers[0]") == "Unconfined"
    local = {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}
    assert seccomp_profile_type(rd, local, "spec.containers[0]") == "Localhost"
    with pytest.raises(MinipodError, match=r"spec.containers\[0\].securityContext.seccompProfile: type Other"):
        seccomp_profile_type({}, {"seccompProfile": {"type": "Other"}}, "spec.containers[0]")
