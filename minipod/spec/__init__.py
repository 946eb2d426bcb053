"""Kubernetes manifests: read, validate strictly, fill defaults (pure Python).

    from minipod.spec import load_manifest, Manifest, parse_quantity
    m = load_manifest("pod.yaml")      # or YAML/JSON text, bytes, a dict, a list of dicts
    m.pods, m.config_maps, m.secrets, m.warnings

Any problem raises ``minipod.errors.SpecError`` whose ``problems`` list has
one ``"<field path>: <what is wrong>"`` line per problem, for the whole file.
"""

from __future__ import annotations

from .model import Manifest
from .quantity import parse_quantity

__all__ = ["load_manifest", "Manifest", "parse_quantity"]


def load_manifest(source, *, name_hint: str | None = None) -> Manifest:
    """Read, validate and default a manifest.

    ``source`` is a path (``str`` without a newline), YAML or JSON text (a
    ``str`` with a newline or starting with ``{``), ``bytes``, one document
    as a ``dict`` or several as a list of dicts. ``name_hint`` names the
    source in messages (the CLI passes ``"<stdin>"`` for ``-``); a path names
    itself. Raises ``SpecError`` listing every problem found."""
    # Imported here so that importing minipod.spec (for parse_quantity) stays cheap.
    from .parse import read_manifest
    from .validate import build_manifest

    name, documents = read_manifest(source, name_hint)
    return build_manifest(documents, source=name)
