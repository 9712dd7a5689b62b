"""Integration: the server side, gws.serve / gws.accept / gws.echo, on 127.0.0.1.

Handshake rejection and timeouts, subprotocol selection, server options
(checked when serve() is called), handler errors, fail() and abort() from a
handler, unix sockets, and TLS: the TLS handshake runs inside accept()'s
timeout and stays cooperative with a plain stdlib ``ssl.SSLContext``. Then
the handshake hooks (process_request, origins, select_subprotocol,
basic_auth) as websocket-client, websockets and urllib see them, and the
graceful ``server.stop()``. Clients are ``gws.connect``, raw sockets, or the
blocking third-party clients in real OS threads; the ``deadline`` fixture
bounds every test.
"""

from __future__ import annotations

import base64
import importlib.util
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

# websockets 17.4 needs Python >= 3.11; the quick subset runs on 3.9 and 3.10 too
needs_websocket_client = pytest.mark.skipif(
    importlib.util.find_spec("websocket") is None,
    reason="websocket-client 1.9.2 needs Python >= 3.10",
)
needs_websockets = pytest.mark.skipif(
    importlib.util.find_spec("websockets") is None, reason="websockets 17.4 needs Python >= 3.11"
)

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


# -- handshake hooks: process_request, origins, select_subprotocol ----------------------------
#
# websocket-client and websockets' sync client block their OS thread, so they run
# in a real thread of gevent's thread pool while this thread's hub serves.


def in_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a real OS thread while the hub keeps
    serving: its result, or the exception it raised (bounded: 20 s)."""
    return gevent.get_hub().threadpool.spawn(fn, *args, **kwargs).get(timeout=20)


def refused_logs(caplog):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gws" and r.levelno == logging.INFO and "rejected upgrade" in r.getMessage()
    ]


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers."""
    sock = gsocket.create_connection(("127.0.0.1", port))
    try:
        sock.settimeout(10)
        sock.sendall(data)
        return read_until_closed(sock)
    finally:
        sock.close()


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def websocket_client_echo(url, text, **options):
    import websocket

    ws = websocket.create_connection(url, timeout=10, **options)
    try:
        ws.send(text)
        return ws.recv(), ws.subprotocol
    finally:
        ws.close()


def websocket_client_refused(url, **options):
    """websocket-client's view of a refused upgrade: (status, headers, body)."""
    import websocket

    try:
        ws = websocket.create_connection(url, timeout=10, **options)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code, exc.resp_headers, exc.resp_body
    ws.close()
    raise AssertionError("the upgrade was accepted")


def websockets_echo(url, text, **options):
    from websockets.sync.client import connect

    with connect(url, open_timeout=10, close_timeout=5, proxy=None, **options) as ws:
        ws.send(text)
        return ws.recv(timeout=10), ws.subprotocol


