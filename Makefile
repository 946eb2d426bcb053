# minipod — run as root on a Debian 12 / Ubuntu 22.04+ host:
#   sudo make demo    set everything up, run the kubia example pod, show it answers, clean up
#   sudo make test    set everything up and run the whole test suite
#
# Everything is installed by these targets: Debian packages when missing,
# a virtualenv in .venv with minipod (and its native parts) installed.

SHELL := /bin/sh
# The newest Python 3.11+ on the host (Ubuntu 22.04's python3 is 3.10), the
# distribution's own first: Debian and Ubuntu build theirs with PGO and LTO,
# which starts and imports ~20% faster here than a plain source build (as
# pyenv makes), and every minipod command is mostly start-up and imports.
PYTHON ?= $(shell for p in /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3 \
	python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := .venv
VPY := $(VENV)/bin/python
MINIPOD := $(VENV)/bin/minipod
DEMO_IMAGE := localhost/busybox:demo
DEMO_ROOTFS := build/busybox-rootfs
APT_PACKAGES := build-essential libc6-dev python3-dev python3-venv busybox-static iproute2 nftables file docker-registry skopeo apache2-utils libseccomp2 openssl

.PHONY: all setup deps venv native demo-image demo test unit integration bench clean

all: setup

setup: deps venv

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make: run as root (sudo make …): minipod needs root"; exit 1; fi
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@if [ -z "$(PYTHON)" ]; then \
		echo "installing python3.11 (minipod needs Python 3.11+)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv python3.11-dev; \
	fi

venv: $(VENV)/.installed

# The editable install is in compat mode: a plain path in a .pth file, where
# the default mode installs an import-hook finder that costs ~20 ms at every
# start of the command. The byte-code is compiled at once: with
# PYTHONDONTWRITEBYTECODE set (or no write access) every start would compile
# minipod again.
$(VENV)/.installed: pyproject.toml setup.py native/*.c native/*.h native/build_ffi.py
	@py="$(PYTHON)"; [ -n "$$py" ] || py=$$(command -v python3.11); \
	[ -x $(VPY) ] || $$py -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q --config-settings editable_mode=compat -e '.[test]'
	$(VPY) -m compileall -q minipod
	@touch $@

native: venv

demo-image: setup
	sh examples/busybox-rootfs.sh $(DEMO_ROOTFS)
	$(MINIPOD) image import $(DEMO_ROOTFS) $(DEMO_IMAGE)

demo: demo-image
	@echo "== run the kubia pod (examples/kubia.yaml), its port 8080 published on the host's 18080"
	$(MINIPOD) run -d --replace --publish 18080:8080 examples/kubia.yaml
	$(MINIPOD) ps -o wide
	@ok=0; echo "== ask it from the host: http://127.0.0.1:18080/"; \
	for i in 1 2 3 4 5 6 7 8 9 10; do \
		if $(VPY) -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:18080/", timeout=2).read().decode(), end="")'; \
		then ok=1; break; fi; sleep 0.3; done; \
	echo "== ask it from inside the pod: wget http://localhost:8080/"; \
	$(MINIPOD) exec kubia -- wget -q -O - http://localhost:8080/ || ok=0; \
	echo "== what the pod shares (namespace inodes of pause and the container)"; \
	$(MINIPOD) inspect kubia | $(VPY) -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["status"]["minipod"]["namespaces"], indent=1))'; \
	echo "== clean up"; \
	$(MINIPOD) rm -f kubia; \
	$(MINIPOD) network rm; \
	[ $$ok = 1 ] || { echo "demo: kubia did not answer"; exit 1; }

test: setup
	$(VPY) -m pytest -ra tests bench

unit: setup
	$(VPY) -m pytest -ra tests/unit

integration: setup
	$(VPY) -m pytest -ra tests/integration

# Every benchmark, one after another (about 12 minutes on the 2-CPU VM), each
# printing its table and writing its JSON (and PNG charts) under bench/results/;
# one that fails does not stop the others, the target fails at the end.
BENCHES := run.py cgroups.py seccomp.py network.py images.py lifecycle.py compare.py
bench: setup bench-deps
	@failed=""; for b in $(BENCHES); do [ -f bench/$$b ] || continue; \
		echo "== bench/$$b"; $(VPY) bench/$$b || failed="$$failed $$b"; done; \
	[ -z "$$failed" ] || { echo "make bench: failed:$$failed"; exit 1; }

# The charts need matplotlib in the venv (not a dependency of minipod).
.PHONY: bench-deps
bench-deps: venv
	@$(VPY) -c 'import matplotlib' 2>/dev/null || $(VPY) -m pip install -q matplotlib

# minipod side by side with podman (kube play), a raw OCI bundle (crun, or runc
# where crun refuses the cgroup layout) and the floor; installs podman, runc,
# crun and catatonit from Debian when missing. Private roots: no real podman
# installation is touched.
.PHONY: bench-peers
bench-peers: setup bench-deps
	$(VPY) bench/compare.py

# Pod networking's speed: set-up per pod, run -d with and without a pod
# network, pod-to-pod iperf3 against a plain veth pair (installs iperf3 when missing).
.PHONY: bench-network
bench-network: setup
	$(VPY) bench/network.py

# Cgroup speed: a container's cgroup set-up and a pod's cgroup teardown,
# against the same kernel work done by hand.
.PHONY: bench-cgroups
bench-cgroups: setup
	$(VPY) bench/cgroups.py

# Pod lifecycle speed: stop of a well-behaved pod (against floor.sh stop),
# and the supervisor's idle CPU with 5 probes a second (about 80 s).
.PHONY: bench-lifecycle
bench-lifecycle: setup
	$(VPY) bench/lifecycle.py

# seccomp speed: building RuntimeDefault and a Localhost profile, and what a
# filter adds to a start, against the same spawn without one.
.PHONY: bench-seccomp
bench-seccomp: setup
	$(VPY) bench/seccomp.py

clean:
	rm -rf build $(VENV) *.egg-info minipod/_native*.so minipod/bin

# -- the cgroup v2 VM (vagrant/README.md) ----------------------------------------
# Debian 12 with pure cgroup v2 under qemu (KVM when it works, else TCG),
# built offline and cached in build/vm:
#   sudo make vm-test   build the image once, run the v2 integration tests in it
#   sudo make vm-box    the same image as a Vagrant box (minipod/debian12)
VM_APT_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap grub-pc-bin fdisk e2fsprogs libcap-dev

.PHONY: vm-deps vm-image vm-box vm-test
vm-deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make: run as root (sudo make …): the VM image needs root"; exit 1; fi
	@missing=""; for p in $(VM_APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vm-image: vm-deps setup
	sh vagrant/build-image.sh

vm-box: vm-deps setup
	sh vagrant/build-box.sh

vm-test: vm-deps setup
	sh vagrant/vm-test.sh
