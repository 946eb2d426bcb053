"""From documents to a :class:`Manifest`: sort documents by kind, fill
defaults, walk the schema, run the pod-wide rules, and report every problem
of the file at once.

Error lines read ``<field path>: <what is wrong>``, with ``(line N)`` when
the source was text, and the documents after the first are named:
``document 2 (Pod "web"): spec.containers: required (line 14)``.
"""

from __future__ import annotations

import base64

from ..errors import SpecError
from .defaults import DEFAULT_NAMESPACE, default_metadata, default_pod
from .model import Manifest
from .names import suggestion
from .parse import Document
from .podchecks import check_pod
from .problems import Problems, describe, format_path, line_of
from .rules import as_dict
from .schema import CONFIG_MAP, POD, SECRET

SUPPORTED_KINDS = ("Pod", "ConfigMap", "Secret")
_SCHEMAS = {"Pod": POD, "ConfigMap": CONFIG_MAP, "Secret": SECRET}
_KEPT_METADATA = ("name", "namespace", "labels", "annotations")


class _Report:
    """The problems of one document, and how to name it in messages."""

    def __init__(self, document: Document):
        self.document = document
        self.out = Problems()
        for path, message in document.problems:
            self.out.error(path, message)

    def label(self) -> str:
        data = self.document.data
        kind = data.get("kind") if isinstance(data, dict) else None
        name = as_dict(data.get("metadata")).get("name") if isinstance(data, dict) else None
        text = f"document {self.document.index}"
        if isinstance(kind, str) and kind:
            text += f" ({kind}" + (f' "{name}"' if isinstance(name, str) and name else "") + ")"
        return text

    def _line(self, path) -> str:
        line = line_of(path, self.document.lines) if self.document.lines else None
        return f" (line {line})" if line else ""

    def _prefix(self, path) -> str:
        where = format_path(path)
        if self.document.index == 1:
            return f"{where}: " if where else f"document {self.document.index}: "
        return f"{self.label()}: {where}: " if where else f"{self.label()}: "

    def errors(self) -> list[str]:
        lines = self.document.lines
        ordered = sorted(self.out.errors, key=lambda e: line_of(e[0], lines) or 0) if lines else self.out.errors
        return [f"{self._prefix(path)}{message}{self._line(path)}" for path, message in ordered]

    def warnings(self) -> list[str]:
        return [f"{self._prefix(path)}{message}" for path, message in self.out.warnings]


def normalize(value):
    """A deep copy without null fields (Kubernetes reads ``field: null`` as
    unset) and with YAML ``!!binary`` values as base64 text."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


class _Collector:
    def __init__(self):
        self.pods: list[tuple[dict, Problems, _Report]] = []
        self.config_maps: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.seen: dict[tuple[str, str, str], str] = {}

    def add_object(self, data, out: Problems, report: _Report) -> None:
        """One Kubernetes object (a document, or an item of a v1 List)."""
        if not isinstance(data, dict):
            out.error((), f"must be a Kubernetes object (a mapping with apiVersion and kind), got {describe(data)}")
            return
        kind = data.get("kind")
        if not _check_kind(data, out):
            return
        if kind == "List":
            items = data.get("items")
            if not isinstance(items, list):
                out.error(("items",), f"must be a list, got {describe(items)}")
                return
            for i, item in enumerate(items):
                self.add_object(item, out.child(("items", i)), report)
            return
        obj = normalize(data)
        if kind == "Pod":
            default_pod(obj)
        else:
            default_metadata(obj)
        _SCHEMAS[kind].validate(obj, (), out)
        self._remember(kind, obj, out, report)

    def _remember(self, kind: str, obj: dict, out: Problems, report: _Report) -> None:
        meta = as_dict(obj.get("metadata"))
        name, namespace = meta.get("name"), meta.get("namespace", DEFAULT_NAMESPACE)
        if not isinstance(name, str) or not isinstance(namespace, str):
            return
        key = (kind, namespace, name)
        if key in self.seen:
            out.error(("metadata", "name"), f'{kind} "{namespace}/{name}" is already defined by {self.seen[key]}')
            return
        self.seen[key] = report.label()
        if kind == "Pod":
            self.pods.append((obj, out, report))
        elif kind == "ConfigMap":
            self.config_maps[(namespace, name)] = _clean_config_map(obj)
        else:
            self.secrets[(namespace, name)] = _clean_secret(obj)


def _check_kind(data: dict, out: Problems) -> bool:
    """Whether the object is a kind minipod reads (reporting why not)."""
    kind, api_version = data.get("kind"), data.get("apiVersion")
    accepted = "minipod runs Pods (ConfigMap and Secret documents are accepted as inputs)"
    if kind is None:
        out.error(("kind",), f"required: {accepted}")
        return False
    if not isinstance(kind, str):
        out.error(("kind",), f"must be a string, got {describe(kind)}")
        return False
    if kind not in SUPPORTED_KINDS + ("List",):
        out.error(("kind",), f'"{kind}" is not supported: {accepted}' + suggestion(kind, SUPPORTED_KINDS, 0.8))
        return False
    if api_version is None:
        out.error(("apiVersion",), f'required: "v1" for kind {kind}')
    elif api_version != "v1":
        out.error(("apiVersion",), f'must be "v1" for kind {kind}, got {describe(api_version)}')
    return True


def _clean_metadata(obj: dict) -> dict:
    meta = obj["metadata"]
    return {k: meta[k] for k in _KEPT_METADATA if k in meta}


def _clean_config_map(obj: dict) -> dict:
    clean = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _clean_metadata(obj),
             "data": dict(as_dict(obj.get("data"))),
             "binaryData": {k: _one_line(v) for k, v in as_dict(obj.get("binaryData")).items()}}
    if "immutable" in obj:
        clean["immutable"] = obj["immutable"]
    return clean


def _clean_secret(obj: dict) -> dict:
    """As the API server stores it: stringData encoded into data (winning
    over the same key in data), and no stringData."""
    data = {k: _one_line(v) for k, v in as_dict(obj.get("data")).items()}
    for key, text in as_dict(obj.get("stringData")).items():
        if isinstance(text, str):
            data[key] = base64.b64encode(text.encode()).decode("ascii")
    clean = {"apiVersion": "v1", "kind": "Secret", "metadata": _clean_metadata(obj),
             "type": obj.get("type", "Opaque"), "data": data}
    if "immutable" in obj:
        clean["immutable"] = obj["immutable"]
    return clean


def _one_line(value):
    return value.replace("\n", "").replace("\r", "") if isinstance(value, str) else value


def _clean_pod(pod: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _clean_metadata(pod), "spec": pod["spec"]}


def build_manifest(documents: list[Document], source: str | None = None) -> Manifest:
    """Validate every document and return the Manifest, or raise SpecError
    listing every problem of the file."""
    collector = _Collector()
    reports = []
    for document in documents:
        report = _Report(document)
        reports.append(report)
        collector.add_object(document.data, report.out, report)
    for pod, out, _ in collector.pods:
        check_pod(pod, out, collector.config_maps, collector.secrets)
    errors = [line for report in reports for line in report.errors()]
    if errors:
        raise SpecError(errors, source=source)
    if not collector.pods:
        raise SpecError(f"no Pod in {source or 'the manifest'}"
                        + ("" if documents else ": it is empty"))
    warnings = list(dict.fromkeys(line for report in reports for line in report.warnings()))
    return Manifest(
        pods=[_clean_pod(pod) for pod, _, _ in collector.pods],
        config_maps=collector.config_maps,
        secrets=collector.secrets,
        warnings=warnings,
        source=source,
    )
