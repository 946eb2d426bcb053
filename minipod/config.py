"""Where minipod keeps things on the host, and the host-global names.

Everything lives under the standard paths unless ``--root DIR`` (or
``MINIPOD_ROOT``) is given, in which case the same layout is made under DIR.
Tests always pass a root, a bridge, a subnet and a cgroup parent of their own
so they never touch a real installation.
"""

from __future__ import annotations

import os

DEFAULT_BRIDGE = "minipod0"
DEFAULT_SUBNET = "10.144.0.0/24"
DEFAULT_CGROUP_PARENT = "minipod"

_FIELDS = ("root", "bridge", "subnet", "cgroup_parent", "debug")


class Config:
    """Host layout (see DESIGN.md, "Host layout") and global names.

    Immutable. A plain class rather than a dataclass because every command
    loads it: ``dataclasses`` would add milliseconds to ``minipod ps``."""

    __slots__ = _FIELDS + ("extra",)

    def __init__(self, root: str | None = None, bridge: str = DEFAULT_BRIDGE, subnet: str = DEFAULT_SUBNET,
                 cgroup_parent: str = DEFAULT_CGROUP_PARENT, debug: bool = False, extra: dict | None = None):
        for name, value in (("root", root), ("bridge", bridge), ("subnet", subnet),
                            ("cgroup_parent", cgroup_parent), ("debug", debug),
                            ("extra", {} if extra is None else extra)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"Config is immutable: cannot set {name!r}")

    def _key(self) -> tuple:
        return tuple(getattr(self, name) for name in _FIELDS)  # ``extra`` is not compared

    def __eq__(self, other):
        return self._key() == other._key() if isinstance(other, Config) else NotImplemented

    def __hash__(self):
        return hash(self._key())

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS) + ")"

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        """Explicit arguments win over MINIPOD_* environment variables."""
        env = os.environ
        values = {
            "root": env.get("MINIPOD_ROOT") or None,
            "bridge": env.get("MINIPOD_BRIDGE") or DEFAULT_BRIDGE,
            "subnet": env.get("MINIPOD_SUBNET") or DEFAULT_SUBNET,
            "cgroup_parent": env.get("MINIPOD_CGROUP_PARENT") or DEFAULT_CGROUP_PARENT,
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

    # /var/log/minipod: container logs in CRI format
    @property
    def logs_dir(self) -> str:
        return self._under_root("/var/log/minipod/pods")

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "bridge": self.bridge,
            "subnet": self.subnet,
            "cgroup_parent": self.cgroup_parent,
            "debug": self.debug,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        return cls(**{k: data[k] for k in ("root", "bridge", "subnet", "cgroup_parent", "debug") if k in data})
