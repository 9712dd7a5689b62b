"""proxy.py, socks.py: the ``proxy`` option and the proxy environment variables,
through real pproxy servers (subprocesses on loopback) and, for what pproxy
cannot be made to do (403, 502, a slow SOCKS handshake), hand-written
in-test proxies."""

from __future__ import annotations

import base64
import logging
import socket
import struct
import sys

import gevent
import pytest
from gevent.event import Event
from helpers import read_head, recording_server, relay

import gws
from gws.proxy import Proxy, choose_proxy, parse_proxy, proxy_from_environment

# no proxy variable from the machine leaks into a test
pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_proxy_env")]


def round_trip(res, read, write, via_port=None):
    assert res, read
    if via_port is not None:  # our socket's peer is the proxy, not the server
        assert res.socket.getpeername()[1] == via_port
    write("through")
    msg = read()
    assert msg is not None and msg.payload == "through"
    write.close()
    assert read() is None and read.error is None


# -- parsing ---------------------------------------------------------------------------


def test_parse_proxy_urls():
    assert parse_proxy("http://127.0.0.1:3128") == Proxy("http", "127.0.0.1", 3128)
    assert parse_proxy("proxy.example:8080") == Proxy("http", "proxy.example", 8080)
    assert parse_proxy("https://p.example") == Proxy("https", "p.example", 443)
    assert parse_proxy("SOCKS5H://u:p%40ss@[::1]") == Proxy("socks5h", "::1", 1080, "u", "p@ss")
    assert parse_proxy("socks4a://id@h:1") == Proxy("socks4a", "h", 1, "id", None)
    assert parse_proxy("http://bücher.example:1").host == "xn--bcher-kva.example"


def test_repr_and_errors_hide_credentials():
    proxy = parse_proxy("http://alice:s3cr3t@h:1")
    assert "s3cr3t" not in repr(proxy) and "alice" not in repr(proxy)
    for bad in ("ftp://alice:s3cr3t@h:1", "http://alice:s3cr3t@h:99999", "http://alice:s3cr3t@"):
        with pytest.raises(gws.InvalidURL) as info:
            parse_proxy(bad)
        assert "s3cr3t" not in str(info.value)
    res, err, _ = gws.connect("ws://127.0.0.1:1/", proxy="gopher://alice:s3cr3t@h:1")
    assert res is None and "unsupported proxy scheme" in err and "s3cr3t" not in err


def test_proxy_option_type_checked():
    res, err, _ = gws.connect("ws://127.0.0.1:1/", proxy=5)
    assert res is None and "option proxy" in err


# -- HTTP CONNECT through pproxy -----------------------------------------------------------


def test_ws_through_http_proxy(pproxy, echo_server, no_leaks):
    proxy = pproxy("http")
    with no_leaks():
        round_trip(
            *gws.connect(f"ws://127.0.0.1:{echo_server}/", proxy=proxy.url("http")),
            via_port=proxy.port,
        )


def test_ws_through_http_proxy_with_auth(pproxy, echo_server, make_server):
    proxy = pproxy("http", auth="alice:s3cr3t")
    url = f"ws://127.0.0.1:{echo_server}/"
    round_trip(*gws.connect(url, proxy=proxy.url("http", "alice:s3cr3t")), via_port=proxy.port)
    # the proxy's credentials go to the proxy only, never to the server
    server, seen = recording_server(make_server)
    res, read, write = gws.connect(
        f"ws://127.0.0.1:{server.port}/", proxy=proxy.url("http", "alice:s3cr3t")
    )
    write("x")
    request, _ = seen.get(timeout=10)
    assert request.header("Proxy-Authorization") is None
    assert request.header("Authorization") is None
    write.close()
    with gws.open(url, proxy=proxy.url("http", "alice:s3cr3t")) as ws:
        ws.send("pythonic")
        assert ws.recv().payload == "pythonic"


