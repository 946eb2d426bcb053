"""The grpc probe's conversation: HTTP/2 frames in and out, byte by byte.

The first part drives GrpcHealthExchange with hand-made frames (parsed and
built here independently of the module); the second talks to a real gRPC
server (grpcio) on loopback through a plain blocking socket.
"""

from __future__ import annotations

import socket
import struct

import pytest

from minipod.probes.grpc import MAX_RESPONSE_SIZE, GrpcHealthExchange
from minipod.probes.result import Result

try:
    import grpc
    from concurrent import futures
except ImportError:  # pragma: no cover - depends on the venv
    grpc = None

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY_FRAME, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20


# --- an independent little HTTP/2 toolkit for the tests ---------------------

def frame(frame_type: int, flags: int = 0, stream: int = 0, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((frame_type, flags)) + stream.to_bytes(4, "big") + payload


def parse_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    frames = []
    while data:
        assert len(data) >= 9, "a truncated frame header"
        length = int.from_bytes(data[:3], "big")
        assert len(data) >= 9 + length, "a truncated frame payload"
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9:9 + length]))
        data = data[9 + length:]
    return frames


def read_int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    limit = (1 << prefix_bits) - 1
    value, pos = block[pos] & limit, pos + 1
    if value == limit:
        shift = 0
        while True:
            byte, pos = block[pos], pos + 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
    return value, pos


def decode_literal_headers(block: bytes) -> list[tuple[str, str]]:
    """Only 'literal without indexing, new name', no Huffman: all the opening may use."""
    headers, pos = [], 0
    while pos < len(block):
        assert block[pos] == 0x00, f"not a literal without indexing with a new name at {pos}"
        pos += 1
        strings = []
        for _ in range(2):
            assert not block[pos] & 0x80, "Huffman coding used"
            length, pos = read_int(block, pos, 7)
            strings.append(block[pos:pos + length].decode())
            pos += length
        headers.append(tuple(strings))
    return headers


def literal(name: str, value: str, huffman_value: bool = False) -> bytes:
    """An HPACK literal with incremental indexing and a new name (as grpc servers send)."""
    value_bytes = value.encode()
    assert len(name) < 127 and len(value_bytes) < 127
    return (b"\x40" + bytes((len(name),)) + name.encode()
            + bytes((len(value_bytes) | (0x80 if huffman_value else 0),)) + value_bytes)


def grpc_message(body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(body)) + body


SERVER_SETTINGS = frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64")  # MAX_CONCURRENT_STREAMS 100
RESPONSE_HEADERS = frame(HEADERS, END_HEADERS, 1, b"\x88" + literal("content-type", "application/grpc"))
TRAILERS_OK = frame(HEADERS, END_HEADERS | END_STREAM, 1, literal("grpc-status", "0"))


def answer(status_body: bytes) -> bytes:
    return SERVER_SETTINGS + RESPONSE_HEADERS + frame(DATA, 0, 1, grpc_message(status_body)) + TRAILERS_OK


def feed_all(exchange: GrpcHealthExchange, *chunks: bytes) -> tuple[bytes, Result | None]:
    replies, result = b"", None
    for chunk in chunks:
        reply, result = exchange.feed(chunk)
        replies += reply
    return replies, result


def verdict(*chunks: bytes) -> Result | None:
    return feed_all(GrpcHealthExchange("10.0.0.5:9000"), *chunks)[1]


# --- the opening ------------------------------------------------------------

