"""gws.wsgi under gevent.pywsgi: a Flask app's WebSocket views and HTTP routes
on one port, talked to by real clients.

The server runs in this process's hub. websocket-client and websockets
block their OS thread, so they run in a real thread (``in_thread``) while
the hub serves; Node ``ws`` runs as a subprocess. Nothing is monkey-patched.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import urllib.error
import urllib.request
from typing import Any, Iterator

import flask_app
import gevent
import gevent.socket as gsocket
import pytest
from helpers import (
    ClientFrames,
    WSGIServerHandle,
    check_node_wsgi_client,
    close_code_of,
    in_thread,
    node_peer,
    read_head,
    run_node,
    settle,
    warm_up,
)
from helpers import fd_count as count_fds
from helpers import live_greenlets as greenlets_now

import gws
import gws.wsgi
from gws.frames import OP_CLOSE, OP_PING, OP_TEXT, encode_frame
from gws.handshake import build_request, make_key, parse_response

websocket = pytest.importorskip("websocket")  # websocket-client


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app, handler_class=None, **server_kwargs)`` -> a started
    WSGIServerHandle, ``serve.adopt(server)`` for a server built by the code
    under test; all are stopped at teardown, the test bounded to 60 s."""
    handles = []

    def start(app: Any, handler_class: Any = None, **kwargs: Any) -> WSGIServerHandle:
        handle = WSGIServerHandle(app, handler_class, **kwargs)
        handles.append(handle)
        return handle

    def adopt(server: Any) -> WSGIServerHandle:
        handle = WSGIServerHandle.adopt(server)
        handles.append(handle)
        return handle

    start.adopt = adopt  # type: ignore[attr-defined]

    with gevent.Timeout(60):
        try:
            yield start
        finally:
            for handle in handles:
                handle.stop()


@pytest.fixture
def flask_server(serve) -> WSGIServerHandle:
    flask_app.SEEN.clear()
    return serve(flask_app.app)


@pytest.fixture
def sockets_server(serve) -> WSGIServerHandle:
    flask_app.SEEN.clear()
    return serve(flask_app.sockets)


def http_get(url: str) -> Any:
    """(status, body) of a plain GET with urllib (in a thread)."""

    def get() -> Any:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return in_thread(get)


# -- plain HTTP on the same port ---------------------------------------------------


def test_flask_http_routes_still_answer_next_to_websockets(flask_server):
    assert http_get(flask_server.url("/", "http")) == (200, b"hello from flask")
    status, body = http_get(flask_server.url("/json", "http"))
    assert status == 200 and json.loads(body)["ok"] is True
    assert http_get(flask_server.url("/nowhere", "http"))[0] == 404
    # a WebSocket view (websocket=True) asked for with plain HTTP: Werkzeug's 400
    assert http_get(flask_server.url("/echo", "http"))[0] == 400


def test_http_keep_alive_requests_then_an_upgrade_on_another_connection(flask_server):
    def run() -> Any:
        conn = socket.create_connection(("127.0.0.1", flask_server.port), timeout=10)
        with conn:
            for _ in range(2):
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while b"hello from flask" not in data:
                    chunk = conn.recv(4096)
                    assert chunk
                    data += chunk
        ws = websocket.create_connection(flask_server.url("/echo"), timeout=10)
        ws.send("after http")
        try:
            return ws.recv()
        finally:
            ws.close()

    assert in_thread(run) == "after http"


# -- websocket-client 1.9.2 ------------------------------------------------------------


def test_websocket_client_text_and_binary_echo(flask_server):
    def run() -> Any:
        ws = websocket.create_connection(flask_server.url("/echo"), timeout=10)
        try:
            ws.send("héllo ☃")
            text = ws.recv()
            ws.send_binary(bytes(range(256)))
            opcode, data = ws.recv_data()
            ws.send("")
            empty = ws.recv()
            return text, opcode, data, empty
        finally:
            ws.close()

    text, opcode, data, empty = in_thread(run)
    assert text == "héllo ☃"
    assert opcode == websocket.ABNF.OPCODE_BINARY and data == bytes(range(256))
    assert empty == ""
    # websocket-client offers no compression: none was negotiated
    assert flask_server.wait_idle()
    assert flask_app.SEEN[-1]["compressed"] is False
    assert flask_app.SEEN[-1]["extensions"] is None


