"""Defaults, filled in as the Kubernetes API server fills them.

Runs on a private copy of a document *before* validation (Kubernetes too
defaults first, then validates), so it must cope with wrong types: it only
fills a field whose parent is an object and never touches a value that is
there. ``metadata.uid`` and ``creationTimestamp`` are left to the runtime.
"""

from __future__ import annotations

from .rules import as_dict, dicts, quantity_or_none, resource_name
from .schema import VOLUME_SOURCES

DEFAULT_NAMESPACE = "default"
DEFAULT_FILE_MODE = 0o644  # 420, what the API server writes


def default_metadata(doc: dict) -> None:
    """Namespace "default", and empty labels and annotations."""
    meta = doc.setdefault("metadata", {})
    if isinstance(meta, dict):
        meta.setdefault("namespace", DEFAULT_NAMESPACE)
        meta.setdefault("labels", {})
        meta.setdefault("annotations", {})


def default_pod(pod: dict) -> None:
    default_metadata(pod)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    host_network = spec.get("hostNetwork") is True
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for _, ctr in dicts(spec.get(field)):
            default_container(ctr, host_network)
    for _, volume in dicts(spec.get("volumes")):
        default_volume(volume)


def pull_policy_for(image) -> str:
    """Always for ``:latest`` or no tag, IfNotPresent for any other tag or a digest."""
    if not isinstance(image, str) or "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_container(ctr: dict, host_network: bool) -> None:
    ctr.setdefault("imagePullPolicy", pull_policy_for(ctr.get("image")))
    ctr.setdefault("terminationMessagePath", "/dev/termination-log")
    ctr.setdefault("terminationMessagePolicy", "File")
    for _, port in dicts(ctr.get("ports")):
        port.setdefault("protocol", "TCP")
        # With the host's network the container's port *is* the host port.
        if host_network and "containerPort" in port and port.get("hostPort", 0) == 0:
            port["hostPort"] = port["containerPort"]
    resources = ctr.setdefault("resources", {})
    if isinstance(resources, dict):
        _requests_from_limits(resources)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if isinstance(ctr.get(probe), dict):
            default_probe(ctr[probe])
    lifecycle = as_dict(ctr.get("lifecycle"))
    for hook in ("postStart", "preStop"):
        _default_http_get(as_dict(lifecycle.get(hook)).get("httpGet"))
    for _, env in dicts(ctr.get("env")):
        field_ref = as_dict(env.get("valueFrom")).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def _requests_from_limits(resources: dict) -> None:
    """A limit without a request makes the request equal to the limit."""
    limits = resources.get("limits")
    if not isinstance(limits, dict) or not limits:
        return
    requests = resources.setdefault("requests", {})
    if not isinstance(requests, dict):
        return
    for name, limit in limits.items():
        # Copy only valid entries, so a bad limit is reported once, not twice.
        value = quantity_or_none(limit)
        if name not in requests and not resource_name(name) and value is not None and value >= 0:
            requests[name] = limit


def default_probe(probe: dict) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _default_http_get(probe.get("httpGet"))


def _default_http_get(action) -> None:
    if isinstance(action, dict):
        action.setdefault("path", "/")
        action.setdefault("scheme", "HTTP")


def default_volume(volume: dict) -> None:
    if not any(source in volume for source in VOLUME_SOURCES):
        volume["emptyDir"] = {}  # a volume with only a name is an emptyDir
    for source in ("configMap", "secret", "downwardAPI", "projected"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", DEFAULT_FILE_MODE)
    if isinstance(volume.get("hostPath"), dict):
        volume["hostPath"].setdefault("type", "")
    for _, item in dicts(as_dict(volume.get("downwardAPI")).get("items")):
        _default_field_ref(item)
    for _, source in dicts(as_dict(volume.get("projected")).get("sources")):
        for _, item in dicts(as_dict(source.get("downwardAPI")).get("items")):
            _default_field_ref(item)


def _default_field_ref(item: dict) -> None:
    if isinstance(item.get("fieldRef"), dict):
        item["fieldRef"].setdefault("apiVersion", "v1")