def test_wrong_proxy_password_is_a_407_naming_the_proxy_not_the_credentials(
    pproxy, echo_server, caplog, no_leaks
):
    caplog.set_level(logging.DEBUG, logger="gws")
    proxy = pproxy("http", auth="alice:s3cr3t")
    url = f"ws://127.0.0.1:{echo_server}/"
    with no_leaks():
        res, err, write = gws.connect(url, proxy=proxy.url("http", "alice:wr0ng"))
    assert res is None and write is None
    assert f"http://127.0.0.1:{proxy.port}" in err
    assert "407" in err and "credentials were rejected" in err
    assert "wr0ng" not in err and "alice" not in err
    assert "wr0ng" not in caplog.text
    res, err, _ = gws.connect(url, proxy=proxy.url("http"))
    assert res is None and "407" in err and "needs credentials" in err
    with pytest.raises(gws.ProxyError) as info:
        gws.open(url, proxy=proxy.url("http", "alice:wr0ng"))
    assert info.value.status == 407 and isinstance(info.value, ConnectionError)


def test_wss_through_http_proxy_verifies_the_server_end_to_end(pproxy, tls_echo, tls_ca_file):
    proxy = pproxy("http")
    url = f"wss://localhost:{tls_echo.port}/"
    res, read, write = gws.connect(url, proxy=proxy.url("http"), tls={"ca": tls_ca_file})
    assert res is not None and res.socket.getpeercert()["subject"]
    round_trip(res, read, write, via_port=proxy.port)
    # the same server, same proxy, but a CA that did not sign it: refused
    res, err, _ = gws.connect(url, proxy=proxy.url("http"))
    assert res is None and "TLS certificate verification failed" in err
    # and a certificate for another name: refused (hostname checked through the tunnel)
    res, err, _ = gws.connect(
        url, proxy=proxy.url("http"), tls={"ca": tls_ca_file, "server_name": "other.example"}
    )
    assert res is None and "TLS" in err


def test_proxy_not_listening_is_named(free_port):
    res, err, _ = gws.connect(
        "ws://127.0.0.1:1/", proxy=f"http://bob:pw@127.0.0.1:{free_port}", timeout=3000
    )
    assert res is None
    assert err == f"cannot connect to proxy http://127.0.0.1:{free_port}: connection refused"


@pytest.mark.parametrize(
    ("status", "reply"),
    [(403, "403 Forbidden"), (502, "502 Bad Gateway"), (407, "407 Proxy Authentication Required")],
)
def test_http_proxy_refusals(make_server, status, reply):
    seen = []

    def refusing_proxy(sock, _addr):
        head, _ = read_head(sock)
        seen.append(head)
        sock.sendall(f"HTTP/1.1 {reply}\r\nContent-Length: 0\r\n\r\n".encode())
        sock.close()

    proxy = make_server.raw(refusing_proxy)
    res, err, _ = gws.connect(
        "ws://target.example:81/", proxy=f"http://u:pw@127.0.0.1:{proxy.port}"
    )
    assert res is None
    assert err.startswith(f"proxy http://127.0.0.1:{proxy.port} refused the tunnel")
    assert f"target.example:81: {reply}" in err and "pw" not in err.replace("proxy", "")
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "CONNECT target.example:81 HTTP/1.1"
    assert "Host: target.example:81" in lines
    assert "Proxy-Authorization: Basic " + base64.b64encode(b"u:pw").decode() in lines


