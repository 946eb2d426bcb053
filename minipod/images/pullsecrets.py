"""Registry credentials from a pod's ``imagePullSecrets``.

Kubernetes keeps them in Secrets of type ``kubernetes.io/dockerconfigjson``:
the key ``.dockerconfigjson`` holds (base64, like every Secret value) a
docker ``config.json``. The kubelet tries the pod's secrets in order and then
the node's own credentials; minipod does the same, the node's being
``~/.docker/config.json``.
"""

from __future__ import annotations

import base64
import json

from minipod.errors import ImageError
from minipod.images.registry import auths_credentials

DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCONFIGJSON_KEY = ".dockerconfigjson"


def secret_auths(secret: dict) -> dict:
    """The ``auths`` map of a ``kubernetes.io/dockerconfigjson`` Secret (as
    the manifest loader stores it: values in base64 under ``data``).
    ImageError, naming the Secret, when it is not that."""
    name = (secret.get("metadata") or {}).get("name")
    where = f'Secret "{name}"'
    if secret.get("type") != DOCKERCONFIGJSON_TYPE:
        raise ImageError(f"{where} is of type {secret.get('type')!r}, not {DOCKERCONFIGJSON_TYPE}")
    encoded = (secret.get("data") or {}).get(DOCKERCONFIGJSON_KEY)
    if not isinstance(encoded, str):
        raise ImageError(f"{where} has no key {DOCKERCONFIGJSON_KEY}")
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
    except (ValueError, UnicodeDecodeError):
        raise ImageError(f"{where}: {DOCKERCONFIGJSON_KEY} is not a docker config.json") from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise ImageError(f"{where}: {DOCKERCONFIGJSON_KEY} has no auths map")
    return auths


def pod_pull_secrets(pod: dict, secrets: dict) -> list[dict]:
    """The Secrets named by ``pod``'s imagePullSecrets, in order, from
    ``secrets`` (``(namespace, name)`` -> Secret, as a Manifest holds them).
    Validation already refused a name that is not there."""
    namespace = pod["metadata"]["namespace"]
    found = []
    for ref in pod["spec"].get("imagePullSecrets") or []:
        secret = secrets.get((namespace, ref.get("name")))
        if secret is not None:
            found.append(secret)
    return found


def pull_credentials(pull_secrets: list[dict], domain: str) -> tuple[str, str] | None:
    """(user, password) for registry ``domain`` from the first of
    ``pull_secrets`` that has an entry for it, or None."""
    for secret in pull_secrets:
        name = (secret.get("metadata") or {}).get("name")
        creds = auths_credentials(secret_auths(secret), domain, f'Secret "{name}"')
        if creds is not None:
            return creds
    return None
