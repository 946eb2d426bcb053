"""The result of reading a manifest: its Pods, ConfigMaps, Secrets and warnings."""

from __future__ import annotations

_FIELDS = ("pods", "config_maps", "secrets", "warnings", "source")


class Manifest:
    """A validated manifest.

    ``pods`` are complete Pod objects (``apiVersion``, ``kind``, ``metadata``,
    ``spec``) with defaults filled in; ``config_maps`` and ``secrets`` map
    ``(namespace, name)`` to the object (Secret ``stringData`` already merged
    into base64 ``data``); ``warnings`` has one line per field that is valid
    Kubernetes but ignored on one host. Every object is minipod's own copy.
    (A plain class: ``dataclasses`` costs every ``run`` milliseconds.)"""

    def __init__(self, pods: list[dict] | None = None, config_maps: dict[tuple[str, str], dict] | None = None,
                 secrets: dict[tuple[str, str], dict] | None = None, warnings: list[str] | None = None,
                 source: str | None = None):
        self.pods = [] if pods is None else pods
        self.config_maps = {} if config_maps is None else config_maps
        self.secrets = {} if secrets is None else secrets
        self.warnings = [] if warnings is None else warnings
        self.source = source

    def __eq__(self, other):
        if not isinstance(other, Manifest):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _FIELDS)

    __hash__ = None

    def __repr__(self) -> str:
        return "Manifest(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS) + ")"

    def pod_config_maps(self, pod: dict) -> dict[tuple[str, str], dict]:
        """The ConfigMaps of this manifest that ``pod`` refers to."""
        return self._referenced(pod, self.config_maps, "ConfigMap")

    def pod_secrets(self, pod: dict) -> dict[tuple[str, str], dict]:
        """The Secrets of this manifest that ``pod`` refers to."""
        return self._referenced(pod, self.secrets, "Secret")

    @staticmethod
    def _referenced(pod: dict, table: dict, kind: str) -> dict:
        namespace = pod["metadata"]["namespace"]
        wanted = referenced_names(pod["spec"], kind)
        return {key: obj for key, obj in table.items() if key[0] == namespace and key[1] in wanted}


def referenced_names(spec: dict, kind: str) -> set[str]:
    """Names of the ConfigMaps (``kind="ConfigMap"``) or Secrets a pod spec
    refers to, from env, envFrom, volumes and projected volumes."""
    key_ref, env_from, volume, name_field = (
        ("configMapKeyRef", "configMapRef", "configMap", "name") if kind == "ConfigMap"
        else ("secretKeyRef", "secretRef", "secret", "secretName"))
    found: set[str] = set()
    for field_name in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in spec.get(field_name) or []:
            for env in ctr.get("env") or []:
                ref = (env.get("valueFrom") or {}).get(key_ref)
                if ref:
                    found.add(ref.get("name"))
            for source in ctr.get("envFrom") or []:
                if source.get(env_from):
                    found.add(source[env_from].get("name"))
    for vol in spec.get("volumes") or []:
        if vol.get(volume):
            found.add(vol[volume].get(name_field))
        for source in (vol.get("projected") or {}).get("sources") or []:
            if source.get(volume):
                found.add(source[volume].get("name"))
    found.discard(None)
    return found
