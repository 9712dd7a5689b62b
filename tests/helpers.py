"""Plain helpers shared by every test module (fixtures live in conftest.py).

* Leak and memory accounting: :func:`live_greenlets`, :func:`fd_count`,
  :func:`settle`, :func:`warm_up`, :func:`rss_bytes` and friends.
* Servers: :class:`Harness` starts ``gws.serve`` servers and hand-written raw
  peers, each as a :class:`PooledServer` whose handler greenlets run in a
  Pool (so a test can wait for them), and checks a block leaked nothing
  (:meth:`Harness.no_leaks`). conftest's ``make_server`` fixture is one.
* Raw peers: just enough HTTP and RFC 6455, written by hand on gevent
  sockets, to provoke the client. They never go through gws's own server
  code, so a bug on one side cannot hide one on the other.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import socket
import threading
from typing import Any, Callable, Iterator, List, Optional, Tuple

import gevent
import gevent.ssl as gssl
import greenlet
import pytest
from gevent.event import Event
from gevent.hub import Hub
from gevent.pool import Pool
from gevent.queue import Queue
from gevent.server import StreamServer
from gevent.threadpool import _WorkerGreenlet

import gws
from gws.frames import FrameDecoder, Message, encode_frame
from gws.handshake import MAX_HEAD, accept_key, check_request, parse_request
from gws.io import read_head as gws_read_head

DEADLINE = 20.0
"""Seconds a raw handler may hold a connection open (``Harness.hold_open``);
also what conftest's ``deadline`` fixture allows a test to block in gevent."""

#: Node peers installed by scripts/test (npm install --prefix tests/node).
NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
NODE_MODULES = os.path.join(NODE_DIR, "node_modules")


def node_peer(package: str) -> str:
    """Path of an installed Node package under tests/node, or skip the test
    with the reason (scripts/test installs them whenever npm is present)."""
    import shutil

    import pytest

    path = os.path.join(NODE_MODULES, package)
    if not shutil.which("node") or not os.path.isdir(path):
        pytest.skip(f"Node package {package!r} not installed (npm install --prefix tests/node)")
    return path


# -- leak and memory accounting ----------------------------------------------------------


def live_greenlets() -> List[greenlet.greenlet]:
    """Every greenlet of this thread that is alive (its main greenlet and hub
    included), minus gevent's thread pool machinery, which comes and goes with
    the resolver's load and idle timeout: pool workers, the root greenlets of
    other threads and other threads' hubs."""
    gc.collect()
    me = greenlet.getcurrent()
    while me.parent is not None:
        me = me.parent
    ident = threading.get_ident()
    return [
        g
        for g in gc.get_objects()
        if isinstance(g, greenlet.greenlet)
        and not g.dead
        and (g.parent is not None or g is me)
        and not isinstance(g, _WorkerGreenlet)
        and not (isinstance(g, Hub) and getattr(g, "thread_ident", ident) != ident)
    ]


def greenlet_count() -> int:
    return len(live_greenlets())


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(rounds: int = 5) -> None:
    """Run callbacks already scheduled (kills, closes); bounded, no timers."""
    for _ in range(rounds):
        gevent.sleep(0)
    gc.collect()


_warmed = False


def warm_up() -> None:
    """Create what gevent makes lazily once per process (resolver thread
    pool, its watchers, the SSL module) so it does not count as a leak of
    the first test that checks."""
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


def rss_bytes() -> int:
    """Current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_free_memory() -> None:
    """Hand freed heap back to the OS (glibc), so an RSS baseline taken next
    is not inflated by an earlier test's garbage."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# -- servers -------------------------------------------------------------------------------


