"""gws.compat.websocket_client against websocket-client 1.9.2 itself.

Each scenario is a program written for websocket-client (its README
examples, a WebSocketApp, a reconnecting feed), run unchanged against both
modules (the ``websocket`` fixture is parametrized over the two) and checked
against the same expected callbacks, arguments, return values and
exceptions. The servers are gws servers in this process.

Where the client runs: websocket-client blocks its OS thread in socket
calls, so run in the test's thread it would freeze the gevent hub serving
the test's servers. :func:`in_thread` runs the client program in a real OS
thread (gevent's ThreadPool; nothing is monkey-patched) while the test's
greenlet waits on the result through the hub, which keeps the servers
responsive. gws.compat runs the same program the same way: a threaded
program that never monkey-patches is what it is for (gws gets a hub of its
own in that thread).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import socket
import ssl
import struct
import threading
from typing import Any, Callable, Iterator, List

import pytest
from gevent.event import AsyncResult, Event
from gevent.server import StreamServer
from gevent.threadpool import ThreadPool
from helpers import (
    DEADLINE,
    ClientFrames,
    accept_reply,
    close_code_of,
    fd_count,
    read_request,
    server_frame,
)

import gws
import gws.compat.websocket_client as compat
from gws.compat import _wsclient_options as options

# websocket-client 1.9.2 (the reference this layer is tested against) needs Python >= 3.10
websocket_client = pytest.importorskip(
    "websocket", reason="websocket-client 1.9.2 needs Python >= 3.10"
)

pytestmark = pytest.mark.usefixtures("deadline")

MODULES = [
    pytest.param(websocket_client, id="websocket-client"),
    pytest.param(compat, id="gws-compat"),
]


@pytest.fixture(params=MODULES)
def websocket(request: Any) -> Any:
    """The module under test: websocket-client 1.9.2, or gws's compatibility layer."""
    return request.param


@contextlib.contextmanager
def started_in_thread(fn: Callable[..., Any], *args: Any) -> Iterator[AsyncResult]:
    """``fn(*args)`` started in a real OS thread (gevent's ThreadPool): the
    block gets its AsyncResult, and the pool is killed when the block ends."""
    pool = ThreadPool(1)
    try:
        yield pool.spawn(fn, *args)
    finally:
        pool.kill()


def in_thread(fn: Callable[..., Any], *args: Any, timeout: float = DEADLINE) -> Any:
    """Run ``fn(*args)`` in a real OS thread; wait for it in gevent (see the
    module docstring). Bounded: a hung client fails the test with gevent.Timeout."""
    with started_in_thread(fn, *args) as job:
        return job.get(timeout=timeout)


def described(exc: BaseException) -> tuple:
    """An exception as both modules can be compared on: class name and text."""
    return (type(exc).__name__, str(exc))


# -- servers ---------------------------------------------------------------------------------


def greeter(request, read, write):
    """echo.websocket.events's behaviour: a greeting, then echo."""
    write("echo.websocket.events sponsored by Lob.com")
    gws.echo(request, read, write)


def raw_403(sock, address):
    read_request(sock)
    sock.sendall(
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 9\r\nX-Why: test\r\n\r\nforbidden"
    )
    sock.close()


def says_then_closes(*messages: str, code: int = 1001, reason: str = "bye"):
    def handler(request, read, write):
        for text in messages:
            write(text)
        write.close(code, reason)

    return handler


# -- README: create_connection -------------------------------------------------------------


def readme_short_lived(websocket: Any, url: str) -> List[Any]:
    # websocket-client's README, "Short-lived one-off send-receive"
    out = []
    ws = websocket.create_connection(url)
    out.append(ws.recv())
    out.append(ws.send("Hello, World"))
    out.append(ws.recv())
    out.append((ws.getstatus(), ws.connected))
    ws.close()
    out.append(ws.connected)
    return out


def test_readme_create_connection(websocket, make_server):
    server = make_server(greeter)
    assert in_thread(readme_short_lived, websocket, server.url) == [
        "echo.websocket.events sponsored by Lob.com",
        18,  # bytes of the masked frame on the wire
        "Hello, World",
        (101, True),
        False,
    ]


def binary_and_control(websocket: Any, url: str) -> List[Any]:
    ws = websocket.create_connection(url, timeout=5)
    try:
        out = [ws.send_binary(b"\x00\xff" * 100), ws.recv()]
        ws.send(b"raw", websocket.ABNF.OPCODE_BINARY)
        out.append(ws.recv_data())
        ws.send("text")
        out.append(ws.recv_data())
        ws.ping("are you there")
        out.append(ws.recv_data(control_frame=True))
        ws.ping(b"pinged")
        out.append(ws.recv_data_frame(True)[1].data)
        ws.send("after a pong")
        out.append(ws.recv())
        return out
    finally:
        ws.close()


def test_binary_text_and_pong_frames(websocket, make_server):
    server = make_server()
    assert in_thread(binary_and_control, websocket, server.url) == [
        208,
        b"\x00\xff" * 100,
        (2, b"raw"),
        (1, b"text"),
        (10, b"are you there"),
        b"pinged",
        "after a pong",
    ]


def sends_headers(websocket: Any, url: str) -> Any:
    ws = websocket.create_connection(
        url,
        header=["X-Token: secret", "User-Agent: compat-test"],
        cookie="session=42",
        subprotocols=["chat", "superchat"],
    )
    try:
        return ws.getsubprotocol(), ws.getheaders()["upgrade"], ws.recv()
    finally:
        ws.close()


def test_handshake_headers_and_subprotocol(websocket, make_server):
    seen = []

    def handler(request, read, write):
        seen.append(dict((n.lower(), v) for n, v in request.headers))
        write("ok")
        read()

    server = make_server(handler, subprotocols=["superchat", "chat"])
    assert in_thread(sends_headers, websocket, server.url) == ("chat", "websocket", "ok")
    headers = seen[0]
    assert headers["x-token"] == "secret"
    assert headers["user-agent"] == "compat-test"
    assert headers["cookie"] == "session=42"
    assert headers["origin"] == f"http://127.0.0.1:{server.port}"
    assert headers["sec-websocket-protocol"].replace(" ", "") == "chat,superchat"


def socket_options(websocket: Any, url: str) -> Any:
    sndbuf = (socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    ws = websocket.create_connection(url, timeout=5, sockopt=[sndbuf])
    try:
        sock = ws.sock
        return (
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        )
    finally:
        ws.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="needs TCP_KEEPIDLE")