def websockets_refused(url, **options):
    """websockets' view of a refused upgrade: (status, headers, body)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        ws = connect(url, open_timeout=10, proxy=None, **options)
    except InvalidStatus as exc:
        response = exc.response
        return response.status_code, dict(response.headers.raw_items()), response.body
    ws.close()
    raise AssertionError("the upgrade was accepted")


@needs_websocket_client
def test_basic_auth_refused_before_101_for_websocket_client(make_server, caplog):
    server = make_server(gws.echo, process_request=gws.basic_auth({"alice": "s3cret"}))
    with caplog.at_level(logging.INFO, logger="gws"):
        status, headers, body = in_thread(websocket_client_refused, server.url)
        assert status == 401
        assert headers["www-authenticate"] == 'Basic realm="gws", charset="UTF-8"'
        assert body == b"Unauthorized: missing credentials\n"
        bad = "Basic " + base64.b64encode(b"alice:wrong").decode()
        status, _, body = in_thread(
            websocket_client_refused, server.url, header=[f"Authorization: {bad}"]
        )
        assert status == 401 and body == b"Unauthorized: invalid credentials\n"
        good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        echoed = in_thread(
            websocket_client_echo, server.url, "hi", header=[f"Authorization: {good}"]
        )
        assert echoed == ("hi", None)
        assert server.wait_idle(5)
    logged = refused_logs(caplog)
    assert len(logged) == 2, logged
    assert all("401 Unauthorized" in line and "GET /" in line for line in logged)
    assert not any("s3cret" in r.getMessage() or "wrong" in r.getMessage() for r in caplog.records)


@needs_websockets
def test_basic_auth_refused_before_101_for_websockets(make_server):
    server = make_server(gws.echo, process_request=gws.basic_auth({"alice": "s3cret"}))
    status, headers, body = in_thread(websockets_refused, server.url)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="gws", charset="UTF-8"'
    assert body == b"Unauthorized: missing credentials\n"
    # websockets sends a URI's user info as Basic credentials
    authed = f"ws://alice:s3cret@127.0.0.1:{server.port}/"
    assert in_thread(websockets_echo, authed, "hello") == ("hello", None)
    status, _, _ = in_thread(websockets_refused, f"ws://alice:nope@127.0.0.1:{server.port}/")
    assert status == 401


def test_refused_request_never_gets_a_101(make_server, caplog):
    server = make_server(gws.echo, process_request=lambda request: (403, [], "go away"))
    with caplog.at_level(logging.INFO, logger="gws"):
        reply = raw_exchange(server.port, UPGRADE + b"\r\n")
        assert server.wait_idle(5)
    assert reply == (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 7\r\nConnection: close\r\n\r\ngo away"
    )
    assert len(refused_logs(caplog)) == 1
    res, read, _ = gws.connect(port=server.port)
    assert res is None and "403 Forbidden" in read


def health(request):
    if request.path == "/health":
        return gws.HTTPResponse(200, [("Content-Type", "application/json")], b'{"ok": true}')
    return None


def urllib_get(url, method="GET"):
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


@needs_websocket_client
def test_health_check_answered_as_plain_http_on_the_websocket_port(make_server, no_leaks):
    in_thread(int)  # the thread pool's threads and watchers exist before the count
    with no_leaks():
        server = make_server(gws.echo, process_request=health)
        base = f"http://127.0.0.1:{server.port}"
        assert in_thread(urllib_get, base + "/health") == (200, "application/json", b'{"ok": true}')
        assert in_thread(urllib_get, base + "/health", "HEAD") == (200, "application/json", b"")
        # another plain request is not an upgrade: 426, as without hooks
        status, _, body = in_thread(urllib_get, base + "/other")
        assert status == 426 and b"Upgrade" in body
        # and the same port still upgrades
        assert in_thread(websocket_client_echo, server.url, "still a websocket") == (
            "still a websocket",
            None,
        )
        with gws.open(port=server.port, pathname="/health/ws") as ws:
            ws.send("gws too")
            assert ws.recv().payload == "gws too"
        assert server.wait_idle(5)
        server.stop()


def test_hooks_see_the_request_before_the_upgrade_is_checked(make_server):
    seen = []

    def process_request(request):
        seen.append(request)

    server = make_server(gws.echo, process_request=process_request)
    raw_exchange(server.port, b"POST /submit?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    with gws.open(port=server.port, pathname="/chat?room=1", subprotocol="chat") as ws:
        ws.send("x")
        ws.recv()
    first, second = seen
    assert (first.method, first.path, first.header("host")) == ("POST", "/submit?x=1", "h")
    assert second.method == "GET" and second.path == "/chat?room=1"
    assert second.subprotocol is None and second.extensions is None  # not negotiated yet
    assert second.address[0] == "127.0.0.1"


@needs_websockets
@needs_websocket_client
def test_origins_allow_list(make_server):
    server = make_server(gws.echo, origins=["https://app.example", None])
    ok = in_thread(websocket_client_echo, server.url, "o", origin="https://app.example")
    assert ok == ("o", None)
    status, _, body = in_thread(websocket_client_refused, server.url, origin="https://evil.example")
    assert status == 403 and body == b"Forbidden: origin not allowed\n"
    status, _, _ = in_thread(websockets_refused, server.url, origin="https://evil.example")
    assert status == 403
    assert in_thread(websockets_echo, server.url, "w", origin="https://app.example") == ("w", None)
    # None in the list: clients that send no Origin (gws does not) are let in
    with gws.open(port=server.port) as ws:
        ws.send("no origin")
        assert ws.recv().payload == "no origin"


def test_origins_refuse_a_missing_origin_unless_none_is_listed(make_server, caplog):
    server = make_server(gws.echo, origins=("https://app.example",))
    with caplog.at_level(logging.INFO, logger="gws"):
        res, read, _ = gws.connect(port=server.port)
        assert res is None and "403 Forbidden" in read
        assert server.wait_idle(5)
    assert any("no Origin header" in line for line in refused_logs(caplog))
    res, read, write = gws.connect(port=server.port, headers={"Origin": "https://app.example"})
    assert res, read
    write.close()


def test_origins_may_be_a_generator(make_server):
    server = make_server(gws.echo, origins=(o for o in ["https://app.example"]))
    for _ in range(2):  # not used up by the first request
        res, read, write = gws.connect(port=server.port, headers={"Origin": "https://app.example"})
        assert res, read
        write.close()


@needs_websocket_client
def test_origins_are_checked_before_process_request(make_server):
    calls = []
    server = make_server(
        gws.echo, origins=["https://app.example"], process_request=lambda r: calls.append(r)
    )
    status, _, _ = in_thread(websocket_client_refused, server.url, origin="https://evil.example")
    assert status == 403 and calls == []


@needs_websockets
@needs_websocket_client
def test_select_subprotocol_hook(make_server):
    def select(request, offered):
        if request.path.startswith("/v2"):
            return "v2.chat" if "v2.chat" in offered else None
        return offered[0] if offered else None

    server, seen = recording_server(make_server, select_subprotocol=select)
    url = f"ws://127.0.0.1:{server.port}"
    assert in_thread(websockets_echo, url + "/v2", "a", subprotocols=["v1.chat", "v2.chat"]) == (
        "a",
        "v2.chat",
    )
    assert seen.get(timeout=5)[0].subprotocol == "v2.chat"
    assert in_thread(
        websocket_client_echo, url + "/v1", "b", subprotocols=["v1.chat", "v2.chat"]
    ) == ("b", "v1.chat")
    assert seen.get(timeout=5)[0].subprotocol == "v1.chat"
    with gws.open(f"{url}/v2", subprotocol=["v1.chat"]) as ws:  # the hook chose none
        assert ws.subprotocol is None


@needs_websocket_client
def test_select_subprotocol_choosing_one_not_offered_is_a_500(make_server, caplog):
    server = make_server(gws.echo, select_subprotocol=lambda request, offered: "other")
    with caplog.at_level(logging.INFO, logger="gws"):
        status, _, body = in_thread(websocket_client_refused, server.url, subprotocols=["chat"])
        assert server.wait_idle(5)
    assert status == 500 and b"did not offer" in body
    assert len(refused_logs(caplog)) == 1


def test_broken_process_request_answers_500_and_the_server_goes_on(make_server, caplog):
    def process_request(request):
        if request.path == "/boom":
            raise RuntimeError("hook bug")

    server = make_server(gws.echo, process_request=process_request)
    with caplog.at_level(logging.INFO, logger="gws"):
        res, read, _ = gws.connect(port=server.port, pathname="/boom")
        assert res is None and "500 Internal Server Error" in read
        assert server.wait_idle(5)
    assert any(r.exc_info and "process_request failed" in r.getMessage() for r in caplog.records)
    with gws.open(port=server.port, pathname="/fine") as ws:
        ws.send("alive")
        assert ws.recv().payload == "alive"


def test_a_slow_process_request_runs_inside_the_handshake_timeout(make_server):
    never = Event()

    def slow(request):
        never.wait(10)  # a hook stuck on a slow backend

    server = make_server(gws.echo, process_request=slow, timeout=200)
    reply = raw_exchange(server.port, UPGRADE + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), reply
    assert b"101" not in reply.split(b"\r\n", 1)[0]
    assert server.wait_idle(5)


@pytest.mark.parametrize(
    "options",
    [
        {"process_request": "nope"},
        {"select_subprotocol": 1},
        {"origins": "https://app.example"},
        {"origins": [1]},
    ],
)
def test_serve_checks_hook_options_when_called(options):
    with pytest.raises(ValueError):
        gws.serve(gws.echo, "127.0.0.1", 0, start=False, **options)


def test_accept_raises_the_answer_it_sent(make_server):
    outcome = AsyncResult()

    def raw_handler(sock, address):
        try:
            gws.accept(sock, process_request=lambda r: (418, {"X-Tea": "1"}, b"short and stout"))
        except gws.HandshakeError as exc:
            outcome.set(exc)
        finally:
            sock.close()

    server = make_server.raw(raw_handler)
    reply = raw_exchange(server.port, UPGRADE + b"\r\n")
    exc = outcome.get(timeout=5)
    assert (exc.status, exc.headers, exc.body) == (418, [("X-Tea", "1")], b"short and stout")
    assert "GET /ws: answered by process_request with 418" in str(exc)
    assert reply.startswith(b"HTTP/1.1 418 I'm a Teapot\r\nX-Tea: 1\r\n")
    assert reply.endswith(b"\r\n\r\nshort and stout")


# -- handler errors -------------------------------------------------------------------------


def test_handler_errors_never_stop_the_server(make_server, caplog):
    def handler(request, read, write):
        if request.path == "/bad":
            raise ValueError("handler bug")
        gws.echo(request, read, write)

    server = make_server(handler)
    with caplog.at_level(logging.ERROR, logger="gws"):
        for _ in range(3):
            res, read, write = gws.connect(port=server.port, pathname="/bad")
            assert res, read
            assert read() is None and read.close_code == 1011
    assert len([r for r in caplog.records if "handler failed" in r.getMessage()]) == 3
    with gws.open(port=server.port, pathname="/good") as ws:
        ws.send("served")
        assert ws.recv().payload == "served"


# -- graceful stop ----------------------------------------------------------------------------


def websockets_wait_for_close(url, connected):
    """websockets client: connect, report it, then wait for the server's close."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url, open_timeout=10, close_timeout=5, proxy=None) as ws:
        connected.set()
        try:
            ws.recv(timeout=15)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else None
    raise AssertionError("a message instead of the close")


