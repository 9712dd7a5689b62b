"""Security defaults: TLS verification, explicit insecure mode, randomness of
masks and keys, and credentials kept out of logs and error values.

Redirects are followed (up to option ``redirects``); their security rules
(never wss -> ws; no Authorization, Cookie or URL credentials sent to another
origin; query strings hidden in errors and logs) are tested in
test_redirects.py, the proxy's credentials (never in errors, logs or reprs,
never sent to the server) in test_proxy.py.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
from typing import Any, Dict, List

import gevent
import gevent.ssl as gssl
import pytest
from gevent.event import AsyncResult
from helpers import (
    ClientFrames,
    Harness,
    accept_reply,
    handshake,
    quiet_close,
    read_head,
    read_request,
)

import gws
from gws.handshake import parse_request

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca) -> ssl.SSLContext:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _round_trip(res: Any, read: Any, write: Any) -> None:
    assert res, read
    assert write("over tls") == (True, None)
    msg = read()
    assert msg is not None and msg.payload == "over tls"
    assert write.close() == (True, None)
    assert read.error is None


# -- TLS ------------------------------------------------------------------------------------


def test_tls_verifies_the_certificate_by_default(h: Harness, server_ctx) -> None:
    with h.no_leaks():
        srv = h.ws(ssl_context=server_ctx)
        for args, kwargs in (
            ((f"wss://127.0.0.1:{srv.port}/",), {}),
            ((), {"host": "127.0.0.1", "port": srv.port, "tls": True}),
            ((), {"host": "127.0.0.1", "port": srv.port, "tls": {}}),
            ((f"wss://127.0.0.1:{srv.port}/",), {"tls": {"insecure": False}}),
        ):
            res, err, write = gws.connect(*args, timeout=5000, **kwargs)
            assert res is None and write is None
            assert err.startswith("TLS certificate verification failed"), err
        with pytest.raises(ssl.SSLCertVerificationError):
            gws.open(f"wss://127.0.0.1:{srv.port}/", timeout=5000)


def test_tls_with_the_right_ca_connects(h: Harness, server_ctx, ca, ca_file) -> None:
    with h.no_leaks():
        srv = h.ws(ssl_context=server_ctx)
        _round_trip(*gws.connect(f"wss://127.0.0.1:{srv.port}/", tls={"ca": ca_file}, timeout=5000))
        pem = ca.cert_pem.bytes().decode("ascii")
        _round_trip(*gws.connect(f"wss://localhost:{srv.port}/", tls={"ca": pem}, timeout=5000))
        ctx = gssl.create_default_context(cafile=ca_file)
        _round_trip(*gws.connect(host="127.0.0.1", port=srv.port, tls=ctx, timeout=5000))


def test_tls_checks_the_hostname(h: Harness, server_ctx, ca_file) -> None:
    with h.no_leaks():
        srv = h.ws(ssl_context=server_ctx)
        res, err, _ = gws.connect(
            f"wss://127.0.0.1:{srv.port}/",
            tls={"ca": ca_file, "server_name": "wrong.example.org"},
            timeout=5000,
        )
        assert res is None
        assert err.startswith("TLS certificate verification failed"), err
        assert "mismatch" in err.lower(), err
        # the certificate names localhost too: that server_name is accepted
        _round_trip(
            *gws.connect(
                host="127.0.0.1",
                port=srv.port,
                tls={"ca": ca_file, "server_name": "localhost"},
                timeout=5000,
            )
        )


def test_insecure_must_be_explicit_and_warns(h: Harness, server_ctx, caplog) -> None:
    with h.no_leaks():
        srv = h.ws(ssl_context=server_ctx)
        with caplog.at_level(logging.DEBUG, logger="gws"):
            res, err, _ = gws.connect(f"wss://127.0.0.1:{srv.port}/", timeout=5000)
            assert res is None
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
            _round_trip(
                *gws.connect(f"wss://127.0.0.1:{srv.port}/", tls={"insecure": True}, timeout=5000)
            )
        warnings = [r for r in caplog.records if r.name == "gws" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "verification is disabled" in warnings[0].getMessage()


# -- randomness --------------------------------------------------------------------------------


class Urandom:
    """Stands in for os.urandom: hands out recognisable bytes and records them."""

    def __init__(self) -> None:
        self.handed: List[bytes] = []
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        self.counter += 1
        # recognisable, and different at every offset (keys come in batches)
        value = hashlib.shake_128(b"gws-test-%d" % self.counter).digest(n)
        self.handed.append(value)
        return value


def test_mask_keys_and_handshake_key_come_from_os_urandom(h: Harness, monkeypatch) -> None:
    seen: AsyncResult = AsyncResult()

    def handler(sock, _addr):
        try:
            key, headers, rest = read_request(sock)
            sock.sendall(accept_reply(key))
            raw = rest
            keys = []
            while len(keys) < 5:  # bounded: 5 small frames, then the close
                while len(raw) >= 6 and len(raw) >= 6 + (raw[1] & 0x7F):
                    assert raw[1] & 0x80, "client frame not masked"
                    n = raw[1] & 0x7F
                    keys.append(raw[2:6])
                    raw = raw[6 + n :]
                if len(keys) >= 5:
                    break
                chunk = sock.recv(4096)
                if not chunk:
                    break
                raw += chunk
            seen.set((key, keys))
            ClientFrames(sock, raw).until_close()
            sock.sendall(b"\x88\x02\x03\xe8")
        except Exception as exc:  # noqa: BLE001 - reported through seen
            seen.set(exc)
        finally:
            quiet_close(sock)

    fake = Urandom()
    with h.no_leaks():
        srv = h.raw(handler)
        monkeypatch.setattr(gws.frames.os, "urandom", fake)
        monkeypatch.setattr(gws.handshake.os, "urandom", fake)
        # masking keys are drawn from os.urandom in batches: start a new one
        monkeypatch.setattr(gws.frames, "_keys", [])
        res, read, write = gws.connect(srv.url, timeout=5000, compression=None)
        assert res, read
        for i in range(5):
            assert write(b"m%d" % i) == (True, None)
        result = seen.get(timeout=5)
        assert not isinstance(result, Exception), result
        ws_key, mask_keys = result
        write.close()
        monkeypatch.undo()
    assert base64.b64decode(ws_key) in [v for v in fake.handed if len(v) == 16]
    drawn = {
        v[i : i + 4]
        for v in fake.handed
        if len(v) % 4 == 0 and len(v) != 16
        for i in range(0, len(v), 4)
    }
    assert len(mask_keys) == 5
    for key in mask_keys:
        assert key in drawn, "mask key not drawn from os.urandom"
    assert len(set(mask_keys)) == 5, "mask key reused"


def test_real_keys_differ() -> None:
    from gws.frames import encode_frame
    from gws.handshake import make_key

    assert len({make_key() for _ in range(200)}) == 200
    assert len({encode_frame(2, b"x" * 8)[2:6] for _ in range(200)}) > 190


# -- credentials ---------------------------------------------------------------------------------

SECRETS = ("Al1ceS3cret", "B0bT0ken", "Co0kieVal")


def _leaks(text: str) -> List[str]:
    forms = []
    for s in SECRETS:
        forms += [s, base64.b64encode(f"alice:{s}".encode()).decode()]
    return [f for f in forms if f in text]


def _forbidden_server(requests: List[Dict[str, str]]):
    def handler(sock, _addr):
        try:
            head, _ = read_head(sock)
            _, _, headers = parse_request(head)
            requests.append({n.lower(): v for n, v in headers})
            body = b"forbidden\n"
            sock.sendall(
                b"HTTP/1.1 403 Forbidden\r\nSet-Cookie: sid=Co0kieVal; HttpOnly\r\n"
                b'WWW-Authenticate: Basic realm="x"\r\nContent-Length: %d\r\n\r\n%s'
                % (len(body), body)
            )
        finally:
            quiet_close(sock)

    return handler


def _assert_clean(caplog, *values: Any) -> None:
    texts = (
        [r.getMessage() for r in caplog.records]
        + [str(v) for v in values]
        + [repr(v) for v in values]
    )
    for text in texts:
        assert not _leaks(text), f"secret leaked in {text!r}"


def test_credentials_in_url_never_in_errors_or_logs(h: Harness, caplog) -> None:
    requests: List[Dict[str, str]] = []
    with h.no_leaks(), caplog.at_level(logging.DEBUG):
        srv = h.raw(_forbidden_server(requests))
        url = f"ws://alice:{SECRETS[0]}@127.0.0.1:{srv.port}/path"
        res, err, _ = gws.connect(url, timeout=5000)
        assert res is None
        assert "403" in err
        with pytest.raises(gws.HandshakeError) as info:
            gws.open(url, timeout=5000)
        exc = info.value
        assert exc.status == 403
        assert ("Set-Cookie", "<redacted>") in exc.headers
        # the credentials were really sent, so the checks below can fail
        expected = "Basic " + base64.b64encode(f"alice:{SECRETS[0]}".encode()).decode()
        assert requests and requests[0]["authorization"] == expected
        _assert_clean(caplog, err, exc, exc.headers, gws.parse_url(url)[0])
        # other failures with credentials in the URL
        bad_port = f"ws://alice:{SECRETS[0]}@127.0.0.1:99999/"
        typo = f"ws:/alice:{SECRETS[0]}@127.0.0.1/"
        free = _free_port()
        refused = f"ws://alice:{SECRETS[0]}@127.0.0.1:{free}/"
        errors = [gws.connect(u, timeout=2000)[1] for u in (bad_port, typo, refused)]
        errors += [gws.parse_url(u)[1] for u in (bad_port, typo)]
        assert all(isinstance(e, str) for e in errors)
        _assert_clean(caplog, *errors)


def test_authorization_and_cookie_headers_never_in_errors_or_logs(h: Harness, caplog) -> None:
    requests: List[Dict[str, str]] = []
    with h.no_leaks(), caplog.at_level(logging.DEBUG):
        srv = h.raw(_forbidden_server(requests))
        headers = {"Authorization": f"Bearer {SECRETS[1]}", "Cookie": f"sid={SECRETS[2]}"}
        res, err, _ = gws.connect(srv.url, headers=headers, timeout=5000)
        assert res is None
        with pytest.raises(gws.HandshakeError) as info:
            gws.open(srv.url, headers=list(headers.items()), timeout=5000)
        assert requests[0]["authorization"] == f"Bearer {SECRETS[1]}"
        assert requests[0]["cookie"] == f"sid={SECRETS[2]}"
        _assert_clean(caplog, err, info.value, info.value.headers)


def test_server_does_not_log_client_credentials(h: Harness, caplog) -> None:
    """gws's own server rejecting an upgrade logs no Authorization/Cookie value."""
    with h.no_leaks(), caplog.at_level(logging.DEBUG):
        srv = h.ws()
        sock = gevent.socket.create_connection(("127.0.0.1", srv.port))
        try:
            sock.sendall(
                (
                    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
                    f"Authorization: Bearer {SECRETS[1]}\r\nCookie: sid={SECRETS[2]}\r\n\r\n"
                ).encode()
            )
            reply, _ = read_head(sock)
            assert reply.startswith(b"HTTP/1.1 426")
            assert not _leaks(reply.decode("latin-1"))
        finally:
            sock.close()
        assert srv.join(5)
        _assert_clean(caplog)


def test_successful_connection_logs_no_credentials(h: Harness, caplog) -> None:
    got: AsyncResult = AsyncResult()

    def handler(sock, _addr):
        try:
            headers, rest = handshake(sock)
            got.set(dict((n.lower(), v) for n, v in headers))
            ClientFrames(sock, rest).until_close()
            sock.sendall(b"\x88\x02\x03\xe8")
        finally:
            quiet_close(sock)

    with h.no_leaks(), caplog.at_level(logging.DEBUG):
        srv = h.raw(handler)
        res, read, write = gws.connect(
            f"ws://alice:{SECRETS[0]}@127.0.0.1:{srv.port}/",
            headers={"Cookie": f"sid={SECRETS[2]}"},
            timeout=5000,
        )
        assert res, read
        assert got.get(timeout=5)["authorization"].startswith("Basic ")
        write.close()
        _assert_clean(caplog, res, read.error)


def _free_port() -> int:
    sock = gevent.socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