def test_sockopt_and_default_socket_options(websocket, make_server):
    # the user's sockopt, after websocket-client's defaults (no Nagle,
    # keepalive after 30 s idle); Linux reports twice the buffer size set
    server = make_server()
    assert in_thread(socket_options, websocket, server.url) == (1, 1, 30, 65536)


# -- exceptions ------------------------------------------------------------------------------


def connect_error(websocket: Any, url: str) -> Any:
    try:
        websocket.create_connection(url, timeout=5)
    except Exception as exc:  # noqa: BLE001 - the scenario reports what it got
        return exc
    raise AssertionError("connected")


def test_bad_status_403(websocket, make_server):
    server = make_server.raw(raw_403)
    exc = in_thread(connect_error, websocket, f"ws://127.0.0.1:{server.port}/")
    assert isinstance(exc, websocket.WebSocketBadStatusException)
    assert isinstance(exc, websocket.WebSocketException)
    assert exc.status_code == 403
    assert exc.status_message == "Forbidden"
    assert exc.resp_headers["x-why"] == "test"
    assert str(exc).startswith("Handshake status 403 Forbidden -+-+- {")


def test_connection_refused(websocket, free_port):
    exc = in_thread(connect_error, websocket, f"ws://127.0.0.1:{free_port}/")
    assert isinstance(exc, ConnectionRefusedError)


def test_bad_url(websocket):
    exc = in_thread(connect_error, websocket, "http://127.0.0.1/")
    assert isinstance(exc, ValueError)


def recv_timeout(websocket: Any, url: str) -> List[Any]:
    # a roomy timeout for the handshake on a loaded machine, a short one for recv
    ws = websocket.create_connection(url, timeout=5)
    out: List[Any] = [ws.gettimeout()]
    ws.settimeout(0.2)
    out.append(ws.gettimeout())
    try:
        ws.recv()
    except websocket.WebSocketTimeoutException as exc:
        out.append(described(exc))
    ws.settimeout(5)
    ws.send("still usable")  # a timed-out recv leaves the connection open
    out.append(ws.recv())
    ws.close()
    return out


def test_recv_timeout(websocket, make_server):
    server = make_server()
    assert in_thread(recv_timeout, websocket, server.url) == [
        5,
        0.2,
        ("WebSocketTimeoutException", "Connection timed out"),
        "still usable",
    ]


def use_after_close(websocket: Any, url: str) -> List[Any]:
    ws = websocket.create_connection(url)
    ws.close()
    out = []
    for call in (lambda: ws.send("late"), ws.recv, lambda: ws.ping()):
        try:
            call()
        except Exception as exc:  # noqa: BLE001
            out.append(described(exc))
    ws.close()  # a second close is a no-op
    return out


def test_connection_closed_after_close(websocket, make_server):
    server = make_server()
    assert in_thread(use_after_close, websocket, server.url) == [
        ("WebSocketConnectionClosedException", "socket is already closed."),
        ("WebSocketConnectionClosedException", "Connection is closed"),
        ("WebSocketConnectionClosedException", "socket is already closed."),
    ]


def peer_closes(websocket: Any, url: str) -> List[Any]:
    ws = websocket.create_connection(url, timeout=5)
    out: List[Any] = [ws.recv(), ws.recv(), ws.connected]
    try:
        ws.recv()
    except websocket.WebSocketConnectionClosedException as exc:
        out.append(described(exc))
    return out


def test_server_close_frame_then_closed(websocket, make_server):
    # websocket-client's recv() returns "" for the close frame, then raises
    server = make_server(says_then_closes("bye now", code=1001, reason="going"))
    assert in_thread(peer_closes, websocket, server.url) == [
        "bye now",
        "",
        False,
        ("WebSocketConnectionClosedException", "Connection to remote host was lost."),
    ]


def peer_closes_recv_data(websocket: Any, url: str) -> List[Any]:
    ws = websocket.create_connection(url, timeout=5)
    try:
        return [ws.recv_data(), ws.recv_data()]
    finally:
        ws.close()


def test_server_close_frame_from_recv_data(websocket, make_server):
    server = make_server(says_then_closes("last words", code=4001, reason="custom"))
    assert in_thread(peer_closes_recv_data, websocket, server.url) == [
        (1, b"last words"),
        (8, struct.pack("!H", 4001) + b"custom"),
    ]


def app_header_callable(websocket: Any, url: str) -> Any:
    calls: List[int] = []

    def header():
        calls.append(1)
        return {"X-Attempt": str(len(calls))}

    app, events = recorder(websocket, url, on_message=lambda ws, m: ws.close(), header=header)
    return app.run_forever(), events, len(calls)


def test_app_header_callable(websocket, make_server):
    seen = []

    def handler(request, read, write):
        seen.append(request.header("X-Attempt"))
        write("welcome")
        read()

    server = make_server(handler)
    returned, events, calls = in_thread(app_header_callable, websocket, server.url)
    assert (returned, calls, seen) == (False, 1, ["1"])
    assert events[-1] == ("close", 1000, None)


def test_exception_hierarchy_matches():
    for name in [n for n in dir(websocket_client) if n.endswith("Exception")]:
        theirs = getattr(websocket_client, name)
        ours = getattr(compat, name)
        assert [c.__name__ for c in ours.__mro__] == [c.__name__ for c in theirs.__mro__], name
    exc = compat.WebSocketBadStatusException("m", 404, "Not Found", {"a": "b"}, b"body")
    assert (exc.status_code, exc.status_message, exc.resp_headers, exc.resp_body) == (
        404,
        "Not Found",
        {"a": "b"},
        b"body",
    )


# -- the public surface ----------------------------------------------------------------------

SURFACE = [
    "create_connection",
    "WebSocket",
    "WebSocketApp",
    "ABNF",
    "enableTrace",
    "setdefaulttimeout",
    "getdefaulttimeout",
    "set_reconnect",
    "DEFAULT_SOCKET_OPTION",
    "WebSocketException",
    "WebSocketConnectionClosedException",
    "WebSocketTimeoutException",
    "WebSocketBadStatusException",
    "WebSocketAddressException",
    "WebSocketProtocolException",
    "WebSocketPayloadException",
    "WebSocketProxyException",
] + [n for n in dir(websocket_client) if n.startswith("STATUS_")]

