#!/bin/bash
# The floor: minipod's one-container pod shape built from public tools only,
# so the benchmark can say how far minipod is from the least work the kernel
# and util-linux need for the same thing.
#
#   floor.sh start DIR LOWER HOSTNAME   start a sandbox in DIR on the rootfs LOWER;
#                                       returns once its container is about to exec `sleep`
#   floor.sh stop DIR                   kill it, wait until its last process is exiting
#                                       (has closed its files), remove DIR
#   floor.sh ps BASE                    list the sandboxes under BASE (NAME STATUS PID)
#
# The shape, as minipod's: new net, ipc, uts, pid and mount namespaces; the
# hostname set and loopback up; an overlay of the same busybox rootfs mounted
# *inside* the new mount namespace (so it vanishes with it, as minipod's
# does), /proc of the new pid namespace, pivot_root, then `sleep`.
# Not done here (minipod does it): cgroups, /dev and /sys, masked paths,
# capabilities, logs, state records, a pause process of its own.
set -eu

# Runs inside the new namespaces: $1 DIR, $2 LOWER, $3 HOSTNAME.
# fd 7 is the readiness fifo, fd 9 the lock that lives as long as the sandbox.
INNER='
set -e
dir=$1 lower=$2 name=$3
merged=$dir/merged
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$merged"
mount -t proc -o nosuid,nodev,noexec proc "$merged/proc"
hostname "$name"
ip link set lo up
cd "$merged"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
echo ready >&7
exec sleep 3600 7>&-
'

start() {
    local dir=$1 lower=$2 name=$3 word
    mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
    mkfifo "$dir/ready"
    # Opened read-write, so this open never blocks whatever the sandbox does;
    # the `read -t` below bounds the wait if the sandbox dies before "ready".
    exec 7<>"$dir/ready"
    # An flock is shared by every copy of the descriptor: each process of the
    # sandbox inherits fd 9, so the lock is released only when the last one
    # has exited. That is how `stop` waits for processes it is not parent of.
    exec 9>"$dir/lock"
    flock 9
    # --kill-child: when unshare dies, its child (PID 1 of the new pid
    # namespace) gets SIGKILL, and with it every process of the namespace.
    setsid unshare --net --ipc --uts --pid --mount --fork --kill-child --propagation private \
        /bin/sh -c "$INNER" floor "$dir" "$lower" "$name" </dev/null >/dev/null 2>"$dir/err" &
    echo $! >"$dir/pid"
    exec 9>&-
    if read -r -t 10 word <&7 && [ "$word" = ready ]; then
        return 0
    fi
    echo "floor.sh: sandbox in $dir did not start:" >&2
    cat "$dir/err" >&2
    return 1
}

stop() {
    local dir=$1 pid
    [ -d "$dir" ] || return 0
    if [ -s "$dir/pid" ]; then
        read -r pid <"$dir/pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    [ -e "$dir/lock" ] && flock "$dir/lock" true
    # The overlay and /proc lived in the sandbox's mount namespace and went
    # with it; unmount only if something is left on the host all the same.
    if grep -qF " $dir/merged " /proc/self/mountinfo; then
        umount -l "$dir/merged"
    fi
    rm -rf "$dir"
}

ps_() {
    local base=$1 d pid status
    printf '%-24s %-8s %s\n' NAME STATUS PID
    for d in "$base"/*/; do
        [ -s "$d/pid" ] || continue
        read -r pid <"$d/pid"
        if kill -0 "$pid" 2>/dev/null; then status=Running; else status=Exited; fi
        d=${d%/}
        printf '%-24s %-8s %s\n' "${d##*/}" "$status" "$pid"
    done
}

case "${1:-}" in
    start) [ $# -eq 4 ] || { echo "usage: floor.sh start DIR LOWER HOSTNAME" >&2; exit 2; }; start "$2" "$3" "$4" ;;
    stop) [ $# -eq 2 ] || { echo "usage: floor.sh stop DIR" >&2; exit 2; }; stop "$2" ;;
    ps) [ $# -eq 2 ] || { echo "usage: floor.sh ps BASE" >&2; exit 2; }; ps_ "$2" ;;
    *) echo "usage: floor.sh start DIR LOWER HOSTNAME | stop DIR | ps BASE" >&2; exit 2 ;;
esac