def test_websocket_client_sees_the_close_code_the_view_chose(flask_server):
    def run() -> Any:
        ws = websocket.create_connection(flask_server.url("/close/4001"), timeout=10)
        try:
            ws.send("go")
            frame = ws.recv_frame()
            return frame.opcode, frame.data
        finally:
            ws.close()

    opcode, data = in_thread(run)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 4001 and data[2:] == b"bye"


def test_view_that_raises_closes_with_1011_and_the_server_goes_on(flask_server, caplog):
    def run(path: str) -> Any:
        ws = websocket.create_connection(flask_server.url(path), timeout=10)
        try:
            ws.send("go")
            frame = ws.recv_frame()
            return frame.opcode, int.from_bytes(frame.data[:2], "big")
        finally:
            ws.close()

    # Flask turns the exception into a 500 response, which gws sees after the 101
    with caplog.at_level(logging.ERROR, logger="gws"):
        assert in_thread(run, "/boom") == (OP_CLOSE, 1011)
    assert any("answered 500" in r.getMessage() for r in caplog.records)
    assert in_thread(run, "/close/1000") == (OP_CLOSE, 1000)


def test_plain_wsgi_app_that_raises_closes_with_1011(serve, caplog):
    def app(environ, start_response):
        environ["wsgi.websocket"].receive()
        raise KeyError("no such thing")

    server = serve(app)
    with caplog.at_level(logging.ERROR, logger="gws"):
        for _ in range(2):  # the server goes on
            res, read, write = gws.connect(server.url())
            assert res, read
            write("go")
            assert read() is None
            assert read.close_code == 1011
    failed = [r for r in caplog.records if "WebSocket application failed" in r.getMessage()]
    assert len(failed) == 2 and failed[0].exc_info[0] is KeyError


def test_view_that_returns_closes_with_1000(serve):
    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ws.send("one message, then return")
        return []

    server = serve(app)
    res, read, write = gws.connect(server.url())
    assert res, read
    assert read().payload == "one message, then return"
    assert read() is None
    assert read.close_code == 1000 and read.error is None


def test_the_view_sees_the_close_code_the_client_sent(flask_server):
    def run() -> None:
        ws = websocket.create_connection(flask_server.url("/record"), timeout=10)
        ws.close(status=4003, reason=b"client says bye")

    in_thread(run)
    assert flask_server.wait_idle()
    assert flask_app.SEEN[-1] == {
        "path": "/record",
        "close_code": 4003,
        "close_reason": "client says bye",
    }


# -- websockets 17.4 (sync client) ---------------------------------------------------------


def test_websockets_client_negotiates_compression_and_echoes(flask_server):
    sync_client = pytest.importorskip("websockets.sync.client")

    def run() -> Any:
        with sync_client.connect(flask_server.url("/info"), open_timeout=10) as ws:
            info = json.loads(ws.recv(timeout=10))
            text = "compressible " * 200
            ws.send(text)
            got_text = ws.recv(timeout=10)
            ws.send(b"\x00\xff" * 300)
            got_binary = ws.recv(timeout=10)
            header = ws.response.headers.get("Sec-WebSocket-Extensions")
            return info, got_text == text, got_binary == b"\x00\xff" * 300, header

    info, text_ok, binary_ok, header = in_thread(run)
    assert text_ok and binary_ok
    assert header is not None and header.startswith("permessage-deflate")
    assert info["compressed"] is True and info["path"] == "/info"
    assert info["extensions"].startswith("permessage-deflate")


