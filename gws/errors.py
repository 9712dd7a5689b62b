"""Exceptions raised by gws's Pythonic face and by the sans-I/O layers.

The seed face (``connect``/``read``/``write``) never raises these for network
or protocol trouble: it turns them into error strings.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

__all__ = [
    "WebSocketError",
    "InvalidURL",
    "HandshakeError",
    "ConnectionClosed",
    "ProtocolError",
    "MessageTooBig",
    "OpenTimeout",
    "ReceiveTimeout",
    "HeartbeatTimeout",
    "CloseTimeout",
    "AbnormalClosure",
    "InvalidState",
    "WrongThread",
    "describe",
]


class WebSocketError(Exception):
    """Base class of every exception gws raises on purpose."""


class InvalidURL(WebSocketError, ValueError):
    """A ``ws://`` / ``wss://`` URL or a connection option is malformed."""


class HandshakeError(WebSocketError):
    """The opening handshake failed.

    ``status`` is the HTTP status the server answered (0 when no valid status
    line arrived), ``headers`` its header pairs and ``body`` any bytes of the
    reply received after the headers.
    """

    def __init__(
        self,
        message: str,
        status: int = 0,
        headers: Optional[List[Tuple[str, str]]] = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
        self.body = body


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` come from the close frame.

    ``code`` is 1006 when the connection dropped without a close frame.
    """

    def __init__(self, code: Optional[int], reason: str = "", error: Optional[str] = None) -> None:
        detail = f"connection closed: code {code}"
        if reason:
            detail += f", reason {reason!r}"
        if error:
            detail += f" ({error})"
        super().__init__(detail)
        self.code = code
        self.reason = reason
        self.error = error


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455 / RFC 7692; ``code`` is the close code to send."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class MessageTooBig(ProtocolError):
    """A message (after decompression) is larger than ``max_size``: close 1009."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


class OpenTimeout(WebSocketError, TimeoutError):
    """Connecting, the TLS handshake or the opening handshake took too long."""


class ReceiveTimeout(WebSocketError, TimeoutError):
    """``recv(timeout=...)`` / ``read(timeout=...)`` found no message in time.

    The connection stays open and usable: nothing received so far is lost.
    """


class HeartbeatTimeout(WebSocketError, TimeoutError):
    """The peer sent nothing within ``heartbeat_timeout`` of a ping; the
    connection was dropped (close code 1006)."""


class CloseTimeout(WebSocketError, TimeoutError):
    """The peer did not finish the close handshake within ``close_timeout``;
    the connection was dropped (close code 1006)."""


class AbnormalClosure(WebSocketError, ConnectionError):
    """The TCP connection ended without a close frame (close code 1006)."""


class InvalidState(WebSocketError):
    """The operation is not allowed now: the connection is closing or closed."""


class WrongThread(WebSocketError, RuntimeError):
    """A connection was used from an OS thread other than the one whose gevent
    hub owns it. gevent objects belong to one thread's hub: call the
    connection from the thread that opened it."""


def describe(exc: BaseException) -> str:
    """The seed face's error string for ``exc``: how ``read.error`` and
    ``write``'s error values word an exception."""
    if isinstance(exc, ProtocolError) and exc.code == 1002:
        return f"protocol error: {exc}"
    if isinstance(exc, ConnectionClosed):
        return exc.error or "connection is closed"
    if isinstance(exc, WebSocketError):
        return str(exc)
    if isinstance(exc, (OSError, ValueError)):
        return f"connection error: {exc}"
    return str(exc) or type(exc).__name__