METHODS = {
    "WebSocket": [
        "connect",
        "send",
        "send_binary",
        "send_text",
        "send_bytes",
        "send_frame",
        "recv",
        "recv_data",
        "recv_data_frame",
        "recv_frame",
        "ping",
        "pong",
        "close",
        "send_close",
        "abort",
        "shutdown",
        "settimeout",
        "gettimeout",
        "getstatus",
        "getheaders",
        "getsubprotocol",
        "fileno",
        "is_ssl",
        "__init__",
    ],
    "WebSocketApp": ["__init__", "send", "send_text", "send_bytes", "close", "ready"],
}


def _params(fn: Any) -> List[tuple]:
    """Names, kinds and defaults of ``fn``'s parameters (a class default by name)."""
    return [
        (p.name, p.kind, p.default.__name__ if inspect.isclass(p.default) else p.default)
        for p in inspect.signature(fn).parameters.values()
    ]


# websocket-client's module-level names the layer leaves out: its typing
# imports, its frame reader classes and raw socket helpers (gws reads and
# writes the socket itself).
NOT_CARRIED = {
    "Any",
    "Optional",
    "continuous_frame",
    "frame_buffer",
    "recv",
    "recv_line",
    "send",
    "sock_opt",
}


def test_public_surface_matches():
    for name in SURFACE:
        assert hasattr(compat, name), name
    theirs_names = {n for n in dir(websocket_client) if not n.startswith("_")}
    assert theirs_names - set(dir(compat)) == NOT_CARRIED
    for name in ("dump", "debug", "error", "warning", "isEnabledForDebug", "isEnabledForError"):
        assert _params(getattr(compat, name)) == _params(getattr(websocket_client, name)), name
    for name in [n for n in dir(websocket_client) if n.startswith("STATUS_")]:
        assert getattr(compat, name) == getattr(websocket_client, name)
    for cls, methods in METHODS.items():
        for method in methods:
            theirs = getattr(getattr(websocket_client, cls), method)
            ours = getattr(getattr(compat, cls), method)
            assert _params(ours) == _params(theirs), f"{cls}.{method}"
    theirs = _params(websocket_client.WebSocketApp.run_forever)
    ours = _params(compat.WebSocketApp.run_forever)
    assert ours[: len(theirs)] == theirs and [p[0] for p in ours[len(theirs) :]] == ["gws_options"]
    assert _params(compat.create_connection) == _params(websocket_client.create_connection)
    assert [p[0] for p in _params(compat.enableTrace)] == ["traceable", "handler", "level"]


def test_abnf_matches():
    for name in ("OPCODE_CONT", "OPCODE_TEXT", "OPCODE_BINARY", "OPCODE_CLOSE", "OPCODE_PING"):
        assert getattr(compat.ABNF, name) == getattr(websocket_client.ABNF, name)
    assert compat.ABNF.OPCODE_MAP == websocket_client.ABNF.OPCODE_MAP
    key = b"\x01\x02\x03\x04"
    for data in (b"", b"abc", b"x" * 200, b"y" * 70000):
        assert compat.ABNF.mask(key, data) == websocket_client.ABNF.mask(key, data)
        ours = compat.ABNF.create_frame(data, compat.ABNF.OPCODE_BINARY)
        theirs = websocket_client.ABNF.create_frame(data, websocket_client.ABNF.OPCODE_BINARY)
        ours.get_mask_key = theirs.get_mask_key = lambda n: key
        assert ours.format() == theirs.format()
    text = compat.ABNF.create_frame("é", compat.ABNF.OPCODE_TEXT)
    assert text.data == "é".encode() and str(text) == str(
        websocket_client.ABNF.create_frame("é", websocket_client.ABNF.OPCODE_TEXT)
    )
    with pytest.raises(compat.WebSocketProtocolException, match="Invalid close opcode"):
        compat.ABNF(1, 0, 0, 0, compat.ABNF.OPCODE_CLOSE, 0, struct.pack("!H", 1004)).validate()


def test_unsupported_arguments_name_themselves(make_server):
    url = make_server().url
    with pytest.raises(NotImplementedError, match="get_mask_key"):
        compat.create_connection(url, get_mask_key=lambda n: b"abcd")
    with pytest.raises(NotImplementedError, match="dispatcher"):
        compat.WebSocket(dispatcher=object())
    with pytest.raises(NotImplementedError, match="fire_cont_frame with compression"):
        compat.create_connection(url, fire_cont_frame=True, gws_options={"compression": "deflate"})
    with pytest.raises(NotImplementedError, match="suppress_host"):
        compat.create_connection(url, suppress_host=True)
    with pytest.raises(TypeError, match="no_such_option"):
        compat.create_connection(url, no_such_option=1)
    with pytest.raises(compat.WebSocketException, match="ping_interval > ping_timeout"):
        compat.WebSocketApp(url).run_forever(ping_interval=1, ping_timeout=2)


# -- WebSocketApp ----------------------------------------------------------------------------


def recorder(websocket: Any, url: str, on_open=None, on_message=None, **extra: Any):
    """A WebSocketApp whose callbacks append what they got to ``events``."""
    events: List[Any] = []

    def _on_open(ws):
        events.append("open")
        if on_open:
            on_open(ws)

    def _on_message(ws, message):
        events.append(("message", message))
        if on_message:
            on_message(ws, message)

    app = websocket.WebSocketApp(
        url,
        on_open=_on_open,
        on_message=_on_message,
        on_data=lambda ws, data, opcode, fin: events.append(("data", data, opcode, fin)),
        on_error=lambda ws, error: events.append(("error",) + described(error)),
        on_close=lambda ws, code, reason: events.append(("close", code, reason)),
        **extra,
    )
    return app, events


def app_echo(websocket: Any, url: str) -> Any:
    # the README's long-lived WebSocketApp, closing itself after three echoes
    def on_open(ws):
        for i in range(3):
            ws.send(f"message {i}")
        ws.send(b"\x01\x02", websocket.ABNF.OPCODE_BINARY)

    def on_message(ws, message):
        if message == b"\x01\x02":
            ws.close()

    app, events = recorder(websocket, url, on_open, on_message)
    return app.run_forever(), events, app.sock


