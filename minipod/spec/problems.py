"""Field paths and the collector of errors and warnings for one document.

A path is a tuple: ``str`` for a field, ``int`` for a list index and
:class:`Key` for a key of a free-form map (labels, resources…), so that it
prints the way Kubernetes prints it: ``spec.containers[0].resources.limits[cpu]``.
"""

from __future__ import annotations

Path = tuple


class Key(str):
    """A key of a map (not a schema field): printed as ``[key]``."""

    __slots__ = ()


def format_path(path: Path) -> str:
    """``("spec", "containers", 0, "name")`` → ``"spec.containers[0].name"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, Key):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def describe(value) -> str:
    """A short description of a wrong value, for "must be X, got Y"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}" if '"' in shown else f'string "{shown}"'
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


class Problems:
    """Errors and warnings found in one document, each at a field path.

    ``base`` is prepended to every path (the ``items[3]`` of a v1 List)."""

    def __init__(self, base: Path = ()):
        self.base = tuple(base)
        self.errors: list[tuple[Path, str]] = []
        self.warnings: list[tuple[Path, str]] = []

    def error(self, path: Path, message: str) -> None:
        entry = (self.base + tuple(path), message)
        if entry not in self.errors:
            self.errors.append(entry)

    def warn(self, path: Path, message: str) -> None:
        entry = (self.base + tuple(path), message)
        if entry not in self.warnings:
            self.warnings.append(entry)

    def child(self, base: Path) -> "Problems":
        """A collector for a nested object (an item of a List) that writes
        into this one."""
        sub = Problems(self.base + tuple(base))
        sub.errors = self.errors
        sub.warnings = self.warnings
        return sub


def line_of(path: Path, lines: dict) -> int | None:
    """The source line of ``path``, or of its nearest ancestor that has one
    (a missing field is reported on the line of the object that lacks it)."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None
