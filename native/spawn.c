/*
 * minipod native spawn: see spawn.h and the module docstring of
 * minipod/plan.py for what each step means.
 *
 * Rules for everything that runs after fork(): no malloc, no stdio, no locks,
 * only async-signal-safe calls and raw system calls. The caller is Python,
 * possibly with other threads that held libc locks at the time of the fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include "spawn.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
/* openat2(2) (Linux 5.6), called raw: glibc has no wrapper before 2.40.
 * The struct is the kernel's struct open_how. */
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#define MP_RESOLVE_NO_MAGICLINKS 0x02
#define MP_RESOLVE_IN_ROOT 0x10
struct mp_open_how {
    unsigned long long flags;
    unsigned long long mode;
    unsigned long long resolve;
};

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* capset(2) ABI, declared here so that there is no libcap dependency. */
#define MP_CAP_VERSION_3 0x20080522
struct mp_cap_header {
    unsigned int version;
    int pid;
};
struct mp_cap_data {
    unsigned int effective;
    unsigned int permitted;
    unsigned int inheritable;
};

/* Messages on the report pipe. Small enough to be written atomically. */
enum { MSG_PID = 1, MSG_ERR = 2 };
struct mp_msg {
    int type;
    int a; /* MSG_PID: pid of the clone child; MSG_ERR: step index */
    int b; /* MSG_ERR: errno */
};

/* ---------- helpers for the children (async-signal-safe only) ---------- */

static size_t mp_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void report(int fd, int type, int a, int b)
{
    struct mp_msg msg = { type, a, b };
    (void)write_all(fd, &msg, sizeof msg);
}

/* Copy path into buf (PATH_MAX); -1 with ENAMETOOLONG if it does not fit. */
static int copy_path(char *buf, const char *path)
{
    size_t len = mp_strlen(path);
    if (len >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    return 0;
}

/* mkdir -p: create every missing component of path with mode. */
static int mkdir_p(const char *path, unsigned int mode)
{
    char buf[PATH_MAX];
    struct stat st;
    if (copy_path(buf, path) < 0)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0) {
        if (errno != EEXIST)
            return -1;
        /* mkdir -p accepts an existing directory, nothing else */
        if (stat(buf, &st) < 0)
            return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
    }
    return 0;
}

/* Create an empty file (and its parents) unless something exists there. */
static int make_file(const char *path, unsigned int mode)
{
    char parent[PATH_MAX];
    if (copy_path(parent, path) < 0)
        return -1;
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (mkdir_p(parent, 0755) < 0)
            return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, mode);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

/* ---------- paths resolved inside a container's root (mp_op.root) ---------- */

/*
 * The part of path below root, without leading slashes ("." for root
 * itself); NULL with EINVAL when path is not root or under it.
 */
static const char *path_in_root(const char *root, const char *path)
{
    size_t len = mp_strlen(root);
    while (len > 1 && root[len - 1] == '/')
        len--;
    if (strncmp(path, root, len) != 0 || (path[len] != '\0' && path[len] != '/' && len > 1)) {
        errno = EINVAL;
        return NULL;
    }
    const char *rest = path + len;
    while (*rest == '/')
        rest++;
    return *rest ? rest : ".";
}

/*
 * openat2(rootfd, rel) with rootfd as "/": absolute symlinks and ".." stay
 * inside it, and /proc magic links (which could jump anywhere) are refused.
 * The kernel answers EAGAIN when a rename raced the lookup: try again.
 */
static int open_in_root(int rootfd, const char *rel, int flags, unsigned int mode)
{
    struct mp_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0; /* openat2 refuses a mode otherwise */
    how.resolve = MP_RESOLVE_IN_ROOT | MP_RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0; attempt < 32; attempt++) {
        long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN)
            return (int)fd;
    }
    return -1;
}

/* close() that keeps the errno of the call before it. */
static void close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