def test_app_callbacks_in_order(websocket, make_server):
    server = make_server()
    returned, events, sock = in_thread(app_echo, websocket, server.url)
    assert returned is False and sock is None
    assert events == [
        "open",
        ("data", "message 0", 1, True),
        ("message", "message 0"),
        ("data", "message 1", 1, True),
        ("message", "message 1"),
        ("data", "message 2", 1, True),
        ("message", "message 2"),
        ("data", b"\x01\x02", 2, True),
        ("message", b"\x01\x02"),
        ("close", 1000, None),
    ]


def app_until_server_closes(websocket: Any, url: str) -> Any:
    app, events = recorder(websocket, url)
    return app.run_forever(), events


def test_app_server_closes(websocket, make_server):
    server = make_server(says_then_closes("hello", code=1001, reason="bye"))
    returned, events = in_thread(app_until_server_closes, websocket, server.url)
    assert returned is False
    assert events == [
        "open",
        ("data", "hello", 1, True),
        ("message", "hello"),
        ("error", "WebSocketConnectionClosedException", "Connection closed (code 1001): bye"),
        ("close", 1001, "bye"),
    ]


def test_app_connection_refused(websocket, free_port):
    returned, events = in_thread(app_until_server_closes, websocket, f"ws://127.0.0.1:{free_port}/")
    assert returned is True
    assert [e[:2] for e in events] == [("error", "ConnectionRefusedError"), ("close", None)]


def test_app_bad_status(websocket, make_server):
    server = make_server.raw(raw_403)
    returned, events = in_thread(
        app_until_server_closes, websocket, f"ws://127.0.0.1:{server.port}/"
    )
    assert returned is True
    assert [e[:2] for e in events] == [
        ("error", "WebSocketBadStatusException"),
        ("close", None),
    ]


def app_callback_raises(websocket: Any, url: str) -> Any:
    def on_message(ws, message):
        if message == "boom":
            raise RuntimeError("callback failed")
        ws.close()

    app, events = recorder(websocket, url, lambda ws: ws.send("boom") or ws.send("x"), on_message)
    return app.run_forever(), events


def test_app_callback_error_goes_to_on_error(websocket, make_server, caplog):
    server = make_server()
    with caplog.at_level(logging.CRITICAL):  # both log the callback's error
        returned, events = in_thread(app_callback_raises, websocket, server.url)
    assert returned is False
    assert events == [
        "open",
        ("data", "boom", 1, True),
        ("message", "boom"),
        ("error", "RuntimeError", "callback failed"),
        ("data", "x", 1, True),
        ("message", "x"),
        ("close", 1000, None),
    ]


def app_interrupted(websocket: Any, url: str) -> Any:
    def on_message(ws, message):
        raise KeyboardInterrupt  # Ctrl-C while a callback runs

    app, events = recorder(websocket, url, lambda ws: ws.send("hi"), on_message)
    return app.run_forever(), events, app.sock


def test_app_keyboard_interrupt(websocket, make_server, caplog):
    server = make_server()
    with caplog.at_level(logging.CRITICAL):
        returned, events, sock = in_thread(app_interrupted, websocket, server.url)
    assert returned is True and sock is None
    assert events == [
        "open",
        ("data", "hi", 1, True),
        ("message", "hi"),
        ("error", "KeyboardInterrupt", ""),
        ("close", None, None),
    ]


def app_pings(websocket: Any, url: str) -> Any:
    def on_pong(ws, data):
        events.append(("pong", data))
        ws.close()

    app, events = recorder(websocket, url, on_pong=on_pong)
    returned = app.run_forever(ping_interval=1, ping_payload="are you there")
    return returned, events


def test_app_ping_interval_and_on_pong(websocket, make_server):
    server = make_server()
    returned, events = in_thread(app_pings, websocket, server.url)
    assert returned is False
    assert events == ["open", ("pong", b"are you there"), ("close", 1000, None)]


def fragmenter(request, read, write):
    """Sends one text message in three frames, then echoes."""
    write(["ab", "cd", "ef"])
    gws.echo(request, read, write)


def frames_one_by_one(websocket: Any, url: str) -> List[Any]:
    ws = websocket.create_connection(url, timeout=5, fire_cont_frame=True)
    try:
        out = []
        for _ in range(3):
            opcode, frame = ws.recv_data_frame()
            out.append((opcode, frame.fin, frame.data))
        ws.send("whole")
        out.append(ws.recv())
        return out
    finally:
        ws.close()


def test_fire_cont_frame(websocket, make_server):
    server = make_server(fragmenter)
    assert in_thread(frames_one_by_one, websocket, server.url) == [
        (1, 0, b"ab"),
        (0, 0, b"cd"),
        (0, 1, b"ef"),
        "whole",
    ]


def app_cont_message(websocket: Any, url: str) -> Any:
    def on_cont_message(ws, data, fin):
        events.append(("cont", data, fin))
        if fin:
            ws.close()

    app, events = recorder(websocket, url, on_cont_message=on_cont_message)
    return app.run_forever(), events


def test_app_on_cont_message(websocket, make_server):
    server = make_server(fragmenter)
    returned, events = in_thread(app_cont_message, websocket, server.url)
    assert returned is False
    assert events == [
        "open",
        ("data", "ab", 1, True),
        ("message", "ab"),
        ("data", b"cd", 0, 0),
        ("cont", b"cd", 0),
        ("data", b"ef", 0, 1),
        ("cont", b"ef", 1),
        ("close", 1000, None),
    ]


def app_on_ping(websocket: Any, url: str) -> Any:
    app, events = recorder(
        websocket,
        url,
        on_message=lambda ws, m: ws.close(),
        on_ping=lambda ws, data: events.append(("ping", data)),
    )
    return app.run_forever(), events


def test_app_on_ping(websocket, make_server):
    def handler(request, read, write):
        write.ping(b"server ping")
        write("after the ping")
        read()

    server = make_server(handler)
    returned, events = in_thread(app_on_ping, websocket, server.url)
    assert returned is False
    assert events == [
        "open",
        ("ping", b"server ping"),
        ("data", "after the ping", 1, True),
        ("message", "after the ping"),
        ("close", 1000, None),
    ]


def app_dead_peer(websocket: Any, url: str, ping_timeout: Any) -> Any:
    app, events = recorder(websocket, url)
    return app.run_forever(ping_interval=0.3, ping_timeout=ping_timeout), events


