"""redirects.py: following 301/302/303/307/308 answers to the upgrade request,
against small hand-written gevent servers in the test process that record
every request they receive."""

from __future__ import annotations

from typing import List, Tuple

import gevent
import gevent.socket
import pytest
from gevent.server import StreamServer
from helpers import ClientFrames, accept_reply, read_head, server_frame

import gws
from gws.handshake import parse_request

pytestmark = pytest.mark.timeout(60)

Seen = List[Tuple[str, list]]


def redirecting_server(make_server, routes, seen: Seen, ssl_context=None):
    """A raw server: a request for a target in ``routes`` gets that
    ``(status, Location)``; any other target is accepted as a WebSocket and
    echoes one message. Every request is recorded as (target, headers)."""

    def handler(sock, _addr):
        head, rest = read_head(sock)
        _method, target, headers = parse_request(head)
        seen.append((target, headers))
        if target in routes:
            status, where = routes[target]
            reply = f"HTTP/1.1 {status} Moved\r\nLocation: {where}\r\nContent-Length: 0\r\n"
            sock.sendall(reply.encode() + b"\r\n")
            sock.close()
            return
        key = [v for n, v in headers if n.lower() == "sec-websocket-key"][0]
        sock.sendall(accept_reply(key))
        frames = ClientFrames(sock, rest)
        msg = frames.next()
        if msg is not None and msg.opcode in (gws.OP_TEXT, gws.OP_BINARY):
            sock.sendall(server_frame(msg.opcode, msg.payload))
            frames.until_close()
            sock.sendall(server_frame(gws.OP_CLOSE, b"\x03\xe8"))
        sock.close()

    return make_server.raw(handler, ssl_context=ssl_context)


