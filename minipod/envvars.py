"""A container's environment and command line, by Kubernetes' rules.

Pure functions: given the pod, the container, the image config and the
ConfigMaps/Secrets of the manifest, compute what ``execve`` gets.
"""

from __future__ import annotations

import base64
import re

from .errors import SpecError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_REF = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$(VAR)`` becomes VAR's value when
    VAR is defined, stays as written when not; ``$$`` escapes a ``$``."""

    def replace(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _REF.sub(replace, text)


def env_list_to_dict(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def field_value(pod: dict, path: str, status: dict) -> str:
    """A ``fieldRef`` value: metadata fields, labels/annotations, node and pod IPs."""
    meta = pod["metadata"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": status.get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.hostIPs": status.get("hostIP"),
    }
    return str(simple.get(path) or "")


def _key_ref(kind: str, ref: dict, table: dict, namespace: str, where: str) -> str | None:
    obj = table.get((namespace, ref.get("name")))
    if obj is None:
        if ref.get("optional"):
            return None
        raise SpecError(f"{where}: {kind} {ref.get('name')!r} not found")
    if kind == "configMap":
        data = obj.get("data") or {}
        if ref["key"] in data:
            return data[ref["key"]]
        binary = obj.get("binaryData") or {}
        value = base64.b64decode(binary[ref["key"]]).decode(errors="replace") if ref["key"] in binary else None
    else:
        raw = (obj.get("data") or {}).get(ref["key"])
        value = base64.b64decode(raw).decode(errors="replace") if raw is not None else None
    if value is None and not ref.get("optional"):
        raise SpecError(f"{where}: key {ref['key']!r} not found in {kind} {ref.get('name')!r}")
    return value


def _source_entries(kind: str, name: str, table: dict, namespace: str, optional: bool,
                    where: str) -> dict[str, str]:
    obj = table.get((namespace, name))
    if obj is None:
        if optional:
            return {}
        raise SpecError(f"{where}: {kind} {name!r} not found")
    if kind == "configMap":
        return dict(obj.get("data") or {})
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}


def container_env(pod: dict, container: dict, c_field: str, image_env: list[str] | None,
                  config_maps: dict, secrets: dict, status: dict) -> dict[str, str]:
    """The environment, lowest precedence first: PATH default, the image's
    Env, ``envFrom`` sources, then ``env`` (whose ``$(VAR)`` references see
    everything defined before them). HOSTNAME and HOME are filled by the
    caller, which knows the hostname and the user's home."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {"PATH": DEFAULT_PATH}
    env.update(env_list_to_dict(image_env))
    for i, src in enumerate(container.get("envFrom") or []):
        prefix = src.get("prefix", "")
        for kind in ("configMap", "secret"):
            ref = src.get(f"{kind}Ref")
            if ref:
                table = config_maps if kind == "configMap" else secrets
                entries = _source_entries(kind, ref.get("name"), table, namespace,
                                          bool(ref.get("optional")), f"{c_field}.envFrom[{i}]")
                env.update({prefix + k: v for k, v in entries.items()})
    for i, var in enumerate(container.get("env") or []):
        where = f"{c_field}.env[{i}].valueFrom"
        source = var.get("valueFrom")
        if source is None:
            env[var["name"]] = expand(var.get("value", ""), env)
            continue
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], status)
        elif "configMapKeyRef" in source:
            value = _key_ref("configMap", source["configMapKeyRef"], config_maps, namespace, where)
        elif "secretKeyRef" in source:
            value = _key_ref("secret", source["secretKeyRef"], secrets, namespace, where)
        elif "resourceFieldRef" in source:
            value = resource_value(container, source["resourceFieldRef"])
        else:
            value = None
        if value is not None:
            env[var["name"]] = value
    return env


def resource_value(container: dict, ref: dict) -> str:
    """limits.cpu etc.; with no limit Kubernetes reports the node's
    allocatable, which on one host is the machine: ``0`` says "none set"."""
    group, _, name = ref.get("resource", "").partition(".")
    value = ((container.get("resources") or {}).get(group) or {}).get(name)
    return str(value) if value is not None else "0"


def command_line(container: dict, image_config: dict, env: dict[str, str]) -> list[str]:
    """Kubernetes' rules against the image's Entrypoint/Cmd: ``command``
    replaces Entrypoint (and drops Cmd); ``args`` replaces Cmd."""
    command = container.get("command")
    args = container.get("args")
    entrypoint = image_config.get("Entrypoint") or []
    cmd = image_config.get("Cmd") or []
    if command is not None:
        argv = list(command) + list(args or [])
    elif args is not None:
        argv = list(entrypoint) + list(args)
    else:
        argv = list(entrypoint) + list(cmd)
    return [expand(a, env) for a in argv]
