"""Which device nodes a container may use: the cgroup ``devices`` rules.

A container keeps CAP_MKNOD (the default set has it, as in Docker and
containerd), so it can make a node for any device, e.g. the host's disk.
What stops it from *using* one is the devices controller: on cgroup v1 the
container's cgroup denies everything, then allows making any node (``m``,
so image unpacking and ``mknod`` in build scripts still work) and reading
and writing only the OCI runtime spec's default devices — runc's and
containerd's default list. A privileged container keeps every device.

cgroup v2 has no device files: there the same list becomes an eBPF program
attached to the container's cgroup (BPF_PROG_TYPE_CGROUP_DEVICE), built in
``devices_bpf.py``. A hybrid host (v1 controllers plus a controller-less
cgroup2 tree) keeps the v1 files: its containers' cgroups are v1 ones.
"""

from __future__ import annotations

import os

from .errors import CgroupError

# (type, major, minor, access); "*" is any number. Order matters only for
# readability: the kernel keeps a set.
DEFAULT_ALLOWED_DEVICES = (
    ("c", "*", "*", "m"), ("b", "*", "*", "m"),     # mknod of anything, use of nothing else
    ("c", "1", "3", "rwm"), ("c", "1", "5", "rwm"),  # null, zero
    ("c", "1", "7", "rwm"), ("c", "1", "8", "rwm"),  # full, random
    ("c", "1", "9", "rwm"), ("c", "5", "0", "rwm"),  # urandom, tty
    ("c", "5", "1", "rwm"), ("c", "5", "2", "rwm"),  # console, ptmx
    ("c", "136", "*", "rwm"),                        # the container's own /dev/pts/*
    ("c", "10", "200", "rwm"),                       # tun, for containers given NET_ADMIN
)


def device_rules(privileged: bool) -> list[tuple[str, str]]:
    """The (file, line) writes that set a container's device access, in order:
    first deny everything, then allow the default list."""
    if privileged:
        return []  # the cgroup inherits its parent's (the host's) access
    rules = [("devices.deny", "a")]
    rules += [("devices.allow", f"{kind} {major}:{minor} {access}")
              for kind, major, minor, access in DEFAULT_ALLOWED_DEVICES]
    return rules


def write_device_rules(directory: str, privileged: bool) -> None:
    """Write the rules into a v1 devices cgroup ``directory`` (no root needed
    to test: any directory with those files)."""
    for name, line in device_rules(privileged):
        path = os.path.join(directory, name)
        try:
            with open(path, "w", encoding="ascii") as f:
                f.write(line)
        except OSError as exc:
            raise CgroupError(f"write {line!r} to {path}: {exc.strerror}") from None


def restrict_devices(cgroup, privileged: bool) -> list[str]:
    """Apply the device rules to a container's cgroup (created, no process in
    it yet). Returns warnings: one when the host gives no way to apply them."""
    if privileged:
        return []  # the cgroup inherits its parent's (the host's) access
    directory = cgroup.controller_dir("devices")
    if cgroup.kind == "v2" and directory is not None:
        from .devices_bpf import attach_device_program  # ctypes and bpf(2): v2 hosts only

        attach_device_program(directory)
        return []
    if cgroup.kind != "v1" or directory is None or not os.path.isdir(directory):
        return ["device access is not restricted by a cgroup on this host "
                "(needs the cgroup v1 devices hierarchy or a cgroup v2 tree)"]
    write_device_rules(directory, privileged)
    return []
