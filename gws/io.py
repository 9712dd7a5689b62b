"""The seed face of a connection: ``wrap_io``, ``read`` and ``write``.

Errors are values here, as in coro-websocket: ``read()`` returns None once
the connection is closed (``read.error`` says why) and ``write()`` returns
``(ok, error)``. Underneath is one :class:`~gws.connection.Connection`
(:mod:`gws.protocol` over a transport); :func:`make_connection` turns the
seed's options (milliseconds) into one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, Mapping, Optional, Tuple, Union

from .connection import Connection, MessageLike
from .deflate import PerMessageDeflate
from .errors import ReceiveTimeout, WebSocketError, describe
from .frames import OP_PING, OP_PONG, Message
from .protocol import CLOSED, DEFAULT_MAX_SIZE, Protocol
from .transport import RawRead, RawWrite, SocketTransport, read_head, socket_io

if TYPE_CHECKING:
    from gevent.socket import socket

__all__ = [
    "wrap_io",
    "socket_io",
    "read_head",
    "Reader",
    "Writer",
    "Connection",
    "IO_OPTIONS",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_CLOSE_TIMEOUT",
    "check_io_options",
    "make_connection",
]

DEFAULT_CLOSE_TIMEOUT = 5000
IO_OPTIONS = frozenset(
    (
        "heartbeat",
        "heartbeat_timeout",
        "heartbeat_opcode",
        "mask",
        "max_size",
        "fragments",
        "close_timeout",
    )
)

WriteResult = Tuple[bool, Optional[str]]
_OK: WriteResult = (True, None)
# Durations in seconds by their value in ms, so that every connection opened
# with the same options shares one float object per option (24 bytes each).
_SECONDS: Dict[float, float] = {}


def _ms(options: Mapping[str, Any], name: str, default: Optional[float]) -> Optional[float]:
    """Read a millisecond option, returned in seconds (None stays None)."""
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"option {name} must be a positive number of milliseconds")
    seconds = _SECONDS.get(value)
    if seconds is None:
        seconds = value / 1000.0
        if len(_SECONDS) < 64:
            _SECONDS[value] = seconds
    return seconds


def check_io_options(options: Mapping[str, Any]) -> None:
    """Raise ValueError for a malformed wrap_io option value."""
    _ms(options, "heartbeat", None)
    _ms(options, "heartbeat_timeout", None)
    _ms(options, "close_timeout", DEFAULT_CLOSE_TIMEOUT)
    if options.get("heartbeat_opcode", OP_PING) not in (OP_PING, OP_PONG):
        raise ValueError("option heartbeat_opcode must be 9 (ping) or 10 (pong)")
    max_size = options.get("max_size", DEFAULT_MAX_SIZE)
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0
    ):
        raise ValueError("option max_size must be a non-negative int or None")


def make_connection(
    options: Mapping[str, Any],
    *,
    is_client: bool,
    deflate: Optional[PerMessageDeflate] = None,
    sock: Optional[socket] = None,
    initial: bytes = b"",
    raw_read: Optional[RawRead] = None,
    raw_write: Optional[RawWrite] = None,
) -> Connection:
    """A :class:`Connection` over ``sock`` (or ``raw_read``/``raw_write``)
    with the seed's io options (``IO_OPTIONS``, durations in ms)."""
    check_io_options(options)
    protocol = Protocol(
        is_client=is_client,
        mask=bool(options.get("mask", is_client)),
        max_size=options.get("max_size", DEFAULT_MAX_SIZE),
        deflate=deflate,
        fragments=bool(options.get("fragments", False)),
    )
    conn = Connection(
        protocol,
        transport=None if sock is None else SocketTransport(sock),
        raw_read=raw_read,
        raw_write=raw_write,
        close_timeout=_ms(options, "close_timeout", DEFAULT_CLOSE_TIMEOUT),
        initial=initial,
    )
    interval = _ms(options, "heartbeat", None)
    if interval is not None:
        opcode = options.get("heartbeat_opcode", OP_PING)
        default_timeout = options.get("heartbeat") if opcode == OP_PING else None
        conn.start_heartbeat(interval, _ms(options, "heartbeat_timeout", default_timeout), opcode)
    return conn


