/*
 * minipod-pause: the process that owns a pod's namespaces.
 *
 * It does nothing but wait: app containers join its net/ipc/uts (and pid)
 * namespaces with setns, so the pod keeps its IP while containers come and
 * go. When the pod shares one PID namespace, pause is its PID 1 and must
 * reap the orphans that get reparented to it.
 *
 * One runs per pod, so its memory is what a pod costs at rest. It is built
 * without any C library (-nostdlib -ffreestanding, see setup.py): its own
 * _start, five raw system calls and no writable data, so the program is
 * one page of code and its RSS ~12 kB (mostly the stack), against ~700 kB
 * for a static glibc build, which brings stdio, locale and TLS set-up.
 *
 * No signal handlers either, so there is no sa_restorer trampoline to
 * write: SIGINT, SIGTERM and SIGCHLD are blocked and taken one at a time
 * with rt_sigtimedwait. That also works as PID 1 of a pid namespace, where
 * a signal with the default action is dropped: the kernel never treats a
 * *blocked* signal as ignored, so it is queued for us to take.
 *
 * Signals behave as in the Kubernetes pause container: SIGINT and SIGTERM
 * exit 0, SIGCHLD reaps, every other signal keeps its default action (so
 * as PID 1 of a pid namespace the kernel drops them: besides SIGINT and
 * SIGTERM, only SIGKILL from an outer namespace stops it).
 *
 * Raw system calls are written for x86_64 and aarch64 only; elsewhere
 * setup.py builds native/pause_libc.c, the same program over libc.
 */

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "pause.c has system calls for x86_64 and aarch64 only: build pause_libc.c"
#endif

#ifndef MINIPOD_VERSION
#define MINIPOD_VERSION "0.1.0"
#endif

/* Linux ABI values, the same on x86_64 and aarch64 (no libc headers here). */
#define SIGINT 2
#define SIGTERM 15
#define SIGCHLD 17
#define SIG_SETMASK 2
#define WNOHANG 1

#if defined(__x86_64__)

#define NR_write 1
#define NR_rt_sigprocmask 14
#define NR_wait4 61
#define NR_rt_sigtimedwait 128
#define NR_exit_group 231

static long syscall4(long nr, long a, long b, long c, long d)
{
    register long r10 __asm__("r10") = d;
    long ret;
    /* The syscall instruction itself clobbers rcx and r11. */
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

/* The kernel starts us with argc at the stack pointer, argv just above it.
 * Pass that address to C, with the 16-byte alignment a call expects. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    xor %ebp, %ebp\n" /* no caller frame: ends backtraces here */
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call pause_main\n"
        "    hlt\n");

#elif defined(__aarch64__)

#define NR_write 64
#define NR_rt_sigprocmask 135
#define NR_wait4 260
#define NR_rt_sigtimedwait 137
#define NR_exit_group 94

static long syscall4(long nr, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3)
                     : "memory");
    return x0;
}

/* Same entry as on x86_64: sp points at argc and is already 16-aligned. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "    mov x29, #0\n" /* no caller frame: ends backtraces here */
        "    mov x30, #0\n"
        "    mov x0, sp\n"
        "    bl pause_main\n"
        "    brk #0\n");

#endif

/* The kernel's sigset_t: one bit per signal, 64 signals on both. */
typedef unsigned long kernel_sigset;
#define SIGBIT(sig) (1UL << ((sig) - 1))

static __attribute__((noreturn)) void exit_group(int status)
{
    for (;;)
        syscall4(NR_exit_group, status, 0, 0, 0);
}

/* One SIGCHLD may stand for several exits: reap until none is left.
 * wait4 returns 0 while children still run and -ECHILD once none is left. */
static void reap_children(void)
{
    while (syscall4(NR_wait4, -1, 0, WNOHANG, 0) > 0)
        ;
}

static int same_string(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* Called from _start only; not static so the assembly above can name it. */
__attribute__((noreturn, used)) void pause_main(long *stack);

void pause_main(long *stack)
{
    long argc = stack[0];
    char **argv = (char **)(stack + 1);

    if (argc > 1 && (same_string(argv[1], "-v") || same_string(argv[1], "--version"))) {
        static const char version[] = "minipod-pause " MINIPOD_VERSION "\n";
        exit_group(syscall4(NR_write, 1, (long)version, sizeof version - 1, 0) < 0);
    }

    /* Exactly these three blocked, whatever the spawner left: they wait in
     * the queue for rt_sigtimedwait, every other signal keeps its default. */
    kernel_sigset waited = SIGBIT(SIGINT) | SIGBIT(SIGTERM) | SIGBIT(SIGCHLD);
    syscall4(NR_rt_sigprocmask, SIG_SETMASK, (long)&waited, 0, sizeof waited);

    /* Children that exited before the mask was in place: a SIGCHLD to an
     * unblocked default action was discarded. */
    reap_children();

    for (;;) {
        /* No siginfo wanted, no timeout: sleep until one of the three. */
        long sig = syscall4(NR_rt_sigtimedwait, (long)&waited, 0, 0, sizeof waited);
        if (sig == SIGINT || sig == SIGTERM)
            exit_group(0);
        /* SIGCHLD, or woken for another reason (-EINTR): reaping is cheap. */
        reap_children();
    }
}
