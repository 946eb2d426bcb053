#!/bin/sh
# mmdebstrap's customize hook for vagrant/build-image.sh: turn the Debian 12
# tree at $1 into minipod's test VM. Runs on the host, as root; commands that
# must run as the guest would run through chroot (mmdebstrap has mounted
# /proc, /sys and /dev in it). Inputs come from build-image.sh's environment:
#   VM_GUEST   this directory (the files the guest gets)
#   VM_WHEELS  the Python wheels and sdists downloaded on the host
#   VM_SSH     where the box's ssh key pair lives (made here on first build)
#   VM_UUID    the root filesystem's UUID (for fstab and the kernel line)
set -eu
root=$1
: "${VM_GUEST:?}" "${VM_WHEELS:?}" "${VM_SSH:?}" "${VM_UUID:?}"
# A clean environment: none of the host's PIP_* or PYTHON* settings (with
# PYTHONDONTWRITEBYTECODE, pip would leave the venv without byte-code, and
# every import in the slow emulated guest would compile again).
in_guest() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

echo "== customize: system"
echo minipod-vm > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tminipod-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$root/etc/hosts"
printf 'UUID=%s\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' "$VM_UUID" > "$root/etc/fstab"
# The host's resolver means nothing in an offline VM.
: > "$root/etc/resolv.conf"
# Empty: systemd makes a machine id at each boot (every run is a fresh VM).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

install -m 0644 "$VM_GUEST/10-dhcp.network" "$root/etc/systemd/network/10-dhcp.network"
in_guest systemctl enable -q systemd-networkd.service
# Nothing that wakes up and competes with the tests for an emulated CPU, and
# no registry on :5000 (the registry tests start their own).
for unit in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer docker-registry.service; do
    if [ -e "$root/lib/systemd/system/$unit" ]; then in_guest systemctl mask -q "$unit"; fi
done

echo "== customize: the job runner (vagrant/run-job.sh)"
install -m 0755 "$VM_GUEST/minipod-job" "$root/usr/local/sbin/minipod-job"
install -m 0644 "$VM_GUEST/minipod-job.service" "$root/etc/systemd/system/minipod-job.service"
in_guest systemctl enable -q minipod-job.service

echo "== customize: user vagrant, ssh with the box's own key"
in_guest useradd --create-home --shell /bin/bash --groups sudo vagrant
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
mkdir -p "$VM_SSH"
if [ ! -s "$VM_SSH/id_ed25519" ]; then
    # Made by the guest's ssh-keygen so that the host needs no ssh tools; the
    # private half leaves the image at once. Ed25519: Vagrant's net-ssh 7
    # cannot load an RSA key in OpenSSH's format under OpenSSL 3, and sshd
    # refuses the SHA-1 signatures of older ones.
    in_guest ssh-keygen -q -t ed25519 -N '' -C minipod-vm -f /root/vm-key
    mv "$root/root/vm-key" "$VM_SSH/id_ed25519"
    mv "$root/root/vm-key.pub" "$VM_SSH/id_ed25519.pub"
    chmod 0600 "$VM_SSH/id_ed25519"
fi
install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$VM_SSH/id_ed25519.pub" "$root/home/vagrant/.ssh/authorized_keys"
printf 'PasswordAuthentication no\nUseDNS no\n' > "$root/etc/ssh/sshd_config.d/minipod.conf"

echo "== customize: Python packages, offline from the host's wheels"
mkdir -p "$root/opt/minipod/wheels"
cp "$VM_WHEELS"/* "$root/opt/minipod/wheels/"
in_guest python3 -m venv /opt/minipod/venv
pip="/opt/minipod/venv/bin/pip --no-cache-dir --disable-pip-version-check --quiet"
local_only="--no-index --find-links /opt/minipod/wheels"
in_guest $pip install $local_only --upgrade pip
# python-prctl ships only as source: built here, by Debian's own python3.11
# and against libcap-dev, so the wheel matches the guest exactly.
for sdist in "$root"/opt/minipod/wheels/*.tar.gz; do
    [ -e "$sdist" ] || continue
    in_guest $pip wheel $local_only --no-deps --use-pep517 -w /opt/minipod/wheels "/opt/minipod/wheels/${sdist##*/}"
    rm -f "$sdist"
done
in_guest $pip install $local_only -r /opt/minipod/wheels/requirements.txt
install -m 0644 "$VM_GUEST/pip.conf" "$root/etc/pip.conf"

echo "== customize: GRUB's files and menu"
kernel=$(cd "$root/boot" && ls vmlinuz-* | sort -V | tail -n 1)
initrd=initrd.img-${kernel#vmlinuz-}
[ -e "$root/boot/$initrd" ] || { echo "customize: no $initrd in the image" >&2; exit 1; }
mkdir -p "$root/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cat > "$root/boot/grub/grub.cfg" <<EOF
# Written by vagrant/guest/customize.sh. Pure cgroup v2: unified hierarchy.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "Debian 12 (minipod VM, cgroup v2)" {
    linux /boot/$kernel root=UUID=$VM_UUID ro console=tty0 console=ttyS0,115200 systemd.unified_cgroup_hierarchy=1 panic=10
    initrd /boot/$initrd
}
EOF

echo "== customize: clean up"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/root/.cache
