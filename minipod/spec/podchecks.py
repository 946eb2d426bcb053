"""Rules that span a whole pod: names that must be unique or must match,
host ports, and references to the ConfigMaps and Secrets of the file.

These run on the defaulted pod after the schema walk, and look only at
well-typed values (the walk has already reported the rest).

Pod names and hostnames: a pod's name becomes its hostname unless
``spec.hostname`` is set, and a hostname must be a DNS-1123 label (at most 63
characters, no dots). Kubernetes would quietly cut such a name; minipod
reports it instead, so the hostname is never a surprise: a pod whose name is
a valid subdomain but not a label needs ``spec.hostname`` (or
``hostNetwork: true``, where the host keeps its own name).
"""

from __future__ import annotations

from . import names
from .problems import Problems, format_path
from .rules import as_dict, dicts
from .sidecars import is_sidecar

# What an imagePullSecret must be; minipod.images.pullsecrets reads the same
# (spec does not import images, so the names are repeated).
PULL_SECRET_TYPE = "kubernetes.io/dockerconfigjson"
PULL_SECRET_KEY = ".dockerconfigjson"

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_SIDECAR_ONLY = ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
_WILDCARD_IPS = ("", "0.0.0.0", "::")


def all_containers(spec: dict):
    """``(path, container)`` for every container object of the pod, init first."""
    for field in CONTAINER_LISTS:
        for i, ctr in dicts(spec.get(field)):
            yield ("spec", field, i), ctr


def check_pod(pod: dict, out: Problems, config_maps: dict, secrets: dict) -> None:
    """Report every cross-field problem of ``pod`` into ``out``.
    ``config_maps``/``secrets`` map ``(namespace, name)`` to the objects of the file
    (secrets with stringData already merged into data)."""
    meta, spec = as_dict(pod.get("metadata")), as_dict(pod.get("spec"))
    namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else "default"
    _hostname(meta, spec, out)
    _container_names(spec, out)
    _container_kinds(spec, out)
    volumes = _volume_names(spec, out)
    _volume_mounts(spec, volumes, out)
    _host_ports(spec, out)
    _namespaces(spec, out)
    refs = _References(namespace, config_maps, secrets, out)
    refs.check_containers(spec)
    refs.check_volumes(spec)
    refs.check_pull_secrets(spec)
    _resource_field_refs(spec, out)
    _dns(spec, out)
    _sleep_within_grace_period(spec, out)
    _run_as_non_root(spec, out)


def _hostname(meta: dict, spec: dict, out: Problems) -> None:
    name = meta.get("name")
    if not isinstance(name, str) or names.dns_subdomain_error(name):
        return  # not a valid name at all: the walk said so
    if spec.get("hostname") or spec.get("hostNetwork") is True or not names.dns_label_error(name):
        return
    out.error(("metadata", "name"),
              f'"{name}" would be the pod\'s hostname, but a hostname must be a DNS-1123 label '
              "(at most 63 characters, no dots): set spec.hostname, or choose a shorter name without dots")


def _container_names(spec: dict, out: Problems) -> None:
    seen: dict[str, tuple] = {}
    for path, ctr in all_containers(spec):
        name = ctr.get("name")
        if not isinstance(name, str) or not name:
            continue
        if name in seen:
            out.error(path + ("name",), f'duplicate container name "{name}" (also {format_path(seen[name])})')
        else:
            seen[name] = path


def _container_kinds(spec: dict, out: Problems) -> None:
    """What init containers, sidecars, app and ephemeral containers may have."""
    for i, ctr in dicts(spec.get("initContainers")):
        if is_sidecar(ctr):
            continue  # a sidecar: it runs alongside the app containers
        for field in _SIDECAR_ONLY:
            if field in ctr:
                out.error(("spec", "initContainers", i, field),
                          "may only be set for an init container with restartPolicy: Always (a sidecar)")
    for i, ctr in dicts(spec.get("containers")):
        if "restartPolicy" in ctr:
            out.error(("spec", "containers", i, "restartPolicy"),
                      "may only be set for init containers (restartPolicy: Always makes a sidecar)")
    if spec.get("ephemeralContainers"):
        out.error(("spec", "ephemeralContainers"),
                  "cannot be set when a pod is created (as in Kubernetes: they are added to a running pod)")


