"""connect()'s request and socket options: origin, user_agent, URL userinfo,
internationalised host names, ws+unix:// URLs, sock=, sockopt, keepalive and
TCP_NODELAY. Every assertion is on what a real server received or on the
real socket's options."""

from __future__ import annotations

import base64
import socket
import ssl
import struct
import sys

import gevent
import gevent.socket as gsocket
import gevent.ssl as gssl
import pytest
from helpers import recording_server, relay

import gws
from gws.url import ascii_host, parse_url

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_proxy_env")]

IDN = "bücher.example"
PUNY = "xn--bcher-kva.example"


def first_request(seen):
    request, _msg = seen.get(timeout=10)
    return request


def exchange(res, read, write):
    assert res, read
    write("x")
    assert read().payload == "x"
    write.close()


# -- Origin and User-Agent -----------------------------------------------------------------


def test_origin_and_default_user_agent(make_server):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(f"ws://127.0.0.1:{server.port}/", origin="https://app.example")
    exchange(res, read, write)
    request = first_request(seen)
    assert request.header("Origin") == "https://app.example"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert request.header("User-Agent") == f"gws/{gws.__version__} Python/{version}"


def test_user_agent_replaced_or_left_out_and_headers_win(make_server):
    server, seen = recording_server(make_server)
    url = f"ws://127.0.0.1:{server.port}/"
    exchange(*gws.connect(url, user_agent="bot/1.0"))
    exchange(*gws.connect(url, user_agent=None))
    exchange(
        *gws.connect(
            url, origin="https://a.example", headers={"Origin": "https://b", "User-Agent": "h"}
        )
    )
    agents = [first_request(seen).headers for _ in range(3)]
    ua = [[v for n, v in h if n == "User-Agent"] for h in agents]
    origins = [[v for n, v in h if n == "Origin"] for h in agents]
    assert ua == [["bot/1.0"], [], ["h"]]
    assert origins == [[], [], ["https://b"]]


def test_origin_and_user_agent_checked():
    for name, value in (("origin", 5), ("user_agent", b"x"), ("origin", "a\r\nX: y")):
        res, err, _ = gws.connect("ws://127.0.0.1:1/", **{name: value})
        assert res is None and ("option" in err or "line break" in err), err


# -- URL userinfo ---------------------------------------------------------------------------


def test_userinfo_is_percent_decoded_before_basic_auth(make_server):
    server, seen = recording_server(make_server)
    exchange(*gws.connect(f"ws://us%3Aer:p%40ss%2F@127.0.0.1:{server.port}/"))
    auth = first_request(seen).header("Authorization")
    assert base64.b64decode(auth.split()[1]) == b"us:er:p@ss/"
    assert parse_url("ws://user:p%40ss@h/")[0].password == "p@ss"


def test_empty_userinfo_sends_no_authorization(make_server):
    server, seen = recording_server(make_server)
    exchange(*gws.connect(f"ws://@127.0.0.1:{server.port}/"))
    assert first_request(seen).header("Authorization") is None
    exchange(*gws.connect(f"ws://:pw@127.0.0.1:{server.port}/"))
    assert first_request(seen).header("Authorization") == "Basic " + base64.b64encode(
        b":pw"
    ).decode("ascii")


# -- internationalised host names ------------------------------------------------------------


class RecordingResolver:
    """A gevent resolver (the hub's pluggable DNS component, see gevent's
    docs on resolvers): records each name gws asks for and answers 127.0.0.1.
    gws's own code path (``gevent.socket.getaddrinfo``) is left as it is;
    only what sits behind gevent's resolver interface changes, which is what
    observing "the DNS name asked for" needs without a real DNS server."""

    def __init__(self):
        self.names = []

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        self.names.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    def close(self):
        pass


@pytest.fixture
def resolver():
    hub = gevent.get_hub()
    original = hub.resolver
    stub = RecordingResolver()
    hub.resolver = stub
    try:
        yield stub
    finally:
        hub.resolver = original


def test_idn_goes_out_as_punycode_to_dns_and_host(make_server, resolver):
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(f"ws://{IDN}:{server.port}/")
    exchange(res, read, write)
    assert resolver.names == [PUNY]
    assert first_request(seen).header("Host") == f"{PUNY}:{server.port}"
    with gws.open(host=IDN, port=server.port) as ws:  # the host option too
        ws.send("y")
        assert ws.recv().payload == "y"
    assert resolver.names == [PUNY, PUNY]
    assert first_request(seen).header("Host") == f"{PUNY}:{server.port}"


