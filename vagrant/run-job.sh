#!/bin/sh
# Run a job in minipod's test VM with plain qemu: no ssh, no network, no libvirt.
#
#   sudo vagrant/run-job.sh JOBDIR
#
# JOBDIR must hold run.sh. It is packed as a tar and attached as a second,
# read-only virtio disk (serial "minipod-job"); at boot the guest's
# minipod-job.service unpacks it into /job, runs `sh run.sh` there as root
# (in a delegated cgroup), prints everything on the second serial port and
# powers off. That output streams to this script's standard output, and this
# script exits with run.sh's exit code (2 if the VM never reported one, 124
# if it ran out of time). The image is opened with -snapshot: every run
# starts from the same clean disk. The guest's only NIC is qemu's user
# network with restrict=on: nothing gets out.
#
# Environment: MINIPOD_VM_DIR (build/vm), MINIPOD_VM_IMAGE (its debian12.qcow2),
# MINIPOD_VM_CPUS (2), MINIPOD_VM_MEMORY (MiB, 2048), MINIPOD_VM_TIMEOUT
# (seconds, 1800), MINIPOD_VM_ACCEL (kvm or tcg; default: kvm when it works).
# The guest's boot console goes to $MINIPOD_VM_DIR/console.log, the job's
# output to $MINIPOD_VM_DIR/job.log too.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${MINIPOD_VM_DIR:-$(dirname "$here")/build/vm}
image=${MINIPOD_VM_IMAGE:-$out/debian12.qcow2}
cpus=${MINIPOD_VM_CPUS:-2}
memory=${MINIPOD_VM_MEMORY:-2048}
limit=${MINIPOD_VM_TIMEOUT:-1800}
job=${1:?usage: run-job.sh JOBDIR}

die() { echo "run-job: $*" >&2; exit 2; }
[ -f "$job/run.sh" ] || die "$job/run.sh not found"
[ -f "$image" ] || die "$image not found: run vagrant/build-image.sh (or 'sudo make vm-image')"
command -v qemu-system-x86_64 >/dev/null 2>&1 || die "qemu-system-x86_64 is missing: run 'sudo make vm-deps'"

# KVM only when it can run a stock kernel: /dev/kvm alone is not enough (a
# PVM-only /dev/kvm, as on some cloud VMs, boots no Debian kernel), so the
# CPU must also offer VT-x or AMD-V. Otherwise TCG, 10-35x slower.
accel=${MINIPOD_VM_ACCEL:-}
if [ -z "$accel" ]; then
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
fi
case $accel in
    kvm) accel_args="-accel kvm -cpu host" ;;
    tcg) accel_args="-accel tcg,thread=multi -cpu max" ;;
    *) die "MINIPOD_VM_ACCEL must be kvm or tcg, not $accel" ;;
esac

mkdir -p "$out"
scratch=$(mktemp -d "$out/job.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM
# A tar is a whole number of 512-byte sectors: qemu serves it as a raw disk
# as is, and the guest reads it back with tar -xf /dev/vdb.
tar -C "$job" -cf "$scratch/job.tar" .
console=$out/console.log

echo "run-job: booting $image ($accel, $cpus CPUs, $memory MiB, at most $limit s); console in $console"
started=$(date +%s)
# -nodefaults: no NIC, display or serial port other than those below. The
# image is the disk the BIOS boots (bootindex), and the NIC has no boot ROM.
# timeout kills qemu if the guest hangs; the exit status goes through a file
# because the pipe into tee hides it.
{
    qemu_rc=0
    timeout --kill-after=10 "$limit" qemu-system-x86_64 -name minipod-vm -nodefaults -no-reboot \
        $accel_args -smp "$cpus" -m "$memory" -display none -monitor none \
        -drive "file=$image,if=none,id=root,format=qcow2,snapshot=on" \
        -device virtio-blk-pci,drive=root,bootindex=0 \
        -drive "file=$scratch/job.tar,if=none,id=job,format=raw,readonly=on" \
        -device virtio-blk-pci,drive=job,serial=minipod-job \
        -netdev user,id=net0,restrict=on -device virtio-net-pci,netdev=net0,romfile= \
        -device virtio-rng-pci \
        -serial "file:$console" -serial stdio </dev/null || qemu_rc=$?
    echo "$qemu_rc" > "$scratch/qemu.rc"
} | tee "$scratch/output.log"
qemu_rc=$(cat "$scratch/qemu.rc")
cp "$scratch/output.log" "$out/job.log"
elapsed=$(( $(date +%s) - started ))

rc=$(sed -n 's/^minipod-job: exit \([0-9][0-9]*\)$/\1/p' "$scratch/output.log" | tail -n 1)
if [ -z "$rc" ]; then
    if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
        echo "run-job: the VM ran out of time after $elapsed s; the end of its console:" >&2
        rc=124
    else
        echo "run-job: the VM stopped after $elapsed s (qemu exit $qemu_rc) without the job's exit code; the end of its console:" >&2
        rc=2
    fi
    tail -n 40 "$console" >&2
    exit "$rc"
fi
echo "run-job: the job exited $rc; the VM ran $elapsed s"
exit "$rc"
