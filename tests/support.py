"""Plain helpers shared by the test modules (fixtures live in conftest.py).

Raw-socket peers here speak just enough HTTP and RFC 6455 to provoke the
client: they never go through gws's own server code, so a bug on one side
cannot hide one on the other.
"""

from __future__ import annotations

import gc
import os
import threading
from typing import List, Optional, Tuple

import gevent
import greenlet
from gevent.event import Event
from gevent.hub import Hub
from gevent.pool import Pool
from gevent.server import StreamServer
from gevent.threadpool import _WorkerGreenlet

from gws.frames import FrameDecoder, Message
from gws.handshake import MAX_HEAD, build_accept, check_request, parse_request
from gws.io import read_head as gws_read_head


def live_greenlets() -> List[greenlet.greenlet]:
    """Every greenlet that is not dead (the main greenlet and the hub included)."""
    gc.collect()
    return [g for g in gc.get_objects() if isinstance(g, greenlet.greenlet) and not g.dead]


def own_greenlets() -> List[greenlet.greenlet]:
    """live_greenlets() minus gevent's thread pool machinery (worker threads
    come and go with the resolver's load and idle timeout): root greenlets
    of other threads, pool workers and other threads' hubs."""
    me = greenlet.getcurrent()
    while me.parent is not None:
        me = me.parent
    ident = threading.get_ident()
    return [
        g
        for g in live_greenlets()
        if (g.parent is not None or g is me)
        and not isinstance(g, _WorkerGreenlet)
        and not (isinstance(g, Hub) and getattr(g, "thread_ident", ident) != ident)
    ]


def greenlet_count() -> int:
    return len(live_greenlets())


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(rounds: int = 5) -> None:
    """Let already-scheduled callbacks (kills, closes) run; bounded, no timers."""
    for _ in range(rounds):
        gevent.sleep(0)
    gc.collect()


def read_head(sock, limit: int = MAX_HEAD) -> Tuple[bytes, bytes]:
    """Read an HTTP head from ``sock``: (head, bytes after it)."""
    return gws_read_head(sock, limit)


def complete_handshake(sock, *, extensions: Optional[str] = None) -> Tuple[str, list, bytes]:
    """Server side of the opening handshake on a raw socket, with no extension
    unless ``extensions`` is given. Returns (target, request headers, leftover)."""
    head, rest = read_head(sock)
    method, target, headers = parse_request(head)
    key = check_request(method, headers)
    sock.sendall(build_accept(key, extensions=extensions))
    return target, headers, rest


def server_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False
) -> bytes:
    """An unmasked frame, as a server sends it."""
    from gws.frames import encode_frame

    return encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=False)


def read_client_frames(
    sock, decoder: Optional[FrameDecoder] = None, count: int = 1
) -> List[Message]:
    """Read ``count`` masked frames from a client (bounded by ``count``)."""
    decoder = decoder or FrameDecoder(expect_masked=True)
    frames: List[Message] = []
    while len(frames) < count:
        frame = decoder.next_frame()
        if frame is not None:
            frames.append(frame)
            continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        decoder.feed(chunk)
    return frames


class PooledServer:
    """A started ``gws.serve`` server whose handler greenlets run in a Pool,
    so a test can wait for them to finish (``wait_idle``)."""

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
