"""Shared fixtures: in-process gws servers, raw-socket peers, leak counters, TLS.

Everything runs in the test process's main greenlet: a blocking gws call in a
test yields to the gevent hub, which runs the server greenlets. Nothing here
monkey-patches.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any, Callable, Iterator, List

import gevent
import gevent.socket as gsocket
import gevent.ssl as gssl
import hypothesis_profiles
import pytest
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer
from support import PooledServer, own_greenlets, settle
from support import fd_count as _fd_count
from support import greenlet_count as _greenlet_count

import gws

hypothesis_profiles.register()  # before any test module builds a settings object

DEADLINE = 20.0
"""Seconds any one test that uses the ``deadline`` fixture may block in gevent."""


class ServerFactory:
    """``make_server(handler, **options)``: start servers, stop them all at teardown.

    ``handler(request, read, write)`` defaults to ``gws.echo``; ``options``
    go to ``gws.serve`` (``host="unix:/path"``, ``ssl_context``, and the
    accept / wrap_io options such as ``subprotocols`` or ``max_size``).
    """

    def __init__(self) -> None:
        self.servers: List[PooledServer] = []
        self.released = Event()

    def hold_open(self, sock: Any, address: Any) -> None:
        """Raw handler (or its tail): keep the connection open without reading
        or writing anything, until a server of this factory is stopped."""
        self.released.wait(DEADLINE)

    def __call__(self, handler: Callable[..., Any] = gws.echo, **options: Any) -> PooledServer:
        host = options.pop("host", "127.0.0.1")
        port = options.pop("port", 0)
        server = gws.serve(handler, host, port, start=False, **options)
        pool = Pool()
        server.set_spawn(pool)
        server.start()
        unix_path = host[5:] if host.startswith("unix:") else None
        handle = PooledServer(server, pool, unix_path, self.released)
        self.servers.append(handle)
        return handle

    def raw(self, handler: Callable[[Any, Any], Any], ssl_context: Any = None) -> PooledServer:
        """A plain gevent StreamServer calling ``handler(sock, address)``:
        a hand-written peer, for replies gws itself would never send."""
        kwargs = {"ssl_context": ssl_context} if ssl_context is not None else {}
        pool = Pool()
        server = StreamServer(("127.0.0.1", 0), handler, spawn=pool, **kwargs)
        server.start()
        handle = PooledServer(server, pool, released=self.released)
        self.servers.append(handle)
        return handle

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return all(s.wait_idle(timeout) for s in self.servers)

    def stop_all(self) -> None:
        self.released.set()
        for s in self.servers:
            s.stop()


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def echo_server(make_server: ServerFactory) -> int:
    """Port of an in-process ``gws.serve(gws.echo, "127.0.0.1", 0)`` server."""
    return make_server(gws.echo).port


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail the test (gevent.Timeout) if it blocks in gevent longer than DEADLINE."""
    with gevent.Timeout(DEADLINE):
        yield


@pytest.fixture
def greenlet_count() -> Callable[[], int]:
    """Callable: how many greenlets are alive now (hub and main included)."""
    return _greenlet_count


@pytest.fixture
def fd_count() -> Callable[[], int]:
    """Callable: how many file descriptors this process has open now."""
    return _fd_count


_warmed = False


def _warm_up() -> None:
    """Create the process-wide things gevent makes lazily (resolver thread
    pool, its watchers) so they do not count as leaks of the first test."""
    global _warmed
    if _warmed:
        return
    server = gws.serve(gws.echo, "127.0.0.1", 0)
    try:
        res, read, write = gws.connect(host="127.0.0.1", port=server.server_port, heartbeat=1000)
        assert res, read
        write(b"warm")
        assert read() is not None
        write.close()
        ctx = gssl.create_default_context()
        del ctx
    finally:
        server.stop(timeout=1)
    _warmed = True


@pytest.fixture
def no_leaks(make_server: ServerFactory):
    """Context manager: ``with no_leaks(): ...`` asserts that the block left
    no greenlet alive and no file descriptor open once every server handler
    started by ``make_server`` has returned."""

    @contextlib.contextmanager
    def check() -> Iterator[None]:
        _warm_up()
        settle()
        greenlets_before = own_greenlets()
        fds_before = _fd_count()
        yield
        assert make_server.wait_idle(5), "a server handler is still running"
        settle()
        after = own_greenlets()
        extra = [g for g in after if not any(g is b for b in greenlets_before)]
        assert not extra, f"greenlets leaked: {extra!r}"
        assert _fd_count() == fds_before, "file descriptors leaked"

    return check


# -- TLS (trustme) -------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_ca():
    """A throwaway certificate authority (trustme.CA)."""
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_cert(tls_ca):
    """A server certificate for 127.0.0.1, ::1 and localhost, signed by tls_ca."""
    return tls_ca.issue_cert("127.0.0.1", "::1", "localhost")


@pytest.fixture
def tls_ca_file(tls_ca, tmp_path) -> str:
    """Path of tls_ca's certificate as a PEM file."""
    path = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_server_context(tls_cert) -> ssl.SSLContext:
    """A gevent server-side SSLContext presenting tls_cert."""
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    sock = gsocket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
