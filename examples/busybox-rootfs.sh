#!/bin/sh
# Build a tiny root filesystem from the host's busybox-static: the demo and
# test image of minipod (no registry, no network). Usage: busybox-rootfs.sh DIR
set -eu
dest=${1:?usage: busybox-rootfs.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "busybox-rootfs.sh: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
case "$(file -b "$busybox" 2>/dev/null || echo static)" in
  *dynamically*) echo "busybox-rootfs.sh: $busybox is not static (apt-get install busybox-static)" >&2; exit 1;;
esac
rm -rf "$dest"
mkdir -p "$dest"
cd "$dest"
mkdir -p bin sbin usr/bin usr/sbin etc root tmp proc sys dev var/www var/log home
chmod 1777 tmp
chmod 700 root
cp "$busybox" bin/busybox
# One link per applet, where busybox itself says it belongs.
"$busybox" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$(dirname "$applet")"
  ln -sf /bin/busybox "$applet"
done
cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > etc/group <<'GROUP'
root:x:0:
daemon:x:1:
tty:x:5:
www-data:x:33:
users:x:100:www-data
nogroup:x:65534:
GROUP
printf 'root:*:19000:0:99999:7:::\n' > etc/shadow
chmod 600 etc/shadow
: > etc/hosts
: > etc/resolv.conf
echo minipod > etc/hostname
