"""handshake.py: the sans-I/O opening handshake, both sides (RFC 6455 section 4)."""

from __future__ import annotations

import base64

import pytest

import gws
from gws import handshake
from gws.handshake import (
    MAX_HEAD,
    accept_key,
    build_accept,
    build_reject,
    build_request,
    check_request,
    check_response,
    find_head_end,
    make_key,
    parse_request,
    parse_response,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_key_of_rfc_section_1_3():
    assert accept_key(KEY) == ACCEPT


def test_make_key_is_16_random_bytes(monkeypatch):
    assert len(base64.b64decode(make_key(), validate=True)) == 16
    assert make_key() != make_key()
    monkeypatch.setattr(handshake.os, "urandom", lambda n: b"the sample nonce"[:n])
    assert make_key() == KEY


# -- building the request ----------------------------------------------------------------


def request_lines(data: bytes) -> list:
    assert data.endswith(b"\r\n\r\n")
    return data[:-4].decode("latin-1").split("\r\n")


class TestBuildRequest:
    def test_minimal(self):
        lines = request_lines(build_request("example.org", "/chat", KEY))
        assert lines == [
            "GET /chat HTTP/1.1",
            "Host: example.org",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {KEY}",
            "Sec-WebSocket-Version: 13",
        ]

    def test_subprotocols_extensions_and_user_headers(self):
        lines = request_lines(
            build_request(
                "example.org:8080",
                "/?x=1",
                KEY,
                subprotocols=["chat", "superchat"],
                extensions="permessage-deflate; client_max_window_bits",
                headers=[("Origin", "http://example.org"), ("X-Twice", "1"), ("X-Twice", "2")],
            )
        )
        assert lines[0] == "GET /?x=1 HTTP/1.1"
        assert "Host: example.org:8080" in lines
        assert "Sec-WebSocket-Protocol: chat, superchat" in lines
        assert "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits" in lines
        # user headers come last, in order, duplicates kept
        assert lines[-3:] == ["Origin: http://example.org", "X-Twice: 1", "X-Twice: 2"]

    def test_user_host_replaces_the_default(self):
        lines = request_lines(build_request("h:1", "/", KEY, headers=[("host", "other.example")]))
        assert [line for line in lines if line.lower().startswith("host:")] == [
            "host: other.example"
        ]

    @pytest.mark.parametrize(
        "name",
        [
            "Upgrade",
            "connection",
            "Sec-WebSocket-Key",
            "SEC-WEBSOCKET-VERSION",
            "Sec-WebSocket-Accept",
        ],
    )
    def test_refuses_to_override_upgrade_headers(self, name):
        with pytest.raises(ValueError, match="cannot be overridden"):
            build_request("h", "/", KEY, headers=[(name, "x")])

    @pytest.mark.parametrize(
        "pair",
        [
            ("X-Evil", "a\r\nInjected: yes"),
            ("X-Evil", "a\nInjected: yes"),
            ("X-Evil", "a\rb"),
            ("X-Evil", "nul\x00"),
            ("X-Evil\r\nInjected", "yes"),
            ("Bad Name", "x"),
            ("Bad:Name", "x"),
            ("", "x"),
        ],
    )
    def test_header_injection_refused(self, pair):
        with pytest.raises(ValueError):
            build_request("h", "/", KEY, headers=[pair])

    @pytest.mark.parametrize("target", ["/a b", "/a\r\nX: y", "noslash", "/\x00"])
    def test_bad_request_target(self, target):
        with pytest.raises(ValueError):
            build_request("h", target, KEY)

    def test_bad_subprotocol(self):
        with pytest.raises(ValueError):
            build_request("h", "/", KEY, subprotocols=["ok", "not ok"])


# -- validating the reply ----------------------------------------------------------------


def reply(*header_lines: str, status: str = "HTTP/1.1 101 Switching Protocols") -> bytes:
    return ("\r\n".join([status, *header_lines]) + "\r\n\r\n").encode("latin-1")


GOOD = ("Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {ACCEPT}")


def check(data: bytes, subprotocols=()):
    end = find_head_end(data)
    assert end == len(data)
    _version, code, reason, headers = parse_response(data[:end])
    return check_response(code, reason, headers, KEY, subprotocols)


class TestCheckResponse:
    def test_good_reply(self):
        version, code, reason, headers = parse_response(reply(*GOOD))
        assert (version, code, reason) == (1.1, 101, "Switching Protocols")
        assert headers == [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ACCEPT),
        ]
        assert check(reply(*GOOD)) is None

    def test_header_names_and_tokens_are_case_insensitive(self):
        data = reply(
            "upgrade: WebSocket",
            "CONNECTION: keep-alive, upgrade",
            f"sec-websocket-accept: {ACCEPT}",
        )
        assert check(data) is None

    def test_reason_phrase_may_be_missing(self):
        assert check(reply(*GOOD, status="HTTP/1.1 101")) is None

    def test_build_accept_round_trip(self):
        data = build_accept(KEY, subprotocol="chat", extensions="permessage-deflate")
        assert check(data, ["x", "chat"]) == "chat"
        assert f"Sec-WebSocket-Accept: {ACCEPT}".encode() in data

    def test_non_101_status(self):
        data = reply("Content-Length: 0", "Set-Cookie: secret=1", status="HTTP/1.1 404 Not Found")
        with pytest.raises(gws.HandshakeError) as info:
            check(data)
        err = info.value
        assert err.status == 404
        assert "404" in str(err) and "Not Found" in str(err)
        assert ("Set-Cookie", "<redacted>") in err.headers  # credentials never kept
        assert "secret" not in repr(err.headers)

    def test_200_is_not_an_upgrade(self):
        with pytest.raises(gws.HandshakeError, match="200"):
            check(reply(*GOOD, status="HTTP/1.1 200 OK"))

    @pytest.mark.parametrize(
        ("lines", "needle"),
        [
            (GOOD[1:], "Upgrade"),
            (("Upgrade: h2c", *GOOD[1:]), "Upgrade"),
            (("Upgrade: websocket, h2c", *GOOD[1:]), "Upgrade"),
            ((GOOD[0], GOOD[2]), "Connection"),
            ((GOOD[0], "Connection: keep-alive", GOOD[2]), "Connection"),
            (GOOD[:2], "Sec-WebSocket-Accept"),
            (
                (*GOOD[:2], "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                "Sec-WebSocket-Accept",
            ),
            ((*GOOD[:2], f"Sec-WebSocket-Accept: {ACCEPT.lower()}"), "Sec-WebSocket-Accept"),
            ((*GOOD, f"Sec-WebSocket-Accept: {ACCEPT}"), "Sec-WebSocket-Accept"),
            (
                (*GOOD[:2], f"Sec-WebSocket-Accept: {accept_key('AAAAAAAAAAAAAAAAAAAAAA==')}"),
                "Accept",
            ),
        ],
    )
    def test_wrong_upgrade_connection_or_accept(self, lines, needle):
        with pytest.raises(gws.HandshakeError) as info:
            check(reply(*lines))
        assert needle in str(info.value)
        assert info.value.status == 101

    def test_unrequested_subprotocol(self):
        with pytest.raises(gws.HandshakeError, match="not offered"):
            check(reply(*GOOD, "Sec-WebSocket-Protocol: chat"))
        with pytest.raises(gws.HandshakeError, match="not offered"):
            check(reply(*GOOD, "Sec-WebSocket-Protocol: chat"), ["superchat"])

    def test_multiple_subprotocols(self):
        with pytest.raises(gws.HandshakeError, match="more than one"):
            check(reply(*GOOD, "Sec-WebSocket-Protocol: chat, superchat"), ["chat", "superchat"])
        with pytest.raises(gws.HandshakeError, match="more than one"):
            check(
                reply(*GOOD, "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: superchat"),
                ["chat", "superchat"],
            )

    def test_offered_subprotocol_chosen(self):
        assert check(reply(*GOOD, "Sec-WebSocket-Protocol: superchat"), ["chat", "superchat"]) == (
            "superchat"
        )

    @pytest.mark.parametrize(
        "status",
        [
            "HTTP/1.1 abc Switching Protocols",
            "HTTP/1.1 1010 Switching Protocols",
            "HTTP/2 101 Switching Protocols",
            "HTTP/1.1  101 Switching Protocols",
            "ICY 200 OK",
            "SSH-2.0-OpenSSH_9.6",
            "",
        ],
    )
    def test_malformed_status_line(self, status):
        with pytest.raises(gws.HandshakeError, match="status line"):
            parse_response(reply(*GOOD, status=status))

    @pytest.mark.parametrize(
        "status",
        ["HTTP/0.0 101", "HTTP/0.9 200 OK", "HTTP/2.0 101 Switching Protocols", "HTTP/3.0 200 OK"],
    )
    def test_http_version_other_than_1_x(self, status):
        # found by test_fuzz (HTTP/0.0 parsed as version 0.0)
        with pytest.raises(
            gws.HandshakeError, match=r"unsupported HTTP version .*HTTP/1\.x"
        ) as info:
            parse_response(reply(*GOOD, status=status))
        assert info.value.status == 0

    @pytest.mark.parametrize(("status", "version"), [("HTTP/1.0 403", 1.0), ("HTTP/1.1 101", 1.1)])
    def test_http_1_x_versions(self, status, version):
        assert parse_response(reply(*GOOD, status=status))[0] == version

    @pytest.mark.parametrize("code", ["000", "001", "099", "600", "999"])
    def test_status_code_outside_100_599(self, code):
        # found by test_fuzz (000 parsed as code 0)
        with pytest.raises(gws.HandshakeError, match=f"invalid status code {code} .*100-599"):
            parse_response(reply(*GOOD, status=f"HTTP/1.1 {code} Switching Protocols"))

    @pytest.mark.parametrize("code", [100, 599])
    def test_status_code_bounds(self, code):
        assert parse_response(reply(status=f"HTTP/1.1 {code} X"))[1] == code

    def test_reason_phrase_not_quoted_in_errors(self):
        # found by test_fuzz: the server's reason phrase went into the message
        data = reply(status="HTTP/1.1 403 s3cr3t-cookie-value")
        _version, code, reason, headers = parse_response(data)
        assert reason == "s3cr3t-cookie-value"  # still parsed, for Response / callers
        with pytest.raises(gws.HandshakeError) as info:
            check_response(code, reason, headers, KEY)
        assert str(info.value) == "server answered 403 Forbidden instead of 101 Switching Protocols"
        with pytest.raises(gws.HandshakeError) as info:
            check(reply(status="HTTP/1.1 599 Custom Text"))
        assert str(info.value) == "server answered 599 instead of 101 Switching Protocols"

    @pytest.mark.parametrize("reason", ["a\x00b", "\x1b[31mred", "bare\rCR", "del\x7f"])
    def test_reason_phrase_with_control_characters(self, reason):
        with pytest.raises(gws.HandshakeError, match="malformed status line"):
            parse_response(reply(*GOOD, status=f"HTTP/1.1 101 {reason}"))

    def test_reason_phrase_tab_and_obs_text(self):
        status = "HTTP/1.1 101 Switching\tProtocols \xe9\xff"
        assert parse_response(reply(*GOOD, status=status))[2] == "Switching\tProtocols \xe9\xff"
        assert parse_response(reply(*GOOD, status="HTTP/1.1 101 "))[2] == ""

    def test_empty_response(self):
        with pytest.raises(gws.HandshakeError):
            parse_response(b"\r\n\r\n")

    @pytest.mark.parametrize(
        "line",
        [
            "No colon here",
            "Bad Name: value",
            ": no name",
            " folded: continuation",
            "\tfolded",
            "X(y): z",
        ],
    )
    def test_malformed_header_line(self, line):
        with pytest.raises(gws.HandshakeError):
            parse_response(reply(GOOD[0], line, *GOOD[1:]))

    def test_too_many_headers(self):
        lines = [f"X-H{i}: v" for i in range(handshake.MAX_HEADERS + 1)]
        with pytest.raises(gws.HandshakeError, match="more than"):
            parse_response(reply(*GOOD, *lines))

    def test_header_values_are_stripped(self):
        _, _, _, headers = parse_response(reply("Upgrade:\t websocket \t", *GOOD[1:]))
        assert headers[0] == ("Upgrade", "websocket")


class TestHeadLimit:
    def test_incomplete_head_over_64k(self):
        data = b"HTTP/1.1 101 Switching Protocols\r\nX-Big: " + b"a" * MAX_HEAD
        with pytest.raises(gws.HandshakeError, match="larger than"):
            find_head_end(data)

    def test_complete_head_over_64k(self):
        data = reply(*GOOD, "X-Big: " + "a" * MAX_HEAD)
        with pytest.raises(gws.HandshakeError, match="larger than"):
            find_head_end(data)

    def test_incomplete_head_under_the_limit_waits(self):
        data = reply(*GOOD)
        for i in range(len(data)):
            assert find_head_end(data[:i]) == -1
        assert find_head_end(data) == len(data)
        assert find_head_end(data + b"\x81\x00") == len(data)

    def test_head_just_at_the_limit(self):
        base = reply(*GOOD, "X-Pad: ")
        data = reply(*GOOD, "X-Pad: " + "p" * (MAX_HEAD - len(base)))
        assert len(data) == MAX_HEAD
        assert find_head_end(data) == MAX_HEAD
        data = reply(*GOOD, "X-Pad: " + "p" * (MAX_HEAD - len(base) + 1))
        with pytest.raises(gws.HandshakeError):
            find_head_end(data)


# -- server side --------------------------------------------------------------------------


def request(*lines: str, start: str = "GET /chat HTTP/1.1") -> bytes:
    return ("\r\n".join([start, *lines]) + "\r\n\r\n").encode("latin-1")


GOOD_REQUEST = (
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
)


def server_check(data: bytes) -> str:
    method, _target, headers = parse_request(data)
    return check_request(method, headers)


class TestServerSide:
    def test_rfc_request(self):
        method, target, headers = parse_request(request(*GOOD_REQUEST))
        assert (method, target) == ("GET", "/chat")
        assert headers[0] == ("Host", "server.example.com")
        assert check_request(method, headers) == KEY

    def test_built_request_passes(self):
        data = build_request("h", "/p?q=1", KEY, subprotocols=["chat"])
        method, target, headers = parse_request(data)
        assert target == "/p?q=1"
        assert check_request(method, headers) == KEY

    def test_method(self):
        with pytest.raises(gws.HandshakeError) as info:
            server_check(request(*GOOD_REQUEST, start="POST /chat HTTP/1.1"))
        assert info.value.status == 405

    @pytest.mark.parametrize(
        ("drop", "replace", "status"),
        [
            ("Upgrade", None, 426),
            ("Upgrade", "Upgrade: h2c", 426),
            ("Connection", None, 400),
            ("Connection", "Connection: keep-alive", 400),
            ("Sec-WebSocket-Version", None, 426),
            ("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8", 426),
            ("Sec-WebSocket-Key", None, 400),
            ("Sec-WebSocket-Key", "Sec-WebSocket-Key: not base64!", 400),
            ("Sec-WebSocket-Key", "Sec-WebSocket-Key: YWJj", 400),  # 3 bytes
            ("Sec-WebSocket-Key", f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Key: {KEY}", 400),
        ],
    )
    def test_bad_requests(self, drop, replace, status):
        lines = [line for line in GOOD_REQUEST if not line.startswith(drop + ":")]
        if replace:
            lines.append(replace)
        with pytest.raises(gws.HandshakeError) as info:
            server_check(request(*lines))
        assert info.value.status == status

    @pytest.mark.parametrize(
        "start",
        ["GET /chat HTTP/1.0", "GET  /chat HTTP/1.1", "get /chat HTTP/1.1", "GET /chat", "garbage"],
    )
    def test_malformed_request_line(self, start):
        with pytest.raises(gws.HandshakeError) as info:
            parse_request(request(*GOOD_REQUEST, start=start))
        assert info.value.status == 400

    def test_malformed_request_header(self):
        with pytest.raises(gws.HandshakeError) as info:
            parse_request(request(*GOOD_REQUEST, "no colon"))
        assert info.value.status == 400

    def test_reject_426_announces_version(self):
        data = build_reject(426, "need version 13")
        _version, code, reason, headers = parse_response(data[: find_head_end(data)])
        assert (code, reason) == (426, "Upgrade Required")
        assert ("Sec-WebSocket-Version", "13") in headers
        assert ("Connection", "close") in headers
        assert data.endswith(b"need version 13\n")

    def test_reject_content_length_matches_body(self):
        data = build_reject(400, "bad ☃")
        end = find_head_end(data)
        _version, code, _reason, headers = parse_response(data[:end])
        assert code == 400
        assert int(dict(headers)["Content-Length"]) == len(data) - end

    def test_build_accept_refuses_header_injection(self):
        with pytest.raises(ValueError):
            build_accept(KEY, headers=[("X-A", "b\r\nInjected: 1")])
