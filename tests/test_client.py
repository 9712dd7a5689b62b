"""Integration: gws.connect / gws.open against real sockets on 127.0.0.1.

Servers run in this process (``gws.serve`` or hand-written raw peers from
conftest's ``make_server``); the ``deadline`` fixture bounds every test.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import ssl

import gevent
import gevent.socket as gsocket
import gevent.ssl
import pytest
from gevent.event import AsyncResult
from gevent.queue import Queue
from helpers import (
    ClientFrames,
    handshake,
    read_head,
    read_request,
    recording_server,
    server_frame,
)

import gws
from gws.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Message
from gws.handshake import accept_key, build_accept

pytestmark = pytest.mark.usefixtures("deadline")


# -- the seed's example, line for line ---------------------------------------------------


def test_seed_example(echo_server, capsys):
    res, read, write = gws.connect({"host": "127.0.0.1", "port": echo_server})
    if not res:
        print("Error establishing connection!\n" + read)
        pytest.fail(read)

    write({"payload": "Hello There!"})

    for msg in read:
        print("Host responded with", msg.payload)
        res.socket.shutdown(socket.SHUT_RDWR)
    print("Connection closed!")

    out = capsys.readouterr().out
    assert out == "Host responded with b'Hello There!'\nConnection closed!\n"
    assert read() is None  # stays closed
    assert read.close_code == 1006


def test_echo_round_trip_and_clean_close(echo_server, no_leaks):
    with no_leaks():
        res, read, write = gws.connect(host="127.0.0.1", port=echo_server)
        assert res, read
        assert write({"payload": "Hello There!"}) == (True, None)
        msg = read()
        assert msg.payload == b"Hello There!" and msg.opcode == OP_BINARY and msg.fin
        assert write(None) == (True, None)
        assert read() is None
        assert read.error is None
        assert (read.close_code, read.close_reason) == (1000, "")


# -- ways to connect ---------------------------------------------------------------------


def test_connect_with_url_string(make_server):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(f"ws://127.0.0.1:{server.port}/chat/room?x=1&y=2")
    assert res, read
    write("hi")
    request, msg = seen.get(timeout=5)
    assert request.path == "/chat/room?x=1&y=2"
    assert request.header("Host") == f"127.0.0.1:{server.port}"
    assert msg.payload == "hi" and msg.opcode == OP_TEXT
    assert read().payload == "hi"
    write.close()


def test_connect_with_keywords_and_url_plus_keywords(make_server):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(host="127.0.0.1", port=server.port, pathname="/kw")
    assert res, read
    write(b"a")
    assert seen.get(timeout=5)[0].path == "/kw"
    write.close()

    res, read, write = gws.connect(f"ws://127.0.0.1:{server.port}/u", headers={"X-Extra": "1"})
    assert res, read
    write(b"b")
    request, _ = seen.get(timeout=5)
    assert request.path == "/u" and request.header("x-extra") == "1"
    write.close()


def test_pathname_without_leading_slash(make_server):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect({"port": server.port, "pathname": "no/slash"})
    assert res, read
    write(b"x")
    assert seen.get(timeout=5)[0].path == "/no/slash"
    write.close()


@pytest.mark.parametrize(
    ("args", "options", "needle"),
    [
        (("http://127.0.0.1/",), {}, "scheme"),
        (("wss://127.0.0.1/",), {"tls": False}, "tls"),
        ((42,), {}, "URL"),
        ((), {"port": 0}, "port"),
        ((), {"port": 70000}, "port"),
        ((), {"port": "80"}, "port"),
        ((), {"host": ""}, "host"),
        ((), {"bogus": 1}, "bogus"),
        ((), {"mask": False}, "mask"),
        ((), {"timeout": 0}, "timeout"),
        ((), {"timeout": -5}, "timeout"),
        ((), {"heartbeat": "often"}, "heartbeat"),
        ((), {"max_size": -1}, "max_size"),
        ((), {"compression": "brotli"}, "compression"),
        ((), {"tls": "yes"}, "tls"),
        ((), {"tls": {"verify": False}}, "verify"),
        ((), {"headers": ["not a pair"]}, "headers"),
        ((), {"headers": {"Upgrade": "h2c"}}, "upgrade"),
        ((), {"headers": {"X-Evil": "a\r\nInjected: 1"}}, "line break"),
        ((), {"subprotocol": "two words"}, "subprotocol"),
        # options of the wrong type are error values too, never exceptions
        ((), {"subprotocol": 5}, "subprotocol"),
        ((), {"subprotocol": ["chat", 5]}, "subprotocol"),
        ((), {"headers": 5}, "headers"),
        ((), {"tls": {"ca": 5}}, "cafile"),
        ((), {"tls": {"cert": 5}}, "certfile"),
        ((), {"path": 5, "port": None}, ""),
        ((), {"host": "a..b"}, ""),
    ],
)
def test_option_errors_are_values(args, options, needle, echo_server):
    if "port" not in options and not args:
        options = {"port": echo_server, **options}
    if options.get("port", 1) is None:
        del options["port"]
    res, err, write = gws.connect(*args, **options)
    assert res is None and write is None
    assert isinstance(err, str)
    assert needle.lower() in err.lower()


# -- the Response ------------------------------------------------------------------------


def test_response_fields(make_server):
    server = make_server(gws.echo, headers=[("X-Server", "gws-test")])
    res, read, write = gws.connect(f"ws://127.0.0.1:{server.port}/")
    assert res, read
    assert bool(res) is True
    assert res.code == 101
    assert res.reason == "Switching Protocols"
    assert res.version == 1.1
    assert res.keep_alive is False and res.keepAlive is False
    assert res[0] == ("Upgrade", "websocket")
    assert res[1] == ("Connection", "Upgrade")
    assert res[2][0] == "Sec-WebSocket-Accept"
    assert len(res) == len(res.headers) == 5
    assert list(res) == res.headers
    assert res.headers[-1] == ("X-Server", "gws-test")
    assert res.header("x-server") == "gws-test"
    assert res.header("nope") is None
    assert res.subprotocol is None
    assert res.extensions == {
        "permessage-deflate": {
            "server_no_context_takeover": False,
            "client_no_context_takeover": False,
            "server_max_window_bits": 15,
            "client_max_window_bits": 15,
        }
    }
    assert res.socket is not None and res.socket.fileno() >= 0
    write.close()


def test_keep_alive_and_reply_headers_from_a_raw_server(make_server):
    def handler(sock, address):
        key, _, _ = read_request(sock)
        sock.sendall(
            (
                "HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
                "Server: raw\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n"
            ).encode()
        )
        sock.sendall(server_frame(OP_TEXT, b"welcome"))
        ClientFrames(sock).next()  # the client's close

    server = make_server.raw(handler)
    res, read, write = gws.connect(port=server.port)
    assert res, read
    assert res.reason == "Web Socket Protocol Handshake"
    assert res.keepAlive is True
    assert res[0] == ("Server", "raw")
    assert [res[i] for i in range(len(res))][-2:] == [("X-Dup", "1"), ("X-Dup", "2")]
    assert res.extensions == {}
    assert read().payload == "welcome"
    write.close()


def test_compression_none(echo_server):
    res, read, write = gws.connect(port=echo_server, compression=None)
    assert res, read
    assert res.extensions == {}
    assert res.header("Sec-WebSocket-Extensions") is None
    write(b"plain")
    assert read().payload == b"plain"
    write.close()


def test_compression_dict_and_large_messages(echo_server):
    res, read, write = gws.connect(
        port=echo_server,
        compression={"client_no_context_takeover": True, "server_max_window_bits": 10},
    )
    assert res, read
    ext = res.extensions["permessage-deflate"]
    assert ext["client_no_context_takeover"] is True and ext["server_max_window_bits"] == 10
    big = ("compressible text " * 50_000)[:800_000]
    for _ in range(2):
        write(big)
        assert read().payload == big
    blob = os.urandom(300_000)
    write(blob)
    assert read().payload == blob
    write.close()


# -- payload types -----------------------------------------------------------------------


def test_text_and_binary_payload_types(make_server):
    got: Queue = Queue()

    def handler(request, read, write):
        for msg in read:
            got.put((msg.opcode, msg.payload))
            write(Message(opcode=msg.opcode, payload=msg.payload))

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port)
    assert res, read
    cases = [
        ("héllo", OP_TEXT, "héllo"),
        (b"\x00\xff", OP_BINARY, b"\x00\xff"),
        (bytearray(b"ba"), OP_BINARY, b"ba"),
        (memoryview(b"mv"), OP_BINARY, b"mv"),
        ({"payload": "x", "opcode": 1}, OP_TEXT, "x"),
        ({"payload": "héllo"}, OP_BINARY, "héllo".encode()),  # str with opcode 2 -> UTF-8
        ({"payload": b"raw", "opcode": 2}, OP_BINARY, b"raw"),
        (Message(opcode=OP_TEXT, payload=b"bytes as text"), OP_TEXT, "bytes as text"),
        (Message(payload="str as binary"), OP_BINARY, b"str as binary"),
        ("", OP_TEXT, ""),
        (b"", OP_BINARY, b""),
    ]
    for value, opcode, payload in cases:
        assert write(value) == (True, None)
        assert got.get(timeout=5) == (opcode, payload)
        msg = read()
        assert (msg.opcode, msg.payload) == (opcode, payload)
        assert type(msg.payload) is (str if opcode == OP_TEXT else bytes)
    write.close()


@pytest.mark.parametrize(
    "value",
    [42, 1.5, [1, 2], {"payload": 5}, {"opcode": "1"}, {"opcode": 16}, {"bogus": 1}],
)
def test_bad_messages_are_error_values(echo_server, value):
    res, read, write = gws.connect(port=echo_server)
    assert res, read
    ok, err = write(value)
    assert ok is False and isinstance(err, str)
    # the connection is still fine
    assert write(b"after") == (True, None)
    assert read().payload == b"after"
    write.close()


def test_control_frame_limits_on_write(echo_server):
    res, read, write = gws.connect(port=echo_server)
    ok, err = write({"opcode": OP_PING, "payload": b"x" * 126})
    assert ok is False and "125" in err
    ok, err = write({"opcode": OP_PING, "fin": False})
    assert ok is False
    assert write({"opcode": OP_PING, "payload": b"p" * 125}) == (True, None)
    write(b"still open")
    assert read().payload == b"still open"
    write.close()


def test_fragmented_write_reassembled_by_the_server(make_server):
    got: Queue = Queue()

    def handler(request, read, write):
        for msg in read:
            got.put(msg)

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port)
    write({"opcode": OP_TEXT, "fin": False, "payload": "frag"})
    write({"opcode": OP_PING, "payload": b"in between"})
    write({"opcode": OP_CONTINUATION, "fin": False, "payload": "ment"})
    write({"opcode": OP_CONTINUATION, "payload": "ed €"})
    msg = got.get(timeout=5)
    assert (msg.opcode, msg.payload, msg.fin) == (OP_TEXT, "fragmented €", True)
    write.close()


# -- TLS ---------------------------------------------------------------------------------


def tls_round_trip(res, read, write):
    assert res, read
    # gevent's SSL socket, even for a user's stdlib SSLContext: every wait cooperative
    assert isinstance(res.socket, gevent.ssl.SSLSocket)
    assert res.socket.version().startswith("TLS")
    write("over tls")
    assert read().payload == "over tls"
    write.close()
    assert read.error is None


def test_tls_verified_with_ca_file(tls_echo, tls_ca_file):
    tls_round_trip(*gws.connect(host="127.0.0.1", port=tls_echo.port, tls={"ca": tls_ca_file}))


def test_tls_default_context_is_built_once_per_setting(tls_echo, tls_ca_file, monkeypatch):
    """Review defect: each wss connect built a new SSLContext and loaded the
    CA bundle (about 14 ms of CPU during which no greenlet runs)."""
    loads = []
    real = gevent.ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        loads.append(args or kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(gevent.ssl.SSLContext, "load_verify_locations", counting)
    gws.client._cached_context.cache_clear()
    contexts = []
    for _ in range(3):
        res, read, write = gws.connect(port=tls_echo.port, tls={"ca": tls_ca_file})
        tls_round_trip(res, read, write)
        contexts.append(res.socket.context)
    assert len(loads) == 1
    assert contexts[0] is contexts[1] is contexts[2]
    assert isinstance(contexts[0], gevent.ssl.SSLContext)  # public wrap_socket path
    res, read, write = gws.connect(port=tls_echo.port, tls={"ca": tls_ca_file, "insecure": True})
    tls_round_trip(res, read, write)
    assert len(loads) == 2 and res.socket.context is not contexts[0]


def test_tls_wss_url_with_ca_pem_string(tls_echo, tls_ca):
    pem = tls_ca.cert_pem.bytes().decode()
    tls_round_trip(*gws.connect(f"wss://localhost:{tls_echo.port}/", tls={"ca": pem}))


def test_tls_hostname_mismatch_rejected(tls_echo, tls_ca_file):
    res, err, write = gws.connect(
        port=tls_echo.port, tls={"ca": tls_ca_file, "server_name": "other.example"}
    )
    assert res is None and write is None
    assert "certificate" in err.lower() and "hostname" in err.lower()


def test_tls_default_verification_rejects_unknown_ca(tls_echo):
    res, err, _ = gws.connect(f"wss://127.0.0.1:{tls_echo.port}/")
    assert res is None
    assert "certificate" in err.lower()


def test_tls_insecure_accepted_with_a_warning(tls_echo, caplog):
    with caplog.at_level(logging.WARNING, logger="gws"):
        tls_round_trip(*gws.connect(port=tls_echo.port, tls={"insecure": True}))
    warnings = [r for r in caplog.records if r.name == "gws" and r.levelno == logging.WARNING]
    assert warnings and "verification" in warnings[0].getMessage()


def test_tls_user_ssl_context(tls_echo, tls_ca_file):
    ctx = ssl.create_default_context(cafile=tls_ca_file)  # a stdlib context, not gevent's
    tls_round_trip(*gws.connect(host="localhost", port=tls_echo.port, tls=ctx))


def test_tls_user_context_still_verifies(tls_echo):
    ctx = ssl.create_default_context()  # system CAs: the trustme CA is not among them
    res, err, _ = gws.connect(port=tls_echo.port, tls=ctx)
    assert res is None and "certificate" in err.lower()


def test_tls_client_certificate(make_server, tls_ca, tls_cert, tls_ca_file, tmp_path):
    ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_cert.configure_cert(ctx)
    tls_ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    server = make_server(gws.echo, ssl_context=ctx)

    client_cert = tls_ca.issue_cert("client@example.org")
    cert_path = tmp_path / "client.pem"
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    tls_round_trip(*gws.connect(port=server.port, tls={"ca": tls_ca_file, "cert": str(cert_path)}))

    res, err, _ = gws.connect(port=server.port, tls={"ca": tls_ca_file})
    assert res is None and isinstance(err, str) and err


def test_tls_handshake_timeout(make_server, tls_ca_file):
    server = make_server.raw(make_server.hold_open)  # accepts TCP, never speaks TLS
    res, err, _ = gws.connect(port=server.port, tls={"ca": tls_ca_file}, timeout=300)
    assert res is None and "timed out" in err


# -- unix sockets ------------------------------------------------------------------------


def test_unix_socket_missing(tmp_path):
    res, err, _ = gws.connect(path=str(tmp_path / "nothing-here.sock"))
    assert res is None and "No such file" in err


# -- subprotocols and headers --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Token": "abc", "Origin": "http://example.org"},
        [("X-Token", "abc"), ("Origin", "http://example.org")],
        [["X-Token", "abc"], ["Origin", "http://example.org"]],
    ],
)
def test_custom_headers_seen_by_the_server(make_server, headers):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(port=server.port, headers=headers)
    assert res, read
    write(b"x")
    request, _ = seen.get(timeout=5)
    assert request.header("x-token") == "abc"
    assert request.header("Origin") == "http://example.org"
    names = [n for n, _ in request.headers]
    assert names[-2:] == ["X-Token", "Origin"]  # after the upgrade headers, in order
    write.close()


def test_repeated_headers_and_host_override(make_server):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(
        port=server.port, headers=[("Host", "example.org"), ("X-Rep", "1"), ("X-Rep", "2")]
    )
    assert res, read
    write(b"x")
    request, _ = seen.get(timeout=5)
    assert [v for n, v in request.headers if n == "Host"] == ["example.org"]
    assert [v for n, v in request.headers if n == "X-Rep"] == ["1", "2"]
    write.close()


def test_credentials_in_url_sent_as_basic_auth(make_server):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(f"ws://alice:s3cr3t@127.0.0.1:{server.port}/")
    assert res, read
    write(b"x")
    request, _ = seen.get(timeout=5)
    assert request.header("Authorization") == "Basic YWxpY2U6czNjcjN0"
    write.close()


# -- failures to connect -------------------------------------------------------------------


def test_timeout_against_a_listener_that_never_answers(make_server, no_leaks):
    with no_leaks():
        server = make_server.raw(make_server.hold_open)
        with gevent.Timeout(5):
            res, err, write = gws.connect(port=server.port, timeout=300)
        assert res is None and write is None
        assert "timed out" in err
        with gevent.Timeout(5), pytest.raises(gws.OpenTimeout) as info:
            gws.open(port=server.port, timeout=200)
        assert isinstance(info.value, TimeoutError)
        server.stop()


def test_timeout_against_a_backlog_that_never_accepts():
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        with gevent.Timeout(5):
            res, err, _ = gws.connect(port=listener.getsockname()[1], timeout=300)
        assert res is None and "timed out" in err
    finally:
        listener.close()


def test_refused_port(free_port):
    res, err, write = gws.connect(port=free_port)
    assert res is None and write is None
    assert "refused" in err
    with pytest.raises(ConnectionRefusedError):
        gws.open(port=free_port)


def test_dns_failure():
    res, err, _ = gws.connect("ws://no-such-host.invalid/", timeout=3000)
    assert res is None and isinstance(err, str) and err


def raw_reply_server(make_server, data: bytes):
    def handler(sock, address):
        read_head(sock)
        sock.sendall(data)
        sock.close()

    return make_server.raw(handler)


def test_non_101_reply_is_an_error_value(make_server):
    body = b"no such endpoint"
    server = raw_reply_server(
        make_server,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 16\r\nX-Why: nothing\r\n\r\n" + body,
    )
    res, err, write = gws.connect(port=server.port)
    assert res is None and write is None
    assert "404" in err and "Not Found" in err
    with pytest.raises(gws.HandshakeError) as info:
        gws.open(port=server.port)
    assert info.value.status == 404
    assert ("X-Why", "nothing") in info.value.headers
    assert info.value.body == body


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "closed"),
        (b"HTTP/1.1 101 Switching Protocols\r\n", "closed"),
        (b"garbage\r\n\r\n", "status line"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "Connection"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: nope\r\n\r\n",
            "Accept",
        ),
        (b"HTTP/1.1 101 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", "larger"),
    ],
)
def test_bad_replies_through_connect(make_server, data, needle):
    server = raw_reply_server(make_server, data)
    res, err, _ = gws.connect(port=server.port)
    assert res is None
    assert needle.lower() in err.lower()


def test_endless_head_is_bounded(make_server):
    def handler(sock, address):
        read_head(sock)
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        for _ in range(200):  # 200 * 1 KiB headers, more than the 64 KiB limit
            try:
                sock.sendall(b"X-Flood: " + b"f" * 1024 + b"\r\n")
            except OSError:
                return

    server = make_server.raw(handler)
    res, err, _ = gws.connect(port=server.port)
    assert res is None and "larger than" in err


# -- heartbeat -----------------------------------------------------------------------------


def silent_peer(make_server):
    """A raw server that completes the handshake, then never reads or writes."""

    def handler(sock, address):
        handshake(sock)
        make_server.hold_open(sock, address)

    return make_server.raw(handler)


def test_heartbeat_detects_a_silent_peer(make_server, no_leaks):
    with no_leaks():
        server = silent_peer(make_server)
        res, read, write = gws.connect(port=server.port, heartbeat=100)
        assert res, read
        with gevent.Timeout(5):
            assert read() is None
        assert read.error == "heartbeat timeout"
        assert read.close_code == 1006
        assert write(b"too late")[0] is False
        server.stop()


def test_heartbeat_detects_a_silent_peer_while_nobody_reads(make_server):
    server = silent_peer(make_server)
    res, read, write = gws.connect(port=server.port, heartbeat=50, heartbeat_timeout=100)
    assert res, read
    conn = read.connection
    with gevent.Timeout(5):
        conn.closed.wait()
    assert read() is None
    assert read.error == "heartbeat timeout"


def ping_counting_server(make_server, pings_before_reply: int, opcode: int = OP_PING):
    """Server (fragments=True, so it sees control frames) that sends "done"
    once the client's heartbeat frames reached ``pings_before_reply``."""
    counted: Queue = Queue()

    def handler(request, read, write):
        seen = 0
        for msg in read:
            if msg.opcode == opcode:
                seen += 1
                counted.put(seen)
                if seen == pings_before_reply:
                    write("done")
            elif msg.opcode == OP_CLOSE:
                break

    return make_server(handler, fragments=True), counted