class PooledServer:
    """A started server whose handler greenlets run in a Pool, so a test can
    wait for them to finish (``wait_idle``, alias ``join``)."""

    def __init__(
        self,
        server: StreamServer,
        pool: Pool,
        unix_path: Optional[str] = None,
        released: Optional[Event] = None,
    ) -> None:
        self.server = server
        self.pool = pool
        self.unix_path = unix_path
        self._released = released

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        scheme = "wss" if self.server.ssl_enabled else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/"

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every connection handler has returned (bounded)."""
        return self.pool.join(timeout=timeout)

    join = wait_idle

    def stop(self) -> None:
        if self._released is not None:
            self._released.set()  # let hold_open() handlers return
        if not self.server.closed:
            self.server.stop(timeout=1)


class Harness:
    """Starts servers for one test, stops them all (``stop_all``), and checks
    that a block leaked nothing (``no_leaks``).

    ``harness(handler, **options)`` (alias ``ws``): a ``gws.serve`` server;
    ``handler(request, read, write)`` defaults to ``gws.echo``, ``options`` go
    to ``gws.serve`` (``host="unix:/path"``, ``port``, ``ssl_context``, and the
    accept / wrap_io options such as ``subprotocols`` or ``max_size``).
    ``raw(handler)``: a plain gevent StreamServer calling ``handler(sock,
    address)``, a hand-written peer for what gws itself would never send.
    """

    def __init__(self) -> None:
        self.servers: List[PooledServer] = []
        self.released = Event()

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

    ws = __call__

    def raw(self, handler: Callable[[Any, Any], Any], ssl_context: Any = None) -> PooledServer:
        kwargs = {"ssl_context": ssl_context} if ssl_context is not None else {}
        pool = Pool()
        server = StreamServer(("127.0.0.1", 0), handler, spawn=pool, **kwargs)
        server.start()
        handle = PooledServer(server, pool, released=self.released)
        self.servers.append(handle)
        return handle

    def hold_open(self, sock: Any, address: Any) -> None:
        """Raw handler (or its tail): keep the connection open without reading
        or writing anything, until a server of this harness is stopped."""
        self.released.wait(DEADLINE)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every handler of every server has returned (bounded)."""
        return all(s.wait_idle(timeout) for s in self.servers)

    join_all = wait_idle

    def stop_all(self) -> None:
        self.released.set()
        for s in self.servers:
            s.stop()

    @contextlib.contextmanager
    def no_leaks(self, join_timeout: float = 5.0, stop: bool = True) -> Iterator[None]:
        """Assert that the block left no greenlet alive and no file descriptor
        open, once every server handler has returned (and, with ``stop``,
        every server of this harness is stopped)."""
        warm_up()
        settle()
        before = live_greenlets()
        fds_before = fd_count()
        yield
        assert self.wait_idle(join_timeout), "a server handler is still running"
        if stop:
            self.stop_all()
        settle()
        extra = [g for g in live_greenlets() if not any(g is b for b in before)]
        assert not extra, f"greenlets leaked: {extra!r}"
        fds_after = fd_count()
        assert fds_after == fds_before, f"fds leaked: {fds_before} before, {fds_after} after"


def recording_server(make_server: Harness, **options: Any) -> Tuple[PooledServer, Queue]:
    """A gws server whose handler puts (request, first message or None) on a
    queue, echoes that message and reads on until the client closes."""
    seen: Queue = Queue()

    def handler(request, read, write):
        msg = read()
        seen.put((request, msg))
        if msg is not None:
            write(Message(opcode=msg.opcode, payload=msg.payload))
            read()  # until the client closes

    return make_server(handler, **options), seen


# -- raw peers ---------------------------------------------------------------------------


def read_head(sock: Any, limit: int = MAX_HEAD) -> Tuple[bytes, bytes]:
    """Read an HTTP head from ``sock``: (head, bytes after it)."""
    return gws_read_head(sock, limit)


def read_request(sock: Any) -> Tuple[str, list, bytes]:
    """Read and check a client's upgrade request (HandshakeError if it is
    not a valid one): (Sec-WebSocket-Key, headers, leftover)."""
    head, rest = read_head(sock)
    method, _target, headers = parse_request(head)
    key = check_request(method, headers)
    return key, headers, rest


