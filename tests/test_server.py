"""Integration: the server side, gws.serve / gws.accept / gws.echo, on 127.0.0.1.

Handshake rejection and timeouts, subprotocol selection, server options
(checked when serve() is called), handler errors, fail() and abort() from a
handler, unix sockets, and TLS: the TLS handshake runs inside accept()'s
timeout and stays cooperative with a plain stdlib ``ssl.SSLContext``.
Clients are ``gws.connect`` or raw sockets; the ``deadline`` fixture bounds
every test.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading

import gevent
import gevent.socket as gsocket
import pytest
from gevent.event import AsyncResult, Event
from helpers import read_head, recording_server

import gws
from gws.handshake import MAX_HEAD

pytestmark = pytest.mark.usefixtures("deadline")


def read_until_closed(sock, rounds: int = 20) -> bytes:
    """Everything the server sends until it closes (a reset ends it too);
    each recv bounded by the socket's timeout."""
    reply = b""
    for _ in range(rounds):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        reply += chunk
    return reply


def wait_for_handlers(server, count: int) -> None:
    """Yield to the hub until ``server`` runs ``count`` handlers (bounded)."""
    for _ in range(500):
        if len(server.pool) >= count:
            return
        gevent.sleep(0.01)
    raise AssertionError(f"{len(server.pool)} handlers running, expected {count}")


# -- options -----------------------------------------------------------------------------


def test_server_max_size_enforced(make_server):
    seen = AsyncResult()

    def handler(request, read, write):
        assert read() is None
        seen.set(read.close_code)

    server = make_server(handler, max_size=100)
    res, read, write = gws.connect(port=server.port)
    write(b"q" * 101)
    assert seen.get(timeout=5) == 1009
    assert read() is None and read.close_code == 1009


@pytest.mark.parametrize(
    "options",
    [
        {"bogus": 1},
        {"max_size": "big"},
        {"heartbeat": 0},
        {"heartbeat": -5},
        {"subprotocols": "chat"},  # a str, not a list of them
        {"compression": "gzip"},
        {"timeout": -1},
        {"mask": True},
        {"close_timeout": "x"},
    ],
    ids=lambda options: "-".join(f"{k}={v!r}" for k, v in options.items()),
)
def test_serve_checks_options_when_called(options):
    with pytest.raises(ValueError):
        gws.serve(gws.echo, "127.0.0.1", 0, **options)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "subprotocols": ["chat"],
            "max_size": 1000,
            "heartbeat": 5000,
            "compression": None,
            "timeout": 5000,
            "close_timeout": 1000,
            "headers": [("X-Server", "gws-test")],
        },
        {"max_size": None, "timeout": None, "compression": "deflate", "fragments": False},
    ],
    ids=["defaults", "all-set", "nones"],
)
def test_serve_with_valid_options_works(options):
    server = gws.serve(gws.echo, "127.0.0.1", 0, **options)
    try:
        res, read, write = gws.connect(port=server.server_port, subprotocol="chat")
        assert res, read
        assert res.subprotocol == ("chat" if options.get("subprotocols") else None)
        compressed = options.get("compression", "deflate") is not None
        assert ("permessage-deflate" in res.extensions) is compressed
        assert write("hello") == (True, None)
        assert read().payload == "hello"
        assert write.close() == (True, None)
        assert read.error is None
    finally:
        server.stop(timeout=1)


# -- the opening handshake ------------------------------------------------------------------


def test_server_rejects_plain_http(echo_server):
    sock = gsocket.create_connection(("127.0.0.1", echo_server))
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_head(sock)
        assert head.startswith(b"HTTP/1.1 426 ")
        assert b"Sec-WebSocket-Version: 13" in head
    finally:
        sock.close()


def test_server_handshake_timeout(make_server):
    server = make_server(gws.echo, timeout=200)
    sock = gsocket.create_connection(("127.0.0.1", server.port))
    try:
        sock.settimeout(5)
        reply = b""
        for _ in range(10):  # the 408, then the server's close
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408 "), reply
        assert b"Connection: close" in reply
    finally:
        sock.close()


