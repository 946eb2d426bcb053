"""seccomp Localhost profiles: the OCI/Docker JSON format checked field by
field, compiled with libseccomp (no root needed) and the programs run
through a classic-BPF interpreter; where profiles are read from, the cache,
the check ``run`` makes, and how the filter reaches the spawn plan."""

from __future__ import annotations

import errno
import json
import os
import struct

import pytest

from minipod.capabilities import DEFAULT_CAPABILITIES, mask
from minipod.errors import MinipodError, SpecError
from minipod.seccomp_profile import ProfileError, kernel_version, parse_profile

AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7
X86_64 = {"mkdir": 83, "mkdirat": 258, "read": 0, "write": 1, "rmdir": 84, "personality": 135, "clone": 56,
          "unshare": 272, "getpid": 39, "socket": 41}
I386 = {"mkdir": 39, "getpid": 20}
LONG_LIST = {  # x86_64 numbers (asm/unistd_64.h)
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6, "poll": 7, "lseek": 8,
    "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14, "ioctl": 16,
    "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "access": 21, "pipe": 22, "dup": 32, "dup2": 33,
    "nanosleep": 35, "getpid": 39, "socket": 41, "clone": 56, "fork": 57, "execve": 59, "exit": 60, "wait4": 61,
    "kill": 62, "uname": 63, "fcntl": 72, "getcwd": 79, "chdir": 80, "rename": 82, "mkdir": 83, "rmdir": 84,
    "unlink": 87, "getuid": 102, "getppid": 110, "unshare": 272, "exit_group": 231, "openat": 257,
}
DEFAULT = mask(DEFAULT_CAPABILITIES)
ALLOW, KILL_THREAD, KILL_PROCESS, TRAP, LOG = "allow", "kill_thread", "kill_process", "trap", "log"

needs_x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers here are x86_64's")


def _has_libseccomp() -> bool:
    try:
        from minipod.libseccomp import library

        library()
        return True
    except MinipodError:
        return False


needs_libseccomp = pytest.mark.skipif(not _has_libseccomp(), reason="libseccomp.so.2 is not installed")


# ---------------------------------------------------------------- a cBPF interpreter
def run(program: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64, args=(0,) * 6):
    """Evaluate a seccomp program on one syscall, as the kernel would: "allow",
    ("errno", n), ("trace", n) or one of the kill/trap/log names."""
    data = struct.pack("<iIQ6Q", nr, arch, 0x1000, *args, *(0,) * (6 - len(args)))
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    a = x = pc = 0
    mem = [0] * 16
    for _ in range(100000):
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            mode = code & 0xE0
            a = struct.unpack_from("<I", data, k)[0] if mode == 0x20 else mem[k] if mode == 0x60 else k
        elif cls == 0x01:  # LDX
            x = mem[k] if code & 0xE0 == 0x60 else k
        elif cls == 0x02:  # ST
            mem[k] = a
        elif cls == 0x03:  # STX
            mem[k] = x
        elif cls == 0x04:  # ALU
            operand = x if code & 0x08 else k
            op = code & 0xF0
            a = {0x00: a + operand, 0x10: a - operand, 0x40: a | operand, 0x50: a & operand,
                 0x60: a << operand, 0x70: a >> operand, 0xA0: a ^ operand}[op] & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            op, operand = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x00:
                pc += k
                continue
            taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return _verdict(a if code & 0x18 == 0x10 else k)
        elif cls == 0x07:  # MISC
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
    raise AssertionError("program did not return")


def _verdict(ret: int):
    action, datum = ret & 0xFFFF0000, ret & 0xFFFF
    return {0x7FFF0000: ALLOW, 0x00000000: KILL_THREAD, 0x80000000: KILL_PROCESS, 0x00030000: TRAP,
            0x7FFC0000: LOG}.get(action) or {0x00050000: ("errno", datum), 0x7FF00000: ("trace", datum)}[action]


# ---------------------------------------------------------------- parsing
def profile(**fields) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", **fields}


def parse(data, source="p.json"):
    return parse_profile(json.dumps(data) if not isinstance(data, str) else data, source)