def silent_after_handshake(make_server: Any) -> Any:
    """A server that completes the upgrade, then neither reads nor writes."""

    def handler(request, read, write):
        make_server.released.wait(DEADLINE)

    return make_server(handler)


# What run_forever returns and the callbacks see when it gives up on a silent peer.
GAVE_UP = (
    True,
    ["open", ("error", "WebSocketTimeoutException", "ping/pong timed out"), ("close", None, None)],
)


def test_app_dead_peer_ping_timeout(websocket, make_server):
    server = silent_after_handshake(make_server)
    assert in_thread(app_dead_peer, websocket, server.url, 0.2) == GAVE_UP


def test_compat_dead_peer_without_ping_timeout(make_server):
    # websocket-client with ping_interval and no ping_timeout waits forever
    # on a peer that went silent; gws's heartbeat still gives up on it.
    server = silent_after_handshake(make_server)
    assert in_thread(app_dead_peer, compat, server.url, None) == GAVE_UP


# -- reconnect across a server restart on the same port ----------------------------------


RECONNECT = 0.2


def feed_with_reconnect(websocket: Any, url: str, use_on_reconnect: bool) -> Any:
    def on_message(ws, message):
        if message == "tick 2":
            ws.close()

    extra = {}
    if use_on_reconnect:
        extra["on_reconnect"] = lambda ws: events.append("reconnect")
    app, events = recorder(websocket, url, on_message=on_message, **extra)
    return app.run_forever(reconnect=RECONNECT), events


@pytest.mark.parametrize("how", ["crash", "close 1012"])
@pytest.mark.parametrize("use_on_reconnect", [False, True], ids=["on_open", "on_reconnect"])
def test_app_reconnects_after_server_restart(websocket, make_server, how, use_on_reconnect):
    first_done = Event()

    def first_life(request, read, write):
        server.server.close()  # going down: no connection is accepted from here on
        write("tick 1")
        if how == "crash":
            read.connection.abort()  # the process died: no close frame
        else:
            write.close(1012, "service restart")
        first_done.set()

    def second_life(request, read, write):
        write("tick 2")
        read()  # until the client closes

    refused = Event()

    def warming_up(sock, address):
        # The restarting server answers 503 until it is ready: an attempt
        # that fails, seen from here (a refused TCP connect would not be).
        read_request(sock)
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 7\r\n\r\nwarming")
        sock.close()
        refused.set()

    server = make_server(first_life)
    port = server.port
    interim = None
    try:
        with started_in_thread(feed_with_reconnect, websocket, server.url, use_on_reconnect) as job:
            assert first_done.wait(DEADLINE)
            server.stop()  # its handler has ended
            interim = StreamServer(("127.0.0.1", port), warming_up)
            interim.start()
            assert refused.wait(DEADLINE)  # the client retried and was turned away
            interim.stop(timeout=1)
            make_server(second_life, port=port)
            returned, events = job.get(timeout=DEADLINE)
    finally:
        if interim is not None and not interim.closed:
            interim.stop(timeout=1)
    assert returned is True  # the attempts turned away while the server restarted
    dropped = (
        [("error", "WebSocketConnectionClosedException", "Connection to remote host was lost.")]
        if how == "crash"
        else []
    )
    assert events == [
        "open",
        ("data", "tick 1", 1, True),
        ("message", "tick 1"),
        *dropped,
        "reconnect" if use_on_reconnect else "open",
        ("data", "tick 2", 1, True),
        ("message", "tick 2"),
        ("close", 1000, None),
    ]


# -- threads: what websocket-client programs do ------------------------------------------


def test_app_send_from_another_thread(websocket, make_server):
    # run_forever in one thread, send() from another, as websocket-client's
    # README suggests for a long-lived app
    opened = Event()

    def handler(request, read, write):
        for msg in read:
            if msg.payload == "opened":
                opened.set()
            write(msg.payload)
            if msg.payload == "from another thread":
                write.close(1000, "done")

    server = make_server(handler)
    app, events = recorder(websocket, server.url, lambda ws: ws.send("opened"))
    with started_in_thread(app.run_forever) as job:
        assert opened.wait(DEADLINE)
        in_thread(app.send, "from another thread")
        returned = job.get(timeout=DEADLINE)
    assert returned is False
    assert [e for e in events if e[0] != "data"] == [
        "open",
        ("message", "opened"),
        ("message", "from another thread"),
        (
            "error",
            "WebSocketConnectionClosedException",
            "Connection closed normally (code 1000): done",
        ),
        ("close", 1000, "done"),
    ]


def test_app_close_from_another_thread(websocket, make_server):
    opened = Event()

    def handler(request, read, write):
        for msg in read:
            opened.set()  # the client is in on_open: connected
            write(msg.payload)

    server = make_server(handler)
    app, events = recorder(websocket, server.url, lambda ws: ws.send("opened"))
    with started_in_thread(app.run_forever) as job:
        assert opened.wait(DEADLINE)
        in_thread(app.close)
        returned = job.get(timeout=DEADLINE)
    # Which thread reads the server's close reply is a race in
    # websocket-client: run_forever may report an error and on_close may or
    # may not see the code. gws's hub thread reads it, always.
    if websocket is compat:
        assert returned is False
        assert [e for e in events if e[0] != "data"][0] == "open"
        assert events[-1] == ("close", 1000, None)
    assert events[0] == "open" and events[-1][0] == "close"
    assert [e[0] for e in events].count("close") == 1


def test_recv_in_one_thread_send_in_another(websocket, make_server):
    server = make_server()
    ws = in_thread(websocket.create_connection, server.url, 10)
    try:
        with started_in_thread(ws.recv) as receiving:
            in_thread(ws.send, "crossed threads")
            assert receiving.get(timeout=DEADLINE) == "crossed threads"
    finally:
        in_thread(ws.close)


def sleeps_between_messages(websocket: Any, url: str) -> Any:
    import time

    ws = websocket.create_connection(url, timeout=10)
    try:
        ws.send("before")
        first = ws.recv()
        time.sleep(2.5)  # a threaded program busy elsewhere, not reading
        ws.send("after")
        return first, ws.recv()
    except Exception as exc:  # noqa: BLE001 - the scenario reports what it got
        return first, type(exc).__name__
    finally:
        ws.close()


