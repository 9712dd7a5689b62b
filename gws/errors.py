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
