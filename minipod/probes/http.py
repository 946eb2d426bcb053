"""The ``httpGet`` conversation: one HTTP/1.1 GET, judged by its status.

As kubelet judges it: 200-399 is a success, anything else a failure whose
message quotes the status code. Redirects are not followed; a redirect to
another host is still a success, with a warning (kubelet's ProbeWarning).
Only the status line and headers are read, never an unbounded body.
"""

from __future__ import annotations

from .result import Exchange, Result

USER_AGENT = "kube-probe/minipod"
MAX_HEAD = 16 * 1024  # a status line and headers larger than this are not an answer


class HttpGetExchange(Exchange):
    def __init__(self, host: str, port: int, path: str = "/", headers: list[dict] | tuple = ()):
        self.host = host
        self.port = port
        self.path = path if path.startswith("/") else "/" + path
        self.headers = [(h["name"], h.get("value", "")) for h in headers]
        self.received = b""

    def opening(self) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        lines = [f"GET {self.path} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {_authority(self.host, self.port)}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in names:
            lines.append("Accept: */*")
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def feed(self, data: bytes) -> tuple[bytes, Result | None]:
        self.received += data
        end = self.received.find(b"\r\n\r\n")
        if end < 0:
            if not data:
                return b"", Result(False, _closed_message(self.received))
            if len(self.received) > MAX_HEAD:
                return b"", Result(False, "HTTP probe failed: response headers too large")
            return b"", None
        return b"", self._judge(self.received[:end].decode("latin-1"))

    def _judge(self, head: str) -> Result:
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (parts[1].isascii() and parts[1].isdigit()):
            return Result(False, f"HTTP probe failed: malformed status line {status_line[:80]!r}")
        code = int(parts[1])
        if not 200 <= code < 400:
            return Result(False, f"HTTP probe failed with statuscode: {code}")
        warning = ""
        if 300 <= code < 400:
            location = _header(header_lines, "location")
            if location and _is_other_host(location, self.host, self.port):
                warning = f"Probe terminated redirects, Response body: (redirect to {location})"
        return Result(True, f"HTTP probe succeeded with statuscode: {code}", warning)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _header(lines: list[str], name: str) -> str | None:
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name:
            return value.strip()
    return None


def _is_other_host(location: str, host: str, port: int) -> bool:
    """A relative Location stays on this host; an absolute one (or a
    scheme-relative ``//host/…``) may not. As kubelet, only the host name
    counts, not the port."""
    if "://" in location:
        authority = location.split("://", 1)[1]
    elif location.startswith("//"):
        authority = location[2:]
    else:
        return False
    authority = authority.split("/", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        name = authority[1:].split("]", 1)[0]
    else:
        name = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    return name.lower() != host.lower()


def _closed_message(received: bytes) -> str:
    if not received:
        return "HTTP probe failed: connection closed before any response"
    return "HTTP probe failed: connection closed in the middle of the response headers"
