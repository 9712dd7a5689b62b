"""wrap_io(): the WebSocket protocol engine over raw frame read/write functions.

The engine reassembles fragments, checks UTF-8 incrementally, inflates
permessage-deflate messages within ``max_size``, answers pings, runs the
close handshake and the heartbeat greenlet. It never touches a socket
itself: :func:`socket_io` adapts a gevent socket into ``raw_read`` and
``raw_write``.
"""

from __future__ import annotations

import codecs
import logging
import socket as _stdsocket
from collections import deque
from time import monotonic
from typing import Any, Callable, Deque, Dict, Iterator, Mapping, Optional, Tuple, Union

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.monkey import get_original

from .deflate import PerMessageDeflate
from .errors import HandshakeError, ProtocolError
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameDecoder,
    Message,
    encode_close_payload,
    encode_frame,
    parse_close_payload,
)
from .handshake import MAX_HEAD, find_head_end

__all__ = [
    "wrap_io",
    "socket_io",
    "Reader",
    "Writer",
    "Connection",
    "IO_OPTIONS",
    "DEFAULT_MAX_SIZE",
]

log = logging.getLogger("gws")

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
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

RawRead = Callable[[], Optional[Message]]
RawWrite = Callable[[Optional[Message]], Any]
WriteResult = Tuple[bool, Optional[str]]
MessageLike = Union[Message, Mapping[str, Any], bytes, bytearray, memoryview, str, None]

OPEN, CLOSING, CLOSED = 0, 1, 2
_RECV_SIZE = 256 * 1024
# One receive buffer per OS thread, shared by every connection in it: bytes
# are copied out of it before the greenlet can switch, and an idle
# connection then costs no receive buffer at all.
# (the original thread-local class: after monkey.patch_all() threading.local
# would be greenlet-local, a buffer per greenlet.)
_local = get_original("_thread", "_local")()
_MORE = object()  # _handle(): frame consumed, no message to deliver yet
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


def _ms(options: Mapping[str, Any], name: str, default: Optional[float]) -> Optional[float]:
    """Read a millisecond option, returned in seconds (None stays None)."""
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"option {name} must be a positive number of milliseconds")
    return value / 1000.0


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


