"""Fixtures only: in-process gws servers, raw-socket peers, leak counters, TLS.

The helpers behind them are plain functions and classes in helpers.py.
Everything runs in the test process's main greenlet: a blocking gws call in
a test yields to the gevent hub, which runs the server greenlets. Nothing
here monkey-patches.
"""

from __future__ import annotations

import functools
import os
import signal
import ssl
from typing import Callable, ContextManager, Iterator, List, Optional

import gevent
import gevent.socket as gsocket
import gevent.ssl as gssl
import hypothesis_profiles
import pytest
from helpers import DEADLINE, Harness, PooledServer, PProxy, steers_proxy
from helpers import fd_count as _fd_count
from helpers import greenlet_count as _greenlet_count

import gws

hypothesis_profiles.register()  # before any test module builds a settings object


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts `cmd &` with SIGINT ignored, and an
    # ignored signal stays ignored across fork and exec: the CLI and thread
    # mode children that the tests interrupt with Ctrl-C would then ignore
    # it and hang. A handler (unlike SIG_IGN) is reset to the default on
    # exec, so every child starts with Python's own KeyboardInterrupt.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def make_server() -> Iterator[Harness]:
    """``make_server(handler, **options)`` starts a ``gws.serve`` server,
    ``make_server.raw(handler)`` a hand-written peer (see helpers.Harness);
    all are stopped at teardown."""
    harness = Harness()
    try:
        yield harness
    finally:
        harness.stop_all()


@pytest.fixture
def h(make_server: Harness) -> Iterator[Harness]:
    """make_server, with the whole test bounded to 30 s of blocking in gevent."""
    with gevent.Timeout(30):
        yield make_server


@pytest.fixture
def echo_server(make_server: Harness) -> int:
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


@pytest.fixture
def no_leaks(make_server: Harness) -> Callable[[], ContextManager[None]]:
    """Context manager: ``with no_leaks(): ...`` asserts that the block left
    no greenlet alive and no file descriptor open once every server handler
    started by ``make_server`` has returned (servers are not stopped first)."""
    return functools.partial(make_server.no_leaks, stop=False)


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
def tls_echo(make_server: Harness, tls_server_context: ssl.SSLContext) -> PooledServer:
    """An in-process ``gws.echo`` server over TLS (tls_cert; trust tls_ca_file)."""
    return make_server(gws.echo, ssl_context=tls_server_context)


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    sock = gsocket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# -- the Autobahn suites run as background jobs ----------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    """Autobahn tests (modules with ``AUTOBAHN_JOB``) run last: their suites
    run in the background meanwhile (see autobahn_jobs.py)."""
    items.sort(key=lambda item: _autobahn_job(item) is not None)


def _autobahn_job(item: pytest.Item) -> object:
    return getattr(getattr(item, "module", None), "AUTOBAHN_JOB", None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    kinds = {_autobahn_job(item) for item in session.items}
    kinds.discard(None)
    if kinds:
        import autobahn_jobs

        autobahn_jobs.start(sorted(kinds))  # type: ignore[arg-type]


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    import sys

    jobs = sys.modules.get("autobahn_jobs")
    if jobs is not None:
        jobs.pump()  # a job ended: start the next


def pytest_sessionfinish(session: pytest.Session) -> None:
    import sys

    jobs = sys.modules.get("autobahn_jobs")
    if jobs is not None:
        jobs.kill_all()


# -- proxies -----------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine's (helpers.steers_proxy) reaches the test."""
    for name in [n for n in os.environ if steers_proxy(n)]:
        monkeypatch.delenv(name)


@pytest.fixture
def pproxy() -> Iterator[Callable[..., PProxy]]:
    """``pproxy(listen, auth=None, ssl_files=None)`` starts a real pproxy
    (helpers.PProxy); all are stopped at teardown."""
    started: List[PProxy] = []

    def start(listen: str, auth: Optional[str] = None, ssl_files: Optional[str] = None) -> PProxy:
        proxy = PProxy(listen, auth, ssl_files)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