def test_a_docker_style_profile_is_read_into_records():
    p = parse(profile(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=38, architectures=["SCMP_ARCH_X86_64"],
                      flags=["SECCOMP_FILTER_FLAG_TSYNC"],
                      syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                                 "comment": "no directories"},
                                {"name": "personality", "action": "SCMP_ACT_ALLOW",
                                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
                                 "includes": {"caps": ["SYS_ADMIN"], "arches": ["amd64"], "minKernel": "4.8"}}]))
    assert (p.default_action, p.default_errno, p.architectures) == ("SCMP_ACT_ERRNO", 38, ("SCMP_ARCH_X86_64",))
    first, second = p.rules
    assert (first.where, first.names, first.errno_ret) == ("syscalls[0]", ("mkdir", "mkdirat"), 1)
    assert second.names == ("personality",) and second.args[0].value == 8 and second.args[0].value_two == 0
    assert second.includes.caps == ("CAP_SYS_ADMIN",) and second.includes.min_kernel == (4, 8, 0)
    assert p.warnings == () and p.unapplied_flags() == ()  # TSYNC: one thread, nothing to sync


def test_errno_ret_defaults_to_eperm_for_errno_and_trace():
    p = parse(profile(defaultAction="SCMP_ACT_ERRNO",
                      syscalls=[{"names": ["a"], "action": "SCMP_ACT_TRACE"}, {"names": ["b"], "action": "SCMP_ACT_ERRNO"}]))
    assert p.default_value() == 0x00050000 | errno.EPERM
    assert [r.action_value() for r in p.rules] == [0x7FF00000 | errno.EPERM, 0x00050000 | errno.EPERM]


@pytest.mark.parametrize("data, message", [
    ("{", "not valid JSON: Expecting property name"),
    ([], "must be an object, not a list"),
    ({}, "defaultAction: required"),
    (profile(defaultAction="SCMP_ACT_FOO"), 'defaultAction: unsupported action "SCMP_ACT_FOO"'),
    (profile(defaultAction="SCMP_ACT_NOTIFY"), "defaultAction: SCMP_ACT_NOTIFY is not supported"),
    (profile(defaultErrnoRet=1), "defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE return a value"),
    (profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]), "syscalls[0].action: SCMP_ACT_NOTIFY"),
    (profile(syscalls=[{"names": ["mkdir"]}]), "syscalls[0].action: required"),
    (profile(syscalls=[{"names": [], "action": "SCMP_ACT_LOG"}]), "syscalls[0].names: required"),
    (profile(syscalls=[{"names": ["a", 7], "action": "SCMP_ACT_LOG"}]), "syscalls[0].names[1]: must be a non-empty string"),
    (profile(syscalls=[{"name": "a", "names": ["a"], "action": "SCMP_ACT_LOG"}]), "syscalls[0].name: give either"),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]), "syscalls[0].errnoRet: only"),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]),
     "syscalls[0].errnoRet: must be a whole number from 0 to 65535, not 70000"),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": True}]), "syscalls[0].errnoRet"),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_LOG", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
     "syscalls[0].args[0].index: must be a whole number from 0 to 5"),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_LOG", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]),
     "syscalls[0].args[0].value: must be a whole number from 0 to 18446744073709551615, not -1"),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_LOG", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]),
     'syscalls[0].args[0].op: unsupported operator "EQ"'),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_LOG", "includes": {"caps": ["CAP_FLY"]}}]),
     'syscalls[0].includes.caps[0]: unknown capability "CAP_FLY"'),
    (profile(syscalls=[{"names": ["a"], "action": "SCMP_ACT_LOG", "excludes": {"minKernel": "four"}}]),
     'syscalls[0].excludes.minKernel: "four" is not a kernel version'),
    (profile(syscalls={"names": ["a"]}), "syscalls: must be a list, not an object"),
    (profile(architectures=["x86_64"]), 'architectures[0]: "x86_64" is not an architecture'),
    (profile(architectures=["SCMP_ARCH_X86_64"], archMap=[{"architecture": "SCMP_ARCH_X86_64"}]),
     "archMap: give either architectures or archMap"),
    (profile(flags=["SECCOMP_FILTER_FLAG_FAST"]), 'flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FAST"'),
])
def test_problems_name_the_file_and_the_field(data, message):
    with pytest.raises(ProfileError) as caught:
        parse(data, "/srv/seccomp/p.json")
    assert str(caught.value).startswith("seccomp profile /srv/seccomp/p.json: ")
    assert message in str(caught.value)