def test_heartbeat_keeps_a_healthy_connection_alive(make_server):
    server, counted = ping_counting_server(make_server, 5)
    # pings every 30 ms; a generous pong deadline keeps a loaded machine from
    # looking like a dead peer (detection itself is tested above)
    res, read, write = gws.connect(port=server.port, heartbeat=30, heartbeat_timeout=3000)
    assert res, read
    with gevent.Timeout(5):
        msg = read()  # blocks through 5 heartbeats; each pong answers in time
    assert msg is not None and msg.payload == "done", read.error
    assert [counted.get_nowait() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert read.connection.state == 0
    assert write.close() == (True, None)
    assert read.error is None


def test_pings_are_answered_with_the_same_payload(make_server):
    server, _ = ping_counting_server(make_server, 1000)
    res, read, write = gws.connect(
        port=server.port, heartbeat=20, heartbeat_timeout=3000, fragments=True
    )
    assert res, read
    pongs = 0
    with gevent.Timeout(5):
        while pongs < 3:
            msg = read()
            assert msg is not None, read.error
            if msg.opcode == OP_PONG:
                pongs += 1
    write.ping(b"custom")
    with gevent.Timeout(5):
        while True:
            msg = read()
            if msg.opcode == OP_PONG and msg.payload == b"custom":
                break
    write.close()


def test_heartbeat_while_not_reading_keeps_messages(make_server):
    pings: Queue = Queue()

    def handler(request, read, write):
        write("early")
        seen = 0
        for msg in read:  # fragments=True: pings show up here (and are answered)
            if msg.opcode == OP_PING:
                seen += 1
                pings.put(seen)
                if seen == 16:
                    write("late")

    server = make_server(handler, fragments=True)
    # the pong deadline must expire several times with nobody reading, so
    # that the heartbeat reads by itself (150 ms leaves room for a loaded machine)
    res, read, write = gws.connect(port=server.port, heartbeat=25, heartbeat_timeout=150)
    assert res, read
    # Nobody reads on the client for 16 heartbeats: the heartbeat itself
    # must read the pongs, and keep the "early" message it reads on the way.
    with gevent.Timeout(5):
        assert [pings.get() for _ in range(16)] == list(range(1, 17))
    assert read.connection.state == 0, read.error
    assert read().payload == "early"
    assert read().payload == "late"
    assert write.close() == (True, None)


def test_seed_heartbeat_sends_unsolicited_pongs(make_server):
    server, counted = ping_counting_server(make_server, 3, opcode=OP_PONG)
    res, read, write = gws.connect(port=server.port, heartbeat=20, heartbeat_opcode=OP_PONG)
    assert res, read
    with gevent.Timeout(5):
        assert read().payload == "done"
    write.close()


# -- many writers ----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
def test_100_greenlets_write_concurrently(make_server, compression, no_leaks):
    n_writers, per_writer = 100, 3
    total = n_writers * per_writer
    received: Queue = Queue()

    def handler(request, read, write):
        for msg in read:
            data = msg.payload.encode() if isinstance(msg.payload, str) else msg.payload
            received.put((msg.opcode, hashlib.sha256(data).hexdigest(), len(data)))

    # Text messages are made of shared words, so with context takeover each
    # one's compressed form refers back to earlier messages: sent out of the
    # order they were compressed in, they inflate to garbage. Binary ones are
    # incompressible and large enough to fill the socket buffers, so writers
    # really queue on the write lock.
    rng = random.Random(1234)
    words = [rng.randbytes(30).hex() for _ in range(64)]
    boundaries = [1, 125, 126, 65535, 65536, 200 * 1024]
    messages = []
    for i in range(total):
        size = boundaries[i] if i < len(boundaries) else rng.randint(1, 200 * 1024)
        if i % 2:
            messages.append(rng.randbytes(size))
        else:
            text = " ".join(rng.choice(words) for _ in range(size // 61 + 1))
            messages.append(text[:size])

    def expected(m):
        data = m.encode() if isinstance(m, str) else m
        return (
            OP_TEXT if isinstance(m, str) else OP_BINARY,
            hashlib.sha256(data).hexdigest(),
            len(data),
        )

    with no_leaks():
        server = make_server(handler)
        res, read, write = gws.connect(port=server.port, compression=compression)
        assert res, read

        def writer(batch):
            for m in batch:
                ok, err = write(m)
                assert ok, err

        greenlets = [
            gevent.spawn(writer, messages[i * per_writer : (i + 1) * per_writer])
            for i in range(n_writers)
        ]
        with gevent.Timeout(15):
            gevent.joinall(greenlets, raise_error=True)
            got = [received.get() for _ in range(total)]
        assert sorted(got) == sorted(expected(m) for m in messages)
        assert write.close() == (True, None)
        assert read.error is None
        server.stop()


# -- closing -----------------------------------------------------------------------------------


def test_client_close_code_and_reason_seen_by_the_server(make_server, no_leaks):
    seen = AsyncResult()

    def handler(request, read, write):
        assert read() is None
        seen.set((read.close_code, read.close_reason, read.error))

    with no_leaks():
        server = make_server(handler)
        res, read, write = gws.connect(port=server.port)
        assert write.close(4000, "bye") == (True, None)
        assert seen.get(timeout=5) == (4000, "bye", None)
        # RFC 6455 7.1.5: the close code is the one of the close frame
        # received, here the server's echo, which carries the code only
        assert (read.close_code, read.close_reason, read.error) == (4000, "", None)
        assert read() is None
        server.stop()


def test_server_close_code_and_reason_seen_by_the_client(make_server):
    def handler(request, read, write):
        write.close(4001, "server says bye ☃")

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port)
    assert res, read
    assert read() is None
    assert (read.close_code, read.close_reason, read.error) == (4001, "server says bye ☃", None)


def test_close_without_code(make_server):
    def handler(request, read, write):
        write.close(None)

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port)
    assert read() is None
    assert read.close_code == 1005 and read.error is None


def test_write_after_close_returns_an_error(echo_server):
    res, read, write = gws.connect(port=echo_server)
    assert write(None) == (True, None)
    ok, err = write(b"late")
    assert ok is False and isinstance(err, str) and "closed" in err
    ok, err = write.close()
    assert ok is False and "closed" in err
    assert write.ping()[0] is False


def test_bad_close_codes_refused_locally(echo_server):
    res, read, write = gws.connect(port=echo_server)
    for code in (999, 1005, 1006, 5000):
        ok, err = write.close(code)
        assert ok is False and str(code) in err
    ok, err = write({"opcode": OP_CLOSE, "payload": b"\x03"})
    assert ok is False
    write(b"still open")
    assert read().payload == b"still open"
    assert write({"opcode": OP_CLOSE, "payload": b"\x0f\xa2why"}) == (True, None)
    assert (read.close_code, read.close_reason) == (4002, "")  # the echo's


def test_close_handshake_is_bounded_against_a_silent_peer(make_server):
    server = silent_peer(make_server)
    res, read, write = gws.connect(port=server.port, close_timeout=200)
    with gevent.Timeout(5):
        assert write.close() == (True, None)
    assert read() is None
    assert read.error == "close handshake timed out"


def test_peer_drops_without_close_frame(make_server):
    def handler(sock, address):
        handshake(sock)
        sock.sendall(server_frame(OP_TEXT, b"last words"))
        sock.close()

    server = make_server.raw(handler)
    res, read, write = gws.connect(port=server.port)
    assert read().payload == "last words"
    assert read() is None
    assert read.close_code == 1006
    assert "without a close frame" in read.error


# -- what a peer may not send -------------------------------------------------------------


def bad_frame_server(make_server, *frames_: bytes, extensions=None):
    """Raw server: handshake, send ``frames_``, then report the client's close frame."""
    result = AsyncResult()

    def handler(sock, address):
        _, rest = handshake(sock, extensions=extensions)
        for data in frames_:
            sock.sendall(data)
        result.set(ClientFrames(sock, rest).until_close())  # pongs skipped

    return make_server.raw(handler), result


def client_close_code(result) -> int:
    frame = result.get(timeout=5)
    assert frame is not None and frame.opcode == OP_CLOSE
    return gws.frames.parse_close_payload(frame.payload)[0]


def test_max_size_enforced(make_server):
    def handler(request, read, write):
        write(b"x" * 2000)
        read()

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port, max_size=1000)
    assert read() is None
    assert read.close_code == 1009
    assert "max_size" in read.error