def test_http_proxy_that_hangs_up_or_talks_nonsense(make_server):
    def hang_up(sock, _addr):
        read_head(sock)
        sock.close()

    def nonsense(sock, _addr):
        read_head(sock)
        sock.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
        sock.close()

    def too_eager(sock, _addr):
        read_head(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n")
        sock.close()

    proxy = make_server.raw(too_eager)
    res, err, _ = gws.connect("ws://h/", proxy=f"http://127.0.0.1:{proxy.port}")
    assert res is None and "sent data before the tunnel was used" in err

    for handler in (hang_up, nonsense):
        proxy = make_server.raw(handler)
        res, err, _ = gws.connect("ws://h/", proxy=f"http://127.0.0.1:{proxy.port}")
        assert res is None and f"proxy http://127.0.0.1:{proxy.port} gave no valid reply" in err


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_proxy_resetting_the_connection_is_named(make_server, no_leaks, scheme):
    def reset(sock, _addr):
        sock.recv(1024)  # the CONNECT request, or the SOCKS greeting
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # with linger 0: a reset

    proxy = make_server.raw(reset)
    with no_leaks():
        res, err, _ = gws.connect("ws://h:81/", proxy=f"{scheme}://u:pw@127.0.0.1:{proxy.port}")
    assert res is None
    assert err == (
        f"proxy {scheme}://127.0.0.1:{proxy.port} broke off the tunnel to h:81:"
        " Connection reset by peer"
    )


# -- HTTPS proxy (TLS to the proxy) --------------------------------------------------------


def test_ws_through_https_proxy(pproxy, echo_server, tls_cert, tmp_path, tls_ca_file, monkeypatch):
    cert, key = tmp_path / "proxy.pem", tmp_path / "proxy.key"
    tls_cert.cert_chain_pems[0].write_to_path(str(cert))
    tls_cert.private_key_pem.write_to_path(str(key))
    proxy = pproxy("http+ssl", ssl_files=f"{cert},{key}")
    url = f"ws://127.0.0.1:{echo_server}/"
    # the proxy's certificate is checked with the default trust (SSL_CERT_FILE here)
    res, err, _ = gws.connect(url, proxy=proxy.url("https"))
    assert res is None and f"TLS to proxy https://127.0.0.1:{proxy.port} failed" in err
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)
    round_trip(*gws.connect(url, proxy=proxy.url("https")), via_port=proxy.port)


@pytest.fixture
def https_pproxy(pproxy, tls_cert, tmp_path, tls_ca_file, monkeypatch):
    """pproxy listening with TLS (its certificate from the trustme CA, which
    SSL_CERT_FILE makes the default trust)."""
    cert, key = tmp_path / "proxy.pem", tmp_path / "proxy.key"
    tls_cert.cert_chain_pems[0].write_to_path(str(cert))
    tls_cert.private_key_pem.write_to_path(str(key))
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)
    return pproxy("http+ssl", ssl_files=f"{cert},{key}")


def test_wss_through_https_proxy_is_tls_inside_tls(https_pproxy, make_server, tls_ca, no_leaks):
    # the server's certificate comes from another CA: trusted only through tls={"ca": ...}
    server_ca = type(tls_ca)()
    ctx = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
    server_ca.issue_cert("localhost").configure_cert(ctx)
    server = make_server(gws.echo, ssl_context=ctx)
    url = f"wss://localhost:{server.port}/"
    pem = server_ca.cert_pem.bytes().decode()
    with no_leaks():
        res, read, write = gws.connect(url, proxy=https_pproxy.url("https"), tls={"ca": pem})
        assert res, read
        round_trip(res, read, write)
        res, err, _ = gws.connect(url, proxy=https_pproxy.url("https"))  # fails verification
        assert res is None
    res, read, write = gws.connect(url, proxy=https_pproxy.url("https"), tls={"ca": pem})
    assert res, read
    assert res.socket.version().startswith("TLS")
    assert res.socket.getpeercert()["subjectAltName"] == (("DNS", "localhost"),)
    big = "x" * (1 << 20)  # more than one TLS record each way, through both layers
    write(big)
    assert read().payload == big
    round_trip(res, read, write, via_port=https_pproxy.port)
    # the end-to-end check: the proxy's CA alone does not make the server trusted
    res, err, _ = gws.connect(url, proxy=https_pproxy.url("https"))
    assert res is None and "TLS certificate verification failed" in err
    res, err, _ = gws.connect(
        url, proxy=https_pproxy.url("https"), tls={"ca": pem, "server_name": "other.example"}
    )
    assert res is None and "TLS" in err