def test_unknown_fields_and_a_listener_are_warnings_not_errors():
    p = parse(profile(listenerPath="/run/agent.sock", extra=1,
                      syscalls=[{"names": ["a"], "action": "SCMP_ACT_LOG", "args": [], "why": "x"}]))
    assert p.warnings == ("seccomp profile p.json: extra: unknown field, ignored",
                          "seccomp profile p.json: listenerPath: ignored, minipod runs no seccomp agent",
                          "seccomp profile p.json: syscalls[0].why: unknown field, ignored")


def test_flags_the_spawn_step_cannot_pass_are_reported():
    p = parse(profile(flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    assert p.unapplied_flags() == ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")


def test_includes_and_excludes_select_rules_as_docker_does():
    rules = [{"names": ["any"], "action": "SCMP_ACT_LOG"},
             {"names": ["admin"], "action": "SCMP_ACT_LOG", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
             {"names": ["not-admin"], "action": "SCMP_ACT_LOG", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
             {"names": ["amd64"], "action": "SCMP_ACT_LOG", "includes": {"arches": ["amd64", "x32"]}},
             {"names": ["arm64"], "action": "SCMP_ACT_LOG", "includes": {"arches": ["arm64"]}},
             {"names": ["new"], "action": "SCMP_ACT_LOG", "includes": {"minKernel": "5.8"}},
             {"names": ["old"], "action": "SCMP_ACT_LOG", "excludes": {"minKernel": "5.8"}}]
    p = parse(profile(syscalls=rules))

    def names(caps, machine, kernel):
        return [r.names[0] for r in p.rules_for(caps, machine, kernel)]

    admin = DEFAULT | mask(["SYS_ADMIN"])
    assert names(DEFAULT, "x86_64", (6, 18, 0)) == ["any", "not-admin", "amd64", "new"]
    assert names(admin, "aarch64", (5, 4, 0)) == ["any", "admin", "arm64", "old"]


def test_arch_map_gives_the_native_architecture_and_its_sub_architectures():
    p = parse(profile(archMap=[
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}]))
    assert p.architectures_for("x86_64") == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    assert p.architectures_for("aarch64") == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")
    assert p.architectures_for("s390x") == ()


def test_kernel_version_reads_uname_releases():
    assert kernel_version("6.18.0-13-amd64") == (6, 18, 0)
    assert kernel_version("5.4") == (5, 4, 0)
    assert kernel_version("weird") == ()


# ---------------------------------------------------------------- compiling
def compiled(data, caps=DEFAULT):
    from minipod.libseccomp import compile_profile

    return compile_profile(parse(data), caps, "x86_64", (6, 18, 0))


@needs_libseccomp
@needs_x86_64
def test_a_deny_rule_on_an_allow_by_default_profile():
    c = compiled(profile(syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]))
    assert run(c.program, X86_64["mkdir"]) == ("errno", 1)
    assert run(c.program, X86_64["mkdirat"]) == ("errno", 1)
    assert run(c.program, X86_64["rmdir"]) == ALLOW
    # A profile without other architectures: another ABI is libseccomp's bad-arch action, kill.
    assert run(c.program, I386["mkdir"], AUDIT_ARCH_I386) == KILL_THREAD
    assert run(c.program, X86_64["mkdir"] | 0x40000000) == KILL_THREAD  # x32


@needs_libseccomp
@needs_x86_64
def test_default_deny_with_an_allow_list_and_every_action():
    c = compiled(profile(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=38, syscalls=[
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["rmdir"], "action": "SCMP_ACT_TRAP"},
        {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
        {"names": ["socket"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
        {"names": ["unshare"], "action": "SCMP_ACT_KILL"}]))
    assert [run(c.program, X86_64[n]) for n in ("read", "write", "mkdir", "rmdir", "getpid", "socket", "unshare")] == \
        [ALLOW, ALLOW, KILL_PROCESS, TRAP, LOG, ("trace", 7), KILL_THREAD]
    assert run(c.program, X86_64["clone"]) == ("errno", 38)


@needs_libseccomp
@needs_x86_64
def test_a_long_allow_list_compiles_to_a_tree_that_decides_the_same():
    allowed = [n for n in LONG_LIST if n not in ("mkdir", "unshare")]
    c = compiled(profile(defaultAction="SCMP_ACT_ERRNO", syscalls=[{"names": allowed, "action": "SCMP_ACT_ALLOW"}]))
    codes = {struct.unpack_from("=H", c.program, i)[0] for i in range(0, len(c.program), 8)}
    assert 0x25 in codes  # BPF_JMP|BPF_JGT|BPF_K: the binary tree's comparisons (a chain has none)
    for name, nr in LONG_LIST.items():
        assert run(c.program, nr) == (("errno", errno.EPERM) if name in ("mkdir", "unshare") else ALLOW), name
    for nr in (300, 999, 3 * 17, 64):
        assert run(c.program, nr) == ("errno", errno.EPERM), nr


@needs_libseccomp
@needs_x86_64
def test_other_architectures_are_filtered_with_their_own_numbers():
    c = compiled(profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                         syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]))
    assert run(c.program, I386["mkdir"], AUDIT_ARCH_I386) == ("errno", errno.EPERM)
    assert run(c.program, I386["getpid"], AUDIT_ARCH_I386) == ALLOW
    assert run(c.program, X86_64["mkdir"]) == ("errno", errno.EPERM)


@needs_libseccomp
@needs_x86_64
def test_argument_conditions_and_repeated_indexes_mean_any_of():
    c = compiled(profile(defaultAction="SCMP_ACT_ERRNO", syscalls=[
        # Docker's personality rule: several allowed values of argument 0.
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        # And the clone rule: no namespace flag set (mask, then compare).
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 100, "op": "SCMP_CMP_LE"}]}]))
    eperm = ("errno", errno.EPERM)
    assert [run(c.program, X86_64["personality"], args=(v,)) for v in (0, 8, 4)] == [ALLOW, ALLOW, eperm]
    assert run(c.program, X86_64["clone"], args=(17,)) == ALLOW
    assert run(c.program, X86_64["clone"], args=(0x10000000 | 17,)) == eperm  # CLONE_NEWUSER
    assert run(c.program, X86_64["write"], args=(1, 0, 100)) == ALLOW
    assert run(c.program, X86_64["write"], args=(1, 0, 101)) == eperm  # both conditions must hold
    assert run(c.program, X86_64["write"], args=(2, 0, 10)) == eperm
    assert run(c.program, X86_64["write"], args=(1 | 1 << 32, 0, 10)) == eperm  # all 64 bits compared