def test_max_size_enforced_after_decompression(make_server):
    def handler(request, read, write):
        write(b"z" * 5000)  # compresses to a few bytes
        read()

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port, max_size=1000)
    assert "permessage-deflate" in res.extensions
    assert read() is None
    assert read.close_code == 1009


def test_max_size_across_fragments(make_server):
    server, result = bad_frame_server(
        make_server,
        server_frame(OP_BINARY, b"a" * 600, fin=False),
        server_frame(OP_CONTINUATION, b"a" * 600),
    )
    res, read, write = gws.connect(port=server.port, max_size=1000, compression=None)
    assert read() is None
    assert read.close_code == 1009
    assert client_close_code(result) == 1009


def test_max_size_none_means_no_limit(make_server):
    def handler(request, read, write):
        write(b"y" * (3 * 1024 * 1024))
        read()

    server = make_server(handler, max_size=None)
    res, read, write = gws.connect(port=server.port, max_size=None)
    assert read().len == 3 * 1024 * 1024
    write.close()


@pytest.mark.parametrize(
    ("frames_", "code", "needle"),
    [
        ((server_frame(OP_TEXT, b"bad \xff utf-8"),), 1007, "UTF-8"),
        (
            (server_frame(OP_TEXT, b"\xe2\x82", fin=False), server_frame(OP_CONTINUATION, b"x")),
            1007,
            "UTF-8",
        ),
        ((server_frame(OP_TEXT, b"\xe2\x82"),), 1007, "UTF-8"),
        ((server_frame(OP_CLOSE, b"\x03\xe8\xff"),), 1007, "UTF-8"),
        ((server_frame(OP_BINARY, b"x", rsv1=True),), 1002, "reserved bits"),
        ((bytes([0x83, 0x00]),), 1002, "opcode"),
        ((server_frame(OP_CONTINUATION, b"x"),), 1002, "continuation"),
        ((server_frame(OP_TEXT, b"a", fin=False), server_frame(OP_TEXT, b"b")), 1002, "fragmented"),
        ((encode_masked := gws.frames.encode_frame(OP_TEXT, b"m", mask=True),), 1002, "masked"),
        ((bytes([0x09, 0x00]),), 1002, "fragmented control"),
        ((server_frame(OP_CLOSE, b"\x03"),), 1002, "one byte"),
        ((server_frame(OP_CLOSE, b"\x03\xed"),), 1002, "1005"),
    ],
)
def test_protocol_violations_close_with_the_right_code(make_server, frames_, code, needle):
    server, result = bad_frame_server(make_server, *frames_)
    res, read, write = gws.connect(port=server.port, compression=None)
    assert res, read
    with gevent.Timeout(5):
        assert read() is None
    assert read.close_code == code
    assert needle.lower() in read.error.lower()
    assert client_close_code(result) == code