def test_tls_inside_tls_full_duplex(https_pproxy, make_server, tls_server_context, tls_ca_file):
    """Both ends write 4 MiB before reading, through two TLS layers: the
    client reads while its own writer is mid-message."""
    big = b"s" * (4 << 20)

    def talker(_request, read, write):
        write(big)  # before reading anything
        msg = read()
        write(msg.payload[:16])
        read()

    server = make_server(talker, ssl_context=tls_server_context)
    with gevent.Timeout(60):
        ws = gws.open(
            f"wss://localhost:{server.port}/",
            proxy=https_pproxy.url("https"),
            tls={"ca": tls_ca_file},
            compression=None,
        )
        sender = gevent.spawn(ws.send, b"c" * (4 << 20))
        assert ws.recv().payload == big
        assert ws.recv().payload == b"c" * 16
        sender.get()
        ws.close()


# -- SOCKS through pproxy ------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_ws_and_wss_through_socks5_with_auth(
    pproxy, echo_server, tls_echo, tls_ca_file, scheme, no_leaks
):
    proxy = pproxy("socks5", auth="alice:s3cr3t")
    via = proxy.url(scheme, "alice:s3cr3t")
    with no_leaks():
        round_trip(*gws.connect(f"ws://localhost:{echo_server}/", proxy=via), via_port=proxy.port)
        round_trip(
            *gws.connect(f"wss://localhost:{tls_echo.port}/", proxy=via, tls={"ca": tls_ca_file}),
            via_port=proxy.port,
        )
        res, err, _ = gws.connect(f"ws://localhost:{echo_server}/", proxy=proxy.url(scheme))
        assert res is None and "refused" in err  # no credentials: the failure path leaks nothing


def test_ws_and_wss_through_socks4_with_user_id(pproxy, echo_server, tls_echo, tls_ca_file):
    proxy = pproxy("socks4", auth="alice")
    via = proxy.url("socks4", "alice")
    round_trip(*gws.connect(f"ws://localhost:{echo_server}/", proxy=via), via_port=proxy.port)
    round_trip(
        *gws.connect(f"wss://localhost:{tls_echo.port}/", proxy=via, tls={"ca": tls_ca_file}),
        via_port=proxy.port,
    )
    res, err, _ = gws.connect(f"ws://localhost:{echo_server}/", proxy=proxy.url("socks4", "eve"))
    assert res is None and f"SOCKS proxy socks4://127.0.0.1:{proxy.port} refused" in err


def socks4a_server(make_server, names):
    """An in-test SOCKS4a proxy (pproxy has no 4a): records the name asked
    for and connects to 127.0.0.1 whatever it is."""

    def handler(sock, _addr):
        head = b""
        while head.count(b"\x00") < 2:
            chunk = sock.recv(512)
            if not chunk:
                return
            head += chunk
        assert head[:2] == b"\x04\x01" and head[4:7] == b"\x00\x00\x00"  # 0.0.0.x: 4a
        port = struct.unpack("!H", head[2:4])[0]
        names.append(head[8:].split(b"\x00")[1].decode("ascii"))
        upstream = gevent.socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"\x00\x5a" + head[2:4] + b"\x7f\x00\x00\x01")
        relay(sock, upstream)

    return make_server.raw(handler)


def test_ws_and_wss_through_socks4a_name_resolved_by_the_proxy(
    make_server, echo_server, tls_echo, tls_ca_file
):
    names = []
    proxy = socks4a_server(make_server, names)
    via = f"socks4a://127.0.0.1:{proxy.port}"
    round_trip(*gws.connect(f"ws://localhost:{echo_server}/", proxy=via), via_port=proxy.port)
    round_trip(
        *gws.connect(f"wss://localhost:{tls_echo.port}/", proxy=via, tls={"ca": tls_ca_file}),
        via_port=proxy.port,
    )
    assert names == ["localhost", "localhost"]


