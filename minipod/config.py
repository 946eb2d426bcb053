"""Where minipod keeps things on the host, and the host-global names.

Everything lives under the standard paths unless ``--root DIR`` (or
``MINIPOD_ROOT``) is given, in which case the same layout is made under DIR.
Tests always pass a root, a bridge, a subnet and a cgroup parent of their own
so they never touch a real installation.
"""

from __future__ import annotations

import os

from .record import Record

DEFAULT_BRIDGE = "minipod0"
DEFAULT_SUBNET = "10.144.0.0/24"
DEFAULT_CGROUP_PARENT = "minipod"
# Processes (threads count) one pod may have, pause and exec'd commands
# included: a fork bomb in one pod must not take the host's pid space.
# kubelet's podPidsLimit is off by default; a single host without a
# scheduler in front of it needs one.
DEFAULT_POD_PIDS_LIMIT = 4096

class Config(Record):
    """Host layout (see DESIGN.md, "Host layout") and global names; an
    immutable record. ``pod_pids_limit`` 0 (or less) means no limit."""

    root: str | None = None
    bridge: str = DEFAULT_BRIDGE
    subnet: str = DEFAULT_SUBNET
    cgroup_parent: str = DEFAULT_CGROUP_PARENT
    debug: bool = False
    pod_pids_limit: int = DEFAULT_POD_PIDS_LIMIT

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        """Explicit arguments win over MINIPOD_* environment variables."""
        env = os.environ
        values = {
            "root": env.get("MINIPOD_ROOT") or None,
            "bridge": env.get("MINIPOD_BRIDGE") or DEFAULT_BRIDGE,
            "subnet": env.get("MINIPOD_SUBNET") or DEFAULT_SUBNET,
            "cgroup_parent": env.get("MINIPOD_CGROUP_PARENT") or DEFAULT_CGROUP_PARENT,
            "pod_pids_limit": parse_pids_limit(env.get("MINIPOD_POD_PIDS_LIMIT"), "MINIPOD_POD_PIDS_LIMIT"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values["root"]:
            values["root"] = os.path.abspath(values["root"])
        return cls(**values)

    def _under_root(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/")) if self.root else path

    # /run/minipod: pod state, gone at reboot
    @property
    def run_dir(self) -> str:
        return self._under_root("/run/minipod")

    @property
    def pods_state_dir(self) -> str:
        return os.path.join(self.run_dir, "pods")

    # /var/lib/minipod: images and pod data
    @property
    def lib_dir(self) -> str:
        return self._under_root("/var/lib/minipod")

    @property
    def images_dir(self) -> str:
        return os.path.join(self.lib_dir, "images")

    @property
    def pods_data_dir(self) -> str:
        return os.path.join(self.lib_dir, "pods")

    @property
    def seccomp_dir(self) -> str:
        """seccomp Localhost profiles, as kubelet's <root-dir>/seccomp."""
        return os.path.join(self.lib_dir, "seccomp")

    # /var/log/minipod: container logs in CRI format
    @property
    def logs_dir(self) -> str:
        return self._under_root("/var/log/minipod/pods")

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self._fields}

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        return cls(**{k: data[k] for k in cls._fields if k in data})


def parse_pids_limit(text: str | None, where: str) -> int:
    """A pod pids limit as given in the environment: a positive number,
    ``0``, ``-1`` or ``max`` for none; unset or empty for the default."""
    if text is None or not text.strip():
        return DEFAULT_POD_PIDS_LIMIT
    text = text.strip()
    if text == "max":
        return 0
    try:
        value = int(text)
    except ValueError:
        from .errors import MinipodError

        raise MinipodError(f'{where}: "{text}" is not a number of processes (or "max" for no limit)') from None
    return max(value, 0)
