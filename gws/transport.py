"""Moving bytes: a connected gevent socket as a WebSocket transport.

:class:`SocketTransport` receives into one buffer per OS thread and writes
whole frames, remembering when a write was cut short mid-frame (``torn``) so
the connection can tell an interrupted-but-clean write from a corrupt
stream. :func:`socket_io` gives the seed's ``raw_read``/``raw_write`` pair
over a socket, and :func:`read_head` reads an HTTP head for the handshakes.
No protocol decisions are made here.
"""

from __future__ import annotations

import socket as _stdsocket
import ssl
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple, Union, cast

import gevent.ssl as gssl
from gevent.monkey import get_original

from .errors import HandshakeError
from .frames import (
    FrameDecoder,
    FramePayload,
    Message,
    first_byte,
    frame_bytes,
    frame_header,
    new_mask_key,
)
from .handshake import MAX_HEAD, find_head_end
from .tlsbio import TLSOverSocket

if TYPE_CHECKING:
    # A gevent socket, plain or TLS (to type checkers, the stdlib classes).
    from gevent.socket import socket

__all__ = ["SocketTransport", "socket_io", "read_head", "wrap_tls", "RawRead", "RawWrite"]

RawRead = Callable[[], Optional[Message]]
RawWrite = Callable[[Optional[Message]], Any]

_RECV_SIZE = 256 * 1024
_TLS_RECV_SIZE = 16 * 1024 + 256  # a TLS record's payload, and room to spare
# Unmasked payloads from this size on are sent with sendmsg((header,
# payload)), saving a copy; below it joining the two is cheaper than the
# gather. (A masked payload is copied by masking anyway, into the frame.)
_GATHER_MIN = 16 * 1024
# One receive buffer per OS thread, shared by every connection in it: bytes
# are consumed before the greenlet can switch, so an idle connection costs no
# receive buffer at all. (The original thread-local class: after
# monkey.patch_all() threading.local would be greenlet-local.)
_local = get_original("_thread", "_local")()


def _recv_buffer() -> memoryview:
    try:
        return _local.view  # type: ignore[no-any-return]
    except AttributeError:
        view = _local.view = memoryview(bytearray(_RECV_SIZE))
        return view