def test_websockets_client_close_codes_both_ways(flask_server):
    sync_client = pytest.importorskip("websockets.sync.client")
    exceptions = pytest.importorskip("websockets.exceptions")

    def server_closes() -> Any:
        with sync_client.connect(flask_server.url("/close/4005"), open_timeout=10) as ws:
            ws.send("go")
            try:
                ws.recv(timeout=10)
            except exceptions.ConnectionClosed as exc:
                return exc.rcvd.code, exc.rcvd.reason
        return None

    def view_raises() -> Any:
        with sync_client.connect(flask_server.url("/boom"), open_timeout=10) as ws:
            ws.send("go")
            try:
                ws.recv(timeout=10)
            except exceptions.ConnectionClosedError as exc:
                return exc.rcvd.code
        return None

    def client_closes() -> None:
        with sync_client.connect(flask_server.url("/record"), open_timeout=10) as ws:
            ws.close(4006, "websockets done")

    assert in_thread(server_closes) == (4005, "bye")
    assert in_thread(view_raises) == 1011
    in_thread(client_closes)
    assert flask_server.wait_idle()
    assert flask_app.SEEN[-1]["close_code"] == 4006
    assert flask_app.SEEN[-1]["close_reason"] == "websockets done"


# -- Node ws 8.23 ---------------------------------------------------------------------------


def test_node_ws_client_text_binary_compression_and_close(flask_server):
    check_node_wsgi_client(flask_server.url("/info"))


def test_node_ws_client_sees_the_server_close_code(flask_server):
    node_peer("ws")
    proc = run_node("wsgi_client.js", flask_server.url("/close/4007"), "closed")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert (result["close_code"], result["close_reason"]) == (4007, "bye")


# -- hooks before the 101, routing, options (WebSocketApp) ----------------------------------


def test_route_options_pick_the_subprotocol_and_check_the_origin(sockets_server):
    def run(origin: Any, subprotocols: Any) -> Any:
        try:
            ws = websocket.create_connection(
                sockets_server.url("/ws/chat"),
                timeout=10,
                origin=origin,
                subprotocols=subprotocols,
                suppress_origin=origin is None,
            )
        except websocket.WebSocketBadStatusException as exc:
            return exc.status_code
        try:
            return ws.getsubprotocol(), ws.recv()
        finally:
            ws.close()

    assert in_thread(run, "http://allowed.test", ["chat.v1", "chat.v2"]) == (
        "chat.v1",
        "subprotocol=chat.v1",
    )
    assert in_thread(run, None, ["chat.v2"]) == ("chat.v2", "subprotocol=chat.v2")
    assert in_thread(run, "http://evil.test", ["chat.v1"]) == 403


def test_basic_auth_hook_refuses_before_the_101(sockets_server, caplog):
    def with_websocket_client(header: Any) -> Any:
        try:
            ws = websocket.create_connection(
                sockets_server.url("/ws/private"), timeout=10, header=header
            )
        except websocket.WebSocketBadStatusException as exc:
            return exc.status_code, exc.resp_headers.get("www-authenticate")
        try:
            return ws.recv()
        finally:
            ws.close()

    good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"alice:wrong").decode()
    with caplog.at_level(logging.INFO, logger="gws"):
        assert in_thread(with_websocket_client, []) == (401, 'Basic realm="tests", charset="UTF-8"')
        assert in_thread(with_websocket_client, [f"Authorization: {bad}"])[0] == 401
    assert in_thread(with_websocket_client, [f"Authorization: {good}"]) == "welcome alice"
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2 and all("401" in m for m in refused)
    assert not any("s3cret" in r.getMessage() or "wrong" in r.getMessage() for r in caplog.records)


def test_basic_auth_hook_refusal_as_websockets_sees_it(sockets_server):
    sync_client = pytest.importorskip("websockets.sync.client")
    exceptions = pytest.importorskip("websockets.exceptions")

    def run() -> Any:
        try:
            with sync_client.connect(sockets_server.url("/ws/private"), open_timeout=10):
                return None
        except exceptions.InvalidStatus as exc:
            return exc.response.status_code

    assert in_thread(run) == 401