def _upgrade(
    method: str = "GET",
    upgrade: str = "websocket",
    connection: str = "Upgrade",
    version: str = "13",
    key: str = "dGhlIHNhbXBsZSBub25jZQ==",
) -> bytes:
    lines = [f"{method} /chat HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"Upgrade: {upgrade}", f"Connection: {connection}"]
    lines += [f"Sec-WebSocket-Version: {version}"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Exactly one byte over the limit and no blank line: the server reads it all
# (so closing leaves nothing unread, which would reset the connection).
_TOO_LARGE = (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD)[: MAX_HEAD + 1]


@pytest.mark.parametrize(
    ("data", "status", "options"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, {}),
        (_upgrade(method="POST"), 405, {}),
        (_upgrade(upgrade="h2c"), 426, {}),
        (_upgrade(connection="keep-alive"), 400, {}),
        (_upgrade(version="8"), 426, {}),
        (_upgrade(key=""), 400, {}),
        (_upgrade(key="c2hvcnQ="), 400, {}),
        (b"garbage\r\n\r\n", 400, {}),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", 408, {"timeout": 300}),  # never finished
        (_TOO_LARGE, 431, {}),
    ],
    ids=[
        "plain-http",
        "post",
        "upgrade-h2c",
        "no-connection-upgrade",
        "version-8",
        "no-key",
        "short-key",
        "garbage",
        "incomplete-head",
        "head-too-large",
    ],
)
def test_refused_upgrade_gets_an_http_error_and_a_log_line(
    make_server, caplog, data, status, options
):
    server = make_server(gws.echo, **options)
    with caplog.at_level(logging.INFO, logger="gws"):
        sock = gsocket.create_connection(("127.0.0.1", server.port))
        try:
            sock.settimeout(10)
            sock.sendall(data)
            reply = read_until_closed(sock)
        finally:
            sock.close()
        assert server.wait_idle(5)
    assert not reply.startswith(b"HTTP/1.1 101"), reply
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply
    head, sep, body = reply.partition(b"\r\n\r\n")
    assert sep, reply
    lines = head.split(b"\r\n")[1:]
    assert b"Connection: close" in lines
    assert b"Content-Length: %d" % len(body) in lines
    assert body.strip()  # says why
    if status == 426:
        assert b"Sec-WebSocket-Version: 13" in lines
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "gws" and r.levelno == logging.INFO and "rejected upgrade" in r.getMessage()
    ]
    assert len(logged) == 1, caplog.records


@pytest.mark.parametrize(
    ("offer", "chosen"),
    [
        ("chat", "chat"),
        (["x-unknown", "superchat"], "superchat"),
        (["superchat", "chat"], "superchat"),  # the client's order wins
        (["x-unknown"], None),
        (None, None),
    ],
)
def test_subprotocol_negotiation(make_server, offer, chosen):
    server, seen = recording_server(make_server, subprotocols=["chat", "superchat"])
    options = {"port": server.port}
    if offer is not None:
        options["subprotocol"] = offer
    res, read, write = gws.connect(options)
    assert res, read
    assert res.subprotocol == chosen
    write(b"x")
    request, _ = seen.get(timeout=5)
    assert request.subprotocol == chosen
    expected_offer = [offer] if isinstance(offer, str) else offer
    if expected_offer:
        assert request.header("Sec-WebSocket-Protocol") == ", ".join(expected_offer)
    else:
        assert request.header("Sec-WebSocket-Protocol") is None
    with gws.open(port=server.port, subprotocol=offer or []) as ws:
        assert ws.subprotocol == chosen
    write.close()


# -- handlers ---------------------------------------------------------------------------------


def test_handler_exception_closes_with_1011(make_server, caplog):
    def handler(request, read, write):
        read()
        raise RuntimeError("boom")

    server = make_server(handler)
    res, read, write = gws.connect(port=server.port)
    with caplog.at_level(logging.ERROR, logger="gws"):
        write("trigger")
        assert read() is None
        assert server.wait_idle(5)
    assert read.close_code == 1011
    assert any("handler failed" in r.getMessage() for r in caplog.records)


def test_handler_fail_closes_with_its_code(make_server, no_leaks):
    def handler(request, read, write):
        read.connection.fail(4001, "policy")

    with no_leaks():
        server = make_server(handler)
        res, read, write = gws.connect(port=server.port)
        assert res, read
        assert read() is None
        assert read.close_code == 4001
        assert server.wait_idle(5)
        server.stop()


def test_handler_abort_drops_the_connection(make_server, no_leaks):
    def handler(request, read, write):
        read.connection.abort()

    with no_leaks():
        server = make_server(handler)
        res, read, write = gws.connect(port=server.port)
        assert res, read
        assert read() is None
        assert read.close_code == 1006
        assert server.wait_idle(5)
        server.stop()