def test_invalid_utf8_from_gws_server(make_server):
    def handler(request, read, write):
        write({"opcode": OP_TEXT, "payload": b"\xc3\x28"})  # sent raw as text
        read()

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port)
    assert read() is None
    assert read.close_code == 1007


# -- fragments=True --------------------------------------------------------------------------


def test_fragments_mode_returns_frames_as_they_arrive(make_server):
    server, result = bad_frame_server(
        make_server,
        server_frame(OP_TEXT, b"Hel", fin=False),
        server_frame(OP_PING, b"p"),
        server_frame(OP_CONTINUATION, b"lo"),
        server_frame(OP_BINARY, b"\x00\x01"),
        server_frame(OP_CLOSE, b"\x03\xe8done"),
    )
    res, read, write = gws.connect(port=server.port, fragments=True, compression=None)
    got = []
    with gevent.Timeout(5):
        for msg in read:
            got.append((msg.opcode, msg.fin, msg.payload))
    assert got == [
        (OP_TEXT, False, b"Hel"),
        (OP_PING, True, b"p"),
        (OP_CONTINUATION, True, b"lo"),
        (OP_BINARY, True, b"\x00\x01"),
        (OP_CLOSE, True, b"\x03\xe8done"),
    ]
    assert (read.close_code, read.close_reason) == (1000, "done")
    # the client answered the ping and echoed the close code
    assert client_close_code(result) == 1000