class Connection:
    """State shared by one connection's ``read`` and ``write``."""

    __slots__ = (
        "raw_read",
        "raw_write",
        "mask",
        "is_client",
        "max_size",
        "fragments",
        "close_timeout",
        "deflate",
        "state",
        "close_sent",
        "close_code",
        "close_reason",
        "error",
        "closed",
        "write_lock",
        "read_lock",
        "pending",
        "last_rx",
        "_frag_opcode",
        "_frag_parts",
        "_frag_size",
        "_frag_compressed",
        "_utf8",
        "_out_compressing",
        "_hb_timer",
        "_hb_step",
        "_hb_interval",
        "_hb_timeout",
        "_hb_opcode",
        "_waiting_since",
        "_next_ping",
        "__weakref__",
    )

    def __init__(
        self,
        raw_read: RawRead,
        raw_write: RawWrite,
        options: Mapping[str, Any],
        deflate: Optional[PerMessageDeflate] = None,
    ) -> None:
        check_io_options(options)
        self.raw_read = raw_read
        self.raw_write = raw_write
        self.mask = bool(options.get("mask", False))
        self.is_client = self.mask
        self.max_size: Optional[int] = options.get("max_size", DEFAULT_MAX_SIZE)
        self.fragments = bool(options.get("fragments", False))
        self.close_timeout = _ms(options, "close_timeout", DEFAULT_CLOSE_TIMEOUT)
        self.deflate = deflate
        self.state = OPEN
        self.close_sent = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.error: Optional[str] = None
        self.closed = Event()
        self.write_lock = Semaphore()
        self.read_lock = Semaphore()
        self.pending: Deque[Message] = deque()
        self._frag_opcode: Optional[int] = None
        # Raw bytes of a fragmented message so far: one buffer, whatever the
        # fragment count (a list of parts costs ~40 bytes per tiny fragment).
        self._frag_parts = bytearray()
        self._frag_size = 0
        self._frag_compressed = False
        self._utf8: Any = None
        self._out_compressing: Optional[bool] = None
        self.last_rx = monotonic()
        # The heartbeat is a loop timer (a few hundred bytes) that spawns a
        # short-lived greenlet per step, not a greenlet per connection that
        # sleeps between pings (about 6 KiB of saved stack each).
        self._hb_timer: Any = None
        self._hb_step: Optional[gevent.Greenlet] = None
        self._hb_interval = _ms(options, "heartbeat", None)
        self._hb_timeout: Optional[float] = None
        self._hb_opcode = OP_PING
        self._waiting_since: Optional[float] = None  # oldest unanswered ping
        if self._hb_interval is not None:
            self._hb_opcode = options.get("heartbeat_opcode", OP_PING)
            default_timeout = options.get("heartbeat") if self._hb_opcode == OP_PING else None
            self._hb_timeout = _ms(options, "heartbeat_timeout", default_timeout)
            self._next_ping = monotonic() + self._hb_interval
            self._schedule_heartbeat(self._hb_interval)

    @property
    def heartbeat_active(self) -> bool:
        """Whether a heartbeat is scheduled or running for this connection."""
        return self._hb_timer is not None or self._hb_step is not None

    # -- reading -------------------------------------------------------------

    def read(self) -> Optional[Message]:
        """Next message, or None once the connection is closed."""
        if self.pending:
            return self.pending.popleft()
        if self.state == CLOSED:
            return None
        with self.read_lock:
            if self.pending:
                return self.pending.popleft()
            while True:
                frame = self._next_frame()
                if frame is None:
                    return None
                result = self._handle(frame)
                if result is not _MORE:
                    return result  # type: ignore[return-value]

    def _next_frame(self) -> Optional[Message]:
        if self.state == CLOSED:
            return None
        try:
            frame = self.raw_read()
        except ProtocolError as exc:
            self._fail(exc.code, str(exc))
            return None
        except (OSError, ValueError) as exc:
            self._abort(f"connection error: {exc}")
            return None
        if frame is None:
            if self.state == CLOSING and self.close_code is not None:
                self._abort(None)
            else:
                self._abort("connection closed without a close frame")
            return None
        if self._hb_interval is not None:
            self.last_rx = monotonic()
        return frame

    def _handle(self, frame: Message) -> Any:
        """Process one frame: a Message to deliver, None when closed, or _MORE."""
        opcode = frame.opcode
        if OP_BINARY < opcode < OP_CLOSE or opcode > OP_PONG:
            # FrameDecoder never returns these, but a custom raw_read might.
            self._fail(1002, f"reserved opcode {opcode}")
            return None
        if opcode >= OP_CLOSE and (not frame.fin or len(frame.payload) > 125):
            self._fail(1002, "fragmented or oversized control frame")
            return None
        if opcode >= OP_CLOSE:
            if opcode == OP_PING:
                if self.state == OPEN:
                    self._send(
                        Message(True, False, False, False, OP_PONG, self.mask, frame.payload)
                    )
            elif opcode == OP_CLOSE:
                self._on_close(frame.payload)
                if self.fragments:
                    return frame
                return None
            return frame if self.fragments else _MORE
        if self.fragments:
            if isinstance(frame.payload, str):  # frames keep their raw bytes
                frame.payload = frame.payload.encode("utf-8")
            return frame
        try:
            return self._assemble(frame)
        except ProtocolError as exc:
            self._fail(exc.code, str(exc))
            return None

    def _assemble(self, frame: Message) -> Any:
        opcode = frame.opcode
        if frame.rsv2 or frame.rsv3:
            raise ProtocolError("reserved bits rsv2/rsv3 set without a negotiated extension")
        if opcode == OP_CONTINUATION:
            if self._frag_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
            if frame.rsv1:
                raise ProtocolError("rsv1 set on a continuation frame")
        else:
            if self._frag_opcode is not None:
                raise ProtocolError("new data message inside a fragmented message")
            compressed = frame.rsv1
            if compressed and self.deflate is None:
                raise ProtocolError("rsv1 set without permessage-deflate")
            if frame.fin:
                payload: Any = frame.payload
                max_size = self.max_size
                if compressed:
                    payload = self.deflate.decompress(payload, True, max_size)  # type: ignore[union-attr]
                elif max_size is not None and len(payload) > max_size:
                    raise ProtocolError(f"message exceeds max_size {max_size}", 1009)
                if opcode == OP_TEXT and not isinstance(payload, str):
                    try:
                        payload = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError("text message is not valid UTF-8", 1007) from None
                # The frame becomes the message: fin is set and rsv2/rsv3 are not.
                frame.payload = payload
                frame.rsv1 = False
                return frame
            self._frag_opcode = opcode
            self._frag_compressed = compressed
            self._frag_parts = bytearray()
            self._frag_size = 0
            self._utf8 = _Utf8Decoder() if opcode == OP_TEXT else None
        data: Any = frame.payload
        max_size = self.max_size
        if self._frag_compressed:
            limit = None if max_size is None else max_size - self._frag_size
            data = self.deflate.decompress(data, frame.fin, limit)  # type: ignore[union-attr]
        self._frag_size += len(data)
        if max_size is not None and self._frag_size > max_size:
            raise ProtocolError(f"message exceeds max_size {max_size}", 1009)
        if self._utf8 is not None:
            try:
                self._utf8.decode(data, frame.fin)  # checked now, decoded once at the end
            except UnicodeDecodeError:
                raise ProtocolError("text message is not valid UTF-8", 1007) from None
        self._frag_parts += data
        if not frame.fin:
            return _MORE
        first = self._frag_opcode
        parts = self._frag_parts
        self._frag_opcode = None
        self._frag_parts = bytearray()
        self._utf8 = None
        payload = parts.decode("utf-8") if first == OP_TEXT else bytes(parts)
        return Message(True, False, False, False, first, frame.mask, payload)  # type: ignore[arg-type]

    def _on_close(self, payload: Any) -> None:
        try:
            code, reason = parse_close_payload(payload)
        except ProtocolError as exc:
            self._fail(exc.code, str(exc))
            return
        if self.state == CLOSED:
            return
        self.close_code = 1005 if code is None else code
        self.close_reason = reason
        if not self.close_sent:
            echo = b"" if code is None else payload[:2]
            self._send_close(echo)
        self._finish(None)

    # -- closing ---------------------------------------------------------------

    def _send_close(self, payload: bytes) -> None:
        self.close_sent = True
        if self.state == OPEN:
            self.state = CLOSING
        # Bounded: a writer blocked in sendall (peer not reading) holds the lock.
        timer = gevent.Timeout(self.close_timeout)
        timer.start()
        try:
            self._send(Message(True, False, False, False, OP_CLOSE, self.mask, payload))
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._abort("close handshake timed out")
        finally:
            timer.close()

    def _finish(self, error: Optional[str], drain: bool = True) -> None:
        """Close handshake done (or given up): drain to EOF as a client, then close."""
        if self.state == CLOSED:
            return
        self.state = CLOSED
        if error is not None and self.error is None:
            self.error = error
        if drain and self.is_client and self.close_timeout:
            # RFC 6455 7.1.1: the server closes TCP first; wait for it, bounded.
            timer = gevent.Timeout(self.close_timeout)
            timer.start()
            try:
                while self.raw_read() is not None:
                    pass
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
            except Exception:  # noqa: BLE001 - any error here just means the stream is gone
                pass
            finally:
                timer.close()
                # also when an outer timeout (close(), heartbeat, the caller's) cuts the drain short
                self._shutdown()
        else:
            self._shutdown()

    def _fail(self, code: int, message: str) -> None:
        """Fail the connection (RFC 6455 7.1.7) with close ``code``."""
        if self.state == CLOSED:
            return
        log.debug("failing connection with %d: %s", code, message)
        self.error = f"protocol error: {message}" if code == 1002 else message
        if self.close_code is None:
            self.close_code = code
            self.close_reason = ""
        if not self.close_sent:
            self._send_close(encode_close_payload(code))
        self._finish(None)

    def _abort(self, error: Optional[str]) -> None:
        """Drop the connection now (EOF, socket error, heartbeat timeout)."""
        if self.state != CLOSED and self.close_code is None:
            self.close_code = 1006
            self.close_reason = ""
        self._finish(error, drain=False)

    def _shutdown(self) -> None:
        self.state = CLOSED
        try:
            self.raw_write(None)
        except Exception as exc:  # noqa: BLE001
            log.debug("error while closing the stream: %s", exc)
        self.closed.set()
        timer = self._hb_timer
        if timer is not None:
            timer.close()
            self._hb_timer = None
        step = self._hb_step
        if step is not None and step is not gevent.getcurrent():
            step.kill(block=False)
            self._hb_step = None

    def close(self, code: Optional[int] = 1000, reason: str = "") -> WriteResult:
        """Start the close handshake and wait for it, at most ``close_timeout``."""
        try:
            payload = encode_close_payload(code, reason)
        except ValueError as exc:
            return False, str(exc)
        if self.state != OPEN:
            return False, "connection is already closed" if self.state == CLOSED else (
                "connection is closing"
            )
        timer = gevent.Timeout(self.close_timeout)
        timer.start()
        try:
            self._send_close(payload)
            if self.state == CLOSED:  # the send failed
                return False, self.error
            if self.read_lock.acquire(blocking=False):
                try:
                    while self.state != CLOSED:
                        frame = self._next_frame()
                        if frame is None:
                            break
                        if frame.opcode == OP_CLOSE or frame.opcode == OP_PING:
                            self._handle(frame)
                        else:
                            log.debug("discarding a frame received while closing")
                finally:
                    self.read_lock.release()
            else:
                self.closed.wait()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._abort("close handshake timed out")
        finally:
            timer.close()
        return True, None

    # -- writing ---------------------------------------------------------------

    def _send(self, frame: Message, compress: bool = False) -> WriteResult:
        try:
            with self.write_lock:
                if compress:
                    self._compress(frame)
                self.raw_write(frame)
        except (OSError, ValueError) as exc:
            self._abort(f"connection error: {exc}")
            return False, self.error or str(exc)
        return True, None

    def write(self, message: MessageLike) -> WriteResult:
        """Send one message or frame; see :class:`Writer`."""
        if type(message) is bytes and self.deflate is None and self.state == OPEN:
            # the common case, without the general path's checks
            return self._send(Message(True, False, False, False, OP_BINARY, self.mask, message))
        if message is None:
            return self.close(1000, "")
        try:
            frame = _to_message(message)
        except (TypeError, ValueError) as exc:
            return False, str(exc)
        if self.state != OPEN:
            return (
                False,
                "connection is closed" if self.state == CLOSED else "connection is closing",
            )
        opcode = frame.opcode
        if opcode >= OP_CLOSE:
            if opcode == OP_CLOSE:
                try:
                    code, reason = parse_close_payload(frame.payload)  # type: ignore[arg-type]
                except ProtocolError as exc:
                    return False, str(exc)
                return self.close(code, reason)
            if len(frame.payload) > 125:
                return False, "control frame payload longer than 125 bytes"
            if not frame.fin:
                return False, "control frames cannot be fragmented"
        elif self.deflate is not None and not frame.rsv1:
            frame.mask = self.mask
            # Compress under the write lock: with context takeover the peer
            # inflates in send order, so compression order must be send order
            # (gevent's Semaphore lets a releasing greenlet re-acquire first).
            return self._send(frame, compress=True)
        frame.mask = self.mask
        return self._send(frame)

    def _compress(self, frame: Message) -> None:
        """permessage-deflate one outgoing data frame; call with write_lock held."""
        opcode = frame.opcode
        if opcode != OP_CONTINUATION:
            self._out_compressing = True
        if self._out_compressing:
            frame.payload = self.deflate.compress(frame.payload, frame.fin)  # type: ignore[union-attr,arg-type]
            frame.rsv1 = opcode != OP_CONTINUATION
        if frame.fin:
            self._out_compressing = None

    def ping(self, payload: Union[bytes, str] = b"") -> WriteResult:
        return self.write(Message(opcode=OP_PING, payload=payload))

    # -- heartbeat ---------------------------------------------------------------

    def _schedule_heartbeat(self, delay: float) -> None:
        timer = self._hb_timer = gevent.get_hub().loop.timer(max(delay, 0.0))
        timer.start(self._spawn_heartbeat_step)

    def _spawn_heartbeat_step(self) -> None:
        # Runs in the hub, which must not block: the step gets its own greenlet.
        if self._hb_timer is not None:
            self._hb_timer.close()
            self._hb_timer = None
        if self.state == OPEN:
            self._hb_step = gevent.spawn(self._heartbeat_step)

    def _heartbeat_step(self) -> None:
        try:
            delay = self._heartbeat_once()
        finally:
            self._hb_step = None
        if delay is not None and self.state == OPEN:
            self._schedule_heartbeat(delay)

    def _heartbeat_once(self) -> Optional[float]:
        """Check the oldest unanswered ping, send a ping when due; return the
        delay until the next step, or None once the connection is gone."""
        interval = self._hb_interval
        timeout = self._hb_timeout
        assert interval is not None
        now = monotonic()
        waiting = self._waiting_since
        if waiting is not None:
            assert timeout is not None
            stale = self.last_rx < waiting and now >= waiting + timeout
            if stale and not self._bounded(timeout, self._pump):
                return None
            if self.last_rx >= waiting:
                waiting = self._waiting_since = None
            elif now >= waiting + timeout:
                log.info("no frame from the peer for %.3f s: heartbeat timeout", now - waiting)
                self._abort("heartbeat timeout")
                return None
        if now >= self._next_ping:
            ping = Message(True, False, False, False, self._hb_opcode, self.mask, b"")
            if not self._bounded(timeout, self._send, ping) or self.state == CLOSED:
                return None
            self._next_ping = now + interval
            if timeout is not None and waiting is None:
                waiting = self._waiting_since = now
        wake = self._next_ping if waiting is None else min(self._next_ping, waiting + timeout)  # type: ignore[operator]
        return wake - monotonic()

    def _bounded(self, timeout: Optional[float], func: Callable[..., Any], *args: Any) -> bool:
        """Run a heartbeat step; one still blocked after ``timeout`` (the write
        lock held by a writer stuck on a peer that stopped reading) aborts the
        connection with "heartbeat timeout" and returns False."""
        timer = gevent.Timeout(timeout)
        timer.start()
        try:
            func(*args)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            log.info("heartbeat blocked for %.3f s: heartbeat timeout", timeout)
            self._abort("heartbeat timeout")
            return False
        finally:
            timer.close()
        return True

    def _pump(self) -> None:
        """Read one frame if no one else is reading, so a quiet reader does
        not look like a dead peer; a completed message is kept for read()."""
        if not self.read_lock.acquire(blocking=False):
            return
        try:
            frame = None
            with gevent.Timeout(0.05, False):
                frame = self._next_frame()
            if frame is not None:
                result = self._handle(frame)
                if isinstance(result, Message):
                    self.pending.append(result)
        finally:
            self.read_lock.release()


