"""Image references: parse and normalise them exactly as Docker does.

``busybox`` means ``docker.io/library/busybox:latest``; ``minipod/busybox:1``
means ``docker.io/minipod/busybox:1``; ``localhost:5000/a/b@sha256:…`` keeps
its registry. The grammar is the one of the distribution project's
``reference`` package (``name[:tag][@digest]``), so a name that Docker
accepts is accepted here with the same meaning, and the store's index keys
are the same strings ``docker`` would show with ``--no-trunc``.
"""

from __future__ import annotations

import re

from minipod.errors import ImageError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The pieces of the grammar, named as in distribution/reference/regexp.go.
_ALPHA_NUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHA_NUMERIC}(?:{_SEPARATOR}{_ALPHA_NUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$", re.ASCII)
# A bare 64-hex string is an image ID, never a repository name (Docker refuses it).
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}


class Reference:
    """A parsed, normalised reference. ``str()`` gives the canonical form.
    Immutable; a plain class because ``run`` parses one per container and
    importing ``dataclasses`` costs more than the whole parse."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None):
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name, value):
        raise AttributeError(f"Reference is immutable: cannot set {name!r}")

    def _key(self) -> tuple:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other):
        return self._key() == other._key() if isinstance(other, Reference) else NotImplemented

    def __hash__(self):
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Reference(domain={self.domain!r}, path={self.path!r}, tag={self.tag!r}, digest={self.digest!r})"

    @property
    def name(self) -> str:
        """Repository name with its registry: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The short name Docker prints: ``busybox``, ``minipod/busybox``,
        ``quay.io/x/y``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX) and self.path.count("/") == 1:
            return self.path[len(OFFICIAL_REPO_PREFIX):]
        return self.path

    @property
    def familiar(self) -> str:
        """``familiar_name`` with its tag and digest: ``busybox:latest``."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        text = f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's rule: the part before the first '/' is a registry only if it
    looks like a host (has '.' or ':', is 'localhost', or has upper case)."""
    first, sep, rest = name.partition("/")
    if not sep or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    # Neither a tag nor a digest can hold '/', so this looks at the path only.
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _check_digest(reference: str, digest: str) -> None:
    algorithm, _, hex_part = digest.partition(":")
    expected = _DIGEST_HEX_LENGTH.get(algorithm)
    if expected is None:
        raise ImageError(f'invalid reference "{reference}": unsupported digest algorithm "{algorithm}"')
    if len(hex_part) != expected:
        raise ImageError(f'invalid reference "{reference}": invalid checksum digest length')
    if hex_part != hex_part.lower():
        raise ImageError(f'invalid reference "{reference}": invalid checksum digest format')


def parse_reference(reference: str) -> Reference:
    """Parse ``reference`` as Docker does and return it normalised, with the
    ``latest`` tag added when it has neither tag nor digest.

    Raises ImageError naming the reason for an invalid reference."""
    if not isinstance(reference, str) or not reference:
        raise ImageError("invalid reference: repository name must have at least one component")
    if _IDENTIFIER_RE.match(reference):
        raise ImageError(
            f'invalid repository name "{reference}": cannot specify 64-byte hexadecimal strings'
        )
    domain, remainder = _split_domain(reference)
    path_part = re.split(r"[:@]", remainder, maxsplit=1)[0]
    if path_part.lower() != path_part:
        raise ImageError(f'invalid reference "{reference}": repository name must be lowercase')
    full = f"{domain}/{remainder}"
    match = _REFERENCE_RE.match(full)
    if not match:
        raise ImageError(f'invalid reference format: "{reference}"')
    name, tag, digest = match.groups()
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ImageError(
            f'invalid reference "{reference}": repository name must not be more than '
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest:
        _check_digest(reference, digest)
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=name[len(domain) + 1:], tag=tag, digest=digest)


def normalize_reference(reference: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest`` (see parse_reference)."""
    return str(parse_reference(reference))