@needs_libseccomp
def test_unknown_names_are_skipped_and_rules_like_the_default_left_out():
    c = compiled(profile(syscalls=[{"names": ["mkdir", "no_such_syscall", "socketcall"], "action": "SCMP_ACT_ERRNO"},
                                   {"names": ["rmdir"], "action": "SCMP_ACT_ALLOW"}]))
    # socketcall is an x86 (32-bit) name: libseccomp knows it, so it is not "unknown".
    assert c.skipped == ("no_such_syscall",)
    assert c.instructions > 0


@needs_libseccomp
@needs_x86_64
def test_capability_dependent_rules_follow_the_container_s_set():
    data = profile(defaultAction="SCMP_ACT_ERRNO", syscalls=[
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}])
    assert run(compiled(data).program, X86_64["unshare"]) == ("errno", errno.EPERM)
    assert run(compiled(data, DEFAULT | mask(["SYS_ADMIN"])).program, X86_64["unshare"]) == ALLOW


@needs_libseccomp
def test_an_architecture_libseccomp_does_not_know_is_an_error():
    with pytest.raises(ProfileError, match="architectures: architecture SCMP_ARCH_VAX is unknown to libseccomp"):
        compiled(profile(architectures=["SCMP_ARCH_VAX"]))


# ---------------------------------------------------------------- the profile directory
@pytest.fixture
def seccomp_dir(tmp_path):
    d = tmp_path / "var" / "lib" / "minipod" / "seccomp"
    d.mkdir(parents=True)
    return d


