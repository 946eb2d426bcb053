/*
 * minipod-pause over the C library: the fallback that setup.py builds on
 * CPUs for which native/pause.c has no raw system calls (it covers x86_64
 * and aarch64), or when that build fails.
 *
 * The same program as pause.c, see there: SIGINT and SIGTERM exit 0,
 * SIGCHLD reaps, every other signal keeps its default action. The signals
 * are blocked and taken with sigwaitinfo rather than handled, which also
 * works as PID 1 of a pid namespace (a blocked signal is never dropped as
 * ignored). Linked statically when libc.a exists, it costs ~700 kB of RSS
 * instead of pause.c's ~12 kB.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MINIPOD_VERSION
#define MINIPOD_VERSION "0.1.0"
#endif

/* One SIGCHLD may stand for several exits: reap until none is left. */
static void reap_children(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
        static const char version[] = "minipod-pause " MINIPOD_VERSION "\n";
        return write(1, version, sizeof version - 1) < 0;
    }

    /* Exactly these three blocked, whatever the spawner left. */
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGCHLD);
    sigprocmask(SIG_SETMASK, &waited, NULL);

    /* Children that exited before the mask was in place. */
    reap_children();

    for (;;) {
        int sig = sigwaitinfo(&waited, NULL);
        if (sig == SIGINT || sig == SIGTERM)
            _exit(0);
        reap_children();
    }
}
