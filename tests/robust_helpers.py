"""Helpers for the robustness tests (fuzz, faults, no-loss, load, security).

Self-contained on purpose (no conftest fixtures): raw misbehaving servers
written by hand on gevent sockets, a leak checker counting live greenlets and
open file descriptors, and a few RFC 6455 byte builders.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
from typing import Any, Callable, Iterator, List, Optional, Tuple

import gevent
import greenlet
from gevent.pool import Pool
from gevent.server import StreamServer
from support import PooledServer, read_head

import gws
from gws.frames import FrameDecoder, Message, encode_frame
from gws.handshake import accept_key, header_values, parse_request

# -- leak accounting -------------------------------------------------------------

# gevent's resolver thread pool keeps its worker greenlets (one per native
# thread) alive between uses and grows with concurrency: not ours to count.
_IGNORED_GREENLET_TYPES = ("_WorkerGreenlet",)


def _this_threads_main() -> greenlet.greenlet:
    g = greenlet.getcurrent()
    while g.parent is not None:
        g = g.parent
    return g


def live_greenlets() -> List[greenlet.greenlet]:
    """Every greenlet of this thread that is alive (main greenlet and hub
    included); the main greenlets of gevent's resolver threads are not ours."""
    gc.collect()
    main = _this_threads_main()
    return [
        g
        for g in gc.get_objects()
        if isinstance(g, greenlet.greenlet)
        and not g.dead
        and type(g).__name__ not in _IGNORED_GREENLET_TYPES
        and (g.parent is not None or g is main)
    ]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    """Current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def release_free_memory() -> None:
    """Hand freed heap back to the OS (glibc), so an RSS baseline taken next
    is not inflated by an earlier test's garbage."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settle(rounds: int = 5) -> None:
    """Run callbacks already scheduled (kills, closes); bounded, no timers."""
    for _ in range(rounds):
        gevent.sleep(0)
    gc.collect()


_warmed = False


def warm_up() -> None:
    """Create what gevent makes lazily once per process (resolver thread, its
    watchers, the SSL module) so it does not count as a leak of a test."""
    global _warmed
    if _warmed:
        return
    import gevent.ssl  # noqa: F401

    server = gws.serve(gws.echo, "127.0.0.1", 0)
    try:
        res, read, write = gws.connect(host="127.0.0.1", port=server.server_port, heartbeat=1000)
        assert res, read
        write(b"warm")
        assert read() is not None
        write.close()
    finally:
        server.stop(timeout=1)
    _warmed = True


# -- servers -----------------------------------------------------------------------


class Harness:
    """Starts servers for one test and checks the test leaked nothing.

    ``raw(handler)``: a plain StreamServer calling ``handler(sock, address)``
    (a hand-written, misbehaving peer). ``ws(handler, **options)``: a
    ``gws.serve`` server. ``no_leaks()``: context manager asserting that
    greenlets and fds are back to their count from before the block once every
    server handler has returned.
    """

    def __init__(self) -> None:
        self.servers: List[PooledServer] = []

    def raw(self, handler: Callable[[Any, Any], Any], ssl_context: Any = None) -> PooledServer:
        kwargs = {"ssl_context": ssl_context} if ssl_context is not None else {}
        pool = Pool()
        server = StreamServer(("127.0.0.1", 0), handler, spawn=pool, **kwargs)
        server.start()
        handle = PooledServer(server, pool)
        self.servers.append(handle)
        return handle

    def ws(self, handler: Callable[..., Any] = gws.echo, **options: Any) -> PooledServer:
        server = gws.serve(handler, "127.0.0.1", 0, start=False, **options)
        pool = Pool()
        server.set_spawn(pool)
        server.start()
        handle = PooledServer(server, pool)
        self.servers.append(handle)
        return handle

    def join_all(self, timeout: float = 5.0) -> bool:
        return all(s.join(timeout) for s in self.servers)

    def stop_all(self) -> None:
        for s in self.servers:
            s.stop()

    @contextlib.contextmanager
    def no_leaks(self, join_timeout: float = 5.0) -> Iterator[None]:
        warm_up()
        settle()
        before = live_greenlets()
        fds_before = fd_count()
        yield
        assert self.join_all(join_timeout), "a server handler is still running"
        self.stop_all()
        settle()
        extra = [g for g in live_greenlets() if not any(g is b for b in before)]
        assert not extra, f"greenlets leaked: {extra!r}"
        assert fd_count() == fds_before, f"fds leaked: {fds_before} before, {fd_count()} after"


# -- raw peers -----------------------------------------------------------------------


def read_request(sock: Any) -> Tuple[str, list, bytes]:
    """Read a client's upgrade request: (Sec-WebSocket-Key, headers, leftover)."""
    head, rest = read_head(sock)
    _method, _target, headers = parse_request(head)
    return header_values(headers, "Sec-WebSocket-Key")[0], headers, rest


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
    """Do the server side of the opening handshake by hand: (request headers, leftover)."""
    key, headers, rest = read_request(sock)
    sock.sendall(accept_reply(key, extensions))
    return headers, rest


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """An unmasked frame as a server sends it."""
    return encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=False)


class ClientFrames:
    """Reads the masked frames a client sends (each call bounded by ``limit`` recvs)."""

    def __init__(self, sock: Any, leftover: bytes = b"") -> None:
        self.sock = sock
        self.decoder = FrameDecoder(expect_masked=True, rsv_allowed=0x40)
        self.decoder.feed(leftover)

    def next(self, limit: int = 10000) -> Optional[Message]:
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
