"""Checks the schema tables attach to fields and objects.

Scalar checks take a value and return a message or ``None``. Object checks
take ``(obj, path, out)`` and report into ``out``; they run after the
object's own fields were checked, so they look only at well-typed values and
stay quiet about the rest (the walk has reported those already).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re

from . import names
from .problems import Key
from .quantity import format_quantity, parse_quantity

MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_CONFIG_BYTES = 1024 * 1024

# -- small helpers -------------------------------------------------------------


def dicts(value) -> list[tuple[int, dict]]:
    """``(index, item)`` for the object items of a list; nothing for a non-list."""
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def quantity_or_none(value):
    try:
        return parse_quantity(value)
    except ValueError:
        return None


# -- metadata ----------------------------------------------------------------------


def annotations_size(annotations: dict, path, out) -> None:
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        out.error(path, f"annotations must have at most {MAX_ANNOTATIONS_BYTES} bytes, got {size}")


# -- env and the downward API --------------------------------------------------------

_LABEL_OR_ANNOTATION = r"metadata\.(labels|annotations)\['(.*)'\]"  # compiled on first use


def field_path(allowed: tuple):
    def check(value):
        if value in allowed:
            return None
        match = re.fullmatch(_LABEL_OR_ANNOTATION, value)
        if match:
            problem = names.qualified_name_error(match.group(2))
            return f"invalid key in fieldPath: {problem}" if problem else None
        choices = ", ".join(allowed) + ", metadata.labels['<key>'], metadata.annotations['<key>']"
        return f'unsupported fieldPath "{value}": must be one of {choices}' + names.suggestion(value, allowed)
    return check


_RESOURCE_FIELDS = tuple(f"{kind}.{res}" for kind in ("limits", "requests")
                         for res in ("cpu", "memory", "ephemeral-storage"))


def resource_field(value):
    kind, _, resource = value.partition(".")
    if value in _RESOURCE_FIELDS or (kind in ("limits", "requests") and resource.startswith("hugepages-")):
        return None
    return (f'unsupported resource "{value}": must be one of {", ".join(_RESOURCE_FIELDS)}, '
            "limits.hugepages-<size> or requests.hugepages-<size>" + names.suggestion(value, _RESOURCE_FIELDS))


_CPU_DIVISORS = ("1", "1m")
_BYTE_DIVISORS = tuple(f"1{s}" for s in ("", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))


@functools.cache
def _divisor_values(divisors: tuple[str, ...]) -> frozenset:
    # Parsed when first needed, not at import: parsing loads ``fractions``.
    return frozenset(parse_quantity(d) for d in divisors)


def divisor_matches_resource(ref: dict, path, out) -> None:
    resource, divisor = ref.get("resource"), ref.get("divisor")
    if not isinstance(resource, str) or divisor is None:
        return
    value = quantity_or_none(divisor)
    if value is None:
        return
    if resource.endswith(".cpu"):
        if value not in _divisor_values(_CPU_DIVISORS):
            out.error(path + ("divisor",), f"must be 1m or 1 for {resource}, got {format_quantity(divisor)}")
    elif value not in _divisor_values(_BYTE_DIVISORS):
        out.error(path + ("divisor",), f"must be one of 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, "
                                       f"1Ei for {resource}, got {format_quantity(divisor)}")


def value_or_value_from(env: dict, path, out) -> None:
    # As Kubernetes: an empty value next to valueFrom is allowed.
    if env.get("value") and "valueFrom" in env:
        out.error(path + ("valueFrom",), "must not be set together with a non-empty value")


# -- resources ----------------------------------------------------------------------

STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-") and quantity_or_none(name[len("hugepages-"):]) is not None


def _is_extended(name: str) -> bool:
    if "/" not in name or names.qualified_name_error(name):
        return False
    domain = name.split("/")[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def resource_name(name: str):
    if name in STANDARD_RESOURCES or _is_hugepages(name) or _is_extended(name):
        return None
    return (f'"{name}" is not a resource a container can ask for: use cpu, memory, ephemeral-storage, '
            "hugepages-<size> or an extended resource like example.com/device"
            + names.suggestion(name, STANDARD_RESOURCES))


def resources(res: dict, path, out) -> None:
    limits, requests = as_dict(res.get("limits")), as_dict(res.get("requests"))
    for name, request in requests.items():
        if name not in limits:
            continue
        wanted, limit = quantity_or_none(request), quantity_or_none(limits[name])
        if wanted is not None and limit is not None and wanted > limit:
            out.error(path + ("requests", Key(name)),
                      f"must be less than or equal to {name} limit of {format_quantity(limits[name])}")
    for name in dict.fromkeys(list(limits) + list(requests)):
        if not isinstance(name, str) or resource_name(name):
            continue
        where = path + ("limits" if name in limits else "requests", Key(name))
        if name == "ephemeral-storage":
            out.warn(where, "ignored: minipod does not limit a container's disk use")
        elif name.startswith("hugepages-"):
            out.warn(where, "ignored: minipod does not reserve huge pages")
        elif "/" in name:
            out.warn(where, "ignored: no device plugin provides extended resources on this host")


# -- probes, lifecycle, ports ----------------------------------------------------------


def port_number_or_name(value):
    if isinstance(value, int):
        return None if 1 <= value <= 65535 else f"must be between 1 and 65535, got {value}"
    return names.port_name_error(value)


_SIGNALS = ("SIGABRT", "SIGALRM", "SIGBUS", "SIGCHLD", "SIGCLD", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL",
            "SIGINT", "SIGIO", "SIGIOT", "SIGKILL", "SIGPIPE", "SIGPOLL", "SIGPROF", "SIGPWR", "SIGQUIT",
            "SIGSEGV", "SIGSTKFLT", "SIGSTOP", "SIGSYS", "SIGTERM", "SIGTRAP", "SIGTSTP", "SIGTTIN",
            "SIGTTOU", "SIGURG", "SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ",
            *(f"SIGRTMIN+{n}" for n in range(1, 16)), *(f"SIGRTMAX-{n}" for n in range(1, 15)),
            "SIGRTMIN", "SIGRTMAX")


def signal_name(value):
    if value in _SIGNALS:
        return None
    return f'"{value}" is not a Linux signal name (like SIGTERM)' + names.suggestion(value, _SIGNALS)


def mount_path(value):
    problem = names.absolute_path_error(value)
    if problem:
        return problem
    if ":" in value:
        return f"\"{value}\" must not contain ':'"
    return None


def item_path(value):
    return names.relative_path_error(value, reserved_prefix=True)


def volume_mount(mount: dict, path, out) -> None:
    if "subPath" in mount and "subPathExpr" in mount:
        out.error(path + ("subPathExpr",), "must not be set together with subPath")
    if mount.get("recursiveReadOnly") in ("IfPossible", "Enabled"):
        if mount.get("readOnly") is not True:
            out.error(path + ("recursiveReadOnly",), "needs readOnly: true")
        if mount.get("mountPropagation", "None") != "None":
            out.error(path + ("recursiveReadOnly",), 'needs mountPropagation "None"')


def container(ctr: dict, path, out) -> None:
    """Rules inside one container: port names, probe ports, probe
    thresholds, mount paths, privileged-only options, repeated env names."""
    port_names = _unique_port_names(ctr, path, out)
    _handler_ports_exist(ctr, port_names, path, out)
    _probe_kinds(ctr, path, out)
    _mounts(ctr, path, out)
    _repeated_env(ctr, path, out)


def _unique_port_names(ctr: dict, path, out) -> dict[str, int]:
    port_names: dict[str, int] = {}
    for i, port in dicts(ctr.get("ports")):
        name = port.get("name")
        if not isinstance(name, str):
            continue
        if name in port_names:
            out.error(path + ("ports", i, "name"), f'duplicate port name "{name}" (also ports[{port_names[name]}])')
        else:
            port_names[name] = i
    return port_names


def _handler_ports_exist(ctr: dict, port_names: dict, path, out) -> None:
    """A probe or hook may name its port; the name must be one of this container's ports."""
    lifecycle = as_dict(ctr.get("lifecycle"))
    handlers = [((probe,), as_dict(ctr.get(probe))) for probe in ("livenessProbe", "readinessProbe", "startupProbe")]
    handlers += [(("lifecycle", hook), as_dict(lifecycle.get(hook))) for hook in ("postStart", "preStop")]
    for where, handler in handlers:
        for action in ("httpGet", "tcpSocket"):
            port = as_dict(handler.get(action)).get("port")
            if isinstance(port, str) and not names.port_name_error(port) and port not in port_names:
                known = ", ".join(port_names) or "none"
                out.error(path + where + (action, "port"),
                          f'"{port}" does not name a port of this container (named ports: {known})')