# -- the Pythonic face -------------------------------------------------------------------------


def test_open_send_recv_iterate(echo_server, no_leaks):
    with no_leaks():
        with gws.open(f"ws://127.0.0.1:{echo_server}/", heartbeat=5000) as ws:
            assert isinstance(ws, gws.WebSocket)
            assert ws.response.code == 101
            ws.send("hi")
            ws.send(b"\x01\x02")
            msg = ws.recv()
            assert (msg.opcode, msg.payload) == (OP_TEXT, "hi")
            assert ws.recv().payload == b"\x01\x02"
            ws.ping(b"pong me")
            for i in range(3):
                ws.send(f"n{i}")
            got = []
            for msg in ws:
                got.append(msg.payload)
                if len(got) == 3:
                    break
            assert got == ["n0", "n1", "n2"]
            assert "open" in repr(ws)
        assert ws.closed
        assert ws.close_code == 1000
        ws.close()  # idempotent
        with pytest.raises(gws.ConnectionClosed) as info:
            ws.recv()
        assert info.value.code == 1000
        with pytest.raises(gws.ConnectionClosed):
            ws.send("late")


def test_open_raises_connection_closed_with_code_and_reason(make_server):
    def handler(request, read, write):
        write.close(4001, "go away")

    server = make_server(handler)
    ws = gws.open(port=server.port)
    with pytest.raises(gws.ConnectionClosed) as info:
        ws.recv()
    assert (info.value.code, info.value.reason) == (4001, "go away")
    assert isinstance(info.value, gws.WebSocketError)
    assert list(ws) == []