def header(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


def echo_once(res, read, write):
    assert res, read
    write("hello")
    msg = read()
    assert msg is not None and msg.payload == "hello"
    write.close()
    assert read() is None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_redirect_status_with_a_relative_location(make_server, status, no_leaks):
    seen: Seen = []
    with no_leaks():
        server = redirecting_server(make_server, {"/old?x=1": (status, "new/place?y=2")}, seen)
        res, read, write = gws.connect(f"ws://127.0.0.1:{server.port}/old?x=1")
        assert res, read
        assert res.url == f"ws://127.0.0.1:{server.port}/new/place?y=2"
        assert res.redirects == [f"ws://127.0.0.1:{server.port}/old?x=1"]
        echo_once(res, read, write)
        assert server.wait_idle()
        server.stop()
    assert [target for target, _ in seen] == ["/old?x=1", "/new/place?y=2"]


def test_absolute_location_to_another_origin_drops_credentials(make_server):
    seen_a: Seen = []
    seen_b: Seen = []
    b = redirecting_server(make_server, {}, seen_b)
    a = redirecting_server(
        make_server,
        {"/": (302, "/same"), "/same": (307, f"http://127.0.0.1:{b.port}/other")},
        seen_a,
    )
    ws = gws.open(
        f"ws://alice:s3cr3t@127.0.0.1:{a.port}/",
        headers={"Cookie": "session=1", "X-Keep": "yes", "authorization-hint": "kept"},
        origin="https://app.example",
    )
    ws.send("hello")
    assert ws.recv().payload == "hello"
    ws.close()
    assert ws.response.url == f"ws://127.0.0.1:{b.port}/other"
    # same origin (a -> a): credentials and cookie kept
    for _target, headers in seen_a:
        assert header(headers, "Authorization") == ["Basic YWxpY2U6czNjcjN0"]
        assert header(headers, "Cookie") == ["session=1"]
    # another origin (port differs): no Authorization, no Cookie; the rest kept
    ((_target, headers),) = seen_b
    assert header(headers, "Authorization") == [] and header(headers, "Cookie") == []
    assert header(headers, "X-Keep") == ["yes"] and header(headers, "authorization-hint")
    assert header(headers, "Origin") == ["https://app.example"]
    assert header(headers, "Host") == [f"127.0.0.1:{b.port}"]


def test_authorization_header_option_dropped_cross_origin_too(make_server):
    seen_a: Seen = []
    seen_b: Seen = []
    b = redirecting_server(make_server, {}, seen_b)
    a = redirecting_server(make_server, {"/": (301, f"ws://localhost:{b.port}/")}, seen_a)
    res, read, write = gws.connect(
        f"ws://127.0.0.1:{a.port}/", headers=[("Authorization", "Bearer t0ken")]
    )
    echo_once(res, read, write)
    assert header(seen_a[0][1], "Authorization") == ["Bearer t0ken"]
    assert header(seen_b[0][1], "Authorization") == []  # another host name: another origin


def test_wss_to_ws_is_refused(make_server, tls_server_context, tls_ca_file):
    seen: Seen = []
    plain = redirecting_server(make_server, {}, seen)
    secure = redirecting_server(
        make_server, {"/": (302, f"ws://127.0.0.1:{plain.port}/x")}, seen, tls_server_context
    )
    res, err, _ = gws.connect(f"wss://127.0.0.1:{secure.port}/", tls={"ca": tls_ca_file})
    assert res is None
    assert err == (
        "refusing a redirect from wss:// to ws://: "
        f"wss://127.0.0.1:{secure.port}/ -> ws://127.0.0.1:{plain.port}/x"
    )
    assert [t for t, _ in seen] == ["/"]  # the plain server was never asked
    with pytest.raises(gws.RedirectError) as info:
        gws.open(f"wss://127.0.0.1:{secure.port}/", tls={"ca": tls_ca_file})
    assert info.value.status == 302 and isinstance(info.value, gws.HandshakeError)


def test_ws_to_wss_is_followed_with_default_trust(
    make_server, tls_server_context, tls_ca_file, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)  # tls=True trusts the trustme CA
    seen: Seen = []
    secure = redirecting_server(make_server, {}, seen, tls_server_context)
    plain = redirecting_server(make_server, {"/": (308, f"wss://localhost:{secure.port}/s")}, seen)
    res, read, write = gws.connect(f"ws://127.0.0.1:{plain.port}/")
    assert res, read
    assert res.url == f"wss://localhost:{secure.port}/s"
    assert res.socket.version().startswith("TLS")
    echo_once(res, read, write)


def test_loop_is_an_error_listing_the_chain(make_server):
    seen: Seen = []
    server = redirecting_server(make_server, {"/a": (302, "/b"), "/b": (302, "/a")}, seen)
    base = f"ws://127.0.0.1:{server.port}"
    res, err, _ = gws.connect(base + "/a")
    assert res is None
    assert err == f"redirect loop: {base}/a -> {base}/b -> {base}/a"
    assert [t for t, _ in seen] == ["/a", "/b"]


def test_query_strings_hidden_in_redirect_errors(make_server):
    seen: Seen = []
    routes = {
        "/a?token=s3cr3t": (302, "/b?token=s3cr3t2"),
        "/b?token=s3cr3t2": (302, "/a?token=s3cr3t"),
    }
    server = redirecting_server(make_server, routes, seen)
    base = f"ws://127.0.0.1:{server.port}"
    res, err, _ = gws.connect(base + "/a?token=s3cr3t")
    assert res is None and "s3cr3t" not in err
    assert err == f"redirect loop: {base}/a?… -> {base}/b?… -> {base}/a?…"


def test_too_long_a_chain_is_an_error_listing_it(make_server):
    seen: Seen = []
    routes = {f"/{i}": (302, f"/{i + 1}") for i in range(10)}
    server = redirecting_server(make_server, routes, seen)
    base = f"ws://127.0.0.1:{server.port}"
    res, err, _ = gws.connect(base + "/0")
    assert res is None
    chain = " -> ".join(f"{base}/{i}" for i in range(5))
    assert err == f"too many redirects (limit 3): {chain}"
    assert len(seen) == 4  # the default: 3 redirects followed
    seen.clear()
    res, err, _ = gws.connect(base + "/0", redirects=1)
    assert err.startswith("too many redirects (limit 1)") and len(seen) == 2
    seen.clear()
    res, err, _ = gws.connect(base + "/9", redirects=1)
    assert res, err  # /9 -> /10 (accepted): one redirect
    res.socket.close()


def test_redirects_zero_follows_none(make_server):
    seen: Seen = []
    server = redirecting_server(make_server, {"/": (302, "/x")}, seen)
    res, err, _ = gws.connect(f"ws://127.0.0.1:{server.port}/", redirects=0)
    assert res is None and err.startswith("server answered 302 Found")
    assert len(seen) == 1
    for bad in (-1, True, "3"):
        res, err, _ = gws.connect(f"ws://127.0.0.1:{server.port}/", redirects=bad)
        assert res is None and "option redirects" in err


def test_bad_location_is_an_error(make_server):
    seen: Seen = []
    server = redirecting_server(make_server, {"/": (302, "ftp://elsewhere/")}, seen)
    res, err, _ = gws.connect(f"ws://127.0.0.1:{server.port}/")
    assert res is None and err.startswith("invalid redirect Location (unsupported scheme 'ftp'")


def test_redirect_without_location_is_the_plain_error(make_server):
    def handler(sock, _addr):
        read_head(sock)
        sock.sendall(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")
        sock.close()

    server = make_server.raw(handler)
    res, err, _ = gws.connect(f"ws://127.0.0.1:{server.port}/")
    assert res is None and err == "server answered 302 Found instead of 101 Switching Protocols"


def test_final_url_without_redirects_and_without_credentials(echo_server):
    with gws.open(f"ws://u:pw@127.0.0.1:{echo_server}/p?q=1") as ws:
        assert ws.response.url == f"ws://127.0.0.1:{echo_server}/p?q=1"
        assert ws.response.redirects == []


def test_relative_redirect_on_a_unix_socket_stays_on_it(make_server, tmp_path):
    path = str(tmp_path / "r.sock")
    seen: Seen = []

    def handler(sock, _addr):
        head, rest = read_head(sock)
        _method, target, headers = parse_request(head)
        seen.append((target, headers))
        if target == "/a/b":
            sock.sendall(b"HTTP/1.1 307 Temporary\r\nLocation: c?d=1\r\n\r\n")
            sock.close()
            return
        key = header(headers, "Sec-WebSocket-Key")[0]
        sock.sendall(accept_reply(key))
        ClientFrames(sock, rest).until_close()
        sock.sendall(server_frame(gws.OP_CLOSE, b"\x03\xe8"))
        sock.close()

    listener = gevent.socket.socket(gevent.socket.AF_UNIX, gevent.socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    unix = StreamServer(listener, handler)
    unix.start()
    try:
        res, read, write = gws.connect(f"ws+unix://{path}:/a/b")
        assert res, read
        assert res.url == f"ws+unix://{path}:/a/c?d=1"
        write.close()
        assert read() is None
        assert [t for t, _ in seen] == ["/a/b", "/a/c?d=1"]
    finally:
        unix.stop(timeout=1)


def test_no_redirect_on_a_caller_socket():
    client_end, server_end = gevent.socket.socketpair()

    def answer():
        read_head(server_end)
        server_end.sendall(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n")

    g = gevent.spawn(answer)
    res, err, _ = gws.connect(sock=client_end)
    g.get(timeout=10)
    server_end.close()
    assert res is None
    assert err == "cannot follow a 302 redirect on a socket given by option sock: ws://localhost/"