def _probe_kinds(ctr: dict, path, out) -> None:
    for probe in ("livenessProbe", "startupProbe"):
        threshold = as_dict(ctr.get(probe)).get("successThreshold")
        if isinstance(threshold, int) and threshold != 1:
            out.error(path + (probe, "successThreshold"), f"must be 1 for a {probe}, got {threshold}")
    if "terminationGracePeriodSeconds" in as_dict(ctr.get("readinessProbe")):
        out.error(path + ("readinessProbe", "terminationGracePeriodSeconds"), "must not be set for a readinessProbe")


def _mounts(ctr: dict, path, out) -> None:
    mount_paths: dict[str, int] = {}
    privileged = as_dict(ctr.get("securityContext")).get("privileged") is True
    for i, mount in dicts(ctr.get("volumeMounts")):
        target = mount.get("mountPath")
        if isinstance(target, str):
            normal = target.rstrip("/") or "/"
            if normal in mount_paths:
                out.error(path + ("volumeMounts", i, "mountPath"),
                          f'"{target}" is already used by volumeMounts[{mount_paths[normal]}]')
            else:
                mount_paths[normal] = i
        # Bidirectional propagation reaches back into the host's mounts.
        if mount.get("mountPropagation") == "Bidirectional" and not privileged:
            out.error(path + ("volumeMounts", i, "mountPropagation"),
                      "Bidirectional needs a privileged container (securityContext.privileged: true)")