def test_socks5_wrong_password(pproxy, echo_server):
    proxy = pproxy("socks5", auth="alice:s3cr3t")
    res, err, _ = gws.connect(
        f"ws://127.0.0.1:{echo_server}/", proxy=proxy.url("socks5", "alice:wr0ng")
    )
    assert res is None
    assert err.startswith(f"SOCKS proxy socks5://127.0.0.1:{proxy.port} refused the tunnel")
    assert "wr0ng" not in err and "alice" not in err
    with pytest.raises(gws.ProxyError):
        gws.open(f"ws://127.0.0.1:{echo_server}/", proxy=proxy.url("socks5"))


def test_socks5_reply_error_from_an_in_test_proxy(make_server):
    def refusing_socks5(sock, _addr):
        assert sock.recv(3) == b"\x05\x01\x00"  # version 5, one method: no auth
        sock.sendall(b"\x05\x00")
        sock.recv(64)
        sock.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")  # 5: connection refused
        sock.close()

    proxy = make_server.raw(refusing_socks5)
    res, err, _ = gws.connect("ws://127.0.0.1:9/", proxy=f"socks5://127.0.0.1:{proxy.port}")
    assert res is None and f"socks5://127.0.0.1:{proxy.port}" in err and "refused" in err


def test_socks_handshake_never_blocks_the_hub(make_server, echo_server):
    """python-socks speaks over gws's gevent socket: while the proxy holds its
    reply back, other greenlets run. The proxy answers only once a ticker
    greenlet has ticked 20 times, so a handshake that blocked the hub could
    never complete (the connect would time out)."""
    ticks = []
    enough = Event()

    def ticker():
        for i in range(20):
            ticks.append(i)
            gevent.sleep(0.001)
        enough.set()

    def slow_socks5(sock, _addr):
        assert sock.recv(3) == b"\x05\x01\x00"
        sock.sendall(b"\x05\x00")
        request = sock.recv(64)
        assert request[:4] == b"\x05\x01\x00\x01"  # CONNECT to an IPv4 address
        port = struct.unpack("!H", request[8:10])[0]
        gevent.spawn(ticker)
        assert enough.wait(10)
        upstream = gevent.socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + request[8:10])
        relay(sock, upstream, timeout=10)

    proxy = make_server.raw(slow_socks5)
    ws = gws.open(f"ws://127.0.0.1:{echo_server}/", proxy=f"socks5://127.0.0.1:{proxy.port}")
    assert len(ticks) == 20
    ws.send("after")
    assert ws.recv().payload == "after"
    ws.close()


# -- environment variables -----------------------------------------------------------------


def test_environment_rules(monkeypatch):
    assert proxy_from_environment("h", 80, False) is None
    monkeypatch.setenv("HTTP_PROXY", "http://upper:1")
    assert proxy_from_environment("h", 80, False) == "http://upper:1"
    monkeypatch.setenv("http_proxy", "http://lower:1")
    assert proxy_from_environment("h", 80, False) == "http://lower:1"  # lower case wins
    assert proxy_from_environment("h", 443, True) is None  # wss reads https_proxy
    monkeypatch.setenv("all_proxy", "socks5h://all:1")
    assert proxy_from_environment("h", 443, True) == "socks5h://all:1"
    monkeypatch.setenv("https_proxy", "http://secure:1")
    assert proxy_from_environment("h", 443, True) == "http://secure:1"
    monkeypatch.setenv("no_proxy", "localhost, .internal.example,10.1.2.3:8080")
    assert proxy_from_environment("localhost", 80, False) is None
    assert proxy_from_environment("a.internal.example", 80, False) is None
    assert proxy_from_environment("10.1.2.3", 8080, False) is None
    assert proxy_from_environment("10.1.2.3", 80, False) == "http://lower:1"
    assert proxy_from_environment("internal.example.org", 80, False) == "http://lower:1"
    monkeypatch.setenv("no_proxy", "*")
    assert proxy_from_environment("anything", 80, False) is None
    # a CGI request may carry a Proxy: header as HTTP_PROXY: ignored, as urllib does
    monkeypatch.delenv("http_proxy")
    monkeypatch.delenv("no_proxy")
    monkeypatch.delenv("all_proxy")
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    assert proxy_from_environment("h", 80, False) is None
    assert choose_proxy(None, "h", 443, True) is None