@needs_websockets
@needs_websocket_client
def test_stop_closes_every_connection_with_1001(make_server, no_leaks):
    with no_leaks():
        server = make_server(gws.echo)
        clients = [gws.connect(port=server.port) for _ in range(3)]
        assert all(res for res, _, _ in clients)
        for _, read, write in clients:  # each handler is running
            write("up")
            assert read().payload == "up"
        connected = threading.Event()
        other = gevent.get_hub().threadpool.spawn(websockets_wait_for_close, server.url, connected)
        for _ in range(1000):
            if connected.is_set() and len(server.server.connections) == 4:
                break
            gevent.sleep(0.01)
        assert len(server.server.connections) == 4

        readers = [gevent.spawn(read) for _, read, _ in clients]
        server.server.stop(timeout=5)
        assert other.get(timeout=10) == (1001, "server shutting down")
        gevent.joinall(readers, timeout=5)
        for (_, read, _), g in zip(clients, readers):
            assert g.value is None
            # a clean close; read.error says who closed and why (issue 11)
            assert (read.close_code, read.close_reason, read.exception) == (
                1001,
                "server shutting down",
                None,
            )
            assert read.error == "peer closed with 1001 (going away): 'server shutting down'"
        assert server.server.connections == []
        res, read, _ = gws.connect(port=server.port, timeout=2000)  # no longer accepting
        assert res is None