def test_idn_in_sni_and_certificate_check(make_server, tls_ca, tls_ca_file, resolver):
    cert = tls_ca.issue_cert(PUNY)
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    sni = []
    ctx.sni_callback = lambda _sslobj, name, _ctx: sni.append(name)
    server, seen = recording_server(make_server, ssl_context=ctx)
    exchange(*gws.connect(f"wss://{IDN}:{server.port}/", tls={"ca": tls_ca_file}))
    assert sni == [PUNY] and resolver.names == [PUNY]
    assert first_request(seen).header("Host") == f"{PUNY}:{server.port}"


def socks5_recorder(make_server, asked):
    """An in-test SOCKS5 proxy (no auth) recording what it is asked to
    connect to: a domain name (socks5h) or an IPv4 address (socks5), and
    connecting to 127.0.0.1 whatever it is."""

    def handler(sock, _addr):
        assert sock.recv(3) == b"\x05\x01\x00"
        sock.sendall(b"\x05\x00")
        request = sock.recv(512)
        assert request[:3] == b"\x05\x01\x00"
        if request[3] == 3:  # a domain name
            size = request[4]
            asked.append(request[5 : 5 + size].decode("ascii"))
            port_bytes = request[5 + size : 7 + size]
        else:
            assert request[3] == 1
            asked.append(socket.inet_ntoa(request[4:8]))
            port_bytes = request[8:10]
        upstream = gsocket.create_connection(("127.0.0.1", struct.unpack("!H", port_bytes)[0]))
        sock.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + port_bytes)
        relay(sock, upstream)

    return make_server.raw(handler)


def test_idn_through_socks5h_reaches_the_proxy_as_punycode(make_server):
    """The other place a name is resolved: a socks5h proxy."""
    asked = []
    proxy = socks5_recorder(make_server, asked)
    server, seen = recording_server(make_server)
    exchange(*gws.connect(f"ws://{IDN}:{server.port}/", proxy=f"socks5h://127.0.0.1:{proxy.port}"))
    assert asked == [PUNY]
    assert first_request(seen).header("Host") == f"{PUNY}:{server.port}"


def test_socks5_resolves_locally_through_gevents_resolver(make_server, resolver):
    """socks5:// (not 5h) resolves the name on this side: through gevent's
    resolver, not the stdlib getaddrinfo python-socks' own resolver calls
    (which would block the hub, and knows nothing of this name)."""
    asked = []
    proxy = socks5_recorder(make_server, asked)
    server, _seen = recording_server(make_server)
    exchange(*gws.connect(f"ws://{IDN}:{server.port}/", proxy=f"socks5://127.0.0.1:{proxy.port}"))
    # (the in-test proxy's own create_connection asks for "127.0.0.1")
    assert resolver.names[0] == PUNY and PUNY not in resolver.names[1:]
    assert asked == ["127.0.0.1"]


@pytest.mark.parametrize("host", ["☃.example", "ü" * 70 + ".example"])
def test_unencodable_host_is_an_error_before_any_socket(host, resolver, fd_count):
    before = fd_count()
    res, err, _ = gws.connect(f"ws://{host}/")
    assert res is None and err.startswith(f"host name {host!r} cannot be encoded as IDNA")
    assert resolver.names == [] and fd_count() == before
    with pytest.raises(gws.InvalidURL):
        ascii_host(host)


# -- ws+unix:// ---------------------------------------------------------------------------------


def test_ws_unix_urls(make_server, tmp_path):
    path = str(tmp_path / "app.sock")
    server, seen = recording_server(make_server, host=f"unix:{path}")
    res, read, write = gws.connect(f"ws+unix://{path}:/chat?room=1")
    exchange(res, read, write)
    request = first_request(seen)
    assert request.path == "/chat?room=1" and request.header("Host") == "localhost"
    assert res.url == f"ws+unix://{path}:/chat?room=1"
    with gws.open(f"ws+unix://{path}") as ws:
        ws.send("z")
        assert ws.recv().payload == "z"
    assert first_request(seen).path == "/"
    url = parse_url(f"ws+unix://{path}:/p")[0]
    assert (url.unix_path, url.pathname, url.tls) == (path, "/p", False)
    assert "unix_path" in repr(url)
    for bad in ("ws+unix://relative.sock:/", f"ws+unix://{path}:nope"):
        assert parse_url(bad)[0] is None


