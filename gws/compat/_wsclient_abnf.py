"""websocket-client's exceptions, close status codes, ``ABNF`` frame class
and trace switch, for :mod:`gws.compat.websocket_client`.

Names, signatures and the exception hierarchy are websocket-client 1.9's;
nothing here does I/O.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Callable, Optional, Union

__all__ = [
    "ABNF",
    "STATUS_NORMAL",
    "STATUS_GOING_AWAY",
    "STATUS_PROTOCOL_ERROR",
    "STATUS_UNSUPPORTED_DATA_TYPE",
    "STATUS_STATUS_NOT_AVAILABLE",
    "STATUS_ABNORMAL_CLOSED",
    "STATUS_INVALID_PAYLOAD",
    "STATUS_POLICY_VIOLATION",
    "STATUS_MESSAGE_TOO_BIG",
    "STATUS_INVALID_EXTENSION",
    "STATUS_UNEXPECTED_CONDITION",
    "STATUS_SERVICE_RESTART",
    "STATUS_TRY_AGAIN_LATER",
    "STATUS_BAD_GATEWAY",
    "STATUS_TLS_HANDSHAKE_ERROR",
    "VALID_CLOSE_STATUS",
    "WebSocketException",
    "WebSocketProtocolException",
    "WebSocketPayloadException",
    "WebSocketConnectionClosedException",
    "WebSocketTimeoutException",
    "WebSocketProxyException",
    "WebSocketBadStatusException",
    "WebSocketAddressException",
    "enableTrace",
    "isEnabledForTrace",
    "isEnabledForDebug",
    "isEnabledForError",
    "trace",
    "dump",
    "debug",
    "error",
    "warning",
    "log",
]

log = logging.getLogger("gws.compat.websocket_client")

# -- exceptions (websocket-client's names and hierarchy) ----------------------------------


class WebSocketException(Exception):
    """Base class of the exceptions this layer raises on purpose."""


class WebSocketProtocolException(WebSocketException):
    """The peer broke the WebSocket protocol."""


class WebSocketPayloadException(WebSocketException):
    """A message's payload is invalid (a text message that is not UTF-8)."""


class WebSocketConnectionClosedException(WebSocketException):
    """The connection is closed, by either side or by the network."""


class WebSocketTimeoutException(WebSocketException):
    """A read, write or the ping/pong exchange took longer than its timeout."""


class WebSocketProxyException(WebSocketException):
    """The proxy options are wrong or the proxy refused the tunnel."""


