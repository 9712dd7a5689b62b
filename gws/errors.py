"""Exceptions raised by gws's Pythonic face and by the sans-I/O layers.

The seed face (``connect``/``read``/``write``) never raises these for network
or protocol trouble: it turns them into error strings.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

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
    "PongTimeout",
    "AbnormalClosure",
    "InvalidState",
    "WrongThread",
    "describe",
    "CLOSE_CODE_NAMES",
    "close_code_name",
]

#: What each close code defined by RFC 6455 (7.4.1) and IANA means.
CLOSE_CODE_NAMES: Dict[int, str] = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received",
    1006: "abnormal closure",
    1007: "invalid payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}


def close_code_name(code: Optional[int]) -> str:
    """What close ``code`` means: "going away" for 1001, "private use" for
    4000-4999, "registered" for 3000-3999."""
    if code is None:
        return "no close code"
    name = CLOSE_CODE_NAMES.get(code)
    if name is not None:
        return name
    if 3000 <= code < 4000:
        return "registered"
    if 4000 <= code < 5000:
        return "private use"
    return "unknown code"


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
    ``initiator`` says who closed: ``"peer"`` (its close frame came first),
    ``"local"`` (this side closed or failed the connection), or None
    (dropped without a close handshake).
    """

    def __init__(
        self,
        code: Optional[int],
        reason: str = "",
        error: Optional[str] = None,
        initiator: Optional[str] = None,
    ) -> None:
        who = {"peer": " by the peer", "local": " by this side"}.get(initiator or "", "")
        detail = f"connection closed{who}: code {code}"
        if code is not None:
            detail += f" ({close_code_name(code)})"
        if reason:
            detail += f", reason {reason!r}"
        if error and not error.startswith("peer closed with"):
            detail += f" ({error})"
        super().__init__(detail)
        self.code = code
        self.reason = reason
        self.error = error
        self.initiator = initiator


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


class PongTimeout(WebSocketError, TimeoutError):
    """No pong answered a ping within the time given to ``Pong.wait()``;
    the connection stays open."""


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
