"""The building blocks of the schema tables, and the walk that checks a value
against them.

A schema is a tree of these nodes; ``node.validate(value, path, out)``
reports every problem under ``path`` into ``out`` (a :class:`Problems`) and
never stops at the first. Scalar checks are plain functions
``check(value) -> message or None``; object checks are
``check(obj, path, out)`` for rules that involve several fields.
"""

from __future__ import annotations

import datetime

from .names import suggestion
from .problems import Key, Problems, describe
from .quantity import parse_quantity

STRING, INTEGER, BOOLEAN, QUANTITY, INT_OR_STRING = "string", "integer", "boolean", "quantity", "int-or-string"

_KIND_TEXT = {
    STRING: "a string",
    INTEGER: "an integer",
    BOOLEAN: "a boolean (true or false)",
    QUANTITY: "a quantity (a number, or a string like \"500m\" or \"128Mi\")",
    INT_OR_STRING: "an integer or a string",
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_kind(kind: str, value) -> bool:
    if kind == STRING:
        return isinstance(value, str)
    if kind == INTEGER:
        return _is_int(value)
    if kind == BOOLEAN:
        return isinstance(value, bool)
    if kind == QUANTITY:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return isinstance(value, str) or _is_int(value)  # INT_OR_STRING


class Node:
    """A schema node. ``validate`` reports problems; it never raises."""

    def validate(self, value, path: tuple, out: Problems) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class Scalar(Node):
    def __init__(self, kind: str, *checks):
        self.kind = kind
        self.checks = checks

    def validate(self, value, path, out):
        if not _has_kind(self.kind, value):
            message = f"must be {_KIND_TEXT[self.kind]}, got {describe(value)}"
            # YAML turns unquoted 8080, 1.0, yes and 2024-01-01 into non-strings;
            # quoting is nearly always the fix.
            if self.kind == STRING and isinstance(value, (int, float, bool, datetime.date)):
                message += " (put it in quotes)"
            out.error(path, message)
            return
        for check in self.checks:
            message = check(value)
            if message:
                out.error(path, message)
                return


def Str(*checks) -> Scalar:
    return Scalar(STRING, *checks)


def Int(*checks) -> Scalar:
    return Scalar(INTEGER, *checks)


def Bool(*checks) -> Scalar:
    return Scalar(BOOLEAN, *checks)


def Quantity(*checks) -> Scalar:
    return Scalar(QUANTITY, quantity_valid, *checks)


def IntOrStr(*checks) -> Scalar:
    return Scalar(INT_OR_STRING, *checks)


class Obj(Node):
    """An object with a fixed field set. ``required`` fields must be present;
    of ``one_of`` at most one may be present, and exactly one when
    ``need_one``; ``check`` sees the whole object for cross-field rules."""

    def __init__(self, fields: dict, *, required=(), one_of=(), need_one=False, what="", check=None):
        self.fields = fields
        self.required = tuple(required)
        self.one_of = tuple(one_of)
        self.need_one = need_one
        self.what = what or "of " + ", ".join(self.one_of)
        self.check = check

    def validate(self, value, path, out):
        if not isinstance(value, dict):
            out.error(path, f"must be an object, got {describe(value)}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.error(path, f"unknown field {key!r}: field names are strings")
                continue
            node = self.fields.get(key)
            if node is None:
                out.error(path + (key,), "unknown field" + suggestion(key, self.fields))
                continue
            node.validate(item, path + (key,), out)
        for name in self.required:
            if name not in value:
                out.error(path + (name,), "required")
        if self.one_of:
            present = [k for k in self.one_of if k in value]
            if len(present) > 1:
                out.error(path, f"must have only one {self.what}, got {' and '.join(present)}")
            elif not present and self.need_one:
                out.error(path, f"must have one {self.what}")
        if self.check:
            self.check(value, path, out)

    def extend(self, fields: dict, **options) -> "Obj":
        """A new object schema with more fields (EphemeralContainer = Container + …)."""
        merged = dict(self.fields, **fields)
        settings = dict(required=self.required, one_of=self.one_of, need_one=self.need_one, what=self.what,
                        check=self.check)
        settings.update(options)
        return Obj(merged, **settings)


class ListOf(Node):
    def __init__(self, item: Node, *, non_empty: str | None = None, max_items: int | None = None):
        self.item = item
        self.non_empty = non_empty
        self.max_items = max_items

    def validate(self, value, path, out):
        if not isinstance(value, list):
            hint = ' (a YAML list is written [a, b] or with one "- item" per line)' if isinstance(value, str) else ""
            out.error(path, f"must be a list, got {describe(value)}{hint}")
            return
        if not value and self.non_empty:
            out.error(path, self.non_empty)
        if self.max_items is not None and len(value) > self.max_items:
            out.error(path, f"must have at most {self.max_items} items, got {len(value)}")
        for index, item in enumerate(value):
            self.item.validate(item, path + (index,), out)


class MapOf(Node):
    """A map from free-form string keys (checked by ``key_check``) to values."""

    def __init__(self, value: Node, *, key_check=None, check=None):
        self.value = value
        self.key_check = key_check
        self.check = check

    def validate(self, value, path, out):
        if not isinstance(value, dict):
            out.error(path, f"must be an object (a map), got {describe(value)}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.error(path, f"key {key!r} must be a string (put it in quotes)")
                continue
            if self.key_check and (message := self.key_check(key)):
                out.error(path, message)
            self.value.validate(item, path + (Key(key),), out)
        if self.check:
            self.check(value, path, out)


class FreeForm(Node):
    """Any object: accepted as is (affinity, which minipod ignores)."""

    def validate(self, value, path, out):
        if not isinstance(value, dict):
            out.error(path, f"must be an object, got {describe(value)}")


class AnyValue(Node):
    """Anything at all (server-set metadata that is dropped)."""

    def validate(self, value, path, out):
        pass


class Unsupported(Node):
    """Valid Kubernetes that minipod cannot honour: always an error."""

    def __init__(self, reason: str):
        self.reason = reason

    def validate(self, value, path, out):
        out.error(path, f"not supported by minipod: {self.reason}")


class Ignored(Node):
    """Valid Kubernetes that means nothing on one host: checked like
    Kubernetes checks it, then one warning saying why it is ignored. Values in
    ``harmless`` (and empty lists/maps) ask for nothing, so they get no warning."""

    def __init__(self, inner: Node, reason: str, harmless=()):
        self.inner = inner
        self.reason = reason
        self.harmless = harmless

    def validate(self, value, path, out):
        self.inner.validate(value, path, out)
        if value in ({}, []) or any(value == h and type(value) is type(h) for h in self.harmless):
            return
        out.warn(path, f"ignored: {self.reason}")


# -- scalar checks: value -> message or None ---------------------------------

def in_range(low: int, high: int):
    def check(value):
        if not low <= value <= high:
            return f"must be between {low} and {high}, got {value}"
        return None
    return check


def at_least(low: int):
    def check(value):
        if value < low:
            return f"must be greater than or equal to {low}, got {value}"
        return None
    return check


def one_of(*allowed: str):
    def check(value):
        if value in allowed:
            return None
        if len(allowed) == 1:
            return f'must be "{allowed[0]}", got "{value}"'
        choices = ", ".join(f'"{a}"' for a in allowed if a)
        empty = ' or ""' if "" in allowed else ""
        return f'unsupported value "{value}": must be one of {choices}{empty}' + suggestion(value, allowed)
    return check


def non_empty(value):
    return "must not be empty" if value == "" else None


def file_mode(value):
    if not 0 <= value <= 0o777:
        return f"must be a file mode between 0 and 0777 (octal), got {value:#o}"
    return None


def quantity_valid(value):
    try:
        parse_quantity(value)
    except ValueError as exc:
        return str(exc)
    return None


def non_negative_quantity(value):
    if parse_quantity(value) < 0:
        return f"must be greater than or equal to 0, got {value}"
    return None