ENV_TABLE = [
    {"http_proxy": "http://p:1"},
    {"HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:1"},
    {"HTTP_PROXY": "http://upper:1", "http_proxy": ""},  # empty lower case unsets
    {"Http_Proxy": "http://mixed:1"},
    {"HTTP_PROXY": "http://cgi:1", "REQUEST_METHOD": "GET"},
    {"https_proxy": "http://s:1", "HTTPS_PROXY": "http://S:1"},
    {"http_proxy": "p:1", "https_proxy": "http://s:1", "no_proxy": "*"},
    {"http_proxy": "http://p:1", "https_proxy": "http://s:1", "no_proxy": " .Example.COM , b"},
    {"http_proxy": "http://p:1", "https_proxy": "http://s:1", "NO_PROXY": "example.com:8080"},
    {"http_proxy": "http://p:1", "no_proxy": "[::1],10.0.0.1,.local"},
    {"http_proxy": "http://p:1", "no_proxy": "", "NO_PROXY": "a.example.com"},
    {"http_proxy": "http://p:1", "no_proxy": "*.example.com"},  # no glob in urllib
]
HOSTS = [
    ("example.com", 8080),
    ("a.Example.com", 80),
    ("b", 443),
    ("notexample.com", 80),
    ("::1", 80),
    ("10.0.0.1", 443),
    ("x.local", 80),
]


@pytest.mark.parametrize("env", ENV_TABLE)
def test_environment_decided_as_urllib_request_decides(monkeypatch, env):
    """For ws://host:port/ gws picks the proxy urllib.request would pick for
    http://host:port/ (wss: https), bypassing it where urllib bypasses it."""
    import urllib.request

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for host, port in HOSTS:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        for tls in (False, True):
            proxies = urllib.request.getproxies()  # the environment's, on this OS
            expected = proxies.get("https" if tls else "http")
            if expected and urllib.request.proxy_bypass(netloc):
                expected = None
            assert proxy_from_environment(host, port, tls) == expected, (env, host, port, tls)


def test_http_proxy_variable_is_used_and_proxy_none_turns_it_off(pproxy, echo_server, monkeypatch):
    proxy = pproxy("http", auth="alice:s3cr3t")
    monkeypatch.setenv("http_proxy", proxy.url("http", "alice:s3cr3t"))
    url = f"ws://127.0.0.1:{echo_server}/"
    round_trip(*gws.connect(url), via_port=proxy.port)
    round_trip(*gws.connect(url, proxy=None), via_port=echo_server)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    round_trip(*gws.connect(url), via_port=echo_server)
    monkeypatch.setenv("no_proxy", f"127.0.0.1:{echo_server + 1}")
    round_trip(*gws.connect(url), via_port=proxy.port)


def test_https_proxy_variable_for_wss_and_wrong_password(
    pproxy, tls_echo, tls_ca_file, echo_server, monkeypatch
):
    proxy = pproxy("http+socks5", auth="alice:s3cr3t")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url("http", "alice:s3cr3t"))
    monkeypatch.setenv("ALL_PROXY", proxy.url("socks5h", "alice:s3cr3t"))
    wss = f"wss://localhost:{tls_echo.port}/"
    round_trip(*gws.connect(wss, tls={"ca": tls_ca_file}), via_port=proxy.port)
    # ws has no http_proxy here: all_proxy (SOCKS) is used
    round_trip(*gws.connect(f"ws://127.0.0.1:{echo_server}/"), via_port=proxy.port)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url("http", "alice:wr0ng"))
    res, err, _ = gws.connect(wss, tls={"ca": tls_ca_file})
    assert res is None and "407" in err and "wr0ng" not in err


