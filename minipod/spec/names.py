"""Name checks, as Kubernetes' apimachinery validation does them.

Each ``*_error(value)`` returns ``None`` when the value is valid, else one
line saying what is wrong (without the field path, which the caller adds).
"""

from __future__ import annotations

import re

from minipod.capabilities import CAPABILITY_NAMES

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
# Patterns, not compiled objects: ``re`` compiles each on its first use and
# caches it, so a manifest that needs three of them does not pay for all
# of them at every ``run``.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = rf"^{_LABEL}$"
_DNS_SUBDOMAIN = rf"^{_LABEL}(\.{_LABEL})*$"
_QUALIFIED_NAME = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_IANA_SVC_NAME = r"^[-a-z0-9]+$"
_CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
_HTTP_TOKEN = r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$"
_SYSCTL_PART = r"[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL = rf"^({_SYSCTL_PART}[./])*{_SYSCTL_PART}$"

# linux/capability.h, in order (the index is the capability number).
LINUX_CAPABILITIES = CAPABILITY_NAMES


def suggestion(word: str, choices, cutoff: float = 0.6) -> str:
    """`` (did you mean "x"?)`` when ``word`` is close to one of ``choices``
    (case-insensitively), else ``""``."""
    import difflib  # only when something is misspelt

    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    if not close and len(word) >= 4:
        # "name" for "secretName": the word is part of exactly one choice.
        containing = [c for c in by_lower if word.lower() in c]
        close = containing if len(containing) == 1 else []
    return f' (did you mean "{by_lower[close[0]]}"?)' if close else ""


def dns_label_error(value: str) -> str | None:
    """A DNS-1123 label: container, volume, port-less names, namespaces, hostnames."""
    if not value:
        return "must not be empty"
    if len(value) > DNS1123_LABEL_MAX:
        return f'"{value}" must be no more than {DNS1123_LABEL_MAX} characters (a DNS-1123 label)'
    if not re.match(_DNS_LABEL, value):
        return (f'"{value}" is not a valid DNS-1123 label: it must consist of lower case alphanumeric '
                "characters or '-', and must start and end with an alphanumeric character")
    return None


def dns_subdomain_error(value: str) -> str | None:
    """A DNS-1123 subdomain: object names (Pods, ConfigMaps, Secrets)."""
    if not value:
        return "must not be empty"
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters (a DNS-1123 subdomain)"
    if not re.match(_DNS_SUBDOMAIN, value):
        return (f'"{value}" is not a valid DNS-1123 subdomain: it must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
    return None


def qualified_name_error(value: str) -> str | None:
    """Label and annotation keys: ``[prefix/]name``, prefix a DNS subdomain,
    name at most 63 characters of alphanumerics, '-', '_' and '.'."""
    if not value:
        return "a key must not be empty"
    parts = value.split("/")
    if len(parts) > 2:
        return (f'"{value}" is not a valid key: a qualified name is an optional DNS subdomain prefix and '
                "a name, separated by one '/'")
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return f'"{value}" is not a valid key: the prefix part must not be empty'
        if prefix_error := dns_subdomain_error(prefix):
            return f'"{value}" is not a valid key: prefix part {prefix_error}'
    if not name:
        return f'"{value}" is not a valid key: the name part must not be empty'
    if len(name) > 63:
        return f'"{value}" is not a valid key: the name part must be no more than 63 characters'
    if not re.match(_QUALIFIED_NAME, name):
        return (f'"{value}" is not a valid key: the name part must consist of alphanumeric characters, '
                "'-', '_' or '.', and must start and end with an alphanumeric character")
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return f'"{value}" is not a valid label value: must be no more than 63 characters'
    if not re.match(_LABEL_VALUE, value):
        return (f'"{value}" is not a valid label value: must be empty or consist of alphanumeric characters, '
                "'-', '_' or '.', and must start and end with an alphanumeric character")
    return None


def port_name_error(value: str) -> str | None:
    """IANA_SVC_NAME: at most 15 lowercase alphanumerics and '-', at least one
    letter, no '-' at either end nor two in a row."""
    if not value:
        return "must not be empty"
    if len(value) > 15:
        return f'"{value}" is not a valid port name: must be no more than 15 characters'
    if not re.match(_IANA_SVC_NAME, value):
        return f'"{value}" is not a valid port name: must contain only lower case alphanumerics and \'-\''
    if not any(c.isalpha() for c in value):
        return f'"{value}" is not a valid port name: must contain at least one letter'
    if "--" in value or value.startswith("-") or value.endswith("-"):
        return (f'"{value}" is not a valid port name: \'-\' may not be first, last, '
                "or next to another '-'")
    return None


def env_var_name_error(value: str) -> str | None:
    """Kubernetes' relaxed environment variable names: any printable ASCII
    character except '=' (the rule since RelaxedEnvironmentVariableValidation)."""
    if not value:
        return "must not be empty"
    if any(not (32 <= ord(c) <= 126) or c == "=" for c in value):
        return (f"{value!r} is not a valid environment variable name: it must consist of printable "
                "ASCII characters other than '='")
    return None


def config_key_error(value: str) -> str | None:
    """A key of a ConfigMap or Secret (also a file name in a volume)."""
    if not value:
        return "must not be empty"
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
    if not re.match(_CONFIG_KEY, value):
        return (f'"{value}" is not a valid key: must consist of alphanumeric characters, '
                "'-', '_' or '.'")
    if value in (".", "..") or value.startswith(".."):
        return f'"{value}" is not a valid key: must not be "." or "..", nor start with ".."'
    return None


def http_header_name_error(value: str) -> str | None:
    if not re.match(_HTTP_TOKEN, value):
        return f'"{value}" is not a valid HTTP header name'
    return None


def sysctl_name_error(value: str) -> str | None:
    if len(value) > DNS1123_SUBDOMAIN_MAX or not re.match(_SYSCTL, value):
        return (f'"{value}" is not a valid sysctl name: it must be dot- or slash-separated parts of '
                "lower case alphanumerics, '-' and '_'")
    return None


def ip_address_error(value: str) -> str | None:
    import ipaddress  # ~2 ms, for the few manifests with hostAliases

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f'"{value}" is not a valid IP address'
    return None


def capability_error(value: str) -> str | None:
    """A Linux capability name, with or without ``CAP_``, any case; or ``ALL``."""
    key = value.upper()
    if key == "ALL":
        return None
    key = key[4:] if key.startswith("CAP_") else key
    if key in LINUX_CAPABILITIES:
        return None
    hint = suggestion(key, LINUX_CAPABILITIES + ("ALL",), cutoff=0.7)
    return f'"{value}" is not a Linux capability{hint}'


def relative_path_error(value: str, *, reserved_prefix: bool = False) -> str | None:
    """A path that must stay inside its volume: relative, no '..' element.
    ``reserved_prefix`` also refuses a leading '..' (volume item paths, where
    ``..data`` is the atomic writer's own name)."""
    if not value:
        return "must not be empty"
    if value.startswith("/"):
        return f'"{value}" must be a relative path'
    if ".." in value.split("/"):
        return f"\"{value}\" must not contain '..'"
    if reserved_prefix and value.startswith(".."):
        return f"\"{value}\" must not start with '..'"
    return None


def absolute_path_error(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if not value.startswith("/"):
        return f'"{value}" must be an absolute path'
    return None