def _repeated_env(ctr: dict, path, out) -> None:
    # Kubernetes accepts a repeated name (the last wins) but warns about it.
    env_names: dict[str, int] = {}
    for i, env in dicts(ctr.get("env")):
        name = env.get("name")
        if isinstance(name, str):
            if name in env_names:
                out.warn(path + ("env", i, "name"),
                         f'"{name}" is also set by env[{env_names[name]}]; the last one wins')
            env_names[name] = i


# -- security --------------------------------------------------------------------------


def localhost_profile(profile: dict, path, out) -> None:
    if profile.get("type") == "Localhost":
        if not profile.get("localhostProfile"):
            out.error(path + ("localhostProfile",), "required when type is Localhost")
    elif "localhostProfile" in profile:
        out.error(path + ("localhostProfile",), "may only be set when type is Localhost")


def seccomp_profile(profile: dict, path, out) -> None:
    """localhostProfile with Localhost only. The file itself is read when the
    pod starts (minipod/seccomp_localhost.py): it lives on the host, not in
    the manifest."""
    localhost_profile(profile, path, out)


def privilege_escalation(sc: dict, path, out) -> None:
    if sc.get("allowPrivilegeEscalation") is not False:
        return
    if sc.get("privileged") is True:
        out.error(path + ("allowPrivilegeEscalation",), "cannot be false when privileged is true")
    added = as_dict(sc.get("capabilities")).get("add")
    if isinstance(added, list) and any(isinstance(c, str) and c.upper() in ("SYS_ADMIN", "CAP_SYS_ADMIN")
                                       for c in added):
        out.error(path + ("allowPrivilegeEscalation",), "cannot be false when capabilities.add has SYS_ADMIN")


def unique_sysctls(sc: dict, path, out) -> None:
    seen: dict[str, int] = {}
    for i, sysctl in dicts(sc.get("sysctls")):
        name = sysctl.get("name")
        if isinstance(name, str):
            if name in seen:
                out.error(path + ("sysctls", i, "name"), f'duplicate sysctl "{name}" (also sysctls[{seen[name]}])')
            seen[name] = i


def default_proc_mount(value):
    """procMount ``Unmasked`` means an unmasked /proc, which Kubernetes only
    allows in a user namespace; minipod has none."""
    if value == "Unmasked":
        return "Unmasked is not supported by minipod: it needs user namespaces (hostUsers: false)"
    return None


def host_users(value):
    if value is False:
        return "false is not supported by minipod: user namespaces are not implemented"
    return None


def linux_only(value):
    if value != "linux":
        return f'unsupported value "{value}": minipod runs Linux containers, so the only value is "linux"'
    return None


# -- ConfigMap and Secret ----------------------------------------------------------------


def base64_text(value):
    try:
        base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        return "must be base64-encoded (put plain text in stringData)"
    return None


def _size(*maps) -> int:
    return sum(len(k) + len(v) for data in maps for k, v in as_dict(data).items()
               if isinstance(k, str) and isinstance(v, str))


def config_map(cm: dict, path, out) -> None:
    data, binary = as_dict(cm.get("data")), as_dict(cm.get("binaryData"))
    for key in binary:
        if key in data:
            out.error(path + ("binaryData", Key(key)), "duplicate key: also in data")
    if _size(data, binary) > MAX_CONFIG_BYTES:
        out.error(path + ("data",), f"a ConfigMap must have at most {MAX_CONFIG_BYTES} bytes of data")


# Keys Kubernetes requires for each built-in Secret type (any one of a tuple).
SECRET_TYPE_KEYS = {
    "kubernetes.io/dockercfg": ((".dockercfg",),),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",),),
    "kubernetes.io/basic-auth": (("username", "password"),),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",),),
    "kubernetes.io/tls": (("tls.crt",), ("tls.key",)),
}


def secret(obj: dict, path, out) -> None:
    data, string_data = as_dict(obj.get("data")), as_dict(obj.get("stringData"))
    if _size(data, string_data) > MAX_CONFIG_BYTES:
        out.error(path + ("data",), f"a Secret must have at most {MAX_CONFIG_BYTES} bytes of data")
    kind = obj.get("type")
    keys = set(data) | set(string_data)
    for choices in SECRET_TYPE_KEYS.get(kind, ()) if isinstance(kind, str) else ():
        if not keys & set(choices):
            out.error(path + ("data",), f'a Secret of type {kind} needs the key {" or ".join(choices)}')
