#!/bin/sh
# Make a Vagrant box (libvirt provider) of minipod's test VM, offline.
#
#   sudo vagrant/build-box.sh
#
# Builds the image when needed (build-image.sh), then writes
# build/vm/minipod-debian12.box: a tar of box.img (the qcow2),
# metadata.json and a Vagrantfile that points Vagrant at the box's own ssh
# key (id_ed25519, made with the image; not Vagrant's well-known insecure key).
# When vagrant is installed, the box is also added (replacing an older one)
# as minipod/debian12, the default box of vagrant/Vagrantfile.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${MINIPOD_VM_DIR:-$(dirname "$here")/build/vm}
export MINIPOD_VM_DIR="$out"
name=${MINIPOD_BOX:-minipod/debian12}
box=$out/minipod-debian12.box

sh "$here/build-image.sh"
image=$out/debian12.qcow2
if [ -f "$box" ] && [ -n "$(find "$box" -newer "$image" -newer "$here/build-box.sh")" ]; then
    echo "build-box: $box is up to date"
else
    staging=$(mktemp -d "$out/box.XXXXXX")
    trap 'rm -rf "$staging"' EXIT
    # Hard links: the box's files cost no copy of the 1 GiB image.
    ln "$image" "$staging/box.img" 2>/dev/null || cp "$image" "$staging/box.img"
    cp "$out/ssh/id_ed25519" "$staging/id_ed25519"
    virtual_gib=$(( ($(qemu-img info --output=json "$image" |
        sed -n 's/.*"virtual-size": *\([0-9]*\).*/\1/p') + 1073741823) / 1073741824 ))
    printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$virtual_gib" \
        > "$staging/metadata.json"
    cat > "$staging/Vagrantfile" <<'EOF'
# The box's defaults (vagrant/build-box.sh): its own ssh key, virtio disks.
Vagrant.configure("2") do |config|
  config.ssh.private_key_path = File.expand_path("../id_ed25519", __FILE__)
  config.ssh.insert_key = false
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
EOF
    tar -C "$staging" -cf "$box.new" metadata.json Vagrantfile id_ed25519 box.img
    mv "$box.new" "$box"
    echo "build-box: $box ($(du -m "$box" | cut -f1) MiB)"
fi

if command -v vagrant >/dev/null 2>&1; then
    vagrant box add --force --name "$name" "$box"
else
    echo "build-box: vagrant is not installed; add the box with: vagrant box add --name $name $box"
fi