def test_pings_answered_while_the_caller_sleeps(websocket, make_server):
    # The server pings every 0.2 s and drops a client silent for 1 s after a
    # ping. websocket-client answers pings only inside recv(), so a thread
    # sleeping in time.sleep loses its connection; gws answers them on its
    # hub thread while the caller sleeps.
    server = make_server(heartbeat=200, heartbeat_timeout=1000)
    first, second = in_thread(sleeps_between_messages, websocket, server.url)
    assert first == "before"
    if websocket is compat:
        assert second == "after"
    else:
        assert second in (
            "WebSocketConnectionClosedException",
            "BrokenPipeError",
            "ConnectionResetError",
        )


def read_while_connected(websocket: Any, url: str, settled: threading.Event) -> Any:
    ws = websocket.create_connection(url, timeout=5)
    try:
        assert settled.wait(DEADLINE)
        got = []
        for _ in range(10):  # bounded: three are expected
            if not ws.connected:
                break
            got.append(ws.recv())
        return got, ws.connected
    finally:
        ws.close()


def test_connected_until_the_close_frame_is_received(websocket, make_server):
    # ``while ws.connected: ws.recv()``, a common websocket-client loop:
    # connected stays True until recv() has returned everything, the peer's
    # close frame ("") included, even once gws has read it all ahead and the
    # TCP connection is gone.
    sent, replied = threading.Event(), threading.Event()

    def says_two_then_closes(sock, address):
        key, _, rest = read_request(sock)
        sock.sendall(
            accept_reply(key)
            + server_frame(1, b"a")
            + server_frame(1, b"b")
            + server_frame(8, struct.pack("!H", 1000))
        )
        sent.set()
        ClientFrames(sock, rest).until_close()
        replied.set()
        sock.close()

    server = make_server.raw(says_two_then_closes)
    # gws's hub thread answers the close frame on its own, so wait until it
    # has (the connection is then closed underneath); websocket-client
    # answers it only inside recv().
    settled = replied if websocket is compat else sent
    url = f"ws://127.0.0.1:{server.port}/"
    assert in_thread(read_while_connected, websocket, url, settled) == (["a", "b", ""], False)


def abandons(websocket: Any, url: str) -> Any:
    def use_and_drop() -> Any:
        ws = websocket.create_connection(url, timeout=5)
        ws.send("forgotten")
        return ws.recv()  # returns without close(): ws is garbage now

    got = use_and_drop()
    gc.collect()  # websocket-client's WebSocket sits in a reference cycle
    return got


def test_dropped_websocket_closes_its_connection(websocket, make_server):
    # websocket-client's socket closes when its WebSocket is collected; a gws
    # connection in thread mode lives on the hub thread, which would keep it
    # open (and answer its pings) forever with nobody left to close it.
    ended = Event()

    def handler(request, read, write):
        for msg in read:
            write(msg.payload)
        ended.set()

    server = make_server(handler)
    assert in_thread(abandons, websocket, server.url) == "forgotten"
    assert ended.wait(DEADLINE)


def connects_twice(websocket: Any, url: str) -> Any:
    ws = websocket.WebSocket()
    ws.connect(url, timeout=5)
    ws.connect(url, timeout=5)
    ws.send("second")
    return ws, ws.recv()


def test_connect_again_drops_the_previous_connection(websocket, make_server):
    ended: List[int] = []
    first_ended = Event()

    def handler(request, read, write):
        for msg in read:
            write(msg.payload)
        ended.append(1)
        first_ended.set()

    server = make_server(handler)
    ws, got = in_thread(connects_twice, websocket, server.url)
    try:
        assert got == "second"
        assert first_ended.wait(DEADLINE)  # the first connection ended...
        assert ws.connected and len(ended) == 1  # ...while the second is open
        in_thread(ws.send, "still here")
        assert in_thread(ws.recv) == "still here"
    finally:
        in_thread(ws.close)


def test_abort_wakes_recv_in_another_thread(websocket, make_server):
    server = make_server()
    ws = in_thread(websocket.create_connection, server.url, 10)

    def receive() -> Any:
        try:
            return ws.recv()
        except Exception as exc:  # noqa: BLE001 - the scenario reports what it got
            return described(exc)

    try:
        with started_in_thread(receive) as receiving:
            in_thread(ws.abort)  # before or during that recv: either way it ends
            assert receiving.get(timeout=DEADLINE) == (
                "WebSocketConnectionClosedException",
                "Connection to remote host was lost.",
            )
    finally:
        in_thread(ws.close)
    assert server.wait_idle()


# -- TLS ---------------------------------------------------------------------------------


def tls_round_trip(websocket: Any, url: str, sslopt: Any) -> Any:
    try:
        ws = websocket.create_connection(url, timeout=5, sslopt=sslopt)
    except ssl.SSLError as exc:
        return type(exc)
    try:
        ws.send("over tls")
        return ws.recv(), ws.is_ssl()
    finally:
        ws.close()


def test_wss_sslopt(websocket, make_server, tls_server_context, tls_ca_file):
    server = make_server(ssl_context=tls_server_context)
    url = server.url
    assert in_thread(tls_round_trip, websocket, url, {"ca_certs": tls_ca_file}) == (
        "over tls",
        True,
    )
    insecure = {"cert_reqs": ssl.CERT_NONE}
    assert in_thread(tls_round_trip, websocket, url, insecure) == ("over tls", True)
    assert in_thread(tls_round_trip, websocket, url, None) is ssl.SSLCertVerificationError


def test_wss_sslopt_context_built_for_ciphers(make_server, tls_server_context, tls_ca_file):
    server = make_server(ssl_context=tls_server_context)
    sslopt = {"ca_certs": tls_ca_file, "ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20"}
    assert isinstance(options.tls_option(sslopt), ssl.SSLContext)
    assert tls_round_trip(compat, server.url, sslopt) == ("over tls", True)


# -- gws's side: threads, leaks, trace ---------------------------------------------------


def connection_then_app(url: str, gws_options: Any = None, **run_forever: Any) -> None:
    """gws.compat: one create_connection echo, then one WebSocketApp that
    closes on its first message; both end cleanly."""
    ws = compat.create_connection(url, timeout=5, gws_options=gws_options)
    assert ws.send("hi") == 8 and ws.recv() == "hi"
    ws.close()
    app, events = recorder(compat, url, lambda ws: ws.send("x"), lambda ws, m: ws.close())
    assert app.run_forever(gws_options=gws_options, **run_forever) is False
    assert events[-1] == ("close", 1000, None)