def accept_reply(key: str, extensions: Optional[str] = None, extra: str = "") -> bytes:
    """A hand-written ``101`` reply for ``key``."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


def handshake(sock: Any, extensions: Optional[str] = None) -> Tuple[list, bytes]:
    """The server side of the opening handshake by hand, with no extension
    unless ``extensions`` is given: (request headers, leftover)."""
    key, headers, rest = read_request(sock)
    sock.sendall(accept_reply(key, extensions))
    return headers, rest


def server_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False
) -> bytes:
    """An unmasked frame, as a server sends it."""
    return encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=False)


def encode_message(frame: Message, mask_key: Optional[bytes] = None) -> bytes:
    """``frame`` as bytes on the wire, every header field its own (fin, rsv
    bits, opcode, mask: with ``mask_key`` if given); a str payload as UTF-8."""
    payload = frame.payload
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return encode_frame(
        frame.opcode,
        payload,
        fin=frame.fin,
        rsv1=frame.rsv1,
        rsv2=frame.rsv2,
        rsv3=frame.rsv3,
        mask=frame.mask,
        mask_key=mask_key,
    )


class ClientFrames:
    """Reads the masked frames a client sends (each call bounded by ``limit`` recvs)."""

    def __init__(self, sock: Any, leftover: bytes = b"") -> None:
        self.sock = sock
        self.decoder = FrameDecoder(expect_masked=True, rsv_allowed=0x40)
        self.decoder.feed(leftover)

    def next(self, limit: int = 10000) -> Optional[Message]:
        """The next frame, or None at end of stream."""
        for _ in range(limit):
            f = self.decoder.next_frame()
            if f is not None:
                return f
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.decoder.feed(chunk)
        raise AssertionError("client frame not complete after too many reads")

    def until_close(self, limit: int = 1000) -> Optional[Message]:
        """Skip frames until the client's close frame (None on EOF first)."""
        for _ in range(limit):
            f = self.next()
            if f is None or f.opcode == gws.OP_CLOSE:
                return f
        raise AssertionError("no close frame among the client's frames")


def close_code_of(f: Optional[Message]) -> Optional[int]:
    """The status code carried by a close frame (None if absent)."""
    assert f is not None, "the client sent no close frame"
    assert f.opcode == gws.OP_CLOSE, f
    if len(f.payload) < 2:
        return None
    return int.from_bytes(f.payload[:2], "big")


def quiet_close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def relay(a: Any, b: Any, timeout: Optional[float] = None) -> None:
    """Copy bytes both ways between sockets ``a`` and ``b`` (an in-test
    proxy's tunnel) until one side ends; then both are shut down."""
    gevent.joinall([gevent.spawn(_pump, a, b), gevent.spawn(_pump, b, a)], timeout=timeout)


def _pump(src: Any, dst: Any) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


# -- proxies (pproxy subprocesses) -------------------------------------------------------


def steers_proxy(name: str) -> bool:
    """Whether environment variable ``name`` changes the proxy gws picks:
    ``*_proxy`` in any case, and ``REQUEST_METHOD`` (under CGI gws ignores
    ``HTTP_PROXY``)."""
    return name.lower().endswith("_proxy") or name == "REQUEST_METHOD"