def test_unrouted_websocket_path_gets_the_apps_404_not_a_101(sockets_server):
    def run() -> Any:
        try:
            websocket.create_connection(sockets_server.url("/ws/none"), timeout=10)
        except websocket.WebSocketBadStatusException as exc:
            return exc.status_code
        return None

    assert in_thread(run) == 404
    # only routes upgrade: the wrapped app's own view gets a plain request
    res, error, _ = gws.connect(sockets_server.url("/echo"))
    assert res is None and "400" in error
    assert sockets_server.wait_idle()
    assert flask_app.SEEN == []
    # the wrapped Flask app still serves plain HTTP
    assert http_get(sockets_server.url("/", "http")) == (200, b"hello from flask")


def test_route_max_size_closes_with_1009(sockets_server):
    def run() -> Any:
        ws = websocket.create_connection(sockets_server.url("/ws/small"), timeout=10)
        try:
            ws.send("x" * 17)
            frame = ws.recv_frame()
            return frame.opcode, int.from_bytes(frame.data[:2], "big")
        finally:
            ws.close()

    assert in_thread(run) == (OP_CLOSE, 1009)
    assert sockets_server.wait_idle()
    assert flask_app.SEEN[-1] == {"path": "/ws/small", "close_code": 1009}


def test_configured_handler_heartbeat_pings_the_client(serve):
    handler = gws.wsgi.WebSocketHandler.configure(heartbeat=50, heartbeat_timeout=5000)
    server = serve(flask_app.app, handler)

    def run() -> Any:
        ws = websocket.create_connection(server.url("/echo"), timeout=10)
        try:
            frame = ws.recv_frame()
            return frame.opcode
        finally:
            ws.close()

    assert in_thread(run) == OP_PING


def test_configure_checks_options_at_once():
    with pytest.raises(ValueError, match="unknown option 'heartbeet'"):
        gws.wsgi.WebSocketHandler.configure(heartbeet=1000)
    with pytest.raises(ValueError, match="mask"):
        gws.wsgi.WebSocketHandler.configure(mask=True)
    with pytest.raises(ValueError, match="origins"):
        gws.wsgi.WebSocketHandler.configure(origins="http://a.test")
    with pytest.raises(ValueError, match="compression"):
        gws.wsgi.WebSocketApp(compression="brotli")
    with pytest.raises(ValueError, match="max_size"):
        gws.wsgi.WebSocketServer(("127.0.0.1", 0), flask_app.app, max_size=-1)
    with pytest.raises(ValueError, match="header"):
        gws.wsgi.WebSocketHandler.configure(headers=[("X-Bad", "line\r\nbreak")])
    with pytest.raises(ValueError, match="headers"):
        gws.wsgi.WebSocketHandler.configure(headers="X-A: b")
    with pytest.raises(ValueError, match="process_request"):
        gws.wsgi.WebSocketApp().route("/x", process_request="nope")
    configured = gws.wsgi.WebSocketHandler.configure(heartbeat=1000).configure(max_size=10)
    assert configured.websocket_options == {"heartbeat": 1000, "max_size": 10}
    assert gws.wsgi.WebSocketHandler.websocket_options == {}


def test_compression_none_declines_permessage_deflate(serve):
    server = serve(flask_app.app, gws.wsgi.WebSocketHandler.configure(compression=None))
    res, read, write = gws.connect(server.url("/info"))
    assert res, read
    assert not res.extensions
    assert json.loads(read().payload)["compressed"] is False
    write.close()


# -- malformed upgrades: a plain HTTP error, never a 101 ------------------------------------