def test_compat_in_greenlets_leaks_nothing(make_server, no_leaks):
    # Greenlet mode: everything lives on this thread's hub, where no_leaks
    # sees every greenlet (thread mode's end on the hub thread, in its own
    # time; the next test counts its sockets).
    server = make_server()
    with no_leaks():
        connection_then_app(server.url, {"thread": False}, ping_interval=5)


def test_compat_thread_mode_leaks_no_socket(make_server):
    # Thread mode (the default): connections live on gws's hub thread; what
    # they leave behind would be file descriptors of this process.
    server = make_server()
    warm = compat.create_connection(server.url, timeout=5)  # starts the hub thread
    warm.close()
    assert server.wait_idle()
    fds = fd_count()
    for _ in range(3):
        connection_then_app(server.url)
    assert server.wait_idle()
    assert fd_count() == fds


def test_compat_offers_compression(make_server):
    # websocket-client has no compression; gws offers permessage-deflate
    server = make_server()
    ws = compat.create_connection(server.url)
    assert "permessage-deflate" in ws.getheaders()["sec-websocket-extensions"]
    ws.send("x" * 10000)
    assert ws.recv() == "x" * 10000
    ws.close()
    ws = compat.create_connection(server.url, gws_options={"compression": None})
    assert "sec-websocket-extensions" not in ws.getheaders()
    ws.close()


def test_compat_greenlet_mode_belongs_to_its_thread(make_server):
    # gws_options={"thread": False}: the connection lives on this thread's hub
    server = make_server()
    ws = compat.create_connection(server.url, timeout=5, gws_options={"thread": False})
    errors: List[BaseException] = []

    def other_thread():
        try:
            ws.send("from another thread")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    in_thread(other_thread)
    assert len(errors) == 1 and isinstance(errors[0], gws.WrongThread)
    ws.send("from my thread")
    assert ws.recv() == "from my thread"
    ws.close()