class PProxy:
    """A real pproxy (PyPI) proxy server in a subprocess on loopback. It
    binds port 0 itself and the port is read from its "Serving on" line
    (no probe-then-bind race with the other processes on the machine).
    ``listen`` is pproxy's ``-l`` URI without host and port, e.g.
    ``"http"``, ``"socks5"``, ``"http+socks4+socks5"`` or ``"http+ssl"``;
    ``auth`` is ``"user:pass"``; ``ssl_files`` is ``"cert.pem,key.pem"`` for
    a TLS listener. Stop it with :meth:`stop` (the fixture does); a proxy
    that fails to start is killed before the error is raised."""

    def __init__(self, listen: str, auth: Optional[str] = None, ssl_files: Optional[str] = None):
        import sys

        from gevent import subprocess

        uri = f"{listen}://127.0.0.1:0" + (f"#{auth}" if auth else "")
        # --auth 0: check credentials on every connection (pproxy's default
        # trusts an address for 30 days once it authenticated)
        args = [sys.executable, "-u", "-m", "pproxy", "-l", uri, "--auth", "0"]
        if ssl_files:
            args += ["--ssl", ssl_files]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        try:
            self.port = self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> int:
        import re

        assert self.proc.stdout is not None
        with gevent.Timeout(60, AssertionError("pproxy did not start listening in 60 s")):
            for _ in range(20):  # it prints a line or two before serving
                line = self.proc.stdout.readline().decode("utf-8", "replace")
                if not line:
                    raise AssertionError(f"pproxy exited with {self.proc.wait()}")
                found = re.search(r"Serving on .*127\.0\.0\.1:(\d+)", line)
                if found:
                    return int(found.group(1))
        raise AssertionError("pproxy printed no 'Serving on' line")

    def url(self, scheme: str, auth: Optional[str] = None) -> str:
        return f"{scheme}://{auth + '@' if auth else ''}127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- WSGI servers and blocking clients (tests/test_wsgi.py, test_gunicorn.py, test_browser.py) --


class WSGIServerHandle:
    """A started ``gevent.pywsgi.WSGIServer`` on 127.0.0.1 (port 0) whose
    connection greenlets run in a Pool, so a test can wait for them."""

    def __init__(self, app: Any, handler_class: Any = None, **kwargs: Any) -> None:
        from gevent.pywsgi import WSGIServer

        import gws.wsgi

        self.pool = Pool()
        self.server = WSGIServer(
            ("127.0.0.1", 0),
            app,
            handler_class=handler_class or gws.wsgi.WebSocketHandler,
            spawn=self.pool,
            log=None,
            **kwargs,
        )
        self.server.start()

    @classmethod
    def adopt(cls, server: Any) -> WSGIServerHandle:
        """Handle a server built elsewhere (not started yet; on 127.0.0.1 port 0)."""
        handle = cls.__new__(cls)
        handle.pool = Pool()
        server.set_spawn(handle.pool)
        server.start()
        handle.server = server
        return handle

    @property
    def port(self) -> int:
        return self.server.server_port

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def wait_idle(self, timeout: float = 5.0) -> bool:
        return self.pool.join(timeout=timeout)

    def stop(self) -> None:
        self.server.stop(timeout=1)


