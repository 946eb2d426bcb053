#!/bin/sh
# Vagrant's provisioner (vagrant/Vagrantfile), as root in the guest: make the
# synced repository at /vagrant ready for `cd /vagrant && sudo make test`.
# `make setup` installs what minipod needs: Debian packages and .venv. On
# the offline box (vagrant/build-box.sh) both are already there: the
# packages are in the image and pip takes the image's wheels (/etc/pip.conf).
set -eu
export DEBIAN_FRONTEND=noninteractive
echo "provision: /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup)"
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    echo "provision: warning: this box is not pure cgroup v2; the v2 code paths go untested"
fi
if ! command -v make >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends make
fi
cd /vagrant
make setup
echo "provision: ready; run the suite with: vagrant ssh -c 'cd /vagrant && sudo make test'"
