"""The conversation of a ``grpc:`` probe: one ``grpc.health.v1.Health/Check``.

Like kubelet, the probe speaks plaintext HTTP/2 with *prior knowledge*
("h2c", RFC 9113 §3.3): no TLS and no HTTP/1.1 Upgrade, the client sends
the connection preface and its frames straight away. One connection, one
stream (1): HEADERS for the call, DATA with the HealthCheckRequest, then
the server's DATA carries a HealthCheckResponse whose status is the verdict.

No HPACK (RFC 7541) decoder is needed. The request headers are sent as
literals with new names and no Huffman coding, which use neither the
static nor the dynamic table; and the verdict is in the DATA frame, not in
the response headers. The only header ever read is ``grpc-status`` of an
answer that has no message (an unimplemented service, say), and only when
the server sent it as a plain literal: it just makes the message clearer.
"""

from __future__ import annotations

import struct

from .result import Exchange, Result

CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
FRAME_HEADER_SIZE = 9  # RFC 9113 §4.1: length(24) type(8) flags(8) R+stream(32)

# Frame types (RFC 9113 §6) the exchange sends or acts on; others are ignored.
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x9
# Frame flags.
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20
PRIORITY_FIELDS_SIZE = 5  # stream dependency (4) + weight (1)

STREAM = 1  # the first client-initiated stream carries the one call
MAX_RESPONSE_SIZE = 64 * 1024  # within HTTP/2's default flow-control window, so no WINDOW_UPDATE is owed
GRPC_MESSAGE_PREFIX = 5  # gRPC length-prefixed message: compressed flag (1) + length (4, big-endian)

ERROR_CODES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
               "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
               "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")
SERVING_STATUSES = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")  # HealthCheckResponse.status
# gRPC status codes, spelled as grpc-go prints them (kubelet's messages come from there).
GRPC_CODES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
              "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
              "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated")
GRPC_UNIMPLEMENTED = 12


class _Failed(Exception):
    """The check failed; the text is the probe's message. Never leaves this module."""


def _name(names: tuple[str, ...], code: int) -> str:
    return names[code] if 0 <= code < len(names) else str(code)


# --- HTTP/2 framing -------------------------------------------------------