DENY_MKDIR = profile(syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}])


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)


@needs_libseccomp
def test_profiles_are_read_from_the_directory_and_cached_per_file_version(seccomp_dir):
    from minipod.seccomp_localhost import localhost_filter

    write(seccomp_dir / "profiles" / "deny.json", DENY_MKDIR)
    first = localhost_filter(str(seccomp_dir), "profiles/deny.json", DEFAULT)
    assert localhost_filter(str(seccomp_dir), "profiles/deny.json", DEFAULT) is first  # cached
    assert localhost_filter(str(seccomp_dir), "profiles/deny.json", DEFAULT | mask(["SYS_ADMIN"])) == first
    write(seccomp_dir / "profiles" / "deny.json", profile(syscalls=[{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]))
    changed = localhost_filter(str(seccomp_dir), "profiles/deny.json", DEFAULT)
    assert changed != first  # a new size or mtime: read again
    if os.uname().machine == "x86_64":
        assert run(changed, X86_64["rmdir"]) == ("errno", errno.EPERM) and run(changed, X86_64["mkdir"]) == ALLOW


def test_a_missing_profile_names_the_directory(seccomp_dir):
    from minipod.seccomp_localhost import localhost_filter

    with pytest.raises(ProfileError, match=f"seccomp profile {seccomp_dir}/nope.json: no such profile "
                                           rf"\(Localhost profiles are read from {seccomp_dir}\)"):
        localhost_filter(str(seccomp_dir), "nope.json", DEFAULT)


def test_a_symlink_out_of_the_directory_is_refused(seccomp_dir, tmp_path):
    from minipod.seccomp_localhost import localhost_filter

    write(tmp_path / "elsewhere.json", DENY_MKDIR)
    os.symlink(str(tmp_path / "elsewhere.json"), seccomp_dir / "escape.json")
    os.symlink("..", seccomp_dir / "up")
    for name in ("escape.json", "up/elsewhere.json"):
        with pytest.raises(ProfileError, match=f"leads outside {seccomp_dir}"):
            localhost_filter(str(seccomp_dir), name, DEFAULT)
    with pytest.raises(ProfileError, match="leads outside"):
        localhost_filter(str(seccomp_dir), ".", DEFAULT)  # the directory itself


@needs_libseccomp
def test_a_symlink_inside_the_directory_is_followed(seccomp_dir):
    from minipod.seccomp_localhost import localhost_filter

    write(seccomp_dir / "v2" / "deny.json", DENY_MKDIR)
    os.symlink("v2/deny.json", seccomp_dir / "current.json")
    assert localhost_filter(str(seccomp_dir), "current.json", DEFAULT) == \
        localhost_filter(str(seccomp_dir), "v2/deny.json", DEFAULT)


def test_a_directory_is_not_a_profile(seccomp_dir):
    from minipod.seccomp_localhost import localhost_filter

    (seccomp_dir / "sub").mkdir()
    with pytest.raises(ProfileError, match="sub: is not a regular file"):
        localhost_filter(str(seccomp_dir), "sub", DEFAULT)


def pod_with(pod_profile=None, container_profile=None, privileged=False, second=False) -> dict:
    containers = [{"name": "app", "image": "busybox", "securityContext": {}}]
    if container_profile:
        containers[0]["securityContext"]["seccompProfile"] = container_profile
    if privileged:
        containers[0]["securityContext"]["privileged"] = True
    if second:
        containers.append({"name": "other", "image": "busybox"})
    spec = {"containers": containers}
    if pod_profile:
        spec["securityContext"] = {"seccompProfile": pod_profile}
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}