def raw_exchange(port: int, request: bytes) -> Any:
    sock = gsocket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(request)
        head, rest = read_head(sock)
        _version, code, _reason, headers = parse_response(head)
        for _ in range(100):  # the body, up to the server's close (Connection: close)
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return code, dict((k.lower(), v) for k, v in headers), rest
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("mangle", "status"),
    [
        (lambda r: r.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"), 426),
        (lambda r: r.replace(b"Sec-WebSocket-Key: ", b"Sec-WebSocket-Key: short"), 400),
        (lambda r: r.replace(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
        (lambda r: r.replace(b"GET ", b"POST "), 405),
        (lambda r: r.replace(b"HTTP/1.1", b"HTTP/1.0"), 400),
    ],
)
def test_malformed_upgrade_gets_an_http_error(flask_server, mangle, status):
    request = mangle(build_request("127.0.0.1", "/echo", make_key()))
    code, headers, _ = raw_exchange(flask_server.port, request)
    assert code == status
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    assert flask_server.wait_idle()
    assert flask_app.SEEN == []  # the view never ran


def test_frames_sent_right_after_the_request_are_not_lost(flask_server):
    """A client that sends its first frame in the same packet as the
    request: the bytes pywsgi's reader buffered past the head reach gws."""
    key = make_key()
    request = build_request("127.0.0.1", "/echo", key)
    frame = encode_frame(OP_TEXT, b"early bird", mask=True)
    sock = gsocket.create_connection(("127.0.0.1", flask_server.port))
    try:
        sock.sendall(request + frame)
        head, rest = read_head(sock)
        assert parse_response(head)[1] == 101
        frames = ClientFrames(sock, rest)
        frames.decoder = type(frames.decoder)(expect_masked=False, rsv_allowed=0x40)
        frames.decoder.feed(rest)
        echo = frames.next()
        assert echo is not None and echo.payload == b"early bird"
        sock.sendall(encode_frame(OP_CLOSE, (1000).to_bytes(2, "big"), mask=True))
        assert close_code_of(frames.until_close()) == 1000
    finally:
        sock.close()


# -- the gws client, and what a connection leaves behind ------------------------------------


def test_gws_client_against_the_flask_app_leaves_nothing_behind(flask_server):
    warm_up()

    def one_round() -> None:
        res, read, write = gws.connect(flask_server.url("/echo"), heartbeat=1000)
        assert res, read
        write(b"\x01" * 1000)
        assert read().payload == b"\x01" * 1000
        write.close(4010, "gws done")

    one_round()  # pywsgi's lazy state (environ templates, log) is made here
    assert flask_server.wait_idle()
    settle()
    greenlets, fds = greenlets_now(), count_fds()
    for _ in range(3):
        one_round()
    assert flask_server.wait_idle()
    settle()
    assert count_fds() == fds
    extra = [g for g in greenlets_now() if not any(g is b for b in greenlets)]
    assert not extra, extra
    assert flask_server.server.clients == {}


# -- gevent-websocket apps, ported by changing the import --------------------------------------


def test_gevent_websocket_chat_example_ported_with_one_import_change(serve):
    import gevent_websocket_app

    server = gevent_websocket_app.chat_server(("127.0.0.1", 0))
    handle = serve.adopt(server)
    url = f"ws://127.0.0.1:{server.server_port}/chat"

    def run() -> Any:
        alice = websocket.create_connection(url, timeout=10)
        bob = websocket.create_connection(url, timeout=10)
        try:
            alice.send(json.dumps({"msg_type": "update_clients", "nickname": "alice"}))
            clients = json.loads(alice.recv())
            alice.send(json.dumps({"msg_type": "message", "nickname": "alice", "message": "hi"}))
            to_alice, to_bob = json.loads(alice.recv()), json.loads(bob.recv())
            return clients, to_alice, to_bob
        finally:
            alice.close()
            bob.close()

    clients, to_alice, to_bob = in_thread(run)
    assert clients["msg_type"] == "update_clients"
    assert sorted(clients["clients"]) == ["alice", "anonymous"]
    expected = {"msg_type": "message", "nickname": "alice", "message": "hi"}
    assert to_alice == expected and to_bob == expected
    # the Flask app behind the Resource still answers HTTP
    index = f"http://127.0.0.1:{server.server_port}/"
    assert http_get(index) == (200, b"chat index")
    assert handle.wait_idle()
    assert server.clients == {}


def test_gevent_websocket_pywsgi_example_ported_with_one_import_change(serve):
    import gevent_websocket_app

    server = gevent_websocket_app.echo_server(("127.0.0.1", 0))
    serve.adopt(server)

    def run() -> Any:
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.server_port}/", timeout=10)
        try:
            ws.send("ported")
            return ws.recv()
        finally:
            ws.close()

    assert in_thread(run) == "ported"


def test_send_after_the_peer_closed_raises_websocket_error(serve):
    outcome: list = []

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        assert ws.receive() is None  # the client closed at once
        assert ws.closed
        try:
            ws.send("too late")
        except gws.wsgi.WebSocketError as exc:
            outcome.append(type(exc).__name__)
        ws.close()  # idempotent
        return []

    server = serve(app)
    res, read, write = gws.connect(server.url())
    assert res, read
    write.close(1000)
    assert server.wait_idle()
    assert outcome == ["InvalidState"]


def test_tls_pywsgi_server_upgrades_over_wss(serve, tls_server_context, tls_ca_file):
    server = serve(flask_app.app, ssl_context=tls_server_context)
    assert http_get_tls(server.port, tls_ca_file) == (200, b"hello from flask")
    res, read, write = gws.connect(server.url("/info", "wss"), tls={"ca": tls_ca_file})
    assert res, read
    assert json.loads(read().payload)["compressed"] is True
    write(b"\x00" * 70000)
    assert read().payload == b"\x00" * 70000
    write.close()
    assert read() is None and read.close_code == 1000


def http_get_tls(port: int, ca_file: str) -> Any:
    import ssl

    ctx = ssl.create_default_context(cafile=ca_file)

    def get() -> Any:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=10, context=ctx) as r:
            return r.status, r.read()

    return in_thread(get)