def in_thread(fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
    """Run a blocking (non-gevent) client in a real OS thread of gevent's
    pool while this thread's hub goes on serving; its result, or its
    exception re-raised here; gevent.Timeout after ``timeout`` seconds."""
    return gevent.get_hub().threadpool.spawn(fn, *args).get(timeout=timeout)


def run_node(script: str, *args: str, timeout: float = 60.0) -> Any:
    """Run ``node tests/node/<script> args...`` with gevent.subprocess (the
    hub serves meanwhile); the CompletedProcess. Killed after ``timeout``."""
    import gevent.subprocess

    return gevent.subprocess.run(
        ["node", os.path.join(NODE_DIR, script), *args],
        stdout=gevent.subprocess.PIPE,
        stderr=gevent.subprocess.PIPE,
        timeout=timeout,
        cwd=NODE_DIR,
    )


def check_node_wsgi_client(url: str) -> None:
    """Node ws (tests/node/wsgi_client.js) against ``url``, the ``/info``
    endpoint of tests/flask_app.py: text and binary echoed, permessage-deflate
    negotiated (the server says so too), the client's close code 4002 echoed."""
    node_peer("ws")
    proc = run_node("wsgi_client.js", url, "info")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["text_ok"] is True and result["binary_ok"] is True
    assert result["extensions"].startswith("permessage-deflate")
    assert result["server"]["compressed"] is True
    assert result["close_code"] == 4002  # the server echoed the client's close


# -- command line subprocesses -----------------------------------------------------------


class CliProcess:
    """A command (``python -m gws ...``, wscat) in a subprocess, its stdout
    and stderr read line by line by greenlets (so servers in this process
    keep serving), every wait bounded by ``DEADLINE``.

    ``expect(text)`` returns the next stdout line containing ``text``
    (``expect_err`` for stderr); ``out`` / ``err`` hold every line so far.
    ``stop()`` (also at teardown of the fixtures that make these) closes
    stdin, terminates, then kills.
    """

    def __init__(self, argv: List[str], *, env: Optional[dict] = None, cwd: Optional[str] = None):
        import gevent.subprocess as gsub

        self.argv = argv
        self.proc = gsub.Popen(
            argv, stdin=gsub.PIPE, stdout=gsub.PIPE, stderr=gsub.PIPE, env=env, cwd=cwd
        )
        self.out: List[str] = []
        self.err: List[str] = []
        self._queues = {"out": Queue(), "err": Queue()}
        self._readers = [
            gevent.spawn(self._pump, self.proc.stdout, self.out, self._queues["out"]),
            gevent.spawn(self._pump, self.proc.stderr, self.err, self._queues["err"]),
        ]

    @staticmethod
    def _pump(stream: Any, lines: List[str], queue: Queue) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            queue.put(line)
        queue.put(None)

    def _expect(self, which: str, text: str, timeout: float) -> str:
        queue = self._queues[which]
        with gevent.Timeout(timeout, AssertionError(f"no {which} line with {text!r}: {self}")):
            while True:
                line = queue.get()
                if line is None:
                    queue.put(None)
                    raise AssertionError(f"{which} ended before a line with {text!r}: {self}")
                if text in line:
                    return line

    def expect(self, text: str, timeout: float = DEADLINE) -> str:
        return self._expect("out", text, timeout)

    def expect_err(self, text: str, timeout: float = DEADLINE) -> str:
        return self._expect("err", text, timeout)

    def send(self, text: str) -> None:
        self.proc.stdin.write(text.encode("utf-8"))
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def wait(self, timeout: float = DEADLINE) -> int:
        """The exit status, once stdout and stderr are read to their end."""
        code = self.proc.wait(timeout=timeout)
        gevent.joinall(self._readers, timeout=timeout)
        return code

    def stop(self) -> None:
        self.close_stdin()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - TimeoutExpired: kill it
                self.proc.kill()
                self.proc.wait(timeout=5)
        gevent.joinall(self._readers, timeout=5)
        for reader in self._readers:
            reader.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()

    def __str__(self) -> str:
        out = "\n".join(self.out)
        err = "\n".join(self.err)
        return f"{' '.join(self.argv)}\n--- stdout\n{out}\n--- stderr\n{err}"


# -- the receive path's two implementations -------------------------------------------


@pytest.fixture(params=["c", "python"])
def receive_impl(request: Any, monkeypatch: Any) -> str:
    """Run a test with the C receive helpers, then with the pure-Python ones."""
    from gws import frames, protocol

    if request.param == "c":
        speedups = pytest.importorskip("gws._speedups")
        helpers = (speedups.apply_mask, speedups.parse_frame, speedups.take_payload)
        buffer_type = speedups.PayloadBuffer
    else:
        helpers = (frames.py_apply_mask, frames.py_parse_frame, frames.py_take_payload)
        buffer_type = frames.py_payload_buffer
    monkeypatch.setattr(frames, "apply_mask", helpers[0])
    monkeypatch.setattr(frames, "parse_frame", helpers[1])
    monkeypatch.setattr(frames, "take_payload", helpers[2])
    monkeypatch.setattr(frames, "PayloadBuffer", buffer_type)
    monkeypatch.setattr(protocol, "parse_frame", helpers[1])
    return str(request.param)
