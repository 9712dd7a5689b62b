"""tlsbio.py: TLS over memory BIOs (TLS inside TLS, truststore contexts), against
real gevent TLS servers on loopback: big writes, interruption mid-write, the
socket face it forwards and the one it does not."""

from __future__ import annotations

import ssl

import gevent
import gevent.socket
import pytest
from helpers import accept_reply, read_head

import gws
from gws.tlsbio import TLSOverSocket

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def client_context(tls_ca_file):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=tls_ca_file)
    return ctx


def raw_echo(sock, _addr):
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass


def test_big_full_duplex_transfer_and_bounded_sends(
    make_server, tls_server_context, client_context
):
    server = make_server.raw(raw_echo, ssl_context=tls_server_context)
    plain = gevent.socket.create_connection(("127.0.0.1", server.port), timeout=30)
    tls = TLSOverSocket(plain, client_context, "localhost")
    try:
        assert tls.version().startswith("TLS") and tls.server_hostname == "localhost"
        assert tls.getpeercert()["subjectAltName"]
        # one send() encrypts at most 256 KiB: memory stays bounded, sendall loops
        assert tls.send(b"a" * (1 << 20)) == 256 * 1024
        assert isinstance(tls.pending(), int)
        big = bytes(range(256)) * (32 * 1024)  # 8 MiB
        with gevent.Timeout(60):
            writer = gevent.spawn(tls.sendall, big)
            got = bytearray()
            want = 256 * 1024 + len(big)
            while len(got) < want:
                chunk = tls.recv(65536)
                assert chunk, "the echo server hung up"
                got += chunk
            writer.get()
        assert bytes(got[: 256 * 1024]) == b"a" * (256 * 1024)
        assert bytes(got[256 * 1024 :]) == big
    finally:
        tls.close()


def test_only_the_socket_face_is_forwarded(make_server, tls_server_context, client_context):
    """``unwrap``, ``makefile``, ``read``... of the inner socket would act on
    the wrong layer (through an https:// proxy the inner socket is TLS too)."""
    server = make_server.raw(raw_echo, ssl_context=tls_server_context)
    plain = gevent.socket.create_connection(("127.0.0.1", server.port), timeout=30)
    tls = TLSOverSocket(plain, client_context, "localhost")
    try:
        for name in ("unwrap", "makefile", "read", "write", "dup", "detach", "_sslobj"):
            assert not hasattr(tls, name), name
        assert tls.fileno() == plain.fileno() and tls.getpeername()[1] == server.port
        assert tls.session_reused is False and tls.cipher()
        tls.sendall(b"hello")
        with gevent.Timeout(30):
            assert tls.recv(64) == b"hello"
    finally:
        tls.close()
    assert plain.fileno() == -1


def test_failed_handshake_closes_the_socket(make_server, client_context, no_leaks):
    def hang_up(sock, _addr):
        sock.recv(1)

    server = make_server.raw(hang_up)
    with no_leaks():
        plain = gevent.socket.create_connection(("127.0.0.1", server.port), timeout=30)
        with gevent.Timeout(30), pytest.raises((ssl.SSLError, OSError)):
            TLSOverSocket(plain, client_context, "localhost")
        assert plain.fileno() == -1


def test_interrupted_write_tears_the_connection_down(
    make_server, tls_server_context, tls_ca_file, monkeypatch, no_leaks
):
    """A send interrupted once TLSOverSocket encrypted the frame cannot be
    taken back: the connection is ended (for a plain or gevent TLS socket an
    interruption before any byte left keeps it usable), and nothing leaks.
    A big frame takes several sends (torn after the first); a frame of one
    send is known torn only through ``TLSOverSocket.broken``."""
    truststore = pytest.importorskip("truststore")
    monkeypatch.setenv("SSL_CERT_FILE", tls_ca_file)  # what truststore reads on Linux

    def accept_and_never_read(sock, _addr):
        head, _ = read_head(sock)
        key = [
            line.split(":", 1)[1].strip()
            for line in head.decode().split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        ][0]
        sock.sendall(accept_reply(key))
        make_server.hold_open(sock, _addr)

    with no_leaks():
        server = make_server.raw(accept_and_never_read, ssl_context=tls_server_context)
        ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ws = gws.open(f"wss://localhost:{server.port}/", tls=ctx, compression=None)
        assert type(ws.response.socket).__name__ == "TLSOverSocket"
        # frames of one TLSOverSocket.send() each, until the socket buffers are
        # full and one waits (bounded: 1000 frames are 200 MB): it is interrupted
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.5):
            for _ in range(1000):
                ws.send(b"x" * 200_000)
        assert ws.response.socket.broken
        assert ws.closed
        with pytest.raises(gws.ConnectionClosed):
            ws.send("after")
        ws.close()
        make_server.stop_all()