def encode_frame(frame_type: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame (RFC 9113 §4.1)."""
    return struct.pack(">I", len(payload))[1:] + bytes((frame_type, flags)) + struct.pack(">I", stream) + payload


def _unpad(flags: int, payload: bytes) -> bytes:
    """The payload of a DATA or HEADERS frame without its padding (RFC 9113 §6.1)."""
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise _Failed("health rpc probe failed: the server sent a frame with invalid padding")
    return payload[1:len(payload) - payload[0]]


# --- protobuf, just HealthCheckRequest and HealthCheckResponse ------------

def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | value & 0x7F)
        value >>= 7
    return bytes(out + bytes((value,)))


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            break
        byte, pos = data[pos], pos + 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise _Failed("health rpc probe failed: the health status message is malformed")


def encode_health_request(service: str) -> bytes:
    """HealthCheckRequest{service = 1}; proto3 leaves out an empty string."""
    name = service.encode()
    return b"\x0a" + encode_varint(len(name)) + name if name else b""  # key: field 1, wire type 2


def decode_serving_status(message: bytes) -> int:
    """HealthCheckResponse.status (field 1, an enum); unknown fields are skipped."""
    status, pos = 0, 0  # proto3: a missing enum is its zero value, UNKNOWN
    while pos < len(message):
        key, pos = _read_varint(message, pos)
        wire_type = key & 7
        if wire_type == 0:
            value, pos = _read_varint(message, pos)
            if key >> 3 == 1:
                status = value - (1 << 64) if value >= 1 << 63 else value  # int32 enums sign-extend
        elif wire_type == 2:
            length, pos = _read_varint(message, pos)
            pos += length
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            pos = len(message) + 1  # groups are not in this message: malformed
        if pos > len(message):
            raise _Failed("health rpc probe failed: the health status message is malformed")
    return status


# --- HPACK literals (RFC 7541) --------------------------------------------

def encode_hpack_int(value: int, prefix_bits: int, first_byte: int = 0) -> bytes:
    """An integer with an N-bit prefix (RFC 7541 §5.1): past a full prefix,
    the rest follows in 7-bit groups, low first, just as a protobuf varint."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first_byte | value,))
    return bytes((first_byte | limit,)) + encode_varint(value - limit)


def encode_literal_header(name: str, value: str) -> bytes:
    """A literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2)."""
    out = bytearray(b"\x00")
    for text in (name.encode(), value.encode()):
        out += encode_hpack_int(len(text), 7) + text
    return bytes(out)


def _read_hpack_int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    limit = (1 << prefix_bits) - 1
    value, pos = block[pos] & limit, pos + 1
    if value < limit:
        return value, pos
    rest, pos = _read_varint(block, pos)
    return value + rest, pos


def plain_literal_fields(block: bytes) -> dict[str, str]:
    """The fields of a header block sent as literals with a new name, both
    strings without Huffman coding. The rest needs HPACK's tables: skipped."""
    fields, pos = {}, 0
    try:
        while pos < len(block):
            first = block[pos]
            if first & 0x80 or first & 0xE0 == 0x20:  # indexed field / table size update: no strings
                _, pos = _read_hpack_int(block, pos, 7 if first & 0x80 else 5)
                continue
            index, pos = _read_hpack_int(block, pos, 6 if first & 0x40 else 4)
            strings = []
            for _ in range(1 if index else 2):  # an indexed name has only the value string
                huffman = block[pos] & 0x80
                length, pos = _read_hpack_int(block, pos, 7)
                strings.append(None if huffman else block[pos:pos + length].decode("latin-1"))
                pos += length
            if index == 0 and None not in strings:
                fields[strings[0]] = strings[1]
    except (IndexError, _Failed):  # a truncated or odd block: keep what was read
        pass
    return fields


# --- the exchange ----------------------------------------------------------

class GrpcHealthExchange(Exchange):
    """``grpc.health.v1.Health/Check`` for ``service`` at ``authority`` ("host:port")."""

    def __init__(self, authority: str, service: str = ""):
        self.authority = authority
        self.service = service
        self._buffer = bytearray()  # bytes of a frame not yet complete
        self._received = 0
        self._seen_frame = False
        self._message = bytearray()  # DATA payloads of our stream, the gRPC message so far
        self._header_block: bytearray | None = None  # a header block of our stream being assembled
        self._block_ends_stream = False
        self._verdict: Result | None = None

    def opening(self) -> bytes:
        headers = b"".join(encode_literal_header(name, value) for name, value in (
            (":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
            (":authority", self.authority), ("content-type", "application/grpc"),
            ("te", "trailers"), ("user-agent", "kube-probe/minipod")))
        request = encode_health_request(self.service)
        message = b"\x00" + struct.pack(">I", len(request)) + request  # not compressed
        return (CONNECTION_PREFACE + encode_frame(SETTINGS, 0, 0)
                + encode_frame(HEADERS, END_HEADERS, STREAM, headers)
                + encode_frame(DATA, END_STREAM, STREAM, message))

    def feed(self, data: bytes) -> tuple[bytes, Result | None]:
        """Frames may arrive split anywhere; the replies owed (SETTINGS and
        PING acknowledgements) come back as bytes to send."""
        if self._verdict is not None:  # finished: the driver should have closed
            return b"", self._verdict
        replies = bytearray()
        try:
            if not data:
                raise _Failed("health rpc probe failed: the connection closed before a health status arrived")
            self._received += len(data)
            if self._received > MAX_RESPONSE_SIZE:
                raise _Failed(f"health rpc probe failed: the answer is larger than {MAX_RESPONSE_SIZE} bytes")
            self._buffer += data
            while self._verdict is None and (frame := self._next_frame()) is not None:
                replies += self._handle(*frame)
        except _Failed as failure:
            self._verdict = Result(ok=False, message=str(failure))
        return bytes(replies), self._verdict

    def _next_frame(self) -> tuple[int, int, int, bytes] | None:
        if len(self._buffer) < FRAME_HEADER_SIZE:
            return None
        length = int.from_bytes(self._buffer[:3], "big")
        frame_type, flags = self._buffer[3], self._buffer[4]
        if not self._seen_frame and (frame_type != SETTINGS or flags & ACK):
            # RFC 9113 §3.4: a server's preface is a SETTINGS frame; anything else is not h2c.
            what = "HTTP/1.x" if self._buffer.startswith(b"HTTP/") else "something other than HTTP/2"
            raise _Failed(f"health rpc probe failed: the server at {self.authority} answered in {what}"
                          " (a gRPC port speaks plaintext HTTP/2)")
        if length > MAX_RESPONSE_SIZE:
            raise _Failed(f"health rpc probe failed: the answer is larger than {MAX_RESPONSE_SIZE} bytes")
        if len(self._buffer) < FRAME_HEADER_SIZE + length:
            return None
        self._seen_frame = True
        stream = int.from_bytes(self._buffer[5:9], "big") & 0x7FFFFFFF  # the top bit is reserved
        payload = bytes(self._buffer[FRAME_HEADER_SIZE:FRAME_HEADER_SIZE + length])
        del self._buffer[:FRAME_HEADER_SIZE + length]
        return frame_type, flags, stream, payload

    def _handle(self, frame_type: int, flags: int, stream: int, payload: bytes) -> bytes:
        """Act on one frame; return the bytes it asks for."""
        if frame_type == SETTINGS and not flags & ACK:
            return encode_frame(SETTINGS, ACK, 0)
        if frame_type == PING and not flags & ACK:
            return encode_frame(PING, ACK, 0, payload)
        if frame_type == GOAWAY:
            self._on_goaway(payload)
        elif stream != STREAM:
            pass  # WINDOW_UPDATE, PRIORITY, acks and other streams' frames change nothing
        elif frame_type == RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            raise _Failed(f"health rpc probe failed: the server reset the stream ({_name(ERROR_CODES, code)})")
        elif frame_type == HEADERS:
            block = _unpad(flags, payload)
            if flags & PRIORITY:
                block = block[PRIORITY_FIELDS_SIZE:]
            self._header_block, self._block_ends_stream = bytearray(block), bool(flags & END_STREAM)
            if flags & END_HEADERS:
                self._on_header_block()
        elif frame_type == CONTINUATION and self._header_block is not None:
            self._header_block += payload
            if flags & END_HEADERS:
                self._on_header_block()
        elif frame_type == DATA:
            self._message += _unpad(flags, payload)
            self._on_data(ends_stream=bool(flags & END_STREAM))
        return b""

    def _on_goaway(self, payload: bytes) -> None:
        # A graceful GOAWAY (NO_ERROR) that still covers our stream lets the
        # call finish, as it does for kubelet's gRPC client; anything else ends it.
        last_stream = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        code = int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else 1  # short: PROTOCOL_ERROR
        if code != 0 or last_stream < STREAM:
            debug = payload[8:].decode("utf-8", "replace").strip()
            raise _Failed(f"health rpc probe failed: the server closed the connection"
                          f" (GOAWAY {_name(ERROR_CODES, code)}{': ' + debug if debug else ''})")

    def _on_data(self, ends_stream: bool) -> None:
        if len(self._message) >= GRPC_MESSAGE_PREFIX:
            compressed, length = self._message[0], int.from_bytes(self._message[1:5], "big")
            if compressed:  # we sent no grpc-accept-encoding, so a server must not compress
                raise _Failed("health rpc probe failed: the server sent a compressed or non-gRPC answer")
            if len(self._message) >= GRPC_MESSAGE_PREFIX + length:
                status = decode_serving_status(bytes(self._message[GRPC_MESSAGE_PREFIX:GRPC_MESSAGE_PREFIX + length]))
                self._verdict = Result(ok=True) if status == 1 else Result(
                    ok=False, message=f'service unhealthy (responded with "{_name(SERVING_STATUSES, status)}")')
                return
        if ends_stream:
            raise _Failed("health rpc probe failed: the server ended the call in the middle of the health status")

    def _on_header_block(self) -> None:
        block, self._header_block = bytes(self._header_block), None
        if not self._block_ends_stream:
            return  # response headers: the verdict is in the DATA that follows
        # The call ended without a message (trailers-only): say why, if grpc-status is readable.
        fields = plain_literal_fields(block)
        status, detail = fields.get("grpc-status", ""), _percent_decoded(fields.get("grpc-message", ""))
        if status == str(GRPC_UNIMPLEMENTED):
            raise _Failed("this server does not implement the grpc health protocol (grpc.health.v1.Health)"
                          + (f": {detail}" if detail else ""))
        if status.isdigit() and status != "0":
            raise _Failed(f"health rpc probe failed: rpc error: code = {_name(GRPC_CODES, int(status))}"
                          f" desc = {detail}")
        raise _Failed("health rpc probe failed: the server answered without a health status"
                      " (no health status in the answer; is grpc.health.v1.Health implemented?)")


def _percent_decoded(text: str) -> str:
    """grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2 spec)."""
    if "%" not in text:
        return text
    from urllib.parse import unquote  # only on this rare path: keeps the import light
    return unquote(text, errors="replace")