class WebSocketBadStatusException(WebSocketException):
    """The server answered the upgrade with another status than 101.

    ``status_code``, ``status_message``, ``resp_headers`` (dict, lower-case
    names) and ``resp_body`` (bytes or None) describe the answer.
    """

    def __init__(
        self,
        message: str,
        status_code: int,
        status_message: Optional[str] = None,
        resp_headers: Optional[dict] = None,  # type: ignore[type-arg]
        resp_body: Optional[bytes] = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.status_message = status_message
        self.resp_headers = resp_headers
        self.resp_body = resp_body


class WebSocketAddressException(WebSocketException):
    """The host name could not be resolved."""


# -- close status codes -------------------------------------------------------------------

STATUS_NORMAL = 1000
STATUS_GOING_AWAY = 1001
STATUS_PROTOCOL_ERROR = 1002
STATUS_UNSUPPORTED_DATA_TYPE = 1003
STATUS_STATUS_NOT_AVAILABLE = 1005
STATUS_ABNORMAL_CLOSED = 1006
STATUS_INVALID_PAYLOAD = 1007
STATUS_POLICY_VIOLATION = 1008
STATUS_MESSAGE_TOO_BIG = 1009
STATUS_INVALID_EXTENSION = 1010
STATUS_UNEXPECTED_CONDITION = 1011
STATUS_SERVICE_RESTART = 1012
STATUS_TRY_AGAIN_LATER = 1013
STATUS_BAD_GATEWAY = 1014
STATUS_TLS_HANDSHAKE_ERROR = 1015

VALID_CLOSE_STATUS = (
    STATUS_NORMAL,
    STATUS_GOING_AWAY,
    STATUS_PROTOCOL_ERROR,
    STATUS_UNSUPPORTED_DATA_TYPE,
    STATUS_INVALID_PAYLOAD,
    STATUS_POLICY_VIOLATION,
    STATUS_MESSAGE_TOO_BIG,
    STATUS_INVALID_EXTENSION,
    STATUS_UNEXPECTED_CONDITION,
    STATUS_SERVICE_RESTART,
    STATUS_TRY_AGAIN_LATER,
    STATUS_BAD_GATEWAY,
)


def _xor(key: bytes, data: bytes) -> bytes:
    n = len(data)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


class ABNF:
    """One frame, as websocket-client models it (RFC 6455 section 5.2).

    gws builds and parses the frames on the wire itself; this class is what
    ``recv_frame()``/``recv_data_frame()`` return and what ``send_frame()``
    takes, with websocket-client's constants and helpers.
    """

    OPCODE_CONT = 0x0
    OPCODE_TEXT = 0x1
    OPCODE_BINARY = 0x2
    OPCODE_CLOSE = 0x8
    OPCODE_PING = 0x9
    OPCODE_PONG = 0xA

    OPCODES = (OPCODE_CONT, OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG)
    OPCODE_MAP = {
        OPCODE_CONT: "cont",
        OPCODE_TEXT: "text",
        OPCODE_BINARY: "binary",
        OPCODE_CLOSE: "close",
        OPCODE_PING: "ping",
        OPCODE_PONG: "pong",
    }

    LENGTH_7 = 0x7E
    LENGTH_16 = 1 << 16
    LENGTH_63 = 1 << 63

    def __init__(
        self,
        fin: int = 0,
        rsv1: int = 0,
        rsv2: int = 0,
        rsv3: int = 0,
        opcode: int = OPCODE_TEXT,
        mask_value: int = 1,
        data: Optional[Union[str, bytes]] = "",
    ) -> None:
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3
        self.opcode = opcode
        self.mask_value = mask_value
        self.data: Union[str, bytes] = "" if data is None else data
        self.get_mask_key: Callable[[int], bytes] = os.urandom

    def validate(self, skip_utf8_validation: bool = False) -> None:
        """Raise WebSocketProtocolException for a frame RFC 6455 forbids."""
        if self.rsv1 or self.rsv2 or self.rsv3:
            raise WebSocketProtocolException("rsv is not implemented, yet")
        if self.opcode not in ABNF.OPCODES:
            raise WebSocketProtocolException(f"Invalid opcode {self.opcode!r}")
        if self.opcode == ABNF.OPCODE_PING and not self.fin:
            raise WebSocketProtocolException("Invalid ping frame.")
        if self.opcode == ABNF.OPCODE_CLOSE:
            data = self.data.encode("utf-8") if isinstance(self.data, str) else self.data
            if not data:
                return
            if len(data) == 1 or len(data) >= 126:
                raise WebSocketProtocolException("Invalid close frame.")
            if len(data) > 2 and not skip_utf8_validation:
                try:
                    data[2:].decode("utf-8")
                except UnicodeDecodeError:
                    raise WebSocketProtocolException("Invalid close frame.") from None
            code = struct.unpack("!H", data[:2])[0]
            if not (code in VALID_CLOSE_STATUS or 3000 <= code < 5000):
                raise WebSocketProtocolException(f"Invalid close opcode {code!r}")

    def __str__(self) -> str:
        data_repr = self.data if isinstance(self.data, str) else repr(self.data)
        return f"fin={self.fin} opcode={self.opcode} data={data_repr}"

    @staticmethod
    def create_frame(data: Union[bytes, str], opcode: int, fin: int = 1) -> ABNF:
        """A masked frame to send; a ``str`` is UTF-8 encoded for OPCODE_TEXT."""
        if opcode == ABNF.OPCODE_TEXT and isinstance(data, str):
            data = data.encode("utf-8")
        return ABNF(fin, 0, 0, 0, opcode, 1, data)

    def format(self) -> bytes:
        """The frame's bytes on the wire (masked with a fresh key if ``mask_value``)."""
        if any(x not in (0, 1) for x in (self.fin, self.rsv1, self.rsv2, self.rsv3)):
            raise ValueError("not 0 or 1")
        if self.opcode not in ABNF.OPCODES:
            raise ValueError("Invalid OPCODE")
        data = self.data.encode("latin-1") if isinstance(self.data, str) else bytes(self.data)
        length = len(data)
        if length >= ABNF.LENGTH_63:
            raise ValueError("data is too long")
        first = self.fin << 7 | self.rsv1 << 6 | self.rsv2 << 5 | self.rsv3 << 4 | self.opcode
        mask_bit = self.mask_value << 7
        if length < ABNF.LENGTH_7:
            header = struct.pack("!BB", first, mask_bit | length)
        elif length < ABNF.LENGTH_16:
            header = struct.pack("!BBH", first, mask_bit | 0x7E, length)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 0x7F, length)
        if not self.mask_value:
            return header + data
        key = self.get_mask_key(4)
        if isinstance(key, str):
            key = key.encode("latin-1")
        return header + key + _xor(key, data)

    @staticmethod
    def mask(mask_key: Union[str, bytes], data: Union[str, bytes]) -> bytes:
        """XOR ``data`` with the 4-byte ``mask_key`` (masks and unmasks)."""
        key = mask_key.encode("latin-1") if isinstance(mask_key, str) else bytes(mask_key)
        raw = data.encode("latin-1") if isinstance(data, str) else bytes(data or b"")
        return _xor(key, raw)