class Reader:
    """The ``read`` function: call it for the next :class:`Message`.

    Returns None once the connection is closed; then ``error`` (None after a
    clean close), ``close_code`` and ``close_reason`` tell why. Iterating
    yields messages until the close. ``read(timeout=ms)`` also returns None
    when no message came in time, but leaves the connection open:
    ``read.closed`` is False and ``read.timed_out`` True then.
    """

    __slots__ = ("_conn", "timed_out")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.timed_out = False

    def __call__(self, timeout: Optional[float] = None) -> Optional[Message]:
        self.timed_out = False
        conn = self._conn
        try:
            return conn.read(None if timeout is None else timeout / 1000.0)
        except ReceiveTimeout:
            self.timed_out = True
            return None
        except WebSocketError:  # WrongThread: read.error says so in that thread
            return None

    def __iter__(self) -> Iterator[Message]:
        read = self._conn.read
        while True:
            try:
                msg = read()
            except WebSocketError:
                return
            if msg is None:
                return
            yield msg

    @property
    def error(self) -> Optional[str]:
        return self._conn.error

    @property
    def exception(self) -> Optional[BaseException]:
        """The exception behind ``error`` (None after a clean close)."""
        return self._conn.exception

    @property
    def close_code(self) -> Optional[int]:
        return self._conn.close_code

    @property
    def close_reason(self) -> Optional[str]:
        return self._conn.close_reason

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (read() returns None from now on)."""
        return self._conn.state is CLOSED

    @property
    def connection(self) -> Connection:
        return self._conn


def _error_value(exc: BaseException) -> WriteResult:
    return False, describe(exc)


class Writer:
    """The ``write`` function: ``write(message)`` -> ``(True, None)`` or ``(False, error)``.

    ``message`` is a :class:`Message`, a dict of its fields (opcode defaults
    to 2), ``bytes`` (binary), ``str`` (text), or an iterable of str or of
    bytes, sent as one fragmented message. ``write(None)`` closes with 1000;
    ``write.close(code, reason)`` closes with your code. Safe to call from
    many greenlets at once: other messages never land between a message's
    fragments.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __call__(self, message: MessageLike) -> WriteResult:
        if message is None:
            return self.close(1000, "")
        try:
            self._conn.send(message)
        except (WebSocketError, ValueError, TypeError) as exc:
            return _error_value(exc)
        return _OK

    def close(self, code: Optional[int] = 1000, reason: str = "") -> WriteResult:
        try:
            self._conn.close(code, reason)
        except (WebSocketError, ValueError) as exc:
            return _error_value(exc)
        return _OK

    def ping(self, payload: Union[bytes, str] = b"") -> WriteResult:
        try:
            self._conn.ping(payload)
        except (WebSocketError, ValueError, TypeError) as exc:
            return _error_value(exc)
        return _OK

    @property
    def connection(self) -> Connection:
        return self._conn


def wrap_io(
    raw_read: RawRead,
    raw_write: RawWrite,
    options: Optional[Mapping[str, Any]] = None,
    *,
    deflate: Optional[PerMessageDeflate] = None,
    **kwargs: Any,
) -> Tuple[Reader, Writer]:
    """Wrap raw frame functions into WebSocket ``(read, write)``.

    ``raw_read()`` returns one decoded frame or None at end of stream;
    ``raw_write(frame)`` sends one frame and ``raw_write(None)`` ends the
    stream. Options (durations in ms): ``heartbeat``, ``heartbeat_timeout``,
    ``heartbeat_opcode``, ``mask`` (True: act as the client), ``max_size``,
    ``fragments``, ``close_timeout``. Raises ValueError for a bad option.
    """
    opts: Dict[str, Any] = dict(options or {})
    opts.update(kwargs)
    unknown = set(opts) - IO_OPTIONS
    if unknown:
        raise ValueError(f"unknown wrap_io option {sorted(unknown)[0]!r}")
    conn = make_connection(
        opts,
        is_client=bool(opts.get("mask", False)),
        deflate=deflate,
        raw_read=raw_read,
        raw_write=raw_write,
    )
    return Reader(conn), Writer(conn)
