/*
 * minipod native spawn: carry out a spawn plan (minipod/plan.py) in a child
 * process, in C only, then execve.
 *
 * Python prepares every string and array; the children never allocate, never
 * use stdio and make only async-signal-safe calls and raw system calls,
 * because the caller may be a multi-threaded Python process.
 *
 * This header is also the cffi "cdef" source (native/build_ffi.py reads the
 * part between the CDEF markers), so keep that part to plain declarations.
 */
#ifndef MINIPOD_SPAWN_H
#define MINIPOD_SPAWN_H

/* CDEF-BEGIN */

/* Step kinds: one per dataclass in minipod/plan.py. */
enum mp_kind {
    MP_SETNS = 1,      /* fd, flags = nstype                                    */
    MP_CLONE,          /* flags = CLONE_NEW* (may be 0)                         */
    MP_UNSHARE,        /* flags                                                 */
    MP_MOUNT,          /* a = source, b = target, c = fstype, d = data, flags,
                          root (b resolved in it, see below)                    */
    MP_UMOUNT,         /* b = target, flags                                     */
    MP_MKDIR,          /* b = path, mode (exact: the umask does not apply), root */
    MP_MKFILE,         /* b = path, mode (exact), root                          */
    MP_MKNOD,          /* b = path, mode (exact, with S_IFCHR...), major, minor,
                          root                                                  */
    MP_SYMLINK,        /* a = target, b = path, root                            */
    MP_WRITEFILE,      /* b = path, a = content                                 */
    MP_PIVOTROOT,      /* b = new root                                          */
    MP_SETHOSTNAME,    /* a = hostname                                          */
    MP_LINKUP,         /* a = interface name                                    */
    MP_SETSID,         /* -                                                     */
    MP_SETCTTY,        /* fd                                                    */
    MP_DUP2,           /* fd, target (a target >= 3 stays open across exec)     */
    MP_CHDIR,          /* b = path                                              */
    MP_IDENTITY,       /* uid, gid, groups/ngroups, caps[], last_cap            */
    MP_NONEWPRIVS,     /* -                                                     */
    MP_EXEC,           /* b = path, argv, envp, a = search path (PATH string)   */
    MP_SECCOMP         /* a = struct sock_filter[], flags = instruction count  */
};

/* Indexes into mp_op.caps for MP_IDENTITY (bit masks of CAP_* numbers). */
enum mp_capset {
    MP_CAP_BOUNDING = 0,
    MP_CAP_EFFECTIVE = 1,
    MP_CAP_PERMITTED = 2,
    MP_CAP_INHERITABLE = 3,
    MP_CAP_AMBIENT = 4
};

/*
 * One step, as a flat record: each kind uses the fields listed in enum
 * mp_kind and ignores the rest (zero them). NULL strings pass NULL to the
 * kernel (e.g. a mount with no source).
 *
 * root (MkDir, MkFile, MkNod, Symlink, Mount): when not NULL, b must be root
 * itself or a path under it, and the part after root is resolved INSIDE root,
 * as if root were "/" (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS):
 * symlinks and ".." in the image cannot lead out of it, so an image cannot
 * make the runtime create or mount anything on the host before pivot_root.
 * Missing directories are made with mkdirat on fds resolved that way, files
 * and nodes relative to their resolved parent, and a mount goes onto
 * "/proc/self/fd/N" of the resolved target (only b: a, the source, is a
 * host path, except that a == b binds the resolved target onto itself).
 * NULL: the paths are used as they are (host paths).
 */
struct mp_op {
    int kind;                   /* enum mp_kind */
    int optional;               /* skip the step if it fails with ENOENT */
    int fd;
    int target;
    unsigned long flags;
    unsigned int mode;
    unsigned int major;
    unsigned int minor;
    const char *a;
    const char *b;
    const char *c;
    const char *d;
    const char *root;           /* see above; NULL for none */
    char *const *argv;          /* NULL-terminated */
    char *const *envp;          /* NULL-terminated */
    const unsigned int *groups; /* supplementary gids */
    int ngroups;
    unsigned int uid;
    unsigned int gid;
    int last_cap;               /* /proc/sys/kernel/cap_last_cap, read by the caller */
    unsigned long long caps[5]; /* enum mp_capset */
};

/*
 * Run the plan. Returns the pid of the process that execs (a direct child
 * of the caller, also when the plan has a MP_CLONE step), or -1 with
 * *failed_step = index of the failed step and *failed_errno = its errno.
 * *failed_step is -1 when the failure happened in the caller (pipe, fork).
 */
int mp_spawn(const struct mp_op *ops, int nops, int *failed_step, int *failed_errno);

/*
 * The same in steps, for a caller with work to do while the plan runs:
 * mp_spawn_start forks and returns the first child's pid and the read end of
 * its report pipe (or -1, *failed_errno set). mp_spawn_read_pid waits for
 * the first report: the pid of the Clone step's child, as soon as it exists
 * (its namespaces can be opened then), 0 at EOF (no Clone step, or the
 * process exec'd or died), or -1 with *failed_step and *failed_errno of a
 * failed step: one before the clone, or one after it when the clone's
 * child reported before its parent did (both write to the report pipe). mp_spawn_finish waits until the final
 * process exec'd, closes report_fd and returns as mp_spawn does; pass the
 * pid read_pid returned (else 0), and *failed_step/*failed_errno as read_pid
 * left them (-1 and 0 when it reported no failure).
 */
int mp_spawn_start(const struct mp_op *ops, int nops, int *report_fd, int *failed_errno);
int mp_spawn_read_pid(int report_fd, int *failed_step, int *failed_errno);
int mp_spawn_finish(int report_fd, int pid1, int pid2, int *failed_step, int *failed_errno);

/* Thin wrappers for calls that glibc does not wrap; -1 and errno on failure. */
int mp_pivot_root(const char *new_root, const char *put_old);

/* CDEF-END */

#endif
