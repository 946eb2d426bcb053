"""The seccomp benchmark (issue 9's "Speed"): what a seccomp filter adds to
a container's start, for RuntimeDefault (target: at most 2 ms) and for a
Localhost profile compiled with libseccomp.

    .venv/bin/python bench/seccomp.py [--runs 50] [--warmup 3] [--out DIR]

Needs no root: the filter is installed the way a container gets it, by the
native spawn (``prctl(PR_SET_NO_NEW_PRIVS)``, the ``Seccomp`` step, then
``execve``), here of ``/bin/true``, and no host resource is made. Rows:

1. building the filter: RuntimeDefault assembled in Python (uncached), a
   Docker-like Localhost profile (~300 allowed names, argument conditions)
   parsed and compiled by libseccomp in a warm process, and the same first
   used in a fresh ``python`` (importing ctypes, loading libseccomp: what one
   ``minipod run`` pays once, timed inside that process; the supervisor,
   forked from it, inherits the compiled filter);
2. a start with the filter, its cached build included, against the same
   spawn without one (the floor), pair by pair; and the difference, the
   start cost the filter adds (the issue's target row).

Prints a table and writes ``seccomp-<date>-<time>.json`` under --out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from core import REPO_DIR, BenchError, Metric, guarded
from report import print_and_save
from run import host_facts, loadavg

if REPO_DIR not in sys.path:
    sys.path.insert(0, REPO_DIR)

ADDED_TARGET_MS = 2.0
PROGRAM = "/bin/true"

# Docker's default profile allows about these (names from its allow list;
# ones this libseccomp does not know are skipped, as at a real start).
DOCKER_LIKE_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2
fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat
fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe
pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv
recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt
shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socket socketcall socketpair splice stat
stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit
umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write
writev arch_prctl modify_ldt
""".split()
NAMESPACE_FLAGS = 0x7E020000