def local(name: str) -> dict:
    return {"type": "Localhost", "localhostProfile": name}


def test_run_checks_every_profile_before_anything_exists(seccomp_dir):
    from minipod.seccomp_localhost import check_pod_profiles

    write(seccomp_dir / "bad.json", profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]))
    with pytest.raises(SpecError) as caught:
        check_pod_profiles(pod_with(container_profile=local("bad.json")), str(seccomp_dir))
    assert caught.value.problems == [
        f"spec.containers[0].securityContext.seccompProfile.localhostProfile: seccomp profile {seccomp_dir}/bad.json: "
        "syscalls[0].action: SCMP_ACT_NOTIFY is not supported: it hands syscalls to a seccomp agent listening on "
        "a socket, and minipod runs none"]
    # The pod's profile, shared by two containers, is one problem.
    with pytest.raises(SpecError) as caught:
        check_pod_profiles(pod_with(pod_profile=local("gone.json"), second=True), str(seccomp_dir))
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("spec.securityContext.seccompProfile.localhostProfile: seccomp profile ")


@needs_libseccomp
def test_run_check_passes_good_profiles_and_ignores_privileged_containers(seccomp_dir):
    from minipod.seccomp_localhost import check_pod_profiles

    write(seccomp_dir / "deny.json", DENY_MKDIR)
    check_pod_profiles(pod_with(pod_profile=local("deny.json"), second=True), str(seccomp_dir))
    check_pod_profiles(pod_with(container_profile={"type": "RuntimeDefault"}), str(seccomp_dir))
    # containerd never filters a privileged container, so its profile is not read.
    check_pod_profiles(pod_with(container_profile=local("gone.json"), privileged=True), str(seccomp_dir))


# ---------------------------------------------------------------- into the plan
@needs_libseccomp
def test_the_compiled_filter_reaches_the_plan_and_the_exec_record(seccomp_dir):
    from minipod.container import ImageInfo, identity_step, localhost_from_record, make_launch, privilege_steps
    from minipod.plan import Seccomp

    write(seccomp_dir / "deny.json", DENY_MKDIR)
    pod = pod_with(container_profile=local("deny.json"))
    image = ImageInfo("busybox:latest", "sha256:1", "sha256:2", {"Cmd": ["sh"]}, [])
    launch = make_launch(pod, pod["spec"]["containers"][0], "spec.containers[0]", image, "web", {}, {}, {},
                         seccomp_dir=str(seccomp_dir))
    assert (launch.seccomp, launch.seccomp_profile) == ("Localhost", "deny.json")
    record = launch.to_record()
    assert localhost_from_record(record) == (launch.seccomp_program, "deny.json")
    steps = privilege_steps(identity_step(launch.user, launch.caps), False, "Localhost", False,
                            *localhost_from_record(record))
    assert isinstance(steps[0], Seccomp) and steps[0].program == launch.seccomp_program
    assert steps[0].describe().startswith("seccomp filter Localhost deny.json (")


def test_a_start_without_a_compiled_localhost_filter_fails_rather_than_run_unfiltered():
    from minipod.container import identity_step, privilege_steps
    from minipod.users import User

    with pytest.raises(MinipodError, match="seccompProfile Localhost p.json: no compiled filter"):
        privilege_steps(identity_step(User(0, 0, ()), DEFAULT), False, "Localhost", False, b"", "p.json")
    assert len(privilege_steps(identity_step(User(0, 0, ()), DEFAULT), False, "Localhost", True)) == 1


def test_a_broken_profile_at_start_is_the_container_s_error(seccomp_dir):
    from minipod.container import ImageInfo, make_launch

    write(seccomp_dir / "bad.json", "{not json")
    pod = pod_with(container_profile=local("bad.json"))
    image = ImageInfo("busybox:latest", "sha256:1", "sha256:2", {"Cmd": ["sh"]}, [])
    with pytest.raises(ProfileError, match="bad.json: not valid JSON"):
        make_launch(pod, pod["spec"]["containers"][0], "spec.containers[0]", image, "web", {}, {}, {},
                    seccomp_dir=str(seccomp_dir))
