"""TLS over any connected gevent socket, through ``ssl.SSLObject`` and memory BIOs.

Needed where an OS-level TLS socket cannot be: TLS inside TLS (``wss://``
through an ``https://`` proxy: the tunnel is itself a TLS socket), and SSL
contexts that verify in their ``SSLObject`` (``truststore.SSLContext``),
which gevent's socket wrapping would bypass. :class:`TLSOverSocket` has the
socket methods gws and its callers use (``recv``, ``recv_into``, ``send``,
``sendall``, ``shutdown``, ``close``, ``settimeout``, ``getpeercert``,
``version``...); the others are the inner socket's.

Every wait is the inner gevent socket's. Bytes leave in order: a
semaphore covers "take the encrypted bytes, send them", and its holder
sends whatever was queued meanwhile before letting go, so a reader never
waits for a writer stuck on a full socket. A write interrupted once its
bytes are encrypted closes the socket and sets :attr:`TLSOverSocket.broken`
(the TLS stream cannot be resumed), so the peer never sees part of one
frame followed by another, and gws's transport knows the frame was torn.
"""

from __future__ import annotations

import ssl
from typing import Any, Optional, Union

from gevent.lock import Semaphore

__all__ = ["TLSOverSocket"]

_CHUNK = 256 * 1024

# What the ``socket`` face forwards: to the TLS object, and to the inner
# socket (nothing else: ``unwrap``, ``read``, ``makefile``... of an inner TLS
# socket would act on the wrong layer).
_TLS_ATTRS = frozenset(
    (
        "compression",
        "get_channel_binding",
        "pending",
        "server_side",
        "session",
        "session_reused",
        "shared_ciphers",
    )
)
_SOCKET_ATTRS = frozenset(
    (
        "fileno",
        "getpeername",
        "getsockname",
        "setsockopt",
        "getsockopt",
        "family",
        "type",
        "proto",
        "setblocking",
    )
)


class TLSOverSocket:
    """A client TLS connection over ``sock`` (handshake done by the constructor)."""

    def __init__(self, sock: Any, context: ssl.SSLContext, server_hostname: Optional[str]) -> None:
        self._sock = sock
        self.context = context
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        self._send_lock = Semaphore()
        self.broken = False
        """True once a write was interrupted with its bytes encrypted (the
        socket is then closed)."""
        try:
            self._handshake()
        except BaseException:
            sock.close()
            raise

    def _handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _fill(self) -> None:
        data = self._sock.recv(_CHUNK)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def _flush(self) -> None:
        with self._send_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        # Until nothing is queued: a reader may add bytes (a key update's
        # reply) while this holder waits in sendall, and leaves them to it.
        while True:
            data = self._outgoing.read()
            if not data:
                return
            try:
                self._sock.sendall(data)
            except BaseException:
                self.broken = True  # TLS records are (half) out: the stream is lost
                self._sock.close()
                raise

    # -- the socket face ----------------------------------------------------------------

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        size = nbytes or len(buffer)
        while True:
            try:
                # Nothing switches greenlets between this read and the return:
                # a caller's shared buffer is filled last.
                return int(self._tls.read(size, buffer))
            except ssl.SSLWantReadError:
                # What reading produced (a key update's reply). If a writer
                # holds the lock (blocked on a full socket, the peer perhaps
                # waiting for this read), it sends these bytes before letting go.
                if self._outgoing.pending and not self._send_lock.locked():
                    self._flush()
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0  # close_notify, or a ragged end (as suppress_ragged_eofs)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        buf = bytearray(bufsize)
        n = self.recv_into(buf, bufsize)
        return bytes(buf[:n])

    def send(self, data: Union[bytes, bytearray, memoryview], flags: int = 0) -> int:
        """Encrypt and send all of ``data`` (at most 256 KiB of it per call,
        so memory stays bounded: ``sendall()`` loops); returns how much."""
        chunk = memoryview(data)[:_CHUNK]
        with self._send_lock:  # an interruption waiting here: nothing was sent
            self._flush_locked()
            written = int(self._tls.write(chunk))
            self._flush_locked()
        return written

    def sendall(self, data: Union[bytes, bytearray, memoryview], flags: int = 0) -> None:
        view = memoryview(data)
        while view:
            view = view[self.send(view) :]

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()

    def settimeout(self, value: Optional[float]) -> None:
        self._sock.settimeout(value)

    def gettimeout(self) -> Optional[float]:
        return self._sock.gettimeout()  # type: ignore[no-any-return]

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)

    def version(self) -> Optional[str]:
        return self._tls.version()

    def cipher(self) -> Any:
        return self._tls.cipher()

    def selected_alpn_protocol(self) -> Optional[str]:
        return self._tls.selected_alpn_protocol()

    @property
    def server_hostname(self) -> Optional[str]:
        return self._tls.server_hostname

    def __getattr__(self, name: str) -> Any:
        if name in _TLS_ATTRS:
            return getattr(self._tls, name)
        if name in _SOCKET_ATTRS:
            return getattr(self._sock, name)
        raise AttributeError(f"TLSOverSocket has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<gws TLSOverSocket {self.version()} over {self._sock!r}>"