/*
 * Split rel (copied into buf) into its parent directory, opened inside
 * root (O_PATH), and its last name. Returns the parent fd or -1.
 */
static int open_parent_in_root(int rootfd, const char *rel, char *buf, const char **name)
{
    if (copy_path(buf, rel) < 0)
        return -1;
    size_t len = mp_strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    char *slash = strrchr(buf, '/');
    const char *parent = ".";
    if (slash) {
        *slash = '\0';
        parent = buf;
        *name = slash + 1;
    } else {
        *name = buf;
    }
    return open_in_root(rootfd, parent, O_PATH | O_DIRECTORY, 0);
}

/* mkdir one name inside root: its parent is resolved in root first, and
 * mkdirat never follows a symlink at the name itself (EEXIST). */
static int mkdir_one_in_root(int rootfd, const char *rel, unsigned int mode)
{
    char buf[PATH_MAX];
    const char *name;
    int parent = open_parent_in_root(rootfd, rel, buf, &name);
    if (parent < 0)
        return -1;
    int rc = mkdirat(parent, name, mode);
    if (rc < 0 && errno == EEXIST)
        rc = 0; /* whatever it is, the final check below decides */
    close_keep_errno(parent);
    return rc;
}

/* mkdir -p inside root; the result must resolve (in root) to a directory. */
static int mkdir_p_in_root(int rootfd, const char *rel, unsigned int mode)
{
    char buf[PATH_MAX];
    if (copy_path(buf, rel) < 0)
        return -1;
    for (char *p = buf;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char end = *p;
        *p = '\0';
        int rc = (p > buf && p[-1] != '/') ? mkdir_one_in_root(rootfd, buf, mode) : 0;
        *p = end;
        if (rc < 0)
            return -1;
        if (end == '\0')
            break;
    }
    int fd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/*
 * Create an empty file inside root unless something exists there. A
 * dangling symlink at the path is followed inside root, so the file lands
 * where the container will see it (as runc does), never on the host.
 * O_NONBLOCK: never hang on a FIFO that appeared meanwhile.
 */
static int make_file_in_root(int rootfd, const char *rel, unsigned int mode)
{
    int fd = open_in_root(rootfd, rel, O_PATH, 0);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno != ENOENT)
        return -1;
    char parent[PATH_MAX];
    if (copy_path(parent, rel) < 0)
        return -1;
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (mkdir_p_in_root(rootfd, parent, 0755) < 0)
            return -1;
    }
    fd = open_in_root(rootfd, rel, O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK, mode);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* mknod or symlink at rel, relative to its parent resolved inside root. */
static int make_entry_in_root(int rootfd, const struct mp_op *op, const char *rel)
{
    char buf[PATH_MAX];
    const char *name;
    int parent = open_parent_in_root(rootfd, rel, buf, &name);
    if (parent < 0)
        return -1;
    int rc = op->kind == MP_MKNOD ? mknodat(parent, name, op->mode, makedev(op->major, op->minor))
                                  : symlinkat(op->a, parent, name);
    close_keep_errno(parent);
    return rc;
}

/* "/proc/self/fd/<fd>" into buf (at least 32 bytes), without stdio. */
static void fd_path(char *buf, int fd)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    do {
        digits[n++] = (char)('0' + fd % 10);
        fd /= 10;
    } while (fd > 0 && n < (int)sizeof digits);
    memcpy(buf, prefix, sizeof prefix - 1);
    char *p = buf + sizeof prefix - 1;
    while (n > 0)
        *p++ = digits[--n];
    *p = '\0';
}

/* Mount onto the target resolved inside root, through its fd, so that no
 * symlink can move the mount point between the lookup and the mount. A
 * source equal to the target (bind a path onto itself, to remount it
 * read-only) is the same resolved fd. */
