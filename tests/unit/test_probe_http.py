"""The httpGet conversation as bytes: what is sent, and how answers are judged."""

from __future__ import annotations

import pytest

from minipod.probes.http import MAX_HEAD, USER_AGENT, HttpGetExchange
from minipod.probes.result import Result


def head(status: str, *headers: str) -> bytes:
    return ("\r\n".join([status, *headers]) + "\r\n\r\n").encode("latin-1")


def judge(data: bytes, host: str = "10.0.0.5", port: int = 8080) -> Result | None:
    reply, result = HttpGetExchange(host, port).feed(data)
    assert reply == b""  # HTTP/1.1 GET: nothing more is ever sent
    return result


# ----------------------------------------------------------------- the request

def test_the_request_bytes():
    got = HttpGetExchange("10.0.0.5", 8080, "/healthz").opening()
    assert got == (b"GET /healthz HTTP/1.1\r\n"
                   b"Host: 10.0.0.5:8080\r\n"
                   b"User-Agent: " + USER_AGENT.encode() + b"\r\n"
                   b"Accept: */*\r\n"
                   b"Connection: close\r\n\r\n")


def test_a_path_without_a_leading_slash_gets_one():
    assert HttpGetExchange("127.0.0.1", 80, "healthz").opening().startswith(b"GET /healthz HTTP/1.1\r\n")
    assert HttpGetExchange("127.0.0.1", 80).opening().startswith(b"GET / HTTP/1.1\r\n")


def test_an_ipv6_host_is_bracketed_in_the_host_header():
    assert b"\r\nHost: [fd00::5]:8080\r\n" in HttpGetExchange("fd00::5", 8080).opening()


def test_custom_headers_override_the_defaults_whatever_their_case():
    headers = [{"name": "host", "value": "app.example"}, {"name": "USER-AGENT", "value": "mine"},
               {"name": "Accept", "value": "application/json"}, {"name": "X-Empty"}]
    lines = HttpGetExchange("10.0.0.5", 8080, "/", headers).opening().decode().split("\r\n")
    assert lines[0] == "GET / HTTP/1.1"
    assert "host: app.example" in lines and not any(line.startswith("Host:") for line in lines)
    assert "USER-AGENT: mine" in lines and USER_AGENT not in "\r\n".join(lines)
    assert "Accept: application/json" in lines and "Accept: */*" not in lines
    assert "X-Empty: " in lines
    assert lines[-3:] == ["Connection: close", "", ""]


def test_extra_headers_keep_the_defaults():
    text = HttpGetExchange("10.0.0.5", 8080, "/", [{"name": "X-Probe", "value": "1"}]).opening().decode()
    assert "Host: 10.0.0.5:8080\r\n" in text and "X-Probe: 1\r\n" in text and "Accept: */*\r\n" in text


# ----------------------------------------------------------------- verdicts

@pytest.mark.parametrize("code", [200, 204, 302, 399])
def test_2xx_and_3xx_succeed(code):
    assert judge(head(f"HTTP/1.1 {code} Whatever", "Content-Length: 0")) == Result(
        True, f"HTTP probe succeeded with statuscode: {code}")


@pytest.mark.parametrize("code", [101, 199, 400, 404, 500, 503])
def test_other_codes_fail_quoting_the_code(code):
    assert judge(head(f"HTTP/1.1 {code} Nope")) == Result(False, f"HTTP probe failed with statuscode: {code}")


def test_a_status_line_without_a_reason_phrase_is_fine():
    assert judge(head("HTTP/1.0 200")).ok


def test_a_body_after_the_headers_is_ignored():
    assert judge(head("HTTP/1.1 500 Internal Server Error", "Content-Length: 5") + b"hello").message == (
        "HTTP probe failed with statuscode: 500")


def test_a_relative_redirect_has_no_warning():
    assert judge(head("HTTP/1.1 302 Found", "Location: /elsewhere")) == Result(
        True, "HTTP probe succeeded with statuscode: 302")


@pytest.mark.parametrize("location", ["http://10.0.0.5:8080/x", "http://10.0.0.5/x", "https://10.0.0.5:8080"])
def test_a_redirect_to_the_same_host_has_no_warning(location):
    assert judge(head("HTTP/1.1 301 Moved", f"Location: {location}")).warning == ""


def test_a_redirect_to_another_host_succeeds_with_a_warning():
    result = judge(head("HTTP/1.1 302 Found", "location:  http://login.example/start "))
    assert result.ok and result.message == "HTTP probe succeeded with statuscode: 302"
    assert result.warning == "Probe terminated redirects, Response body: (redirect to http://login.example/start)"


def test_a_redirect_without_a_location_has_no_warning():
    assert judge(head("HTTP/1.1 302 Found")) == Result(True, "HTTP probe succeeded with statuscode: 302")


def test_a_redirect_to_another_port_of_the_same_host_has_no_warning():
    assert judge(head("HTTP/1.1 302 Found", "Location: http://10.0.0.5:9090/x")).warning == ""


def test_a_protocol_relative_redirect_to_another_host_warns():
    assert judge(head("HTTP/1.1 302 Found", "Location: //login.example/start")).warning


# ----------------------------------------------------------------- the reading

def test_an_answer_fed_byte_by_byte_is_judged_at_the_end_of_its_headers():
    data = head("HTTP/1.1 404 Not Found", "Server: tiny", "Content-Length: 0")
    exchange = HttpGetExchange("127.0.0.1", 80)
    for byte in data[:-1]:
        assert exchange.feed(bytes([byte])) == (b"", None)
    assert exchange.feed(data[-1:]) == (b"", Result(False, "HTTP probe failed with statuscode: 404"))


def test_an_answer_split_inside_the_blank_line():
    exchange = HttpGetExchange("127.0.0.1", 80)
    assert exchange.feed(b"HTTP/1.1 200 OK\r\n\r") == (b"", None)
    assert exchange.feed(b"\n")[1].ok


def test_headers_larger_than_the_limit_are_no_answer():
    exchange = HttpGetExchange("127.0.0.1", 80)
    first = b"HTTP/1.1 200 OK\r\nX-Big: "
    assert exchange.feed(first + b"a" * (MAX_HEAD - len(first))) == (b"", None)  # exactly the limit: waits
    assert exchange.feed(b"a") == (b"", Result(False, "HTTP probe failed: response headers too large"))


def test_eof_before_any_byte():
    assert judge(b"") == Result(False, "HTTP probe failed: connection closed before any response")


def test_eof_in_the_middle_of_the_headers():
    exchange = HttpGetExchange("127.0.0.1", 80)
    assert exchange.feed(b"HTTP/1.1 200 OK\r\nContent-") == (b"", None)
    assert exchange.feed(b"") == (b"", Result(
        False, "HTTP probe failed: connection closed in the middle of the response headers"))


@pytest.mark.parametrize("status_line", ["garbage", "HTTP/1.1", "HTTP/1.1 OK 200", "ICY 200 OK", "HTTP/1.1 -200 x"])
def test_a_malformed_status_line_fails_quoting_it(status_line):
    assert judge(head(status_line)) == Result(False, f"HTTP probe failed: malformed status line {status_line!r}")


def test_a_long_malformed_status_line_is_cut_in_the_message():
    result = judge(head("X" * 500))
    assert not result.ok and result.message == f"HTTP probe failed: malformed status line {'X' * 80!r}"


def test_a_status_code_with_a_non_ascii_digit_is_malformed_not_a_crash():
    result = judge(b"HTTP/1.1 \xb200 OK\r\n\r\n")
    assert result is not None and not result.ok and "malformed status line" in result.message
