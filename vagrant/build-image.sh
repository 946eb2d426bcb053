#!/bin/sh
# Build minipod's test VM: Debian 12 with pure cgroup v2, offline.
#
#   sudo vagrant/build-image.sh [--force]
#
# Writes build/vm/debian12.qcow2 (and build/vm/ssh/id_ed25519, the key its user
# "vagrant" accepts). Nothing is reached but Debian's mirror (mmdebstrap)
# and PyPI (pip, on the host); the VM itself never has a network.
# Steps: wheels of minipod's Python dependencies -> a Debian tree with
# mmdebstrap (kernel, systemd, sshd, compilers, what the tests need, the
# wheels installed in /opt/minipod/venv) -> an ext4 filesystem made from
# that tree with `mkfs.ext4 -d` inside a partitioned raw disk -> GRUB
# (i386-pc) written by hand -> qcow2. The image is rebuilt only when its
# inputs change (this script, guest/, the dependencies in pyproject.toml).
#
# Environment: MINIPOD_VM_DIR (default build/vm), MINIPOD_VM_MIRROR (default
# http://deb.debian.org/debian), MINIPOD_VM_SECURITY_MIRROR, MINIPOD_VM_SIZE
# (disk size, default 8G), PYTHON (a Python 3.11+ with pip, for the wheels).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${MINIPOD_VM_DIR:-$repo/build/vm}
image=$out/debian12.qcow2
mirror=${MINIPOD_VM_MIRROR:-http://deb.debian.org/debian}
security=${MINIPOD_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
size=${MINIPOD_VM_SIZE:-8G}
force=no
[ "${1:-}" = --force ] && force=yes

die() { echo "build-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, chroot and mkfs need it)"
for tool in mmdebstrap mkfs.ext4 sfdisk qemu-img grub-mkimage; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run 'sudo make vm-deps'"
done
[ -f /usr/lib/grub/i386-pc/boot.img ] || die "GRUB's i386-pc files are missing: run 'sudo make vm-deps'"

# Debian packages of the image. Beyond booting and ssh: what `make test`
# installs on a host (APT_PACKAGES in the Makefile), so that the whole suite
# can run in the VM offline, and libcap-dev to build python-prctl.
packages="linux-image-cloud-amd64 systemd systemd-sysv udev dbus kmod procps
 e2fsprogs openssh-server sudo rsync less ca-certificates
 python3 python3-venv python3-dev build-essential libc6-dev libcap-dev make
 busybox-static iproute2 nftables file docker-registry skopeo apache2-utils
 libseccomp2 openssl"

# The Python pip finds for its downloads: the project's venv, else PYTHON.
python=${PYTHON:-}
[ -n "$python" ] || { [ -x "$repo/.venv/bin/python" ] && python=$repo/.venv/bin/python; } || true
[ -n "$python" ] || python=python3
"$python" -c 'import sys, tomllib, pip' 2>/dev/null \
    || die "$python is not a Python 3.11+ with pip: run 'sudo make setup' or set PYTHON"

mkdir -p "$out"
# One build at a time per build/vm: a second one waits, then finds the image.
exec 9>"$out/.build.lock"
flock 9
requirements=$out/requirements.txt
# minipod's dependencies and its test extra, as pyproject.toml has them.
"$python" - "$repo/pyproject.toml" > "$requirements.new" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
    print(requirement)
EOF
mv "$requirements.new" "$requirements"

inputs=$( { cat "$here/build-image.sh" "$requirements"; echo "$packages $mirror $size";
            for f in "$here"/guest/*; do cat "$f"; done; } | sha256sum | cut -d' ' -f1)
if [ "$force" = no ] && [ -f "$image" ] && [ "$(cat "$image.inputs" 2>/dev/null)" = "$inputs" ]; then
    echo "build-image: $image is up to date"
    exit 0
fi

started=$(date +%s)
work=$out/work
rm -rf --one-file-system "$work"
mkdir -p "$work/wheels" "$out/debs"
# --one-file-system: never into a /proc or /dev that a killed build left mounted.
trap 'rm -rf --one-file-system "$work"' EXIT

echo "== wheels for the VM's Python 3.11 (pip download)"
# Binary wheels for CPython 3.11 on x86_64 glibc, whatever Python runs pip
# here; python-prctl only as source, built inside the image (customize.sh).
grep -v '^python-prctl' "$requirements" > "$work/binary.txt"
"$python" -m pip download --quiet --disable-pip-version-check --dest "$work/wheels" \
    --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 \
    pip setuptools wheel -r "$work/binary.txt"
if grep -q '^python-prctl' "$requirements"; then
    # pip reads the sdist's metadata by running its setup.py, which wants gcc
    # and libcap-dev on this host too.
    "$python" -m pip download --quiet --disable-pip-version-check --dest "$work/wheels" \
        --no-deps --no-binary=:all: "$(grep '^python-prctl' "$requirements")"
fi
cp "$requirements" "$work/wheels/requirements.txt"

echo "== Debian 12 tree (mmdebstrap, from $mirror)"
uuid=$(cat /proc/sys/kernel/random/uuid)
# The .debs are kept in build/vm/debs so that a rebuild downloads only what changed.
VM_GUEST=$here/guest VM_WHEELS=$work/wheels VM_SSH=$out/ssh VM_UUID=$uuid \
mmdebstrap --mode=root --variant=minbase --quiet \
    --include="$(echo $packages | tr ' ' ,)" \
    --aptopt='Acquire::Retries "3"' \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in '$out/debs' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$out/debs'" \
    --customize-hook='sh "$VM_GUEST/customize.sh" "$1"' \
    bookworm "$work/rootfs" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main"
rm -rf "$out/debs/lock" "$out/debs/partial"

echo "== disk: MBR, one ext4 partition made from the tree, GRUB"
raw=$work/disk.raw
first_sector=2048  # 1 MiB: the gap before the partition holds GRUB's core image
truncate -s "$size" "$raw"
echo "start=$first_sector, type=83, bootable" | sfdisk --quiet "$raw"
disk_bytes=$(stat -c %s "$raw")
fs_blocks=$(( (disk_bytes - first_sector * 512) / 4096 ))
mkfs.ext4 -q -F -L minipod-root -U "$uuid" -b 4096 -E offset=$((first_sector * 512)) \
    -d "$work/rootfs" "$raw" "$fs_blocks"
# boot.img (the MBR code, 446 bytes: the partition table stays) loads the
# core image from sector 1; the core image has what it needs to read ext4
# on an msdos partition and to run grub.cfg, whose modules are in the tree.
# It finds its filesystem by UUID: the BIOS may number another disk first
# (run-job.sh's job disk, a disk that libvirt adds).
printf 'search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n' "$uuid" \
    > "$work/early.cfg"
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/early.cfg" -p /boot/grub \
    biosdisk part_msdos ext2 search search_fs_uuid normal configfile linux echo test \
    serial terminal
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -lt "$first_sector" ] || die "GRUB's core image does not fit before the partition"
dd if=/usr/lib/grub/i386-pc/boot.img of="$raw" bs=446 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$raw" bs=512 seek=1 conv=notrunc status=none

qemu-img convert -O qcow2 "$raw" "$image.new"
mv "$image.new" "$image"
echo "$inputs" > "$image.inputs"
echo "build-image: $image ($(du -m "$image" | cut -f1) MiB) in $(( $(date +%s) - started )) s"