def _volume_names(spec: dict, out: Problems) -> dict[str, dict]:
    volumes: dict[str, dict] = {}
    index: dict[str, int] = {}
    for i, volume in dicts(spec.get("volumes")):
        name = volume.get("name")
        if not isinstance(name, str):
            continue
        if name in volumes:
            out.error(("spec", "volumes", i, "name"), f'duplicate volume name "{name}" (also volumes[{index[name]}])')
        else:
            volumes[name], index[name] = volume, i
    return volumes


def _volume_mounts(spec: dict, volumes: dict, out: Problems) -> None:
    for path, ctr in all_containers(spec):
        for j, mount in dicts(ctr.get("volumeMounts")):
            name = mount.get("name")
            if isinstance(name, str) and name and name not in volumes:
                out.error(path + ("volumeMounts", j, "name"),
                          f'no volume named "{name}" in spec.volumes' + names.suggestion(name, volumes))


def _host_ports(spec: dict, out: Problems) -> None:
    """Containers that run at the same time may not bind the same host port.
    Unlike Kubernetes (which compares exact addresses), a wildcard address
    conflicts with every address: on one host the second bind would fail."""
    running = [(path, ctr) for path, ctr in all_containers(spec)
               if path[1] == "containers" or (path[1] == "initContainers" and is_sidecar(ctr))]
    host_network = spec.get("hostNetwork") is True
    used: dict[tuple, list[tuple[str, tuple]]] = {}
    for path, ctr in running:
        for j, port in dicts(ctr.get("ports")):
            where = path + ("ports", j)
            host_port, container_port = port.get("hostPort"), port.get("containerPort")
            if host_network and isinstance(host_port, int) and host_port != container_port:
                out.error(where + ("hostPort",),
                          f"must equal containerPort ({container_port}) when hostNetwork is true")
            protocol, ip = port.get("protocol", "TCP"), port.get("hostIP", "")
            if not isinstance(host_port, int) or host_port <= 0 or not isinstance(ip, str):
                continue
            for other_ip, other in used.get((protocol, host_port), []):
                if ip == other_ip or ip in _WILDCARD_IPS or other_ip in _WILDCARD_IPS:
                    shown = f"{ip or '0.0.0.0'}:{host_port}/{protocol}"
                    out.error(where + ("hostPort",), f"host port {shown} is already used by {format_path(other)}")
                    break
            used.setdefault((protocol, host_port), []).append((ip, where))


def _namespaces(spec: dict, out: Problems) -> None:
    if spec.get("shareProcessNamespace") is True and spec.get("hostPID") is True:
        out.error(("spec", "shareProcessNamespace"), "cannot be true together with hostPID")
    _host_namespace_sysctls(spec, out)


def _host_namespace_sysctls(spec: dict, out: Problems) -> None:
    """A sysctl of a namespace the pod shares with the host would change the
    host, so Kubernetes refuses it."""
    from .sysctls import namespace_of

    shared = {"net": spec.get("hostNetwork") is True, "ipc": spec.get("hostIPC") is True}
    for i, sysctl in dicts(as_dict(spec.get("securityContext")).get("sysctls")):
        name = sysctl.get("name")
        kind = namespace_of(name) if isinstance(name, str) else None
        if kind and shared[kind]:
            host_field = "hostNetwork" if kind == "net" else "hostIPC"
            out.error(("spec", "securityContext", "sysctls", i, "name"),
                      f'sysctl "{name}" is not allowed with {host_field}: it would change the host')