static int mount_in_root(int rootfd, const struct mp_op *op, const char *rel)
{
    int fd = open_in_root(rootfd, rel, O_PATH, 0);
    if (fd < 0)
        return -1;
    char target[32];
    fd_path(target, fd);
    const char *source = (op->a && strcmp(op->a, op->b) == 0) ? target : op->a;
    int rc = mount(source, target, op->c, op->flags, op->d);
    close_keep_errno(fd);
    return rc;
}

/* A step with a root: open the root once, do the step relative to it. */
static int run_in_root(const struct mp_op *op)
{
    const char *rel = path_in_root(op->root, op->b);
    if (!rel)
        return -1;
    int rootfd = open(op->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return -1;
    int rc;
    switch (op->kind) {
    case MP_MKDIR:
        rc = mkdir_p_in_root(rootfd, rel, op->mode);
        break;
    case MP_MKFILE:
        rc = make_file_in_root(rootfd, rel, op->mode);
        break;
    case MP_MKNOD:
    case MP_SYMLINK:
        rc = make_entry_in_root(rootfd, op, rel);
        break;
    case MP_MOUNT:
        rc = mount_in_root(rootfd, op, rel);
        break;
    default:
        errno = EINVAL;
        rc = -1;
    }
    close_keep_errno(rootfd);
    return rc;
}

static int write_file(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, content, mp_strlen(content));
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static int pivot_into(const char *new_root)
{
    /* pivot_root(".", ".") stacks the old root on top of the new one, so
     * one lazy unmount of "." removes it without needing a put_old dir. */
    if (chdir(new_root) < 0)
        return -1;
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return -1;
    if (umount2(".", MNT_DETACH) < 0)
        return -1;
    return chdir("/");
}

static int link_up(const char *ifname)
{
    struct ifreq ifr;
    size_t len = mp_strlen(ifname);
    if (len >= IFNAMSIZ) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, len);
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return -1;
    int rc = ioctl(sock, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(sock, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(sock);
    errno = saved;
    return rc;
}

static int dup_to(int fd, int target)
{
    if (fd == target) {
        /* dup2 would be a no-op and leave close-on-exec set */
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0)
            return -1;
        return fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return dup2(fd, target) < 0 ? -1 : 0;
}

/*
 * Become uid/gid with exactly the given capabilities, in runc's order.
 * Raw syscalls, not the glibc wrappers: those broadcast set*id to every
 * thread glibc believes exists, and after a raw clone its view is stale.
 */
static int set_identity(const struct mp_op *op)
{
    const unsigned long long *caps = op->caps;

    /* Dropping from the bounding set needs CAP_SETPCAP: do it first. */
    for (int cap = 0; cap <= op->last_cap; cap++) {
        if (caps[MP_CAP_BOUNDING] & (1ULL << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return -1;
    }
    if (syscall(SYS_setgroups, (size_t)op->ngroups, op->groups) < 0)
        return -1;
    if (syscall(SYS_setresgid, op->gid, op->gid, op->gid) < 0)
        return -1;
    /* Keep the permitted set across the uid change; capset trims it next. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return -1;
    if (syscall(SYS_setresuid, op->uid, op->uid, op->uid) < 0)
        return -1;

    struct mp_cap_header header = { MP_CAP_VERSION_3, 0 };
    struct mp_cap_data data[2];
    for (int word = 0; word < 2; word++) {
        int shift = 32 * word;
        data[word].effective = (unsigned int)(caps[MP_CAP_EFFECTIVE] >> shift);
        data[word].permitted = (unsigned int)(caps[MP_CAP_PERMITTED] >> shift);
        data[word].inheritable = (unsigned int)(caps[MP_CAP_INHERITABLE] >> shift);
    }
    if (syscall(SYS_capset, &header, data) < 0)
        return -1;

    /* Ambient caps must be in permitted and inheritable: raise after capset.
     * Clear first so only the requested ones survive exec. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -1;
    for (int cap = 0; cap <= op->last_cap && cap < 64; cap++) {
        if (!(caps[MP_CAP_AMBIENT] & (1ULL << cap)))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return -1;
    }
    return prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

/* The filter was assembled by Python (minipod/seccomp.py); the kernel
 * copies it, so the buffer need only live until this call returns. */
static int install_seccomp(const struct mp_op *op)
{
    if (op->flags == 0 || op->flags > BPF_MAXINSNS) {
        errno = EINVAL;
        return -1;
    }
    struct sock_fprog prog = {
        .len = (unsigned short)op->flags,
        .filter = (struct sock_filter *)op->a,
    };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

/* Mark every fd >= 3 close-on-exec; the report pipe already is. */
static void cloexec_from_3(void)
{
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    /* Older kernels: walk /proc/self/fd with getdents64 (no opendir, which
     * allocates), or a bounded loop when /proc is not there. */
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        char buf[4096];
        long n;
        while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                /* struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name */
                unsigned short reclen;
                memcpy(&reclen, buf + off + 16, sizeof reclen);
                const char *name = buf + off + 19;
                int fd = 0, digits = 0;
                for (const char *c = name; *c >= '0' && *c <= '9'; c++, digits++)
                    fd = fd * 10 + (*c - '0');
                if (digits > 0 && fd >= 3 && fd != dir)
                    fcntl(fd, F_SETFD, FD_CLOEXEC);
                off += reclen;
            }
        }
        close(dir);
        return;
    }
    struct rlimit rl;
    int max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max)
        max = (int)rl.rlim_cur;
    for (int fd = 3; fd < max; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Reset what a Python parent leaves behind: handlers and ignored signals
 * (SIGPIPE), so the new program starts with default dispositions. */
/* The kernel's own struct sigaction (x86_64, arm64 and the generic ABI). */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

static void reset_signal_dispositions(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigaction(sig, &sa, NULL) == 0 || errno != EINVAL || sig == SIGKILL || sig == SIGSTOP)
            continue;
        /* glibc refuses its internal signals (32, 33), but an ignored one
         * is inherited across exec: reset it with the raw system call. */
        struct kernel_sigaction ksa;
        memset(&ksa, 0, sizeof ksa);
        ksa.handler = SIG_DFL;
        (void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof ksa.mask);
    }
}

static void unblock_all_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The fds a Dup2 step put in place are meant for the program: let them
 * through the close-on-exec sweep. */
static int keep_dup2_targets(const struct mp_op *ops, int nops)
{
    for (int i = 0; i < nops; i++) {
        if (ops[i].kind != MP_DUP2 || ops[i].target < 3)
            continue;
        int flags = fcntl(ops[i].target, F_GETFD);
        if (flags < 0 || fcntl(ops[i].target, F_SETFD, flags & ~FD_CLOEXEC) < 0)
            return -1;
    }
    return 0;
}

/* execve, or the execvp-style PATH search of search_path. Returns -1 with
 * errno on failure (never on success). */
static int exec_step(const struct mp_op *op, const struct mp_op *ops, int nops)
{
    const char *file = op->b;
    const char *search = op->a ? op->a : "";

    cloexec_from_3();
    if (keep_dup2_targets(ops, nops) < 0)
        return -1;
    unblock_all_signals();

    if (strchr(file, '/')) {
        execve(file, op->argv, op->envp);
        return -1;
    }
    if (*file == '\0' || *search == '\0') {
        errno = ENOENT;
        return -1;
    }

    size_t flen = mp_strlen(file);
    int seen_eacces = 0;
    const char *dir = search;
    for (;;) {
        const char *end = strchr(dir, ':');
        size_t dlen = end ? (size_t)(end - dir) : mp_strlen(dir);
        char path[PATH_MAX];
        if (dlen == 0) {
            /* an empty entry means the current directory, as for execvp */
            path[0] = '.';
            dlen = 1;
        } else if (dlen < PATH_MAX) {
            memcpy(path, dir, dlen);
        }
        if (dlen + 1 + flen < PATH_MAX) {
            path[dlen] = '/';
            memcpy(path + dlen + 1, file, flen + 1);
            execve(path, op->argv, op->envp);
            switch (errno) {
            case EACCES:
                seen_eacces = 1;
                break;
            case ENOENT:
            case ENOTDIR:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
                break;
            default:
                return -1; /* found but not runnable: say why */
            }
        }
        if (!end)
            break;
        dir = end + 1;
    }
    errno = seen_eacces ? EACCES : ENOENT;
    return -1;
}

/* MkDir, MkFile, MkNod with exactly the plan's mode (/dev/null is 0666,
 * /tmp 1777): the umask is lifted for the call only, because the program
 * exec'd at the end must still inherit the caller's umask. */
static int make_node(const struct mp_op *op)
{
    mode_t saved_umask = umask(0);
    int rc;
    if (op->root)
        rc = run_in_root(op);
    else if (op->kind == MP_MKDIR)
        rc = mkdir_p(op->b, op->mode);
    else if (op->kind == MP_MKFILE)
        rc = make_file(op->b, op->mode);
    else
        rc = mknod(op->b, op->mode, makedev(op->major, op->minor));
    int err = errno;
    umask(saved_umask);
    errno = err;
    return rc;
}

/* Run one step; 0 on success, -1 with errno on failure. MP_CLONE and
 * MP_EXEC are handled by run_plan. */
static int run_step(const struct mp_op *op)
{
    switch (op->kind) {
    case MP_SETNS:
        return setns(op->fd, (int)op->flags);
    case MP_UNSHARE:
        return unshare((int)op->flags);
    case MP_MOUNT:
        if (op->root)
            return run_in_root(op);
        return mount(op->a, op->b, op->c, op->flags, op->d);
    case MP_UMOUNT:
        return umount2(op->b, (int)op->flags);
    case MP_MKDIR:
    case MP_MKFILE:
    case MP_MKNOD:
        return make_node(op);
    case MP_SYMLINK:
        if (op->root)
            return run_in_root(op);
        return symlink(op->a, op->b);
    case MP_WRITEFILE:
        return write_file(op->b, op->a);
    case MP_PIVOTROOT:
        return pivot_into(op->b);
    case MP_SETHOSTNAME:
        return sethostname(op->a, mp_strlen(op->a));
    case MP_LINKUP:
        return link_up(op->a);
    case MP_SETSID:
        return setsid() < 0 ? -1 : 0;
    case MP_SETCTTY:
        return ioctl(op->fd, TIOCSCTTY, 0);
    case MP_DUP2:
        return dup_to(op->fd, op->target);
    case MP_CHDIR:
        return chdir(op->b);
    case MP_IDENTITY:
        return set_identity(op);
    case MP_NONEWPRIVS:
        return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    case MP_SECCOMP:
        return install_seccomp(op);
    default:
        errno = EINVAL;
        return -1;
    }
}

/* The first child's life: run every step, clone where asked, exec at the
 * end. Never returns. */
static void run_plan(const struct mp_op *ops, int nops, int report_fd)
{
    reset_signal_dispositions();

    /* A Dup2 onto the report pipe's number would cut the line to the caller
     * and keep it open past exec: move the pipe above every target. */
    int highest_target = -1;
    for (int i = 0; i < nops; i++)
        if (ops[i].kind == MP_DUP2 && ops[i].target > highest_target)
            highest_target = ops[i].target;
    if (report_fd <= highest_target) {
        int moved = fcntl(report_fd, F_DUPFD_CLOEXEC, highest_target + 1);
        if (moved < 0) {
            report(report_fd, MSG_ERR, -1, errno); /* no step of the plan */
            _exit(127);
        }
        close(report_fd);
        report_fd = moved;
    }

    for (int i = 0; i < nops; i++) {
        const struct mp_op *op = &ops[i];
        if (op->kind == MP_CLONE) {
            /* fork-like clone: the child continues on a copy of this stack.
             * CLONE_PARENT makes it the caller's child, not ours. */
            long pid = syscall(SYS_clone, op->flags | CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
            if (pid < 0) {
                report(report_fd, MSG_ERR, i, errno);
                _exit(127);
            }
            if (pid > 0) {
                report(report_fd, MSG_PID, (int)pid, 0);
                _exit(0);
            }
            continue;
        }
        int rc = op->kind == MP_EXEC ? exec_step(op, ops, i) : run_step(op);
        if (rc < 0) {
            int err = errno;
            if (op->optional && err == ENOENT)
                continue;
            report(report_fd, MSG_ERR, i, err);
            _exit(127);
        }
    }
    /* A plan without Exec: nothing to run. Say so rather than return into
     * the caller's copy of Python. */
    report(report_fd, MSG_ERR, nops, EINVAL);
    _exit(127);
}

/* ---------- the caller's side ---------- */

static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int mp_spawn_start(const struct mp_op *ops, int nops, int *report_fd, int *failed_errno)
{
    int fds[2];
    *report_fd = -1;
    *failed_errno = 0;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        *failed_errno = errno;
        return -1;
    }
    /* Keep the write end off 0-2, where Dup2 steps put stdio. */
    if (fds[1] < 3) {
        int moved = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
        if (moved < 0) {
            *failed_errno = errno;
            close(fds[0]);
            close(fds[1]);
            return -1;
        }
        close(fds[1]);
        fds[1] = moved;
    }

    /* Block every signal across fork so no Python handler ever runs in the
     * child; the child resets dispositions and unblocks right before exec. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid1 = fork();
    if (pid1 == 0) {
        close(fds[0]);
        run_plan(ops, nops, fds[1]);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(fds[1]);
    if (pid1 < 0) {
        close(fds[0]);
        *failed_errno = fork_errno;
        return -1;
    }
    *report_fd = fds[0];
    return pid1;
}

/* One whole message; 0 at EOF (or a read error: the child is gone either way). */
static int read_msg(int fd, struct mp_msg *msg)
{
    size_t have = 0;
    while (have < sizeof *msg) {
        ssize_t n = read(fd, (char *)msg + have, sizeof *msg - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        have += (size_t)n;
    }
    return 1;
}

int mp_spawn_read_pid(int report_fd, int *failed_step, int *failed_errno)
{
    struct mp_msg msg;
    if (!read_msg(report_fd, &msg))
        return 0;
    if (msg.type == MSG_PID)
        return msg.a;
    *failed_step = msg.a;
    *failed_errno = msg.b;
    return -1;
}

int mp_spawn_finish(int report_fd, int pid1, int pid2, int *failed_step, int *failed_errno)
{
    /* Read reports until EOF: the pipe is close-on-exec, so EOF means the
     * final process exec'd (or died). */
    int got_err = *failed_step != -1 || *failed_errno != 0;
    struct mp_msg msg;
    while (read_msg(report_fd, &msg)) {
        if (msg.type == MSG_PID) {
            pid2 = msg.a;
        } else if (msg.type == MSG_ERR && !got_err) {
            got_err = 1;
            *failed_step = msg.a;
            *failed_errno = msg.b;
        }
    }
    close(report_fd);

    if (pid2 > 0)
        reap(pid1); /* it exited right after the clone */
    if (got_err) {
        /* The failing process is the caller's child either way. */
        reap(pid2 > 0 ? pid2 : pid1);
        return -1;
    }
    return pid2 > 0 ? pid2 : pid1;
}

int mp_spawn(const struct mp_op *ops, int nops, int *failed_step, int *failed_errno)
{
    int report_fd;
    *failed_step = -1;
    int pid1 = mp_spawn_start(ops, nops, &report_fd, failed_errno);
    if (pid1 < 0)
        return -1;
    return mp_spawn_finish(report_fd, pid1, 0, failed_step, failed_errno);
}

int mp_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