# -- unix sockets ---------------------------------------------------------------------------


def test_unix_socket(make_server, tmp_path, no_leaks):
    path = str(tmp_path / "ws.sock")
    with no_leaks():
        server, seen = recording_server(make_server, host="unix:" + path)
        res, read, write = gws.connect(path=path, pathname="/over/unix")
        assert res, read
        assert res.socket.family == socket.AF_UNIX
        write("unix")
        request, msg = seen.get(timeout=5)
        assert request.path == "/over/unix" and request.header("host") == "localhost"
        assert read().payload == "unix"
        write.close()
        server.stop()


def test_unix_socket_file_removed_on_stop(tmp_path):
    path = str(tmp_path / "s.sock")
    server = gws.serve(gws.echo, "unix:" + path)
    try:
        assert os.path.exists(path)
        res, read, write = gws.connect(path=path)
        assert res, read
        assert write("once") == (True, None)
        assert read().payload == "once"
        assert write.close() == (True, None)
    finally:
        server.stop()
    assert not os.path.exists(path)


# -- TLS ------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_tls_handshake_runs_inside_the_accept_timeout(make_server, tls_server_context):
    """A client that connects and never starts TLS is dropped once accept()'s
    timeout expires, and its handler greenlet finishes."""
    server = make_server(gws.echo, ssl_context=tls_server_context, timeout=200)
    sock = gsocket.create_connection(("127.0.0.1", server.port))
    try:
        sock.settimeout(10)
        try:
            assert sock.recv(4096) == b""
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    assert server.wait_idle(5)


@pytest.fixture
def stdlib_tls_server(make_server, tls_cert):
    """A gws server given a plain stdlib ssl.SSLContext (not gevent's)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_cert.configure_cert(ctx)
    assert type(ctx) is ssl.SSLContext
    return make_server(gws.echo, ssl_context=ctx)


def _echo_over_wss(url: str, ca_file: str, text: str, both_open=None):
    res, read, write = gws.connect(url, tls={"ca": ca_file}, timeout=5000)
    assert res, read
    if both_open is not None:
        both_open()
    assert write(text) == (True, None)
    msg = read()
    assert msg is not None and msg.payload == text, read.error
    assert write.close() == (True, None)
    assert read.error is None
    return text


# A regression here blocks the hub for good (the server's TLS handshake would
# wait, hub and all, for a client greenlet that cannot run): the thread method
# dumps the stacks and ends the run instead of hanging it.
@pytest.mark.timeout(30, method="thread")
def test_stdlib_ssl_context_serves_clients_concurrently(stdlib_tls_server, tls_ca_file):
    opened = []
    all_open = Event()

    def both_open():
        opened.append(1)
        if len(opened) == 2:
            all_open.set()
        assert all_open.wait(5), "the two TLS connections were never open together"

    url = stdlib_tls_server.url
    greenlets = [
        gevent.spawn(_echo_over_wss, url, tls_ca_file, f"client {i}", both_open) for i in range(2)
    ]
    gevent.joinall(greenlets, timeout=10, raise_error=True)
    assert [g.value for g in greenlets] == ["client 0", "client 1"]
    assert stdlib_tls_server.wait_idle(5)


def _stalled_tcp_client(port: int, release: threading.Event) -> None:
    """In an OS thread of its own (stdlib socket): connect, send nothing,
    hang up once released or after 10 s, which also unblocks a hub stuck in
    a blocking TLS handshake, so a regression fails instead of hanging."""
    with socket.create_connection(("127.0.0.1", port)):
        release.wait(10)


@pytest.mark.timeout(30)
def test_stdlib_ssl_context_stalled_handshake_does_not_block_the_hub(
    stdlib_tls_server, tls_ca_file
):
    release = threading.Event()
    stalled = threading.Thread(
        target=_stalled_tcp_client, args=(stdlib_tls_server.port, release), daemon=True
    )
    stalled.start()
    try:
        wait_for_handlers(stdlib_tls_server, 1)  # its TLS handshake has started
        with gevent.Timeout(10):
            assert _echo_over_wss(stdlib_tls_server.url, tls_ca_file, "not blocked") == (
                "not blocked"
            )
        assert len(stdlib_tls_server.pool) >= 1  # the stalled one still waits
    finally:
        release.set()
        stalled.join(5)
    assert stdlib_tls_server.wait_idle(5)