def test_open_handshake_error_on_404(make_server):
    server = raw_reply_server(make_server, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(gws.HandshakeError) as info:
        gws.open(f"ws://127.0.0.1:{server.port}/missing")
    assert info.value.status == 404
    assert isinstance(info.value, gws.WebSocketError)


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "ws://h:99999/", "ws://", "ws://h/#x"])
def test_open_invalid_url(url):
    with pytest.raises(gws.InvalidURL):
        gws.open(url)
    with pytest.raises(ValueError):
        gws.open(url)


def test_open_send_none_and_bad_close(echo_server):
    with gws.open(port=echo_server) as ws:
        with pytest.raises(TypeError):
            ws.send(None)
        with pytest.raises(ValueError):
            ws.close(1005)
        ws.send("ok")
        assert ws.recv().payload == "ok"


# -- wrap_io over plain Python functions ---------------------------------------------------------


class Pipe:
    """raw_read / raw_write over lists of frames: no sockets at all."""

    def __init__(self, incoming):
        self.incoming = list(incoming)
        self.sent = []
        self.ended = False

    def raw_read(self):
        return self.incoming.pop(0) if self.incoming else None

    def raw_write(self, frame):
        if frame is None:
            self.ended = True
        else:
            self.sent.append(frame)


def test_wrap_io_with_plain_functions():
    pipe = Pipe(
        [
            Message(opcode=OP_TEXT, payload=b"hello"),
            Message(opcode=OP_PING, payload=b"are you there"),
            Message(opcode=OP_BINARY, fin=False, payload=b"\x01"),
            Message(opcode=OP_CONTINUATION, payload=b"\x02"),
            Message(opcode=OP_CLOSE, payload=b"\x03\xe8bye"),
        ]
    )
    read, write = gws.wrap_io(pipe.raw_read, pipe.raw_write, {"mask": False})
    assert read().payload == "hello"
    assert read().payload == b"\x01\x02"  # the ping was answered on the way
    assert read() is None
    assert (read.close_code, read.close_reason, read.error) == (1000, "bye", None)
    assert [(f.opcode, f.payload, f.mask) for f in pipe.sent] == [
        (OP_PONG, b"are you there", False),  # auto pong
        (OP_CLOSE, b"\x03\xe8", False),  # close echoed with the code
    ]
    assert pipe.ended
    assert write(b"late")[0] is False


