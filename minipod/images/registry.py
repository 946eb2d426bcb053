"""Talking to an OCI/Docker registry over HTTP: endpoints, auth, redirects.

Standard library only (http.client). One ``RegistryClient`` serves one
repository; it is safe to share between threads (each thread keeps its own
connections, the token is shared under a lock).

Auth follows the distribution spec: a request answered 401 carries a
``WWW-Authenticate`` challenge; ``Bearer realm=…,service=…,scope=…`` means
"get a token from realm" (with Basic credentials when we have some), ``Basic``
means "send the credentials". Redirects (blob storage, CDNs) are followed by
hand, so the Authorization header is only ever sent to the registry's own
host.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import urllib.parse

from minipod.errors import ImageError

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
# ~/.docker/config.json keys Docker Hub credentials under its v1 URL.
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                        "registry-1.docker.io")
# Set (to anything non-empty) to refuse every registry that is not on
# loopback: tests set it so that a typo in an image name never reaches the
# internet.
LOOPBACK_ONLY_ENV = "MINIPOD_REGISTRY_LOOPBACK_ONLY"
USER_AGENT = "minipod"
MAX_REDIRECTS = 5
TIMEOUT = 30.0


def _log():
    import logging

    return logging.getLogger("minipod.images.registry")


# ----- parsing


def parse_www_authenticate(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://a/token",service="reg",scope="repository:x:pull"``
    -> ("bearer", {"realm": …, "service": …, "scope": …}). The scheme is
    lower-cased; values may be quoted (with backslash escapes) or bare."""
    header = (header or "").strip()
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            value = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(rest[i])
                i += 1
            i += 1  # closing quote
            params[key] = "".join(value)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return scheme.lower(), params


def parse_creds(text: str) -> tuple[str, str]:
    """``user:password`` (the --creds option) -> (user, password)."""
    user, sep, password = (text or "").partition(":")
    if not sep or not user:
        raise ImageError("--creds must be USER:PASSWORD")
    return user, password


def registry_endpoint(domain: str) -> str:
    """The host[:port] serving ``domain``'s API: Docker Hub's names live on
    registry-1.docker.io, every other registry serves itself."""
    return DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB_DOMAIN else domain


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (``host`` without port)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host_port(endpoint: str) -> tuple[str, int | None]:
    parsed = urllib.parse.urlsplit("//" + endpoint)
    return parsed.hostname or endpoint, parsed.port


def docker_config_credentials(domain: str, path: str | None = None) -> tuple[str, str] | None:
    """Credentials for ``domain`` from ``~/.docker/config.json`` (``auths``
    entries with ``auth`` = base64 user:password, or username/password), or
    None. A missing or unreadable file means no credentials, like Docker."""
    if path is None:
        directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
        path = os.path.join(directory, "config.json")
    try:
        with open(path) as f:
            auths = json.load(f).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return auths_credentials(auths, domain, path)


def auths_credentials(auths, domain: str, where: str) -> tuple[str, str] | None:
    """Credentials for ``domain`` from the ``auths`` map of a docker
    config.json (``auth`` = base64 user:password, or username/password), or
    None. ``where`` names the source in errors (a file, a Secret)."""
    if not isinstance(auths, dict):
        return None
    keys = DOCKER_HUB_AUTH_KEYS if domain == DOCKER_HUB_DOMAIN else (domain,)
    for key, entry in auths.items():
        host = urllib.parse.urlsplit(key if "//" in key else "//" + key).netloc or key
        if (key in keys or host in keys) and isinstance(entry, dict):
            if entry.get("auth"):
                try:
                    decoded = base64.b64decode(entry["auth"]).decode()
                except (ValueError, UnicodeDecodeError):
                    raise ImageError(f"{where}: the auth entry for {key} is not base64 user:password") from None
                user, sep, password = decoded.partition(":")
                if sep:
                    return user, password
            if entry.get("username"):
                return entry["username"], entry.get("password", "")
    return None


# ----- responses