def _to_message(message: MessageLike) -> Message:
    if isinstance(message, Message):
        frame = Message(
            message.fin,
            message.rsv1,
            message.rsv2,
            message.rsv3,
            message.opcode,
            message.mask,
            message.payload,
        )
    elif isinstance(message, (bytes, bytearray, memoryview)):
        return Message(True, False, False, False, OP_BINARY, False, bytes(message))
    elif isinstance(message, str):
        return Message(True, False, False, False, OP_TEXT, False, message.encode("utf-8"))
    elif isinstance(message, Mapping):
        unknown = set(message) - {"fin", "rsv1", "rsv2", "rsv3", "opcode", "mask", "payload", "len"}
        if unknown:
            raise ValueError(f"unknown message field {sorted(unknown)[0]!r}")
        frame = Message(
            bool(message.get("fin", True)),
            bool(message.get("rsv1", False)),
            bool(message.get("rsv2", False)),
            bool(message.get("rsv3", False)),
            message.get("opcode", OP_BINARY),
            False,
            message.get("payload", b""),
        )
    else:
        raise TypeError(
            f"cannot send {type(message).__name__}: use bytes, str, dict or gws.Message"
        )
    opcode = frame.opcode
    if isinstance(opcode, bool) or not isinstance(opcode, int) or not 0 <= opcode <= 15:
        raise ValueError(f"invalid opcode {opcode!r}")
    payload = frame.payload
    if isinstance(payload, str):
        frame.payload = payload.encode("utf-8")
    elif isinstance(payload, (bytearray, memoryview)):
        frame.payload = bytes(payload)
    elif not isinstance(payload, bytes):
        raise TypeError(f"payload must be bytes or str, not {type(payload).__name__}")
    return frame


