#!/bin/sh
# The guest half of `make vm-test` (vagrant/vm-test.sh packs it as the job's
# run.sh; vagrant/run-job.sh runs it as root in the VM, in a delegated
# cgroup). Checks that the VM really is pure cgroup v2, builds minipod's
# native parts with Debian 12's own compiler and Python, runs the tests of
# tests.txt and exits with pytest's exit code.
set -u
python=/opt/minipod/venv/bin/python
fail() { echo "vm-test: $*"; exit 1; }

. /etc/os-release
echo "== guest: $PRETTY_NAME, kernel $(uname -r), $(nproc) CPUs"
cgroup_fs=$(stat -fc %T /sys/fs/cgroup)
echo "== /sys/fs/cgroup is $cgroup_fs; controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
[ "$cgroup_fs" = cgroup2fs ] || fail "/sys/fs/cgroup is $cgroup_fs, not cgroup2fs: this lane is for pure cgroup v2"
if grep -q ' cgroup ' /proc/mounts; then fail "a cgroup v1 hierarchy is mounted: this lane is for pure cgroup v2"; fi
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
echo "== this job's cgroup: $own (delegated; its children may use: $(cat "/sys/fs/cgroup$own/cgroup.controllers"))"

cd /job/src || fail "no source tree in the job"
echo "== build minipod's native parts (gcc $(gcc -dumpversion), $($python -V))"
started=$(date +%s)
$python setup.py -q build_ext --inplace >/job/build.log 2>&1 || { cat /job/build.log; fail "the build failed"; }
echo "   built in $(( $(date +%s) - started )) s"

tests=$(grep -v '^ *#' /job/tests.txt | grep .)
echo "== pytest:" $tests
# -v: the log names each test that passed on this pure v2 kernel.
$python -m pytest -v -ra -p no:cacheprovider --durations=10 $tests