def payload_bytes(data: Union[str, bytes, bytearray, memoryview], opcode: int) -> bytes:
    """A payload as websocket-client's ``send(data, opcode)`` puts it on the
    wire: a ``str`` is UTF-8 for OPCODE_TEXT, latin-1 (one byte per
    character) for any other opcode."""
    if isinstance(data, str):
        return data.encode("utf-8" if opcode == ABNF.OPCODE_TEXT else "latin-1")
    return bytes(data)


def frame_length(payload_length: int) -> int:
    """Bytes a masked client frame with this payload length takes on the wire
    (what websocket-client's ``send`` returns)."""
    if payload_length < ABNF.LENGTH_7:
        header = 2
    elif payload_length < ABNF.LENGTH_16:
        header = 4
    else:
        header = 10
    return header + 4 + payload_length


# -- trace ---------------------------------------------------------------------------------


class _TraceState:
    enabled = False
    handler: Optional[logging.Handler] = None
    level: Optional[int] = None  # the gws logger's level before tracing


_trace = _TraceState()


def enableTrace(  # noqa: N802 - websocket-client's name
    traceable: bool, handler: Optional[logging.Handler] = None, level: str = "DEBUG"
) -> None:
    """Turn tracing on or off, as websocket-client's ``enableTrace`` does.

    On: ``handler`` (default a ``StreamHandler`` to stderr) is attached to
    the ``gws`` logger at ``level``, so gws's own log lines and this layer's
    frame traces (``++Sent``/``++Rcv``) show. Off: the handler is removed and
    the level restored.
    """
    logger = logging.getLogger("gws")
    if _trace.handler is not None:
        logger.removeHandler(_trace.handler)
        _trace.handler = None
    if traceable:
        new = handler if handler is not None else logging.StreamHandler()
        logger.addHandler(new)
        if _trace.level is None:
            _trace.level = logger.level
        logger.setLevel(getattr(logging, level))
        _trace.handler = new
        _trace.enabled = True
    else:
        if _trace.level is not None:
            logger.setLevel(_trace.level)
            _trace.level = None
        _trace.enabled = False


def isEnabledForTrace() -> bool:  # noqa: N802 - websocket-client's name
    """Whether :func:`enableTrace` turned tracing on."""
    return _trace.enabled


def trace(msg: str) -> None:
    """Log ``msg`` at DEBUG when tracing is on."""
    if _trace.enabled:
        log.debug(msg)


def dump(title: str, message: str) -> None:
    """Log ``message`` under a ``--- title ---`` line at DEBUG when tracing is on."""
    if _trace.enabled:
        log.debug(f"--- {title} ---")
        log.debug(message)
        log.debug("-----------------------")


def error(msg: str) -> None:
    """Log ``msg`` at ERROR on this layer's logger."""
    log.error(msg)


def warning(msg: str) -> None:
    """Log ``msg`` at WARNING on this layer's logger."""
    log.warning(msg)


def debug(msg: str) -> None:
    """Log ``msg`` at DEBUG on this layer's logger."""
    log.debug(msg)


def isEnabledForError() -> bool:  # noqa: N802 - websocket-client's name
    """Whether this layer's logger logs ERROR records."""
    return log.isEnabledFor(logging.ERROR)


def isEnabledForDebug() -> bool:  # noqa: N802 - websocket-client's name
    """Whether this layer's logger logs DEBUG records."""
    return log.isEnabledFor(logging.DEBUG)
