"""Which sysctls a pod may set: only those that belong to a namespace the
pod owns (its network or IPC namespace), as Kubernetes allows. Any other
sysctl would change the whole host.

A name is dot-separated (``net.ipv4.ip_forward``) or slash-separated
(``net/ipv4/conf/eth0.100/rp_filter``, where a dot is part of an interface
name); the first separator says which.
"""

from __future__ import annotations

# Kubernetes' table (pkg/kubelet/sysctl namespace.go): prefixes end with ".".
_IPC_EXACT = ("kernel.sem",)
_IPC_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.")
_NET_PREFIX = "net."


def dotted(name: str) -> str:
    """The name with dots as separators (a slash-separated name has its dots
    and slashes swapped, so an interface's dot survives as a slash)."""
    first = next((c for c in name if c in "./"), ".")
    return name.translate(str.maketrans("./", "/.")) if first == "/" else name


def proc_path(name: str, proc: str = "/proc") -> str:
    """The file under /proc/sys that holds the sysctl ``name``."""
    return f"{proc}/sys/" + dotted(name).translate(str.maketrans("./", "/."))


def namespace_of(name: str) -> str | None:
    """``"net"`` or ``"ipc"`` for a namespaced sysctl, None for a host-wide one."""
    key = dotted(name)
    if key.startswith(_NET_PREFIX):
        return "net"
    if key in _IPC_EXACT or key.startswith(_IPC_PREFIXES):
        return "ipc"
    return None


def not_namespaced_error(name: str) -> str | None:
    """A field check: refuse a sysctl that is not namespaced."""
    if namespace_of(name) is None:
        return (f'"{name}" is not a namespaced sysctl: only net.*, kernel.shm*, kernel.msg*, kernel.sem '
                "and fs.mqueue.* can be set for a pod")
    return None