def test_select_subprotocol_headers_and_a_bad_selector(serve):
    def choose(request, offered):
        return "b" if "b" in offered else None

    def bad(request, offered):
        return "not-offered"

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ws.send(f"{ws.protocol}|{ws.request.header('X-Hello')}")
        return []

    handler = gws.wsgi.WebSocketHandler.configure(
        select_subprotocol=choose, headers=[("X-Served-By", "gws.wsgi")]
    )
    server = serve(app, handler)
    res, read, write = gws.connect(
        server.url(), subprotocol=["a", "b"], headers=[("X-Hello", "there")]
    )
    assert res, read
    assert res.subprotocol == "b"
    assert ("X-Served-By", "gws.wsgi") in res.headers
    assert read().payload == "b|there"

    broken = serve(app, gws.wsgi.WebSocketHandler.configure(select_subprotocol=bad))
    res, error, _ = gws.connect(broken.url(), subprotocol=["a"])
    assert res is None and "500" in error


def test_process_request_answers_plain_http_on_a_websocket_path(serve, caplog):
    def health(request):
        if request.path == "/health":
            return 200, [("X-Check", "ok")], "healthy\n"
        return None

    handler = gws.wsgi.WebSocketHandler.configure(process_request=health)
    server = serve(flask_app.app, handler)
    with caplog.at_level(logging.INFO, logger="gws"):
        code, headers, body = raw_exchange(
            server.port, build_request("127.0.0.1", "/health", make_key())
        )
    assert (code, headers["x-check"], body) == (200, "ok", b"healthy\n")
    assert any("refused WebSocket upgrade" in r.getMessage() for r in caplog.records)
    res, read, write = gws.connect(server.url("/echo"))
    assert res, read
    write.close()


def test_websocket_server_takes_websocket_options_as_keywords(serve):
    server = gws.wsgi.WebSocketServer(
        ("127.0.0.1", 0), flask_app.app, origins=["http://ok.test"], log=None
    )
    serve.adopt(server)
    url = f"ws://127.0.0.1:{server.server_port}/echo"
    res, error, _ = gws.connect(url, headers=[("Origin", "http://evil.test")])
    assert res is None and "403" in error
    res, read, write = gws.connect(url, headers=[("Origin", "http://ok.test")])
    assert res, read
    write.close()


def test_send_binary_flag_overrides_the_type(serve):
    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        ws.send("as binary", binary=True)
        ws.send("snow ☃".encode(), binary=False)
        ws.send(bytearray(b"\x01\x02"))
        ws.send(None)  # gevent-websocket: nothing is sent
        ws.send(b"")
        return []

    server = serve(app)
    res, read, write = gws.connect(server.url())
    assert res, read
    got = [(m.opcode, m.payload) for m in read]
    assert got == [
        (gws.OP_BINARY, b"as binary"),
        (gws.OP_TEXT, "snow ☃"),
        (gws.OP_BINARY, b"\x01\x02"),
        (gws.OP_BINARY, b""),
    ]
    assert read.close_code == 1000


