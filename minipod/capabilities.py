"""Linux capabilities by name, and the default set containers get.

The default is the one containerd and Docker give a container that asks for
nothing: enough to run ordinary servers as root (bind low ports, chown
files, change user), nothing that reaches the kernel or other processes.
"""

from __future__ import annotations

# linux/capability.h, in order: the index is the capability number.
CAPABILITY_NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAPABILITIES = {f"CAP_{name}": number for number, name in enumerate(CAPABILITY_NAMES)}

DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


def cap_number(name: str) -> int:
    """``"NET_ADMIN"`` or ``"CAP_NET_ADMIN"`` (any case) → its number."""
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    return CAPABILITIES[key]


def mask(names) -> int:
    bits = 0
    for name in names:
        bits |= 1 << cap_number(name)
    return bits


def all_caps_mask(last_cap: int | None = None) -> int:
    """Every capability this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    if last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                last_cap = int(f.read())
        except OSError:
            last_cap = len(CAPABILITY_NAMES) - 1
    return (1 << (last_cap + 1)) - 1


def held_caps_mask() -> int:
    """The capabilities minipod itself may hand on: its bounding set. Where
    minipod runs with fewer than all (a container, a restricted VM: this one
    lacks CAP_SYS_RESOURCE), asking the kernel for more fails the spawn."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return all_caps_mask()


def container_caps(security_context: dict | None, last_cap: int | None = None, held: int | None = None) -> int:
    """The bounding set of a container: the default set, or everything when
    privileged, then ``capabilities.add`` and ``drop`` (``ALL`` allowed).
    "Everything" is what the kernel knows and minipod holds (``held``, read
    from /proc/self/status when not given), as podman gives a privileged
    container what it has itself."""
    sc = security_context or {}
    everything = all_caps_mask(last_cap) & (held_caps_mask() if held is None else held)
    if sc.get("privileged"):
        return everything
    caps = sc.get("capabilities") or {}
    bits = mask(DEFAULT_CAPABILITIES)
    add = [c for c in caps.get("add") or []]
    drop = [c for c in caps.get("drop") or []]
    if any(c.upper() == "ALL" for c in drop):
        bits = 0
    bits &= ~mask(c for c in drop if c.upper() != "ALL")
    if any(c.upper() == "ALL" for c in add):
        bits = everything
    bits |= mask(c for c in add if c.upper() != "ALL")
    return bits & everything