def silent_client(port: int):
    """A raw client that completes the opening handshake, then neither reads
    nor answers anything: (socket, bytes after the 101)."""
    sock = gsocket.create_connection(("127.0.0.1", port))
    sock.sendall(UPGRADE + b"\r\n")
    head, rest = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock, rest


def test_stop_returns_within_its_deadline_when_a_client_never_answers(make_server, caplog):
    handler_done = Event()

    def handler(request, read, write):
        try:
            gws.echo(request, read, write)
        finally:
            handler_done.set()

    server = make_server(handler)
    sock, rest = silent_client(server.port)
    try:
        for _ in range(500):
            if server.server.connections:
                break
            gevent.sleep(0.01)
        with caplog.at_level(logging.INFO, logger="gws"), gevent.Timeout(10):
            server.server.stop(timeout=1)  # returns: the Timeout of 10 s never fires
        assert handler_done.is_set()
        assert any("did not close in time" in r.getMessage() for r in caplog.records)
        sock.settimeout(5)
        received = rest + read_until_closed(sock)
    finally:
        sock.close()
    # what the silent client got: a close frame with 1001, then the end of the stream
    assert received[:2] == b"\x88\x16" and received[2:4] == (1001).to_bytes(2, "big")
    assert received[4:] == b"server shutting down"


def test_stop_kills_a_handler_that_ignores_the_close(make_server):
    started = Event()

    def stubborn(request, read, write):
        started.set()
        gevent.sleep(60)  # neither reads nor returns

    server = make_server(stubborn)
    res, read, write = gws.connect(port=server.port)
    assert res, read
    assert started.wait(5)
    with gevent.Timeout(10):
        server.server.stop(timeout=1)
    assert server.wait_idle(2)
    assert read() is None and read.close_code == 1001


def test_stop_from_a_handler(make_server):
    def handler(request, read, write):
        for msg in read:
            if msg.payload == "shutdown":
                write("bye")
                request_server.stop(timeout=2)
                return

    server = make_server(handler)
    request_server = server.server
    res1, read1, write1 = gws.connect(port=server.port)
    res2, read2, write2 = gws.connect(port=server.port)
    assert res1 and res2
    write2("shutdown")
    assert read2().payload == "bye"
    assert read2() is None and read2.close_code == 1001
    assert read1() is None and read1.close_code == 1001
    assert server.wait_idle(5)


def test_handshake_completed_during_stop_is_closed_with_1001(make_server):
    ran = []
    server = make_server(lambda request, read, write: ran.append(request))
    sock = gsocket.create_connection(("127.0.0.1", server.port))
    try:
        sock.sendall(UPGRADE)  # head not finished yet
        for _ in range(500):
            if len(server.pool):
                break
            gevent.sleep(0.01)
        stopping = gevent.spawn(server.server.stop, 5)
        gevent.sleep(0)
        assert server.server.stopping
        sock.sendall(b"\r\n")
        sock.settimeout(5)
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 101 ")
        while len(rest) < 4:
            rest += sock.recv(100)
        assert rest[:1] == b"\x88" and rest[2:4] == (1001).to_bytes(2, "big")
        sock.sendall(b"\x88\x82abcd" + bytes(a ^ b for a, b in zip(rest[2:4], b"ab")))
        stopping.get(timeout=10)
    finally:
        sock.close()
    assert ran == []
