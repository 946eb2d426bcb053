#!/bin/sh
# `make vm-test`: minipod's integration tests that matter for cgroup v2, in
# the Debian 12 VM (pure cgroup v2, no network), with plain qemu.
#
#   sudo vagrant/vm-test.sh [PYTEST-PATH-OR-NODE-ID...]
#
# Builds the image once (vagrant/build-image.sh, cached in build/vm), packs
# this working tree (git's tracked and untracked files, without what
# .gitignore leaves out: no .venv, no build output), the test selection
# (vagrant/vm-tests.txt, or the arguments) and vagrant/vm-test-job.sh as a
# job, runs it with vagrant/run-job.sh, and exits with pytest's exit code.
# The log is kept in build/vm/vm-test.log.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${MINIPOD_VM_DIR:-$repo/build/vm}
export MINIPOD_VM_DIR="$out"
started=$(date +%s)

sh "$here/build-image.sh"

job=$(mktemp -d "$out/vm-test-job.XXXXXX")
trap 'rm -rf "$job"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$job/src"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
        | (cd "$repo" && tar --null --files-from=- --ignore-failed-read -cf -) \
        | tar -C "$job/src" -xf -
else
    # Not a git checkout (a tarball): everything but what builds or runs here.
    tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.so' \
        --exclude=./minipod/bin --exclude='__pycache__' -cf - . | tar -C "$job/src" -xf -
fi
cp "$here/vm-test-job.sh" "$job/run.sh"
if [ $# -gt 0 ]; then printf '%s\n' "$@" > "$job/tests.txt"; else cp "$here/vm-tests.txt" "$job/tests.txt"; fi

rc=0
sh "$here/run-job.sh" "$job" || rc=$?
cp "$out/job.log" "$out/vm-test.log" 2>/dev/null || true
echo "vm-test: exit $rc after $(( $(date +%s) - started )) s; the log is in $out/vm-test.log"
exit "$rc"