def docker_like_profile() -> dict:
    """Default ERRNO, the allow list, and Docker's argument-conditioned rules
    for personality and clone (the kinds of rule that cost instructions)."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": DOCKER_LIKE_ALLOWED, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"} for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description="minipod seccomp benchmark (no root needed)")
    p.add_argument("--runs", type=int, default=50, help="measured samples per row (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured samples before each row (default 3)")
    p.add_argument("--out", default=os.path.join(REPO_DIR, "bench", "results"), help="where results go")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        p.error("--runs must be at least 1 and --warmup at least 0")
    return args


def new_metrics() -> dict[str, Metric]:
    unfiltered = "the same spawn (no_new_privs, execve of /bin/true, reaped) without a filter"
    return {
        "rd_build": Metric("rd_build", "RuntimeDefault filter assembled (uncached)", "ms"),
        "lh_compile": Metric("lh_compile", "Localhost profile compiled (warm process)", "ms"),
        "lh_first": Metric("lh_first", "Localhost first use in a fresh process", "ms"),
        "rd_start": Metric("rd_start", "start with RuntimeDefault (cached)", "ms", floor_label=unfiltered),
        "rd_added": Metric("rd_added", "  added by RuntimeDefault", "ms", ADDED_TARGET_MS),
        "lh_start": Metric("lh_start", "start with the Localhost profile (cached)", "ms", floor_label=unfiltered),
        "lh_added": Metric("lh_added", "  added by the Localhost profile", "ms", ADDED_TARGET_MS),
    }


def paired_differences(a: list[float], b: list[float]) -> list[float]:
    """a[i] - b[i] for each pair taken back to back."""
    return [x - y for x, y in zip(a, b)]


def summary_lines(rows: dict[str, dict], instructions: dict[str, int]) -> list[str]:
    lines = []
    for key in ("rd_added", "lh_added"):
        row = rows.get(key)
        if row:
            lines.append(f"  {row['label'].strip()}: median {row['minipod']['median']:.3f} ms "
                         f"(target {row['target']} ms): {row['verdict']}")
    lines.append("  filter sizes: " + ", ".join(f"{k} {v} instructions" for k, v in instructions.items()))
    return lines


class SeccompBench:
    def __init__(self, work_dir: str):
        from minipod.capabilities import DEFAULT_CAPABILITIES, mask

        self.caps = mask(DEFAULT_CAPABILITIES)
        self.seccomp_dir = os.path.join(work_dir, "seccomp")
        os.makedirs(self.seccomp_dir)
        with open(os.path.join(self.seccomp_dir, "docker-like.json"), "w") as f:
            json.dump(docker_like_profile(), f)

    # ------------------------------------------------------------- building
    def build_runtime_default(self) -> float:
        from minipod.seccomp import runtime_default_filter

        t0 = time.perf_counter_ns()
        runtime_default_filter.__wrapped__(self.caps)
        return (time.perf_counter_ns() - t0) / 1e6

    def compile_localhost(self) -> float:
        from minipod.seccomp_localhost import _compile

        path = os.path.join(self.seccomp_dir, "docker-like.json")
        with open(path, "rb") as f:
            text = f.read()
        t0 = time.perf_counter_ns()
        _compile(path, text, self.caps)
        return (time.perf_counter_ns() - t0) / 1e6

    def first_use(self) -> float:
        """In a fresh interpreter that has imported what ``minipod run`` has
        by then (json, re, click…), timed there: the imports, libseccomp's
        load, the read and the compile, as one ``minipod run`` pays them."""
        code = ("import time, minipod.cli, minipod.runtime, minipod.container; t0 = time.perf_counter_ns(); "
                "from minipod.seccomp_localhost import localhost_filter; "
                f"localhost_filter({self.seccomp_dir!r}, 'docker-like.json', {self.caps}); "
                "print((time.perf_counter_ns() - t0) / 1e6)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_DIR)
        if proc.returncode != 0:
            raise BenchError(f"first use of a Localhost profile failed: {proc.stderr.strip()[-300:]}")
        return float(proc.stdout)

    # ------------------------------------------------------------- starting
    def filters(self) -> dict[str, bytes]:
        from minipod.seccomp import runtime_default_filter
        from minipod.seccomp_localhost import localhost_filter

        return {"RuntimeDefault": runtime_default_filter(self.caps),
                "Localhost": localhost_filter(self.seccomp_dir, "docker-like.json", self.caps)}

    def start(self, label: str | None) -> float:
        """Spawn /bin/true as a container's last steps are: no_new_privs,
        the filter (its cached build timed too), execve; until reaped."""
        from minipod import _sys
        from minipod.plan import Exec, NoNewPrivs, Plan, Seccomp
        from minipod.seccomp import runtime_default_filter
        from minipod.seccomp_localhost import localhost_filter

        t0 = time.perf_counter_ns()
        plan = Plan([NoNewPrivs()])
        if label == "RuntimeDefault":
            plan.add(Seccomp(runtime_default_filter(self.caps), label))
        elif label == "Localhost":
            plan.add(Seccomp(localhost_filter(self.seccomp_dir, "docker-like.json", self.caps), label))
        plan.add(Exec(PROGRAM, (PROGRAM,)))
        pid = _sys.spawn(plan)
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter_ns() - t0) / 1e6
        if status != 0:
            raise BenchError(f"{PROGRAM} under {label or 'no filter'} exited with status {status:#x}")
        return elapsed


def measure(bench: SeccompBench, runs: int, warmup: int, m: dict[str, Metric]) -> None:
    for key, sample in (("rd_build", bench.build_runtime_default), ("lh_compile", bench.compile_localhost),
                        ("lh_first", bench.first_use)):
        for n in range(warmup + runs):
            value = sample()
            if n >= warmup:
                m[key].minipod.append(value)
        print(f"  {m[key].label}: {runs} samples done", flush=True)
    bench.filters()  # built once, as the first container start builds them
    for label, key, added in (("RuntimeDefault", "rd_start", "rd_added"), ("Localhost", "lh_start", "lh_added")):
        for n in range(warmup + runs):
            mine, floor = bench.start(label), bench.start(None)  # A B, back to back
            if n >= warmup:
                m[key].minipod.append(mine)
                m[key].floor.append(floor)
        m[added].minipod.extend(paired_differences(m[key].minipod, m[key].floor))
        print(f"  {m[key].label}: {runs} pairs done", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    from minipod.libseccomp import library

    try:
        library()
    except Exception as exc:  # a MinipodError: libseccomp missing
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    started = datetime.datetime.now()
    work_dir = tempfile.mkdtemp(prefix="minipod-bench-seccomp-", dir="/tmp")
    metrics = new_metrics()
    instructions: dict[str, int] = {}
    load_before = loadavg()
    print(f"minipod seccomp benchmark: {args.runs} runs (+{args.warmup} warm-up)", flush=True)

    def work():
        bench = SeccompBench(work_dir)
        instructions.update({k: len(v) // 8 for k, v in bench.filters().items()})
        measure(bench, args.runs, args.warmup, metrics)

    def cleanup():
        shutil.rmtree(work_dir, ignore_errors=True)
        return [], [work_dir] if os.path.exists(work_dir) else []

    code, error, problems, left = guarded(work, cleanup)
    if error:
        return code
    rows = {k: mt.to_dict() for k, mt in metrics.items() if mt.minipod}
    result = {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.datetime.now() - started).total_seconds(), 1),
        "runs": args.runs, "warmup": args.warmup,
        "order": "building rows sample by sample; start rows alternate A B (filter, then none), "
                 "in-process perf_counter_ns",
        "program": PROGRAM, "filter_instructions": instructions,
        "docker_like_allowed_names": len(DOCKER_LIKE_ALLOWED),
        "host": host_facts(),
        "loadavg_before": load_before, "loadavg_after": loadavg(),
        "clean": not problems and not left, "left_behind": problems + left,
        "summary": {k: {"median_ms": rows[k]["minipod"]["median"], "target_ms": rows[k]["target"],
                        "verdict": rows[k]["verdict"],
                        "median_floor_ms": statistics.median(metrics[k.replace("added", "start")].floor)}
                    for k in ("rd_added", "lh_added") if k in rows},
        "rows": list(rows.values()),
    }
    return print_and_save(result, summary_lines(rows, instructions), "seccomp",
                          args.out, started)


if __name__ == "__main__":
    sys.exit(main())