class SocketTransport:
    """A connected gevent socket (plain or TLS) carrying frames.

    ``torn`` is True while, or after, a frame write was interrupted with part
    of the frame already sent: the stream is then unusable.
    """

    __slots__ = (
        "sock",
        "torn",
        "closed",
        "_recv_into",
        "_recv_size",
        "_send",
        "_gather",
        "_bio",
    )

    def __init__(self, sock: socket) -> None:
        self.sock = sock
        self.torn = False
        self.closed = False
        # TLSOverSocket.send() encrypts before it waits: interrupted, it may
        # have sent part of the frame (it says so with ``broken``)
        self._bio = isinstance(sock, TLSOverSocket)
        self._recv_into = sock.recv_into
        self._send = sock.send
        tls = isinstance(sock, (ssl.SSLSocket, gssl.SSLSocket))
        # A TLS read returns at most one record (16 KiB), and asking OpenSSL
        # for 256 KiB costs ~9 µs more per read than asking for what it can give.
        self._recv_size = _TLS_RECV_SIZE if tls else _RECV_SIZE
        # TLS sockets have no sendmsg(): their frames are joined, then sent.
        self._gather = not (tls or self._bio) and hasattr(sock, "sendmsg")

    # Bound methods wanted only for large frames and partial sends: looked up
    # when used rather than kept (64 bytes each per connection).
    @property
    def _sendall(self) -> Callable[[Any], None]:
        return self.sock.sendall

    @property
    def _sendmsg(self) -> Optional[Callable[[Tuple[bytes, Any]], int]]:
        return self.sock.sendmsg if self._gather else None

    def recv(self) -> memoryview:
        """Bytes received (empty at end of stream). The view is into a shared
        buffer: consume it before the current greenlet can switch."""
        try:
            view: memoryview = _local.view
        except AttributeError:
            view = _recv_buffer()
        return view[: self._recv_into(view, self._recv_size)]

    def recv_into(self, view: memoryview) -> int:
        """Receive into ``view`` (at most its length), then release it;
        0 at end of stream."""
        try:
            return self._recv_into(view)
        finally:
            view.release()

    def write_frame(self, frame: Optional[Message]) -> None:
        """Encode and send one frame; ``None`` closes the transport."""
        if frame is None:
            self.close()
            return
        self.write_data(
            first_byte(frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3),
            frame.payload,
            frame.mask,
        )

    def write_data(self, b0: int, payload: FramePayload, mask: bool) -> None:
        """Encode and send one frame with first byte ``b0`` (see
        :func:`~gws.frames.first_byte`) and ``payload`` (a ``str`` is sent as
        UTF-8), masked with a fresh key when ``mask``."""
        if mask:
            data = frame_bytes(b0, payload, new_mask_key())
        elif len(payload) < _GATHER_MIN or self._sendmsg is None or isinstance(payload, str):
            data = frame_bytes(b0, payload, None)
        else:
            self._send_gathered(frame_header(b0, len(payload), False), payload)
            return
        # gevent's send() and sendmsg() wait for the socket to be writable and
        # then send at once, so an interruption in them leaves nothing of the
        # frame sent. One call usually takes the whole frame; sendall() does
        # the rest.
        try:
            sent = self._send(data)
        except BaseException:
            if self._bio and getattr(self.sock, "broken", False):
                self.torn = True
            raise
        if sent < len(data):
            self.torn = True
            self._sendall(memoryview(data)[sent:])
            self.torn = False

    def _send_gathered(self, head: bytes, body: Union[bytes, bytearray, memoryview]) -> None:
        """A large unmasked payload goes out with its header in one
        ``sendmsg()`` rather than copied after it."""
        assert self._sendmsg is not None
        sent = self._sendmsg((head, body))
        hlen = len(head)
        if sent < hlen + len(body):
            self.torn = True
            if sent < hlen:
                self._sendall(head[sent:])
                sent = hlen
            self._sendall(memoryview(body)[sent - hlen :])
            self.torn = False

    def close(self) -> None:
        """Shut the socket down and close it; idempotent, never blocks."""
        if self.closed:
            return
        self.closed = True
        sock = self.sock
        try:
            sock.shutdown(_stdsocket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def socket_io(
    sock: socket,
    *,
    mask: bool,
    max_size: Optional[int] = None,
    rsv_allowed: int = 0,
    initial: bytes = b"",
) -> Tuple[RawRead, RawWrite]:
    """Adapt a connected gevent socket into the seed's ``(raw_read, raw_write)``.

    ``mask``: we are the client (mask what we send, expect unmasked frames).
    ``initial``: bytes already read past the handshake. ``raw_read()``
    returns one frame (bytes payload) or None at end of stream and raises
    :class:`~gws.errors.ProtocolError` for a malformed frame;
    ``raw_write(frame)`` sends one, ``raw_write(None)`` closes the socket.
    """
    transport = SocketTransport(sock)
    decoder = FrameDecoder(expect_masked=not mask, max_size=max_size, rsv_allowed=rsv_allowed)
    if initial:
        decoder.feed(initial)
    eof = False

    def raw_read() -> Optional[Message]:
        nonlocal eof
        while True:
            frame = decoder.next_frame()
            if frame is not None:
                return frame
            if eof:
                return None
            view = decoder.reserve()  # a large frame's payload is received in place
            if view is None:
                data = transport.recv()
                if data:
                    decoder.feed(data)
                    continue
            else:
                n = transport.recv_into(view)
                if n:
                    decoder.commit(n)
                    continue
            eof = True
            return None

    return raw_read, transport.write_frame


def read_head(sock: socket, limit: int = MAX_HEAD) -> Tuple[bytes, bytes]:
    """Read one HTTP head (through its blank line) from ``sock``.

    Returns ``(head, bytes received after it)``. Raises
    :class:`~gws.errors.HandshakeError` when the peer closes first or the head
    grows past ``limit`` bytes.
    """
    buf = b""
    while True:
        chunk = sock.recv(16384)
        if not chunk:
            raise HandshakeError("connection closed during the opening handshake")
        buf += chunk
        end = find_head_end(buf, limit)
        if end != -1:
            return buf[:end], buf[end:]


def _needs_bio(sock: Any, ctx: ssl.SSLContext) -> bool:
    """TLS over memory BIOs (tlsbio.py) for TLS inside TLS, and for
    truststore's contexts, whose checks run in their SSLObject."""
    if isinstance(sock, (ssl.SSLSocket, gssl.SSLSocket, TLSOverSocket)):
        return True
    return type(ctx).__module__.split(".")[0] == "truststore"


def wrap_tls(
    sock: socket,
    ctx: ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: Optional[str] = None,
    do_handshake_on_connect: bool = True,
) -> gssl.SSLSocket:
    """Wrap a gevent socket in a cooperative (gevent) TLS socket.

    A :class:`gevent.ssl.SSLContext` wraps through its public
    ``wrap_socket``. A plain :class:`ssl.SSLContext` would make a blocking
    stdlib socket, and gevent (26.9) offers no public way to pair it with a
    gevent socket without changing the caller's context object, so that
    case alone goes through gevent's ``SSLSocket(_context=...)``. A client
    socket that is already TLS (a tunnel through an ``https://`` proxy), or
    a ``truststore.SSLContext``, gets :class:`~gws.tlsbio.TLSOverSocket`.
    """
    if server_hostname is not None and not server_hostname.isascii():
        server_hostname = server_hostname.encode("idna").decode("ascii")
    if not server_side and _needs_bio(sock, ctx):
        # duck-typed: it has the socket methods gws and its callers use
        return cast(gssl.SSLSocket, TLSOverSocket(sock, ctx, server_hostname))
    if isinstance(ctx, gssl.SSLContext):
        return ctx.wrap_socket(
            sock,
            server_side=server_side,
            server_hostname=server_hostname,
            do_handshake_on_connect=do_handshake_on_connect,
        )
    return gssl.SSLSocket(
        sock=sock,
        server_side=server_side,
        server_hostname=server_hostname,
        do_handshake_on_connect=do_handshake_on_connect,
        _context=ctx,
    )