class _References:
    """References from a pod to the ConfigMaps and Secrets of the file."""

    def __init__(self, namespace: str, config_maps: dict, secrets: dict, out: Problems):
        self.namespace = namespace
        self.tables = {"ConfigMap": config_maps, "Secret": secrets}
        self.out = out

    def lookup(self, kind: str, name, optional, path: tuple):
        """The object, or None (reported unless ``optional``)."""
        if not isinstance(name, str) or not name:
            return None
        obj = self.tables[kind].get((self.namespace, name))
        if obj is None and optional is not True:
            known = [n for (ns, n) in self.tables[kind] if ns == self.namespace]
            self.out.error(path, f'{kind} "{name}" not found: minipod takes {kind}s from the same file, '
                                 f'namespace "{self.namespace}" (or set optional: true)'
                                 + names.suggestion(name, known))
        return obj

    def check_key(self, kind: str, obj: dict, key, optional, path: tuple) -> None:
        if obj is None or not isinstance(key, str) or optional is True:
            return
        keys = list(as_dict(obj.get("data"))) + list(as_dict(obj.get("binaryData")))
        if key not in keys:
            name = as_dict(obj.get("metadata")).get("name")
            self.out.error(path, f'{kind} "{name}" has no key "{key}" (or set optional: true)'
                           + names.suggestion(key, keys))

    def check_containers(self, spec: dict) -> None:
        for path, ctr in all_containers(spec):
            for j, env in dicts(ctr.get("env")):
                source = as_dict(env.get("valueFrom"))
                for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    ref = source.get(field)
                    if isinstance(ref, dict):
                        where = path + ("env", j, "valueFrom", field)
                        obj = self.lookup(kind, ref.get("name"), ref.get("optional"), where + ("name",))
                        self.check_key(kind, obj, ref.get("key"), ref.get("optional"), where + ("key",))
            for j, env_from in dicts(ctr.get("envFrom")):
                for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    ref = env_from.get(field)
                    if isinstance(ref, dict):
                        self.lookup(kind, ref.get("name"), ref.get("optional"),
                                    path + ("envFrom", j, field, "name"))

    def check_volumes(self, spec: dict) -> None:
        for i, volume in dicts(spec.get("volumes")):
            base = ("spec", "volumes", i)
            self._projection(volume.get("configMap"), "ConfigMap", "name", base + ("configMap",))
            self._projection(volume.get("secret"), "Secret", "secretName", base + ("secret",))
            for j, source in dicts(as_dict(volume.get("projected")).get("sources")):
                where = base + ("projected", "sources", j)
                self._projection(source.get("configMap"), "ConfigMap", "name", where + ("configMap",))
                self._projection(source.get("secret"), "Secret", "name", where + ("secret",))

    def check_pull_secrets(self, spec: dict) -> None:
        """imagePullSecrets name docker-config Secrets of the file (the
        kubelet would only warn and pull without them; minipod has the whole
        file, so a missing or wrong one is a mistake worth stopping for)."""
        for i, ref in dicts(spec.get("imagePullSecrets")):
            path = ("spec", "imagePullSecrets", i, "name")
            obj = self.lookup("Secret", ref.get("name"), False, path)
            if obj is None:
                continue
            if obj.get("type") != PULL_SECRET_TYPE:
                self.out.error(path, f'Secret "{ref["name"]}" is of type "{obj.get("type")}": '
                                     f"an image pull secret must be of type {PULL_SECRET_TYPE}")
                continue
            encoded = as_dict(obj.get("data")).get(PULL_SECRET_KEY)
            if not isinstance(encoded, str) or not _is_docker_config(encoded):
                self.out.error(path, f'Secret "{ref["name"]}": {PULL_SECRET_KEY} must be a '
                                     'docker config.json with an "auths" map')

    def _projection(self, source, kind: str, name_field: str, path: tuple) -> None:
        if not isinstance(source, dict):
            return
        optional = source.get("optional")
        obj = self.lookup(kind, source.get(name_field), optional, path + (name_field,))
        for j, item in dicts(source.get("items")):
            self.check_key(kind, obj, item.get("key"), optional, path + ("items", j, "key"))