def test_many_clients_at_once(flask_server):
    def one(i: int) -> Any:
        res, read, write = gws.connect(flask_server.url("/echo"))
        assert res, read
        for j in range(5):
            write(f"{i}:{j}")
            assert read().payload == f"{i}:{j}"
        write.close()
        return i

    jobs = [gevent.spawn(one, i) for i in range(50)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    assert sorted(j.value for j in jobs) == list(range(50))
    assert flask_server.wait_idle()
    assert flask_server.server.clients == {}


def test_websocket_server_stop_closes_open_websockets_with_1001(serve):
    server = gws.wsgi.WebSocketServer(("127.0.0.1", 0), flask_app.app, log=None)
    handle = serve.adopt(server)
    url = f"ws://127.0.0.1:{server.server_port}/echo"
    clients = [gws.connect(url) for _ in range(3)]
    for res, read, write in clients:
        assert res, read
        write("hello")
        assert read().payload == "hello"
    stopper = gevent.spawn(server.stop, 5)
    for _, read, _ in clients:
        assert read() is None
        assert (read.close_code, read.close_reason, read.exception) == (1001, "going away", None)
        assert read.error == "peer closed with 1001 (going away): 'going away'"
    stopper.join(10)
    assert stopper.successful()
    assert handle.wait_idle()
    assert server.clients == {}


def test_broadcast_to_the_servers_clients(serve):
    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        for message in ws:
            if message.payload == "ready":  # this app is in server.clients by now
                ws.send("registered")
            else:
                gws.broadcast(ws.handler.server.clients.values(), message.payload)
        return []

    server = serve(app)
    clients = [gws.connect(server.url()) for _ in range(4)]
    for res, read, write in clients:
        assert res, read
        write("ready")
        assert read().payload == "registered"
    clients[0][2]("to everyone")
    for _, read, _ in clients:
        assert read().payload == "to everyone"
    for _, _, write in clients:
        write.close()


def test_resource_routes_by_regex_and_offers_the_apps_protocol(serve):
    class Echo(gws.wsgi.WebSocketApplication):
        protocol_name_value = "echo.v1"
        opened: list = []

        def on_open(self):
            self.opened.append(self.ws.path)

    def hello(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    server = serve(gws.wsgi.Resource([("^/ws", Echo), ("^/hello", hello)]))
    res, read, write = gws.connect(server.url("/ws/x"), subprotocol=["echo.v1"])
    assert res, read
    assert res.subprotocol == "echo.v1"
    write("round trip")
    assert read().payload == "round trip"
    write.close()
    assert Echo.opened == ["/ws/x"]
    assert http_get(server.url("/hello", "http")) == (200, b"hello")
    assert http_get(server.url("/nothing", "http"))[0] == 404
    res, error, _ = gws.connect(server.url("/hello"))  # no WebSocket app there: plain HTTP
    assert res is None and "200" in error


def test_django_app_websocket_view_and_http_route(serve):
    pytest.importorskip("django")
    import django_app

    server = serve(django_app.application)
    assert http_get(server.url("/", "http")) == (200, b"hello from django")
    assert http_get(server.url("/echo", "http")) == (400, b"WebSocket expected here\n")

    def run() -> Any:
        ws = websocket.create_connection(server.url("/echo"), timeout=10)
        try:
            ws.send("from websocket-client")
            text = ws.recv()
            ws.send_binary(b"\x00\x01")
            return text, ws.recv_data()
        finally:
            ws.close()

    assert in_thread(run) == ("from websocket-client", (websocket.ABNF.OPCODE_BINARY, b"\x00\x01"))
    res, read, write = gws.connect(server.url("/echo"))
    assert res, read
    assert "permessage-deflate" in res.extensions
    write("compressed " * 50)
    assert read().payload == "compressed " * 50
    write.close()