# -- sock= ----------------------------------------------------------------------------------------


def _serve_on(sock):
    """gws.accept on one end of a socketpair, echoing until the client closes."""
    request, read, write = gws.accept(sock)
    for msg in read:
        write(gws.Message(opcode=msg.opcode, payload=msg.payload))
    return request


@pytest.mark.parametrize("kind", ["gevent", "stdlib"])
def test_handshake_over_a_socket_the_caller_connected(kind, deadline):
    if kind == "gevent":
        client_end, server_end = gsocket.socketpair()
    else:  # a stdlib socket is taken over as a cooperative one
        client_end, plain = socket.socketpair()
        server_end = gsocket.socket(fileno=plain.detach())
    server = gevent.spawn(_serve_on, server_end)
    res, read, write = gws.connect(sock=client_end, host="tunnel.example", pathname="/over")
    exchange(res, read, write)
    assert read() is None
    request = server.get(timeout=10)
    assert request.path == "/over" and request.header("Host") == "tunnel.example"
    assert isinstance(res.socket, gsocket.socket)
    server_end.close()
    if kind == "stdlib":
        assert client_end.fileno() == -1  # detached: gws owns (and closed) it


def test_sock_with_tls(tls_server_context, tls_ca_file, deadline):
    client_end, server_end = gsocket.socketpair()
    tls_server = tls_server_context.wrap_socket(
        server_end, server_side=True, do_handshake_on_connect=False
    )
    server = gevent.spawn(_serve_on, tls_server)
    res, read, write = gws.connect(sock=client_end, host="localhost", tls={"ca": tls_ca_file})
    assert res, read
    assert res.socket.version().startswith("TLS")
    exchange(res, read, write)
    server.get(timeout=10)
    tls_server.close()


def test_sock_option_checked():
    res, err, _ = gws.connect(sock="not a socket")
    assert res is None and "option sock must be a connected socket" in err


# -- socket options -------------------------------------------------------------------------------


def test_nodelay_on_and_keepalive_off_by_default(echo_server):
    res, read, write = gws.connect(port=echo_server)
    assert res, read
    assert res.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert res.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    exchange(res, read, write)


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="Linux keepalive options")
def test_keepalive(echo_server):
    res, read, write = gws.connect(port=echo_server, keepalive=True)
    assert res.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    exchange(res, read, write)
    res, read, write = gws.connect(port=echo_server, keepalive=30500)
    assert res.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert res.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 31
    assert res.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 31
    exchange(res, read, write)
    for bad in (-1, "yes"):
        res, err, _ = gws.connect(port=echo_server, keepalive=bad)
        assert res is None and "option keepalive" in err


def test_sockopt_set_before_connecting(echo_server):
    res, read, write = gws.connect(
        port=echo_server,
        sockopt=[
            (socket.SOL_SOCKET, socket.SO_RCVBUF, 8192),
            (socket.IPPROTO_IP, socket.IP_TOS, 16),
        ],
    )
    assert res, read
    assert res.socket.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 16
    # Linux doubles the value; set before connect, it sized the TCP window
    assert 8192 <= res.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) <= 2 * 8192
    assert res.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    exchange(res, read, write)


def test_bad_sockopt_is_a_clear_error(echo_server, fd_count):
    before = fd_count()
    for bad, needle in (
        ([(1, 2)], "not a (level, name, value) triple"),
        ("SO_KEEPALIVE", "must be a list"),
        ([(socket.SOL_SOCKET, 99999, 1)], "option sockopt (1, 99999, 1)"),
    ):
        res, err, _ = gws.connect(port=echo_server, sockopt=bad)
        assert res is None and needle in err, err
    assert fd_count() == before


def test_new_options_are_registered():
    for name in ("proxy", "redirects", "origin", "user_agent", "sock", "sockopt", "keepalive"):
        assert name in gws.CONNECT_OPTIONS
    res, err, _ = gws.connect("ws://127.0.0.1:1/", proxyy="http://h:1")
    assert res is None and err == "unknown option 'proxyy'"