def test_unix_socket_ignores_the_environment(make_server, tmp_path, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # would refuse
    path = str(tmp_path / "ws.sock")
    make_server(gws.echo, host=f"unix:{path}")
    round_trip(*gws.connect(path=path))


def test_socks_without_python_socks_is_a_clear_error(monkeypatch, fd_count):
    monkeypatch.setitem(sys.modules, "gws.socks", None)  # as if python-socks were missing
    before = fd_count()
    res, err, _ = gws.connect("ws://127.0.0.1:1/", proxy="socks5://127.0.0.1:9")
    assert res is None
    assert err.startswith(
        "socks:// proxies need python-socks>=3.0,<3.3 (pip install 'gws-client[socks]'): "
    )
    assert fd_count() == before


def test_socks_with_an_incompatible_python_socks_is_a_clear_error(monkeypatch, fd_count):
    """python-socks 2.x named the stream methods write_all/read_exact: gws
    drives its private connectors, so another shape is refused at import."""
    from python_socks._abc import SyncSocketStream

    monkeypatch.delattr(SyncSocketStream, "read_exactly")
    monkeypatch.delitem(sys.modules, "gws.socks", raising=False)  # import it afresh
    before = fd_count()
    res, err, _ = gws.connect("ws://127.0.0.1:1/", proxy="socks5://127.0.0.1:9")
    assert res is None
    assert err == (
        "socks:// proxies need python-socks>=3.0,<3.3 (pip install 'gws-client[socks]'):"
        " this python-socks has another private stream interface"
    )
    assert fd_count() == before


def test_python_socks_pin_matches_the_installed_version():
    import python_socks

    from gws import proxy, socks

    assert socks.REQUIREMENT == proxy.SOCKS_REQUIREMENT == "python-socks>=3.0,<3.3"
    major, minor = (int(part) for part in python_socks.__version__.split(".")[:2])
    assert (3, 0) <= (major, minor) < (3, 3), python_socks.__version__


def test_socks5_malformed_reply_is_a_clear_error(make_server, no_leaks):
    def bad_bound_name(sock, _addr):
        sock.recv(3)
        sock.sendall(b"\x05\x00")
        sock.recv(64)
        # success, bound address a domain name that is not UTF-8
        sock.sendall(b"\x05\x00\x00\x03\x02\xff\xfe\x00\x50")
        sock.recv(1)  # until the client hangs up

    proxy = make_server.raw(bad_bound_name)
    with no_leaks():
        res, err, _ = gws.connect("ws://127.0.0.1:9/", proxy=f"socks5://127.0.0.1:{proxy.port}")
    assert res is None
    assert err == (
        f"SOCKS proxy socks5://127.0.0.1:{proxy.port} refused the tunnel to 127.0.0.1:9:"
        " malformed reply"
    )


def test_socks_credentials_checked_before_any_socket(fd_count):
    before = fd_count()
    for url in ("socks5://al\u00efce:s3cr3t@127.0.0.1:9", f"socks5://a:{'p' * 256}@127.0.0.1:9"):
        res, err, _ = gws.connect("ws://127.0.0.1:1/", proxy=url)
        assert res is None and "SOCKS credentials must be ASCII" in err
        assert "s3cr3t" not in err and "ppp" not in err
    res, err, _ = gws.connect("ws://[::1]:1/", proxy="socks4://127.0.0.1:9")
    assert res is None and "cannot reach the IPv6 address ::1: use socks5://" in err
    assert fd_count() == before


def test_unencoded_delimiters_in_a_proxy_password_stay_hidden():
    for password in ("pa/ss", "pa?ss", "pa#ss"):
        res, err, _ = gws.connect("ws://127.0.0.1:1/", proxy=f"http://alice:{password}@h:1")
        assert res is None and "invalid proxy URL" in err
        assert "pa" not in err.replace("proxy", "") and "alice" not in err, err


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_timeout_at_a_silent_proxy_closes_everything(make_server, no_leaks, scheme):
    with no_leaks():
        proxy = make_server.raw(make_server.hold_open)  # accepts, never answers
        with gevent.Timeout(10):
            res, err, _ = gws.connect(
                "ws://h/", proxy=f"{scheme}://127.0.0.1:{proxy.port}", timeout=300
            )
        assert res is None and err == "timed out after 300 ms while connecting"
        make_server.stop_all()