def test_wrap_io_mask_option_and_write():
    pipe = Pipe([Message(opcode=OP_CLOSE, payload=b"")])
    read, write = gws.wrapIo(pipe.raw_read, pipe.raw_write, {"mask": True, "close_timeout": 100})
    assert write({"payload": "Hello There!"}) == (True, None)
    assert write("text") == (True, None)
    sent = pipe.sent
    assert [(f.opcode, f.payload, f.mask) for f in sent] == [
        (OP_BINARY, b"Hello There!", True),
        (OP_TEXT, b"text", True),
    ]
    assert read() is None
    assert read.close_code == 1005
    assert (sent[-1].opcode, sent[-1].payload) == (OP_CLOSE, b"")


def test_wrap_io_seed_fragments_mode():
    pipe = Pipe([Message(opcode=OP_PING, payload=b"x"), Message(opcode=OP_TEXT, payload=b"\xff")])
    read, write = gws.wrap_io(pipe.raw_read, pipe.raw_write, fragments=True)
    assert read().opcode == OP_PING
    msg = read()
    assert (msg.opcode, msg.payload) == (OP_TEXT, b"\xff")  # raw frames, not checked
    assert read() is None
    assert read.error == "connection closed without a close frame"


def test_wrap_io_protocol_error_sends_close():
    pipe = Pipe([Message(opcode=OP_TEXT, payload=b"\xff")])
    read, write = gws.wrap_io(pipe.raw_read, pipe.raw_write)
    assert read() is None
    assert read.close_code == 1007
    assert pipe.sent[-1].opcode == OP_CLOSE and pipe.sent[-1].payload == b"\x03\xef"
    assert pipe.ended


def test_wrap_io_raw_read_errors_become_values():
    def raw_read():
        raise ConnectionResetError("reset by peer")

    read, write = gws.wrap_io(raw_read, lambda frame: None)
    assert read() is None
    assert "reset by peer" in read.error
    assert read.close_code == 1006