def test_enable_trace_logs_frames(make_server):
    seen: List[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    server = make_server()
    compat.enableTrace(True, Collect())
    try:
        assert compat.isEnabledForTrace()
        ws = compat.create_connection(server.url)
        ws.send("traced")
        ws.ping("p")
        assert ws.recv_data(True) == (1, b"traced")
        assert ws.recv_data(True) == (10, b"p")
        ws.close()
    finally:
        compat.enableTrace(False)
    assert not compat.isEnabledForTrace()
    assert any(line.startswith("++Sent decoded: fin=1 opcode=1") for line in seen)
    assert any(line.startswith("++Rcv decoded: fin=1 opcode=10") for line in seen)
    assert logging.getLogger("gws").level == logging.NOTSET


def test_default_timeout(make_server):
    server = make_server()
    compat.setdefaulttimeout(5)
    try:
        ws = compat.create_connection(server.url)
        explicit = compat.create_connection(server.url, timeout=7)
    finally:
        compat.setdefaulttimeout(None)
    assert (ws.gettimeout(), explicit.gettimeout()) == (5, 7)
    explicit.close()
    ws.settimeout(0.2)
    with pytest.raises(compat.WebSocketTimeoutException):
        ws.recv()
    ws.settimeout(None)  # no timeout: recv waits for the message
    ws.send("untimed")
    assert ws.recv() == "untimed"
    ws.close()


def test_peer_protocol_error_maps(make_server):
    codes: List[Any] = []

    def bad_utf8(sock, address):
        key, _, rest = read_request(sock)
        sock.sendall(accept_reply(key) + server_frame(1, b"\xff\xfe"))
        codes.append(close_code_of(ClientFrames(sock, rest).next()))
        sock.close()

    server = make_server.raw(bad_utf8)
    ws = compat.create_connection(f"ws://127.0.0.1:{server.port}/", timeout=5)
    with pytest.raises(compat.WebSocketPayloadException):
        ws.recv()
    with pytest.raises(compat.WebSocketConnectionClosedException):
        ws.recv()
    assert server.wait_idle()
    assert codes == [1007]


def test_translate_gws_errors():
    from gws.compat._wsclient_core import _translate

    cases = [
        (gws.HeartbeatTimeout("heartbeat timeout"), compat.WebSocketTimeoutException),
        (gws.ReceiveTimeout("no message"), compat.WebSocketTimeoutException),
        (gws.OpenTimeout("timed out"), compat.WebSocketTimeoutException),
        (gws.ProtocolError("bad frame"), compat.WebSocketProtocolException),
        (gws.ProtocolError("bad utf-8", 1007), compat.WebSocketPayloadException),
        (gws.AbnormalClosure("eof"), compat.WebSocketConnectionClosedException),
        (gws.ProxyError("proxy http://p:1 refused: 407", 407), compat.WebSocketProxyException),
        (
            gws.RedirectError("too many redirects", ["ws://a/", "ws://b/"]),
            compat.WebSocketException,
        ),
        (socket.gaierror(-2, "Name or service not known"), compat.WebSocketAddressException),
        (gws.HandshakeError("missing Upgrade", 101), compat.WebSocketException),
    ]
    for exc, expected in cases:
        assert type(_translate(exc)) is expected, exc
    reset = ConnectionResetError(104, "reset")
    assert _translate(reset) is reset
    bad = _translate(gws.HandshakeError("server answered 404 Not Found instead of 101", 404))
    assert isinstance(bad, compat.WebSocketBadStatusException)
    assert (bad.status_code, bad.status_message) == (404, "Not Found")


# -- pure mappings -----------------------------------------------------------------------


def test_proxy_url_mapping():
    env: dict = {}
    url = options.proxy_url
    assert url("example.org", environ=env) is options.USE_ENVIRONMENT
    assert url("example.org", "proxy.local", 3128, environ=env) == "http://proxy.local:3128"
    assert (
        url("example.org", "proxy.local", "1080", ("us er", "p@ss:w/rd"), None, "socks5h", env)
        == "socks5h://us%20er:p%40ss%3Aw%2Frd@proxy.local:1080"
    )
    assert url("h", "::1", 8080, environ=env) == "http://[::1]:8080"
    assert url("h", "p", 1, ("user", ""), environ=env) == "http://user@p:1"
    for kind in ("socks4", "socks4a", "socks5"):
        assert url("h", "p", 1, proxy_type=kind, environ=env) == f"{kind}://p:1"
    with pytest.raises(compat.WebSocketProxyException, match="port 0"):
        url("h", "p", None, environ=env)
    with pytest.raises(compat.WebSocketProxyException, match="supported"):
        url("h", "p", 1, proxy_type="ftp", environ=env)
    # no_proxy, from the argument or the environment: connect directly
    assert url("api.example.org", "p", 1, None, ["example.org"], environ=env) is None
    assert url("10.1.2.3", "p", 1, None, ["10.0.0.0/8"], environ=env) is None
    assert url("other.org", "p", 1, None, ["example.org"], environ=env) == "http://p:1"
    assert url("h", "p", 1, environ={"no_proxy": "*"}) is None
    assert url("a.example.org", "p", 1, environ={"NO_PROXY": ".example.org"}) is None


# -- proxies and prepared sockets (real pproxy subprocesses) ------------------------------


def through_proxy(websocket: Any, url: str, proxy_args: Any) -> Any:
    try:
        ws = websocket.create_connection(url, timeout=10, **proxy_args)
    except Exception as exc:  # noqa: BLE001 - the scenario reports what it got
        return described(exc)
    try:
        peer = ws.sock.getpeername()[1]
        ws.send("via proxy")
        return ws.recv(), peer
    finally:
        ws.close()


@pytest.mark.parametrize("proxy_type", ["http", "socks5"])
def test_through_pproxy_with_auth(websocket, make_server, pproxy, no_proxy_env, proxy_type):
    server = make_server()
    proxy = pproxy(proxy_type, auth="alice:s3cr3t")
    args = {
        "http_proxy_host": "127.0.0.1",
        "http_proxy_port": proxy.port,
        "http_proxy_auth": ("alice", "s3cr3t"),
        "proxy_type": proxy_type,
    }
    assert in_thread(through_proxy, websocket, server.url, args) == ("via proxy", proxy.port)


def test_proxy_wrong_password(websocket, make_server, pproxy, no_proxy_env):
    server = make_server()
    proxy = pproxy("http", auth="alice:s3cr3t")
    args = {
        "http_proxy_host": "127.0.0.1",
        "http_proxy_port": proxy.port,
        "http_proxy_auth": ("alice", "wrong"),
    }
    name, text = in_thread(through_proxy, websocket, server.url, args)
    assert name == "WebSocketProxyException" and "407" in text and "wrong" not in text


def test_no_proxy_list_connects_directly(websocket, make_server, free_port, no_proxy_env):
    server = make_server()
    args = {
        "http_proxy_host": "127.0.0.1",
        "http_proxy_port": free_port,  # nothing listens there
        "http_no_proxy": ["127.0.0.1"],
    }
    assert in_thread(through_proxy, websocket, server.url, args) == ("via proxy", server.port)


def test_proxy_port_missing(websocket, make_server, no_proxy_env):
    args = {"http_proxy_host": "127.0.0.1"}
    name, text = in_thread(through_proxy, websocket, make_server().url, args)
    assert (name, text) == (
        "WebSocketProxyException",
        "Cannot use port 0 when proxy_host specified",
    )


def prepared_socket(websocket: Any, url: str, port: int) -> Any:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    ws = websocket.create_connection(url, socket=sock)
    try:
        ws.send("over my socket")
        return ws.recv()
    finally:
        ws.close()


def test_prepared_socket(websocket, make_server):
    server = make_server()
    assert in_thread(prepared_socket, websocket, server.url, server.port) == "over my socket"


def test_tls_option_mapping(tmp_path):
    env: dict = {}
    assert options.tls_option(None, env) is True
    assert options.tls_option({"cert_reqs": ssl.CERT_NONE}, env) == {"insecure": True}
    assert options.tls_option({"cert_reqs": ssl.CERT_NONE, "check_hostname": False}, env) == {
        "insecure": True
    }
    assert options.tls_option(
        {"ca_certs": "/ca.pem", "certfile": "/c.pem", "keyfile": "/k.pem"}, env
    ) == {"ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"}
    assert options.tls_option({"server_hostname": "h.example"}, env) == {"server_name": "h.example"}
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("x")
    assert options.tls_option({}, {"WEBSOCKET_CLIENT_CA_BUNDLE": str(bundle)}) == {
        "ca": str(bundle)
    }
    ctx = ssl.create_default_context()
    assert options.tls_option({"context": ctx}, env) is ctx
    with pytest.raises(compat.WebSocketException, match="check_hostname"):
        options.tls_option({"cert_reqs": ssl.CERT_NONE, "check_hostname": True}, env)
    with pytest.raises(NotImplementedError, match="no_such_key"):
        options.tls_option({"no_such_key": 1}, env)
    with pytest.raises(NotImplementedError, match="do_handshake_on_connect"):
        options.tls_option({"do_handshake_on_connect": False}, env)
    built = options.tls_option({"check_hostname": False}, env)
    assert isinstance(built, ssl.SSLContext)
    assert built.check_hostname is False and built.verify_mode == ssl.CERT_REQUIRED


def test_handshake_header_mapping():
    hh = options.handshake_headers
    assert hh("h", 80, False) == [("Origin", "http://h")]
    assert hh("h", 8443, True) == [("Origin", "https://h:8443")]
    assert hh("::1", 9000, False) == [("Origin", "http://[::1]:9000")]
    assert hh("h", 80, False, suppress_origin=True) == []
    assert hh("h", 80, False, origin="https://app") == [("Origin", "https://app")]
    assert hh("h", 80, False, header={"X-A": "1", "X-None": None}, cookie="c=1", host="alias") == [
        ("Host", "alias"),
        ("Origin", "http://h"),
        ("X-A", "1"),
        ("Cookie", "c=1"),
    ]
    assert hh("h", 80, False, header=["Origin: mine", "X-B:2"]) == [
        ("Origin", "mine"),
        ("X-B", "2"),
    ]
    with pytest.raises(ValueError, match="no ':'"):
        options.header_pairs(["broken"])
    assert options.response_headers(
        [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Dup", "1"), ("x-dup", " 2 ")]
    ) == {"set-cookie": "a=1; b=2", "x-dup": "2"}


def test_app_send_needs_a_connection(make_server):
    app = compat.WebSocketApp(make_server().url)
    with pytest.raises(compat.WebSocketConnectionClosedException):
        app.send("not connected")
    assert not app.ready()