class Reader:
    """The ``read`` function: call it for the next :class:`Message`.

    Returns None once the connection is closed; then ``error`` (None after a
    clean close), ``close_code`` and ``close_reason`` tell why. Iterating
    yields messages until the close.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __call__(self) -> Optional[Message]:
        return self._conn.read()

    def __iter__(self) -> Iterator[Message]:
        read = self._conn.read
        while True:
            msg = read()
            if msg is None:
                return
            yield msg

    @property
    def error(self) -> Optional[str]:
        return self._conn.error

    @property
    def close_code(self) -> Optional[int]:
        return self._conn.close_code

    @property
    def close_reason(self) -> Optional[str]:
        return self._conn.close_reason

    @property
    def connection(self) -> Connection:
        return self._conn


class Writer:
    """The ``write`` function: ``write(message)`` -> ``(True, None)`` or ``(False, error)``.

    ``message`` is a :class:`Message`, a dict of its fields (opcode defaults
    to 2), ``bytes`` (binary) or ``str`` (text). ``write(None)`` closes with
    1000; ``write.close(code, reason)`` closes with your code. Safe to call
    from many greenlets at once.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __call__(self, message: MessageLike) -> WriteResult:
        return self._conn.write(message)

    def close(self, code: Optional[int] = 1000, reason: str = "") -> WriteResult:
        return self._conn.close(code, reason)

    def ping(self, payload: Union[bytes, str] = b"") -> WriteResult:
        return self._conn.ping(payload)

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
    ``heartbeat_opcode``, ``mask``, ``max_size``, ``fragments``,
    ``close_timeout``. Raises ValueError for a bad option.
    """
    opts: Dict[str, Any] = dict(options or {})
    opts.update(kwargs)
    unknown = set(opts) - IO_OPTIONS
    if unknown:
        raise ValueError(f"unknown wrap_io option {sorted(unknown)[0]!r}")
    conn = Connection(raw_read, raw_write, opts, deflate)
    return Reader(conn), Writer(conn)


def read_head(sock: Any, limit: int = MAX_HEAD) -> Tuple[bytes, bytes]:
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


def socket_io(
    sock: Any,
    *,
    mask: bool,
    max_size: Optional[int] = DEFAULT_MAX_SIZE,
    rsv_allowed: int = 0,
    initial: bytes = b"",
) -> Tuple[RawRead, RawWrite]:
    """Adapt a connected gevent socket into ``(raw_read, raw_write)``.

    ``mask``: we are the client (mask what we send, expect unmasked frames).
    ``initial``: bytes already read past the handshake. Unfragmented text
    frames come back with ``str`` payloads (decoded once, while checked).
    Protocol errors in received frames raise
    :class:`~gws.errors.ProtocolError` from raw_read.
    """
    decoder = FrameDecoder(
        expect_masked=not mask, max_size=max_size, rsv_allowed=rsv_allowed, decode_text=True
    )
    if initial:
        decoder.feed(initial)
    recv_into = sock.recv_into
    next_frame = decoder.next_frame
    feed = decoder.feed
    sendall = sock.sendall
    send = sock.send
    eof = False

    def raw_read() -> Optional[Message]:
        nonlocal eof
        while True:
            frame = next_frame()
            if frame is not None:
                return frame
            if eof:
                return None
            try:
                view = _local.view
            except AttributeError:
                view = _local.view = memoryview(bytearray(_RECV_SIZE))
            n = recv_into(view, _RECV_SIZE)
            if not n:
                eof = True
                return None
            feed(view[:n])

    def raw_write(frame: Optional[Message]) -> None:
        if frame is None:
            try:
                sock.shutdown(_stdsocket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            return
        payload = frame.payload
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        data = encode_frame(
            frame.opcode,
            payload,
            fin=frame.fin,
            rsv1=frame.rsv1,
            rsv2=frame.rsv2,
            rsv3=frame.rsv3,
            mask=frame.mask,
        )
        # One send() usually takes the whole frame; gevent's sendall() costs
        # a few microseconds more per call, so it only handles the rest.
        sent = send(data)
        if sent < len(data):
            sendall(memoryview(data)[sent:])

    return raw_read, raw_write