def test_wrap_io_rejects_unknown_options():
    with pytest.raises(ValueError):
        gws.wrap_io(lambda: None, lambda f: None, {"host": "x"})
    with pytest.raises(ValueError):
        gws.wrap_io(lambda: None, lambda f: None, heartbeat=-1)


# -- more edges ---------------------------------------------------------------------------------


def test_first_frame_in_the_same_packet_as_the_101(make_server):
    def handler(sock, address):
        key, _, _ = read_request(sock)
        # the reply and two frames in one write: the client must not lose them
        sock.sendall(
            build_accept(key) + server_frame(OP_TEXT, b"right away") + server_frame(OP_BINARY, b"2")
        )
        ClientFrames(sock).next()

    server = make_server.raw(handler)
    res, read, write = gws.connect(port=server.port)
    assert res, read
    assert read().payload == "right away"
    assert read().payload == b"2"
    write.close()


def test_close_while_another_greenlet_reads(echo_server, no_leaks):
    with no_leaks():
        res, read, write = gws.connect(port=echo_server)
        reader = gevent.spawn(read)
        gevent.sleep(0)  # let the reader block in read()
        assert write.close(4003, "from another greenlet") == (True, None)
        assert reader.get(timeout=5) is None
        assert read.close_code == 4003 and read.error is None


def test_close_reason_too_long_refused(echo_server):
    res, read, write = gws.connect(port=echo_server)
    ok, err = write.close(1000, "x" * 124)
    assert ok is False and "123" in err
    assert write.close(1000, "é" * 61) == (True, None)  # 122 bytes


def test_seed_message_fields_accepted(echo_server):
    res, read, write = gws.connect(port=echo_server)
    msg = {"fin": True, "opcode": 1, "mask": False, "len": 3, "payload": "abc"}
    assert write(msg) == (True, None)
    got = read()
    assert (got.opcode, got.payload, got.len, got.fin) == (OP_TEXT, "abc", 3, True)
    write.close()


def test_many_connections_at_once(echo_server, no_leaks):
    with no_leaks():

        def session(i):
            res, read, write = gws.connect(port=echo_server, heartbeat=1000)
            assert res, read
            for j in range(5):
                write(f"{i}-{j}")
                assert read().payload == f"{i}-{j}"
            assert write.close() == (True, None)
            return i

        greenlets = [gevent.spawn(session, i) for i in range(50)]
        gevent.joinall(greenlets, timeout=15, raise_error=True)
        assert sorted(g.value for g in greenlets) == list(range(50))


def _has_ipv6_loopback() -> bool:
    try:
        probe = gsocket.socket(gsocket.AF_INET6)
        try:
            probe.bind(("::1", 0))
        finally:
            probe.close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_literal_url(make_server):
    server, seen = recording_server(make_server, host="::1")
    res, read, write = gws.connect(f"ws://[::1]:{server.port}/six")
    assert res, read
    assert res.socket.family == socket.AF_INET6
    write("v6")
    request, _ = seen.get(timeout=5)
    assert request.path == "/six"
    assert request.header("Host") == f"[::1]:{server.port}"
    assert read().payload == "v6"
    write.close()


def test_wrap_io_reassembles_text_split_inside_a_character():
    euro = "€".encode()
    pipe = Pipe(
        [
            Message(opcode=OP_TEXT, fin=False, payload=b"price: " + euro[:1]),
            Message(opcode=OP_CONTINUATION, fin=False, payload=euro[1:2]),
            Message(opcode=OP_CONTINUATION, payload=euro[2:] + b"5"),
            Message(opcode=OP_TEXT, fin=False, payload=b"ok" + euro[:2]),
            Message(opcode=OP_CONTINUATION, payload=b"x"),  # \xe2\x82 then "x": invalid
        ]
    )
    read, write = gws.wrap_io(pipe.raw_read, pipe.raw_write)
    msg = read()
    assert (msg.opcode, msg.payload) == (OP_TEXT, "price: €5")
    assert read() is None
    assert read.close_code == 1007


def test_wrap_io_max_size_on_reassembly():
    pipe = Pipe(
        [
            Message(opcode=OP_BINARY, fin=False, payload=b"a" * 60),
            Message(opcode=OP_CONTINUATION, payload=b"a" * 40),
            Message(opcode=OP_BINARY, fin=False, payload=b"b" * 60),
            Message(opcode=OP_CONTINUATION, payload=b"b" * 41),
        ]
    )
    read, write = gws.wrap_io(pipe.raw_read, pipe.raw_write, max_size=100)
    assert read().payload == b"a" * 100  # exactly max_size is fine
    assert read() is None
    assert read.close_code == 1009
    assert pipe.sent[-1].payload == b"\x03\xf1"  # close 1009 sent


@pytest.mark.parametrize(
    ("opcode", "fragment", "count"),
    [(OP_BINARY, b"", 200_000), (OP_BINARY, b"xy", 60_000), (OP_TEXT, "é".encode(), 60_000)],
)
def test_tiny_fragments_cannot_amplify_memory(opcode, fragment, count):
    """Empty fragments never reach max_size, and a list of tiny parts costs
    ~40 bytes each: reassembly must hold about the payload, nothing more."""
    import tracemalloc

    def frames_():
        yield Message(opcode=opcode, fin=False, payload=b"")
        for _ in range(count):
            # a new bytes object per fragment, as decoding from a socket makes
            yield Message(opcode=OP_CONTINUATION, fin=False, payload=bytes(bytearray(fragment)))
        yield Message(opcode=OP_CONTINUATION, payload=b"")

    stream = frames_()
    read, write = gws.wrap_io(lambda: next(stream, None), lambda frame: None)
    tracemalloc.start()
    try:
        msg = read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = len(fragment) * count
    assert msg.len == size
    assert peak < 3 * size + 512 * 1024, f"peak {peak} bytes for a {size}-byte message"
