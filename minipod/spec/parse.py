"""Reading a manifest: a path, YAML or JSON text, bytes, a dict or a list of
dicts, into documents that remember the source line of each field.

YAML is composed into nodes first (by libyaml when PyYAML has it), so that
every field path gets its line for error messages, and duplicate keys — which
YAML silently collapses and Kubernetes rejects — are caught.

A JSON document is read by ``json`` alone, and PyYAML is not even imported
(~24 ms here, most of it compiling PyYAML's regular expressions): its lines
are worked out from the text only when an error message needs them.
"""

from __future__ import annotations

import json

from ..errors import SpecError

_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_DEPTH = 100
# Aliases can make a small file describe a huge tree ("billion laughs");
# nothing real comes close to this many nodes.
MAX_NODES = 1_000_000


class Document:
    """One document of a manifest. ``index`` counts from 1 in the stream;
    ``lines`` maps a field path to its 1-based line; ``problems`` holds
    ``(path, message)`` found while reading (duplicate keys)."""

    __slots__ = ("index", "data", "lines", "problems")

    def __init__(self, index: int, data: object, lines: dict | None = None, problems: list | None = None):
        self.index = index
        self.data = data
        self.lines = {} if lines is None else lines
        self.problems = [] if problems is None else problems

    def __eq__(self, other):
        if not isinstance(other, Document):
            return NotImplemented
        return (self.index, self.data, self.lines, self.problems) == \
            (other.index, other.data, other.lines, other.problems)

    __hash__ = None

    def __repr__(self) -> str:
        return (f"Document(index={self.index!r}, data={self.data!r}, lines={self.lines!r}, "
                f"problems={self.problems!r})")


def read_manifest(source, name_hint: str | None = None) -> tuple[str | None, list[Document]]:
    """``(display name, documents)`` for ``source``; raises SpecError when it
    cannot be read or is not well-formed YAML/JSON."""
    if isinstance(source, dict):
        return name_hint, [Document(1, source)]
    if isinstance(source, list):
        return name_hint, [Document(i, item) for i, item in enumerate(source, 1)]
    if isinstance(source, (bytes, bytearray)):
        name = name_hint
        return name, parse_text(_decode(bytes(source), name), name)
    if isinstance(source, str):
        # "" is text too: an empty standard input is an empty manifest, not a path.
        if not source or "\n" in source or source.lstrip().startswith(("{", "[")):
            return name_hint, parse_text(source, name_hint)
        name = name_hint or source
        return name, parse_text(_decode(_read_file(source), name), name)
    raise TypeError(f"a manifest is a path, text, bytes, a dict or a list of dicts, not {type(source).__name__}")


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None


def _decode(raw: bytes, name: str | None) -> str:
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text: invalid byte at offset {exc.start}", source=name) from None


def parse_text(text: str, name: str | None = None, *, json_fast_path: bool = True) -> list[Document]:
    """Every document of a YAML (or JSON) stream, with line numbers."""
    if json_fast_path and text.lstrip().startswith("{"):
        document = _json_document(text, name)
        if document is not None:
            return [document]
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        nodes = list(yaml.compose_all(text, Loader=loader))
    except yaml.YAMLError as exc:
        if text.lstrip().startswith(("{", "[")):
            # JSON that YAML 1.1 refuses (rare escapes): still a valid manifest.
            try:
                return [Document(1, json.loads(text))]
            except ValueError:
                pass
        raise SpecError(yaml_error_text(exc), source=name) from None
    documents = []
    for index, node in enumerate(nodes, 1):
        if node is None:
            continue
        document = Document(index, None, lines={(): node.start_mark.line + 1})
        _Indexer(document, name).visit(node, (), 0)
        try:
            document.data = yaml.constructor.SafeConstructor().construct_document(node)
        except yaml.YAMLError as exc:
            raise SpecError(yaml_error_text(exc), source=name) from None
        if document.data is not None:
            documents.append(document)
    return documents


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateKey
    return out


def _json_document(text: str, name: str | None) -> Document | None:
    """One JSON object, or None when the YAML path must read it (not JSON
    after all, or a key given twice: YAML's reading names the line)."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, _DuplicateKey):
        return None
    return Document(1, data, lines=_LinesOnDemand(text, name))


class _LinesOnDemand(dict):
    """The lines of a JSON document's fields, found (through YAML, which
    reads JSON) the first time a message asks for one."""

    def __init__(self, text: str, name: str | None):
        super().__init__()
        self._text, self._name = text, name

    def _fill(self) -> None:
        if self._text is not None:
            text, self._text = self._text, None
            try:
                documents = parse_text(text, self._name, json_fast_path=False)
            except SpecError:
                return
            if documents:
                self.update(documents[0].lines)

    def __bool__(self) -> bool:
        return True

    def get(self, key, default=None):
        self._fill()
        return super().get(key, default)

    def __getitem__(self, key):
        self._fill()
        return super().__getitem__(key)

    def __eq__(self, other):
        self._fill()
        return super().__eq__(other)

    __hash__ = None


def yaml_error_text(exc) -> str:
    """``line 4, column 7: mapping values are not allowed here``."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark.line != mark.line:
        text += f" ({context} that starts on line {context_mark.line + 1})"
    elif context:
        text += f" ({context})"
    return " ".join(text.split())


class _Indexer:
    """Records the line of every field path of one document's node tree and
    the keys given twice; refuses trees too deep, recursive or too big."""

    def __init__(self, document: Document, name: str | None):
        self.document = document
        self.name = name
        self.visited = 0
        self.open_nodes: set[int] = set()

    def _fail(self, node, message: str) -> None:
        mark = node.start_mark
        raise SpecError(f"line {mark.line + 1}, column {mark.column + 1}: {message}", source=self.name)

    def visit(self, node, path: tuple, depth: int) -> None:
        from yaml.nodes import MappingNode, SequenceNode

        self.visited += 1
        if self.visited > MAX_NODES:
            self._fail(node, f"the document expands to more than {MAX_NODES} values (aliases?)")
        if depth > MAX_DEPTH:
            self._fail(node, f"nested more than {MAX_DEPTH} levels deep")
        if id(node) in self.open_nodes:
            self._fail(node, "an alias refers to a node that contains it")
        self.open_nodes.add(id(node))
        if isinstance(node, MappingNode):
            self._mapping(node, path, depth)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self.document.lines.setdefault(path + (index,), item.start_mark.line + 1)
                self.visit(item, path + (index,), depth + 1)
        self.open_nodes.discard(id(node))

    def _mapping(self, node, path: tuple, depth: int) -> None:
        from yaml.nodes import ScalarNode

        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                # Merged keys ("<<: *base") keep the lines of their parent.
                self.visit(value_node, path, depth + 1)
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in first_line:
                self.document.problems.append(
                    (path + (key,), f"duplicate field, given again on line {line}"))
            else:
                first_line[key] = line
                self.document.lines.setdefault(path + (key,), line)
            self.visit(value_node, path + (key,), depth + 1)