def _is_docker_config(encoded: str) -> bool:
    """True when ``encoded`` is base64 of a JSON object with an auths map."""
    import base64
    import json

    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and isinstance(document.get("auths"), dict)


def _container_names_set(spec: dict) -> list[str]:
    return [ctr["name"] for _, ctr in all_containers(spec) if isinstance(ctr.get("name"), str)]


def _resource_field_refs(spec: dict, out: Problems) -> None:
    containers = _container_names_set(spec)

    def check(ref, path: tuple, required: bool) -> None:
        if not isinstance(ref, dict):
            return
        name = ref.get("containerName")
        if name is None or name == "":
            if required:
                out.error(path + ("containerName",), "required in a volume (which container's resources?)")
        elif isinstance(name, str) and name not in containers:
            out.error(path + ("containerName",),
                      f'no container named "{name}" in this pod' + names.suggestion(name, containers))

    for path, ctr in all_containers(spec):
        for j, env in dicts(ctr.get("env")):
            check(as_dict(env.get("valueFrom")).get("resourceFieldRef"),
                  path + ("env", j, "valueFrom", "resourceFieldRef"), False)
    for i, volume in dicts(spec.get("volumes")):
        base = ("spec", "volumes", i)
        for j, item in dicts(as_dict(volume.get("downwardAPI")).get("items")):
            check(item.get("resourceFieldRef"), base + ("downwardAPI", "items", j, "resourceFieldRef"), True)
        for j, source in dicts(as_dict(volume.get("projected")).get("sources")):
            for k, item in dicts(as_dict(source.get("downwardAPI")).get("items")):
                check(item.get("resourceFieldRef"),
                      base + ("projected", "sources", j, "downwardAPI", "items", k, "resourceFieldRef"), True)


def _dns(spec: dict, out: Problems) -> None:
    if spec.get("dnsPolicy") != "None":
        return
    config = spec.get("dnsConfig")
    if config is None:
        out.error(("spec", "dnsConfig"), "required when dnsPolicy is None")
    elif isinstance(config, dict) and not config.get("nameservers"):
        out.error(("spec", "dnsConfig", "nameservers"), "at least one nameserver is required when dnsPolicy is None")


def _sleep_within_grace_period(spec: dict, out: Problems) -> None:
    grace = spec.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or isinstance(grace, bool):
        return
    for path, ctr in all_containers(spec):
        lifecycle = as_dict(ctr.get("lifecycle"))
        for hook in ("postStart", "preStop"):
            seconds = as_dict(as_dict(lifecycle.get(hook)).get("sleep")).get("seconds")
            if isinstance(seconds, int) and seconds > grace:
                out.error(path + ("lifecycle", hook, "sleep", "seconds"),
                          f"must be at most terminationGracePeriodSeconds ({grace}), got {seconds}")


def _run_as_non_root(spec: dict, out: Problems) -> None:
    """``runAsNonRoot: true`` with ``runAsUser: 0`` can never start; say so now
    rather than when the container is created."""
    pod_sc = as_dict(spec.get("securityContext"))
    if pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser") == 0:
        out.error(("spec", "securityContext", "runAsUser"), "must not be 0 when runAsNonRoot is true")
    for path, ctr in all_containers(spec):
        sc = as_dict(ctr.get("securityContext"))
        if "runAsNonRoot" not in sc and "runAsUser" not in sc:
            continue
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is True and uid == 0 and not isinstance(uid, bool):
            out.error(path + ("securityContext", "runAsUser" if "runAsUser" in sc else "runAsNonRoot"),
                      "runAsNonRoot is true but runAsUser is 0")