def test_opening_is_preface_settings_headers_and_request():
    opening = GrpcHealthExchange("10.0.0.5:9000").opening()
    assert opening.startswith(PREFACE)
    frames = parse_frames(opening[len(PREFACE):])
    assert [(t, f, s) for t, f, s, _ in frames] == [(SETTINGS, 0, 0), (HEADERS, END_HEADERS, 1), (DATA, END_STREAM, 1)]
    assert frames[0][3] == b""
    assert decode_literal_headers(frames[1][3]) == [
        (":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
        (":authority", "10.0.0.5:9000"), ("content-type", "application/grpc"), ("te", "trailers"),
        ("user-agent", "kube-probe/minipod")]
    # An empty service is proto3's default: the request message has no bytes.
    assert frames[2][3] == b"\x00\x00\x00\x00\x00"


def test_opening_carries_the_service_name():
    frames = parse_frames(GrpcHealthExchange("h:1", "db").opening()[len(PREFACE):])
    assert frames[2][3] == b"\x00\x00\x00\x00\x04" + b"\x0a\x02db"


def test_long_names_use_multibyte_lengths():
    service, authority = "s" * 300, "a" * 200 + ".example:50051"
    frames = parse_frames(GrpcHealthExchange(authority, service).opening()[len(PREFACE):])
    assert (":authority", authority) in decode_literal_headers(frames[1][3])
    # field 1, wire type 2, varint 300 = 0xac 0x02
    assert frames[2][3] == grpc_message(b"\x0a\xac\x02" + service.encode())


# --- verdicts ----------------------------------------------------------------

def test_serving_is_a_success_and_settings_are_acknowledged():
    replies, result = feed_all(GrpcHealthExchange("h:1"), answer(b"\x08\x01"))
    assert result == Result(ok=True)
    assert replies == frame(SETTINGS, ACK, 0)


@pytest.mark.parametrize("body, name", [
    (b"\x08\x02", "NOT_SERVING"), (b"\x08\x03", "SERVICE_UNKNOWN"), (b"", "UNKNOWN"),
    (b"\x08\x00", "UNKNOWN"), (b"\x08\x07", "7")])
def test_any_other_status_is_a_failure_named_like_kubelet(body, name):
    assert verdict(answer(body)) == Result(ok=False, message=f'service unhealthy (responded with "{name}")')


def test_unknown_fields_of_the_response_are_skipped():
    body = b"\x12\x03abc" + b"\x19" + bytes(8) + b"\x25" + bytes(4) + b"\x08\x01"  # fields 2, 3, 4, then status
    assert verdict(answer(body)).ok


def test_a_malformed_response_message_fails():
    result = verdict(answer(b"\x08\xff"))  # a varint cut short
    assert not result.ok and "malformed" in result.message


def test_the_verdict_needs_no_trailers():
    assert verdict(SERVER_SETTINGS + RESPONSE_HEADERS + frame(DATA, 0, 1, grpc_message(b"\x08\x01"))).ok


def test_bytes_may_arrive_split_anywhere():
    data = answer(b"\x08\x02")
    for cut in range(1, len(data)):
        replies, result = feed_all(GrpcHealthExchange("h:1"), data[:cut], data[cut:])
        assert not result.ok and "NOT_SERVING" in result.message, cut
        assert replies == frame(SETTINGS, ACK, 0)
    exchange = GrpcHealthExchange("h:1")
    results = [exchange.feed(data[i:i + 1])[1] for i in range(len(data))]
    first = next(i for i, result in enumerate(results) if result is not None)
    assert first == len(SERVER_SETTINGS + RESPONSE_HEADERS) + 9 + 5 + 2 - 1  # the last byte of the DATA frame


def test_a_message_split_over_data_frames():
    message = grpc_message(b"\x08\x01")
    data = SERVER_SETTINGS + RESPONSE_HEADERS + frame(DATA, 0, 1, message[:3]) + frame(DATA, 0, 1, message[3:])
    assert verdict(data).ok
    assert verdict(SERVER_SETTINGS + RESPONSE_HEADERS + frame(DATA, 0, 1, message[:3])) is None


def test_padding_on_data_is_not_part_of_the_message():
    message = grpc_message(b"\x08\x01")
    padding = grpc_message(b"\x08\x02")  # padding that would read as a message if it were kept
    first = bytes((len(padding),)) + message[:3] + padding
    data = SERVER_SETTINGS + RESPONSE_HEADERS + frame(DATA, PADDED, 1, first) + frame(DATA, 0, 1, message[3:])
    assert verdict(data).ok


def test_padding_and_priority_on_headers_are_not_part_of_the_block():
    padding = literal("grpc-status", "0")  # would hide the real status if it were read
    payload = (bytes((len(padding),)) + b"\x00\x00\x00\x00\x10"  # pad length; stream dependency, weight
               + literal("grpc-status", "12") + padding)
    result = verdict(SERVER_SETTINGS + frame(HEADERS, END_HEADERS | END_STREAM | PADDED | PRIORITY, 1, payload))
    assert result.message == "this server does not implement the grpc health protocol (grpc.health.v1.Health)"


def test_invalid_padding_fails():
    result = verdict(SERVER_SETTINGS + frame(DATA, PADDED, 1, b"\x05abc"))
    assert not result.ok and "padding" in result.message


def test_ping_is_answered_and_acks_are_not():
    replies, result = feed_all(GrpcHealthExchange("h:1"), SERVER_SETTINGS, frame(PING, 0, 0, b"12345678"),
                               frame(SETTINGS, ACK, 0), frame(PING, ACK, 0, b"abcdefgh"))
    assert result is None
    assert replies == frame(SETTINGS, ACK, 0) + frame(PING, ACK, 0, b"12345678")


def test_other_streams_and_window_updates_change_nothing():
    other = (frame(WINDOW_UPDATE, 0, 0, b"\x00\x01\x00\x00") + frame(WINDOW_UPDATE, 0, 1, b"\x00\x01\x00\x00")
             + frame(DATA, 0, 3, grpc_message(b"\x08\x02")) + frame(RST_STREAM, 0, 3, b"\x00\x00\x00\x08")
             + frame(HEADERS, END_HEADERS | END_STREAM, 3, literal("grpc-status", "12")))
    assert verdict(SERVER_SETTINGS + other) is None
    assert verdict(SERVER_SETTINGS + other + RESPONSE_HEADERS + frame(DATA, 0, 1, grpc_message(b"\x08\x01"))).ok


def test_after_the_verdict_the_same_verdict():
    exchange = GrpcHealthExchange("h:1")
    _, result = exchange.feed(answer(b"\x08\x01"))
    assert exchange.feed(frame(PING, 0, 0, b"12345678")) == (b"", result)
    assert exchange.feed(b"") == (b"", result)


# --- failures -----------------------------------------------------------------

def test_reset_stream_fails():
    result = verdict(SERVER_SETTINGS + frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x07"))
    assert result == Result(ok=False, message="health rpc probe failed: the server reset the stream (REFUSED_STREAM)")


def test_goaway_with_an_error_fails():
    result = verdict(SERVER_SETTINGS + frame(GOAWAY, 0, 0, b"\x00\x00\x00\x00" + b"\x00\x00\x00\x0b" + b"calm down"))
    assert not result.ok and "GOAWAY ENHANCE_YOUR_CALM: calm down" in result.message


def test_goaway_that_excludes_the_call_fails():
    result = verdict(SERVER_SETTINGS + frame(GOAWAY, 0, 0, b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"))
    assert not result.ok and "GOAWAY NO_ERROR" in result.message


def test_graceful_goaway_that_covers_the_call_lets_it_finish():
    goaway = frame(GOAWAY, 0, 0, b"\x7f\xff\xff\xff" + b"\x00\x00\x00\x00")
    assert verdict(SERVER_SETTINGS + goaway) is None
    assert verdict(SERVER_SETTINGS + goaway + answer(b"\x08\x01")[len(SERVER_SETTINGS):]).ok


def test_trailers_only_unimplemented_is_named_like_kubelet():
    block = b"\x88" + literal("content-type", "application/grpc") + literal("grpc-status", "12") + literal(
        "grpc-message", "Method not found!")
    result = verdict(SERVER_SETTINGS + frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    assert result == Result(ok=False, message="this server does not implement the grpc health protocol"
                                              " (grpc.health.v1.Health): Method not found!")


def test_trailers_only_over_continuation_with_percent_encoded_message():
    block = literal("grpc-status", "14") + literal("grpc-message", "down%20for%20maintenance")
    data = (SERVER_SETTINGS + frame(HEADERS, END_STREAM, 1, block[:5]) + frame(CONTINUATION, 0, 1, block[5:9])
            + frame(CONTINUATION, END_HEADERS, 1, block[9:]))
    assert verdict(data[:-1]) is None
    assert verdict(data) == Result(
        ok=False, message="health rpc probe failed: rpc error: code = Unavailable desc = down for maintenance")


def test_trailers_only_with_an_unreadable_status():
    # Huffman or indexed: no tables here, so the status is unknown, but the call still failed.
    for block in (literal("grpc-status", "12", huffman_value=True), b"\xbe", b"\x88" + literal("grpc-status", "0")):
        result = verdict(SERVER_SETTINGS + frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
        assert not result.ok and "no health status in the answer" in result.message, block


def test_trailers_after_headers_without_data_fail():
    result = verdict(SERVER_SETTINGS + RESPONSE_HEADERS + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                                                 literal("grpc-status", "13")))
    assert result.message == "health rpc probe failed: rpc error: code = Internal desc = "


def test_stream_ending_inside_the_message_fails():
    partial = grpc_message(b"\x08\x01")[:6]
    result = verdict(SERVER_SETTINGS + RESPONSE_HEADERS + frame(DATA, END_STREAM, 1, partial))
    assert not result.ok and "in the middle of the health status" in result.message


def test_compressed_answer_fails():
    result = verdict(SERVER_SETTINGS + RESPONSE_HEADERS + frame(DATA, 0, 1, b"\x01" + grpc_message(b"")[1:]))
    assert not result.ok and "compressed" in result.message


@pytest.mark.parametrize("received", [b"", SERVER_SETTINGS, SERVER_SETTINGS + RESPONSE_HEADERS[:4]])
def test_eof_before_a_verdict_fails(received):
    result = verdict(received, b"")
    assert result == Result(ok=False, message="health rpc probe failed: the connection closed before"
                                              " a health status arrived")


def test_an_http1_server_is_named():
    result = verdict(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert not result.ok and "answered in HTTP/1.x" in result.message and "10.0.0.5:9000" in result.message


def test_a_server_that_does_not_start_with_settings_fails():
    result = verdict(frame(PING, 0, 0, b"12345678"))
    assert not result.ok and "something other than HTTP/2" in result.message


def test_a_huge_frame_fails_before_its_payload_arrives():
    huge_header = (MAX_RESPONSE_SIZE + 1).to_bytes(3, "big") + bytes((DATA, 0)) + (1).to_bytes(4, "big")
    result = verdict(SERVER_SETTINGS + huge_header)
    assert not result.ok and "larger than 65536 bytes" in result.message


def test_a_response_over_the_limit_fails_without_buffering_it():
    exchange = GrpcHealthExchange("h:1")
    pings = frame(PING, ACK, 0, b"12345678") * 100  # acks: nothing to answer, nothing decided
    replies, result = exchange.feed(SERVER_SETTINGS)
    sent = len(SERVER_SETTINGS)
    while result is None:
        replies, result = exchange.feed(pings)
        sent += len(pings)
        assert sent <= MAX_RESPONSE_SIZE + len(pings)
    assert sent > MAX_RESPONSE_SIZE and "larger than 65536 bytes" in result.message


# --- against a real gRPC server -------------------------------------------------

needs_grpcio = pytest.mark.skipif(grpc is None, reason="grpcio is not installed (pip install grpcio): no real gRPC server")


def _raw(data: bytes) -> bytes:
    return data


def _service_of(request: bytes) -> str:
    """HealthCheckRequest.service, read by hand: no protobuf codegen in the tests."""
    if not request:
        return ""
    assert request[0] == 0x0A
    length, shift, pos = 0, 0, 1
    while True:
        byte, pos = request[pos], pos + 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return request[pos:pos + length].decode()


@pytest.fixture(scope="module")
def health_server():
    """A gRPC server on loopback whose Health/Check answers per service; it
    records the service and user-agent of every call."""
    calls = []

    def check(request: bytes, context) -> bytes:
        service = _service_of(request)
        agent = dict(context.invocation_metadata()).get("user-agent", "")
        calls.append((service, agent))
        if service == "":
            return b"\x08\x01"  # SERVING
        if service == "db":
            return b"\x08\x02"  # NOT_SERVING
        context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=_raw, response_serializer=_raw)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, calls
    server.stop(None)


@pytest.fixture
def bare_server():
    """A gRPC server with no services at all: every call is UNIMPLEMENTED."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


def probe(port: int, service: str = "", authority: str | None = None) -> Result:
    """What the supervisor's driver does, with a blocking socket."""
    exchange = GrpcHealthExchange(authority or f"127.0.0.1:{port}", service)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(exchange.opening())
        while True:
            reply, result = exchange.feed(conn.recv(4096))
            if reply:
                conn.sendall(reply)
            if result is not None:
                return result


@needs_grpcio
def test_real_server_serving(health_server):
    port, calls = health_server
    assert probe(port) == Result(ok=True)
    assert calls[-1][0] == "" and calls[-1][1].startswith("kube-probe/minipod")


@needs_grpcio
def test_real_server_not_serving_for_a_service(health_server):
    port, calls = health_server
    assert probe(port, "db") == Result(ok=False, message='service unhealthy (responded with "NOT_SERVING")')
    assert calls[-1][0] == "db"


@needs_grpcio
def test_real_server_unknown_service(health_server):
    port, _ = health_server
    assert probe(port, "nope") == Result(
        ok=False, message="health rpc probe failed: rpc error: code = NotFound desc = unknown service")


@needs_grpcio
def test_real_server_long_names(health_server):
    port, calls = health_server
    service = "svc-" + "x" * 300
    assert probe(port, service, authority="h" * 200 + f":{port}").message == (
        'health rpc probe failed: rpc error: code = NotFound desc = unknown service')
    assert calls[-1][0] == service


@needs_grpcio
def test_real_server_without_the_health_service(bare_server):
    result = probe(bare_server)
    assert not result.ok
    assert result.message.startswith("this server does not implement the grpc health protocol (grpc.health.v1.Health)")