class Response:
    """A finished request: status, headers (lower-case names), and the open
    body stream (``read(n)``); ``close()`` releases the connection."""

    def __init__(self, status: int, headers: dict[str, str], body, url: str, reusable: bool):
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url
        self._reusable = reusable

    def read(self, size: int = -1) -> bytes:
        return self.body.read(size)

    def close(self) -> None:
        self.body.close()


class RegistryClient:
    """HTTP access to one repository (``name`` without the registry) on one
    registry (``domain``, as in a normalised reference)."""

    def __init__(self, domain: str, repository: str, *, creds: tuple[str, str] | None = None,
                 insecure: bool = False, timeout: float = TIMEOUT):
        self.domain = domain
        self.repository = repository
        self.endpoint = registry_endpoint(domain)
        self.host, _port = split_host_port(self.endpoint)
        self.creds = creds
        self.timeout = timeout
        if os.environ.get(LOOPBACK_ONLY_ENV) and not is_loopback(self.host):
            raise ImageError(f"registry {self.endpoint} is not on loopback, and {LOOPBACK_ONLY_ENV} "
                             "allows only loopback registries")
        # Plain HTTP only where nobody can listen in, or when the user says so.
        self.scheme = "http" if insecure or is_loopback(self.host) else "https"
        self.base = f"{self.scheme}://{self.endpoint}"
        self._auth_header: str | None = None
        self._auth_lock = threading.Lock()
        self._local = threading.local()

    # ----- public

    def ping(self) -> None:
        """GET /v2/: checks that a registry answers, and learns how to log in."""
        response = self.request("GET", "/v2/")
        try:
            response.body.read()
        finally:
            response.close()
        if response.status != 200:
            raise self._status_error(response, "/v2/", "the registry API (/v2/)")

    def get(self, path: str, headers: dict | None = None, *, ok=(200,), what: str | None = None) -> Response:
        """GET ``/v2/<repository>/<path>``; raises ImageError unless the
        status is in ``ok`` (``what`` names the object in the error). The
        caller closes the response."""
        url = f"/v2/{self.repository}/{path}"
        response = self.request("GET", url, headers)
        if response.status not in ok:
            try:
                error = self._status_error(response, url, what or path)
            finally:
                response.close()
            raise error
        return response

    def request(self, method: str, url: str, headers: dict | None = None) -> Response:
        """One request with auth (answering one 401 challenge) and redirects."""
        response = self._request_following(method, url, headers)
        if response.status == 401:
            challenge = response.headers.get("www-authenticate", "")
            response.body.read()
            response.close()
            if self._authenticate(challenge):
                response = self._request_following(method, url, headers)
        return response

    # ----- auth

    def _authenticate(self, challenge: str) -> bool:
        """Answer a 401 challenge; True if we now have something to retry with."""
        scheme, params = parse_www_authenticate(challenge)
        with self._auth_lock:
            if scheme == "basic":
                if not self.creds:
                    return False
                token = base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
                self._auth_header = f"Basic {token}"
                return True
            if scheme == "bearer" and params.get("realm"):
                self._auth_header = f"Bearer {self._fetch_token(params)}"
                return True
        return False

    def _fetch_token(self, params: dict[str, str]) -> str:
        query = {"service": params["service"]} if params.get("service") else {}
        query["scope"] = params.get("scope") or f"repository:{self.repository}:pull"
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {}
        if self.creds:
            basic = base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        response = self._send_following("GET", url, headers, auth_host=urllib.parse.urlsplit(url).hostname)
        try:
            body = response.body.read()
        finally:
            response.close()
        if response.status in (401, 403):
            raise ImageError(f"{self.endpoint}: authentication failed (wrong credentials?)")
        if response.status != 200:
            raise ImageError(f"{self.endpoint}: token server {realm} answered HTTP {response.status}")
        try:
            data = json.loads(body)
            return data.get("token") or data["access_token"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ImageError(f"{self.endpoint}: token server {realm} sent no token") from None

    # ----- HTTP

    def _request_following(self, method: str, url: str, headers: dict | None) -> Response:
        headers = dict(headers or {})
        if self._auth_header:
            headers["Authorization"] = self._auth_header
        return self._send_following(method, url, headers, auth_host=self.host)

    def _send_following(self, method: str, url: str, headers: dict, *, auth_host: str | None) -> Response:
        """Send, following redirects by hand: Authorization goes only to
        ``auth_host``; a redirect elsewhere (blob storage) gets none."""
        if url.startswith("/"):
            url = self.base + url
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise ImageError(f"{self.endpoint}: cannot follow a redirect to {url}")
            if os.environ.get(LOOPBACK_ONLY_ENV) and not is_loopback(parts.hostname or ""):
                raise ImageError(f"{self.endpoint}: refusing to contact {parts.hostname} "
                                 f"({LOOPBACK_ONLY_ENV} is set)")
            sent = dict(headers)
            if parts.hostname != auth_host:
                sent.pop("Authorization", None)
            response = self._send(method, parts, sent)
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("location"):
                response.body.read()
                response.close()
                url = urllib.parse.urljoin(url, response.headers["location"])
                if response.status == 303:
                    method = "GET"
                continue
            return response
        raise ImageError(f"{self.endpoint}: too many redirects for {url}")

    def _send(self, method: str, parts, headers: dict) -> Response:
        import http.client

        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers.setdefault("User-Agent", USER_AGENT)
        key = (parts.scheme, parts.netloc)
        pool = self._local.__dict__.setdefault("connections", {})
        for attempt in (1, 2):
            conn = pool.get(key)
            if conn is None:
                conn = self._connect(parts, http.client)
                pool[key] = conn
            try:
                conn.request(method, path or "/", headers=headers)
                raw = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                pool.pop(key, None)
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                if attempt == 1 and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                     ConnectionResetError)):
                    continue
                raise _connection_error(self.endpoint, parts, exc) from None
            _log().debug("%s %s://%s%s -> %s", method, parts.scheme, parts.netloc, path, raw.status)
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, raw,
                            parts.geturl(), not raw.will_close)
        raise ImageError(f"cannot reach registry {self.endpoint}")  # pragma: no cover

    def _connect(self, parts, http_client):
        host, port = parts.hostname, parts.port
        if parts.scheme == "https":
            import ssl

            return http_client.HTTPSConnection(host, port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http_client.HTTPConnection(host, port, timeout=self.timeout)

    def close(self) -> None:
        for conn in self._local.__dict__.get("connections", {}).values():
            conn.close()

    def _status_error(self, response: Response, url: str, what: str = "") -> ImageError:
        message = _registry_message(response)
        where = f"{self.endpoint}/{self.repository}"
        if response.status == 401:
            return ImageError(f"{where}: authentication required or wrong credentials"
                              + (f" ({message})" if message else ""),
                              hint="pass --creds USER:PASSWORD or log in with docker login")
        if response.status == 403:
            return ImageError(f"{where}: access denied" + (f" ({message})" if message else ""))
        if response.status == 404:
            return ImageError(f"{where}: {what or url} not found" + (f" ({message})" if message else ""))
        return ImageError(f"{where}: HTTP {response.status} for {url}" + (f": {message}" if message else ""))


def _registry_message(response: Response) -> str:
    """The first message of a registry's JSON error body, if any."""
    try:
        data = json.loads(response.body.read(65536) or b"{}")
        error = (data.get("errors") or [{}])[0]
        return str(error.get("message") or error.get("code") or "").lower()
    except Exception:
        return ""


def _connection_error(endpoint: str, parts, exc: BaseException) -> ImageError:
    import ssl

    if isinstance(exc, ssl.SSLError):
        return ImageError(f"cannot reach registry {endpoint}: TLS error: {exc.reason or exc}",
                          hint="for a registry that speaks plain HTTP, pass --insecure")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ImageError(f"cannot reach registry {endpoint} ({parts.scheme}://{parts.netloc}): {reason}")
