"""The gevent shell around :class:`~gws.protocol.Protocol`: locks, deadlines,
and blocking ``read``/``send``/``close`` that are safe to interrupt.

- One reader at a time (``read_lock``): whoever reads, ``read()``,
  ``close()`` or the heartbeat, feeds the protocol; completed messages wait
  in ``protocol.messages`` for ``read()``, so none is lost when a read is
  interrupted.
- One writer at a time (``write_lock``), and one fragmented message at a
  time (``_message_lock``): other greenlets' messages never land between its
  fragments; control frames may.
- Interruptions (``gevent.Timeout``, ``kill()``, KeyboardInterrupt) leave
  the connection usable when nothing of a frame went out, and drop it
  (socket closed) when a frame was cut short or shared state (compression,
  an open fragmented message) had already moved on.
- Once closing starts, a loop timer closes the transport after
  ``close_timeout`` whatever any greenlet is doing, so a close never hangs.
- Pings can be waited for (:class:`Pong`); each pong that answers one sets
  ``latency``. Pongs reach us through the protocol's ``on_pong`` hook, so
  data frames pay nothing for it.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any, List, NoReturn, Optional, Union

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.monkey import get_original

from .deadline import Deadline
from .errors import (
    CloseTimeout,
    ConnectionClosed,
    InvalidState,
    PongTimeout,
    ProtocolError,
    ReceiveTimeout,
    WebSocketError,
    WrongThread,
    close_code_name,
    describe,
)
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    Message,
    parse_close_payload,
)
from .heartbeat import Heartbeat
from .protocol import CLOSED, CLOSING, OPEN, Protocol, State
from .transport import RawRead, RawWrite, SocketTransport

if TYPE_CHECKING:
    from gevent._types import _TimerWatcher
    from greenlet import greenlet

__all__ = ["Connection", "MessageLike", "Pong", "to_message"]

log = logging.getLogger("gws")

_get_ident = get_original("_thread", "get_ident")
_last_ident = [0]


def _thread_ident() -> int:
    """This thread's ident, as the object the previous connection stored when
    it is the same thread (one int object for all of a thread's connections)."""
    ident: int = _get_ident()
    last = _last_ident[0]
    if ident == last:
        return last
    _last_ident[0] = ident
    return ident


_BYTES_LIKE = (bytes, bytearray, memoryview)
_MAX_PINGS = 64  # unanswered pings remembered per connection; older ones are forgotten
_ping_ids = struct.Struct("!I")

# What send()/write() take: one message, or an iterable of str (or of bytes)
# sent as one fragmented message; None is write()'s close.
MessageLike = Union[
    Message,
    Mapping[str, Any],
    bytes,
    bytearray,
    memoryview,
    str,
    Iterable[Union[str, bytes, bytearray, memoryview]],
    None,
]


class _Interrupted(WebSocketError):
    """Why a connection was dropped after an interruption cut a write short."""


class Connection:
    """One WebSocket connection: a :class:`Protocol` over a transport.

    The transport is either a :class:`~gws.transport.SocketTransport`
    (bytes in, frames out) or the seed's ``raw_read``/``raw_write`` pair
    (frames both ways). Durations are in seconds here; the faces take ms.
    """

    __slots__ = (
        "protocol",
        "transport",
        "raw_read",
        "raw_write",
        "close_timeout",
        "read_lock",
        "write_lock",
        "_closed",
        "_closed_event",
        "last_rx",
        "heartbeat",
        "_message_lock_",
        "_fragment_owner",
        "_handwritten",
        "_thread",
        "_close_timer",
        "_initiator",
        "_pings",
        "_ping_count",
        "latency",
        "__weakref__",
    )

    def __init__(
        self,
        protocol: Protocol,
        *,
        transport: Optional[SocketTransport] = None,
        raw_read: Optional[RawRead] = None,
        raw_write: Optional[RawWrite] = None,
        close_timeout: Optional[float] = 5.0,
        initial: bytes = b"",
    ) -> None:
        self.protocol = protocol
        self.transport = transport
        if transport is not None:
            raw_write = transport.write_frame
        elif raw_read is None or raw_write is None:
            raise TypeError("Connection needs a transport or raw_read and raw_write")
        self.raw_read = raw_read
        self.raw_write: RawWrite = raw_write
        self.close_timeout = close_timeout
        self.read_lock = Semaphore()
        self.write_lock = Semaphore()
        # ``closed`` and ``_message_lock`` are made when first asked for: most
        # connections never wait for either (about 150 bytes saved each).
        self._closed = False  # the transport is closed
        self._closed_event: Optional[Event] = None
        self.last_rx = monotonic()
        self.heartbeat: Optional[Heartbeat] = None
        self._message_lock_: Optional[Semaphore] = None
        self._fragment_owner: Optional[greenlet] = None
        self._handwritten = False  # a hand-written fragmented message holds _message_lock
        self._thread = _thread_ident()
        self._close_timer: Optional[_TimerWatcher] = None
        self._initiator: Optional[str] = None  # "local" once close() sent the first close frame
        self._pings: Optional[List[Pong]] = None  # unanswered pings, oldest first
        self._ping_count = 0
        self.latency: Optional[float] = None  # ms, the last ping's round trip
        if initial:
            protocol.buffer(initial)  # parsed by the first read, which sends what it owes

    @property
    def closed(self) -> Event:
        """An :class:`~gevent.event.Event` set once the transport is closed."""
        event = self._closed_event
        if event is None:
            event = self._closed_event = _made_event(self._closed)
        return event

    @property
    def _message_lock(self) -> Semaphore:
        """Held for the whole of a fragmented message being sent."""
        lock = self._message_lock_
        if lock is None:
            lock = self._message_lock_ = Semaphore()
        return lock

    def start_heartbeat(self, interval: float, timeout: Optional[float], opcode: int) -> None:
        """Ping every ``interval`` s; see :class:`~gws.heartbeat.Heartbeat`."""
        self.heartbeat = Heartbeat(self, interval, timeout, opcode)

    # -- state -----------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.protocol.state

    @property
    def close_code(self) -> Optional[int]:
        return self.protocol.close_code

    @property
    def close_reason(self) -> Optional[str]:
        return self.protocol.close_reason

    @property
    def exception(self) -> Optional[BaseException]:
        """Why the connection ended abnormally (None after a clean close)."""
        return self.protocol.exception

    @property
    def error(self) -> Optional[str]:
        """``exception`` as the seed face's string; from another thread, why
        that thread cannot use this connection. After a clean close: None,
        unless the peer closed with a code of RFC 6455's own other than 1000
        ("peer closed with 1001 (going away)")."""
        if _get_ident() != self._thread:
            return str(self._wrong_thread())
        return self.error_text()

    def error_text(self) -> Optional[str]:
        """``error`` whichever thread asks (thread mode's callers)."""
        exc = self.protocol.exception
        if exc is not None:
            return describe(exc)
        proto = self.protocol
        code = proto.close_code
        if (
            code is not None
            and 1000 < code < 3000
            and code != 1005
            and self.close_initiator == "peer"
        ):
            return self.close_description
        return None

    @property
    def close_initiator(self) -> Optional[str]:
        """Who closed: ``"peer"`` (its close frame came first), ``"local"``
        (this side closed or failed the connection), or None (open, or
        dropped without a close handshake)."""
        if self._initiator is not None:
            return self._initiator
        proto = self.protocol
        if proto.failed:
            return "local"
        if proto.close_received:
            return "peer"
        return None

    @property
    def close_description(self) -> Optional[str]:
        """Who closed and why, once closing: "peer closed with 1001 (going
        away)", "closed with 1000 (normal closure)", "failed the connection
        with 1002 (protocol error): ...", "connection dropped (1006, abnormal
        closure): heartbeat timeout". None while open."""
        proto = self.protocol
        code = proto.close_code
        if code is None:
            return None
        name = close_code_name(code)
        initiator = self.close_initiator
        if initiator == "peer":
            text = f"peer closed with {code} ({name})"
        elif initiator == "local":
            verb = "failed the connection" if proto.failed else "closed"
            text = f"{verb} with {code} ({name})"
        else:
            text = f"connection dropped ({code}, {name})"
        if proto.close_reason:
            text += f": {proto.close_reason!r}"
        exc = proto.exception
        if exc is not None:
            text += f": {describe(exc)}"
        return text

    @property
    def heartbeat_active(self) -> bool:
        return self.heartbeat is not None and self.heartbeat.active

    def closed_error(self) -> ConnectionClosed:
        """The :class:`ConnectionClosed` that tells how this connection ended."""
        proto = self.protocol
        return ConnectionClosed(
            proto.close_code, proto.close_reason or "", self.error_text(), self.close_initiator
        )

    def _wrong_thread(self) -> WrongThread:
        return WrongThread(
            f"this connection belongs to the gevent hub of thread {self._thread} and cannot "
            f"be used from thread {_get_ident()}: call it from the thread that opened it"
        )

    def check_thread(self) -> None:
        """Raise :class:`WrongThread` unless called from the owning thread."""
        if _get_ident() != self._thread:
            raise self._wrong_thread()

    # -- reading ---------------------------------------------------------------

    def read(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, or None once the connection is closed.

        ``timeout`` (seconds) raises :class:`ReceiveTimeout` and leaves the
        connection usable: bytes of a message still arriving stay buffered.
        """
        if _get_ident() != self._thread:
            raise self._wrong_thread()
        proto = self.protocol
        messages = proto.messages
        if messages:
            return messages.pop(0)
        if proto.state is CLOSED:
            return None
        if timeout is None:  # _read(), inlined: the call is a tenth of a small read's cost
            with self.read_lock:
                while not messages:
                    if proto.state is CLOSED:
                        return None
                    self._receive_once()
                return messages.pop(0)
        with Deadline(timeout) as deadline:
            return self._read()
        if deadline.expired:
            raise ReceiveTimeout(f"no message within {timeout * 1000:g} ms")
        return None  # pragma: no cover - the with block returns or raises

    def _read(self) -> Optional[Message]:
        proto = self.protocol
        messages = proto.messages
        with self.read_lock:
            while not messages:
                if proto.state is CLOSED:
                    return None
                self._receive_once()
            return messages.pop(0)

    def _receive_once(self, wait: Optional[float] = None) -> None:
        """Read once from the transport into the protocol, then send what it
        owes and close the transport when it says so. Hold ``read_lock``."""
        proto = self.protocol
        if proto.outgoing:
            self._flush()
            if proto.state is CLOSED:
                return
        decoder = proto.decoder
        # Bytes received earlier come first.
        if (decoder.buffer or decoder.partial_opcode >= 0) and proto.parse_buffered():
            self._settle()
            return
        transport = self.transport
        try:
            if transport is not None:
                # A large frame's missing payload is received in place.
                view = None if decoder.partial_opcode < 0 else proto.reserve()
                data: Union[memoryview, int]
                if wait is None:
                    data = transport.recv() if view is None else transport.recv_into(view)
                else:  # bounds the wait for input only, never a frame being sent
                    with Deadline(wait) as deadline:
                        data = transport.recv() if view is None else transport.recv_into(view)
                    if deadline.expired:
                        return
                if not data:
                    proto.receive_eof()
                elif view is None:
                    proto.receive_data(data, lazy=True)  # type: ignore[arg-type]
                else:
                    proto.commit(data)  # type: ignore[arg-type]
            else:
                frame = self.raw_read()  # type: ignore[misc]
                if frame is None:
                    proto.receive_eof()
                else:
                    proto.receive_frame(frame)
        except ProtocolError as exc:  # from a custom raw_read
            proto.fail(exc.code, exc)
        except (OSError, ValueError) as exc:
            self.abort(exc)
            return
        except BaseException:
            # Interrupted waiting for input. Buffered bytes stay buffered, so
            # the connection stays usable; but once the close handshake is
            # done, only waiting for the peer's TCP close is left: skip it.
            if proto.close_done:
                self.abort()
            raise
        if self.heartbeat is not None:
            self.last_rx = monotonic()
        if proto.state is not OPEN or proto.outgoing:
            self._settle()

    def _settle(self) -> None:
        """Act on the protocol's state after input or a queued close."""
        proto = self.protocol
        if proto.state is CLOSING:
            self._arm_close_timer()  # first: the flush may wait behind a stuck writer
        if proto.outgoing:
            self._flush()
        if proto.state is CLOSED or proto.should_close():
            self._close_transport()

    def pump(self, seconds: float) -> None:
        """Read once, for at most ``seconds``, if no one else is reading (the
        heartbeat uses it so a connection nobody reads still answers pings
        and shows it is alive). Completed messages wait for ``read()``."""
        if not self.read_lock.acquire(blocking=False):
            return
        try:
            proto = self.protocol
            # Frames buffered earlier first (each round consumes one or more),
            # then one read: only fresh bytes show the peer is alive.
            while proto.state is not CLOSED and proto.parse_buffered():
                self._settle()
            if proto.state is not CLOSED:
                if self.transport is None:
                    with Deadline(seconds):
                        self._receive_once()
                else:
                    self._receive_once(seconds)
        finally:
            self.read_lock.release()

    # -- writing ---------------------------------------------------------------

    def send(self, message: MessageLike) -> None:
        """Send one message: ``bytes`` (binary), ``str`` (text), a
        :class:`Message` or dict (one frame, fields as given), or an iterable
        of str or bytes (one fragmented message, a fragment per item).

        Raises :class:`InvalidState` once closing, :class:`ConnectionClosed`
        when the transport fails, ValueError / TypeError for a bad message.
        """
        kind = type(message)
        if kind is bytes or kind is str:
            if _get_ident() != self._thread:
                raise self._wrong_thread()
            opcode = OP_BINARY if kind is bytes else OP_TEXT
            transport = self.transport
            proto = self.protocol
            if transport is not None:
                # The common case in one step: a whole message that goes out
                # as given (no compression, no fragmented message open) is
                # encoded straight into its frame, str included.
                with self.write_lock:
                    if proto.sends_plain():
                        try:
                            transport.write_data(0x80 | opcode, message, proto.mask)  # type: ignore[arg-type]
                        except BaseException as exc:
                            self._write_failed(exc, None)
                        return
            if kind is str:
                message = message.encode("utf-8")  # type: ignore[union-attr]
            self._send_frame(Message(True, False, False, False, opcode, False, message))  # type: ignore[arg-type]
            return
        if message is None:
            raise TypeError("send(None): use close() to close the connection")
        elif isinstance(message, Iterable) and not isinstance(
            message, (str, Message, Mapping, *_BYTES_LIKE)
        ):
            self._send_fragments(message)
            return
        else:
            frame = to_message(message)
            if frame.opcode == OP_CLOSE:
                code, reason = parse_close_payload(frame.payload)  # type: ignore[arg-type]
                self.close(code, reason)
                return
        if _get_ident() != self._thread:
            raise self._wrong_thread()
        opcode = frame.opcode
        if opcode == OP_CONTINUATION or (not frame.fin and opcode < OP_CLOSE):
            self._send_fragment(frame)
        else:
            self._send_frame(frame)

    def send_control(self, frame: Message) -> Optional[Pong]:
        """Send a ping or pong frame (between other messages' fragments if
        need be); for a ping, return its :class:`Pong` (the heartbeat's
        pings too, so their pongs set ``latency``)."""
        if _get_ident() != self._thread:
            raise self._wrong_thread()
        if frame.opcode != OP_PING:
            with self.write_lock:
                self._emit(self.protocol.send(frame))
            return None
        pong = Pong(self, frame.payload)  # type: ignore[arg-type]
        pings = self._pings
        if pings is None:
            # Created with the first ping, so a connection that never pings
            # carries no list and no conn -> protocol -> conn cycle.
            pings = self._pings = []
            self.protocol.on_pong = self._pong_received
        pings.append(pong)  # first: a reader may see the pong while the ping is written
        try:
            with self.write_lock:
                self._emit(self.protocol.send(frame))
        except BaseException:
            if pong in pings:
                pings.remove(pong)
            raise
        if len(pings) > _MAX_PINGS:
            pings.pop(0)._wake()  # forgotten: its wait() ends with PongTimeout
        return pong

    def ping(self, payload: Union[bytes, str] = b"") -> Pong:
        """Send a ping; return its :class:`Pong` to wait for. Without a
        ``payload`` gws numbers the ping (4 bytes), so each has its own pong."""
        if not payload:
            self._ping_count += 1
            payload = _ping_ids.pack(self._ping_count & 0xFFFFFFFF)
        pong = self.send_control(to_message({"opcode": OP_PING, "payload": payload}))
        assert pong is not None
        return pong

    def _pong_received(self, payload: bytes) -> None:
        """A pong answers the ping with its payload, and every older one
        (RFC 6455 5.5.3: a peer may answer only the latest)."""
        pings = self._pings
        if pings is None:
            return
        for i, pong in enumerate(pings):
            if pong.payload == payload:
                now = monotonic()
                for answered in pings[: i + 1]:
                    answered.latency = (now - answered.sent) * 1000.0
                    answered._wake()
                del pings[: i + 1]
                self.latency = pong.latency
                return

    def wait_pong(self, pong: Pong, timeout: Optional[float]) -> float:
        """Wait (at most ``timeout`` s) for ``pong``; read for it when no
        one else is reading (messages read meanwhile wait for ``read()``)."""
        if _get_ident() != self._thread:
            raise self._wrong_thread()
        event = pong._event
        lock = self.read_lock
        proto = self.protocol
        with Deadline(timeout) as deadline:
            while not event.is_set() and proto.state is not CLOSED:
                if lock.acquire(blocking=False):
                    try:
                        if not event.is_set() and proto.state is not CLOSED:
                            self._receive_once()
                    finally:
                        lock.release()
                else:  # someone else reads: the pong or the end of their read
                    gevent.wait([event, lock], count=1)
        if pong.latency is not None:
            return pong.latency
        if deadline.expired or proto.state is not CLOSED:
            raise PongTimeout(
                "no pong within the time given" if deadline.expired else "ping forgotten"
            )
        raise self.closed_error()

    def _send_frame(self, frame: Message) -> None:
        """Send a whole message (or control frame), waiting while another
        greenlet's fragmented message is open."""
        proto = self.protocol
        while True:
            with self.write_lock:
                if not proto.fragmenting or frame.opcode >= OP_CLOSE or proto.close_sent:
                    self._emit(proto.send(frame))
                    return
            if self._fragment_owner is gevent.getcurrent() or not self._message_lock.locked():
                raise ValueError(
                    "a fragmented message is still open: "
                    "finish it with a continuation frame with fin=True first"
                )
            self._message_lock.acquire()
            self._message_lock.release()

    def _send_fragment(self, frame: Message) -> None:
        """A fragment written by hand: the first takes the message lock,
        which the final one (fin=True) releases."""
        proto = self.protocol
        me = gevent.getcurrent()
        first = frame.opcode != OP_CONTINUATION
        if first:
            if self._fragment_owner is me:
                raise ValueError(
                    "a data frame cannot start while another message's fragments are open"
                )
            self._message_lock.acquire()
            self._fragment_owner = me
            self._handwritten = True
        try:
            with self.write_lock:
                self._emit(proto.send(frame))
        except BaseException:
            if first and not proto.fragmenting:
                self._end_handwritten()
            raise
        if frame.fin:
            self._end_handwritten()

    def _end_handwritten(self) -> None:
        if self._handwritten:
            self._handwritten = False
            self._fragment_owner = None
            self._message_lock.release()

    def _send_fragments(self, items: Iterable[Any]) -> None:
        """One message from an iterable: a fragment per item, the last with fin."""
        iterator = iter(items)
        try:
            prev = next(iterator)
        except StopIteration:
            return
        kind = _fragment_kind(prev)
        if _get_ident() != self._thread:
            raise self._wrong_thread()
        me = gevent.getcurrent()
        if self._fragment_owner is me:
            raise ValueError("a data frame cannot start while another message's fragments are open")
        proto = self.protocol
        self._message_lock.acquire()
        self._fragment_owner = me
        try:
            opcode = kind
            for item in iterator:
                if _fragment_kind(item) != kind:
                    raise TypeError("a fragmented message takes all str or all bytes items")
                self._send_piece(opcode, prev, False)
                opcode = OP_CONTINUATION
                prev = item
            self._send_piece(opcode, prev, True)
        except Exception as exc:
            if proto.fragmenting:  # the peer holds half a message: end the connection
                self._fail_after(1011, exc)
            raise
        except BaseException as exc:
            if proto.fragmenting:
                self.abort(_Interrupted(f"a fragmented send was interrupted ({exc!r})"))
            raise
        finally:
            self._fragment_owner = None
            self._message_lock.release()

    def _send_piece(self, opcode: int, data: Any, fin: bool) -> None:
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        with self.write_lock:
            self._emit(
                self.protocol.send(Message(fin, False, False, False, opcode, False, payload))
            )

    def _emit(self, frame: Message) -> None:
        """Write one vetted frame; hold ``write_lock``."""
        try:
            self.raw_write(frame)
        except BaseException as exc:
            self._write_failed(exc, frame)

    def _write_failed(self, exc: BaseException, frame: Optional[Message]) -> NoReturn:
        """A frame write raised ``exc`` (``frame`` None: a whole uncompressed
        message). A transport failure closes the connection and raises
        :class:`ConnectionClosed`; an interruption re-raises, leaving the
        connection usable when nothing of the frame was sent and no shared
        state moved on."""
        if isinstance(exc, OSError):
            self.abort(exc)
            raise self.closed_error() from exc
        transport = self.transport
        if transport is None or transport.torn or (frame is not None and self._stateful(frame)):
            self.abort(_Interrupted(f"a frame write was interrupted ({exc!r})"))
        raise exc

    def _stateful(self, frame: Message) -> bool:
        """Whether preparing ``frame`` moved protocol state the peer now
        expects to see: compression context, a fragmented message, a close."""
        opcode = frame.opcode
        if opcode >= OP_CLOSE:
            return opcode == OP_CLOSE
        return not frame.fin or opcode == OP_CONTINUATION or self.protocol.deflate is not None

    def _flush(self) -> None:
        """Send the frames the protocol owes the peer (pongs, close), in
        order. A transport failure closes the connection (see ``error``)."""
        outgoing = self.protocol.outgoing
        with self.write_lock:
            try:
                while outgoing:
                    self._emit(outgoing[0])
                    outgoing.pop(0)
            except ConnectionClosed:
                outgoing.clear()

    # -- closing ---------------------------------------------------------------

    def close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        """Run the close handshake: send a close frame, wait for the peer's,
        then (as a client) for the server to end TCP; at most
        ``close_timeout`` in all, after which the transport is dropped.

        An interrupted close leaves the close timer running, so the socket is
        still closed in time; calling close() again resumes the wait.
        Raises ValueError for a bad code or reason, :class:`InvalidState`
        when already closed.
        """
        if _get_ident() != self._thread:
            raise self._wrong_thread()
        proto = self.protocol
        if proto.state is CLOSED:
            raise InvalidState("connection is already closed")
        if not proto.close_sent:
            proto.start_close(code, reason)
            self._initiator = "local"
        self._settle()
        self._wait_closed()

    def _wait_closed(self) -> None:
        proto = self.protocol
        while proto.state is not CLOSED:
            with self.read_lock:
                if proto.state is not CLOSED:
                    self._receive_once()

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame with
        ``code`` and close, bounded by ``close_timeout``."""
        self._fail_after(code, WebSocketError(reason or f"connection failed with code {code}"))

    def _fail_after(self, code: int, exc: BaseException) -> None:
        proto = self.protocol
        if proto.state is CLOSED:
            return
        proto.fail(code, exc)
        try:
            self._settle()
            self._wait_closed()
        except OSError:
            pass

    def abort(self, exc: Optional[BaseException] = None) -> None:
        """Drop the connection now, without a close handshake (close code
        1006 unless one was exchanged); never blocks. ``exc``: why."""
        self.protocol.connection_lost(exc)
        self._close_transport()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and self.close_timeout is not None:
            timer = self._close_timer = gevent.get_hub().loop.timer(self.close_timeout)
            timer.start(self._close_expired)

    def _close_expired(self) -> None:
        # Runs in the hub, which must not block: a socket closes at once, but
        # a custom raw_write(None) gets a greenlet of its own.
        if self.transport is None:
            gevent.spawn(self._close_timed_out)
        else:
            self._close_timed_out()

    def _close_timed_out(self) -> None:
        proto = self.protocol
        if proto.state is CLOSED:
            return
        if proto.close_done:
            proto.connection_lost(None)  # handshake done; the peer was slow to end TCP
        else:
            log.debug("close handshake timed out")
            proto.connection_lost(CloseTimeout("close handshake timed out"))
        self._close_transport()

    def _close_transport(self) -> None:
        if self._closed:
            return
        self.protocol.connection_lost(None)
        timer = self._close_timer
        if timer is not None:
            timer.close()
        heartbeat = self.heartbeat
        if heartbeat is not None:
            heartbeat.stop()
        pings = self._pings
        if pings is not None:
            self.protocol.on_pong = None  # breaks the cycle through the protocol
            while pings:  # their wait() ends with ConnectionClosed
                pings.pop()._wake()
        self._end_handwritten()  # wake writers waiting for an unfinished message
        try:
            self.raw_write(None)
        except Exception as exc:  # noqa: BLE001 - the stream is gone either way
            log.debug("error while closing the stream: %s", exc)
        self._closed = True
        event = self._closed_event
        if event is not None:
            event.set()


class Pong:
    """The answer to one ping. ``wait(timeout=None)`` (ms) blocks until the
    pong arrives and returns the round trip in ms (also ``latency``); it
    raises :class:`~gws.PongTimeout` when ``timeout`` passes first and
    :class:`~gws.ConnectionClosed` when the connection closes first.
    ``done()`` says whether the pong arrived."""

    __slots__ = ("connection", "payload", "sent", "latency", "hub", "_woken", "_event_")

    def __init__(self, connection: Connection, payload: bytes) -> None:
        self.connection = connection
        self.payload = payload
        self.sent = monotonic()
        self.latency: Optional[float] = None
        self.hub: Any = None  # thread mode: the gws.threaded.HubThread wait() goes through
        # The Event is made by the first wait(): a heartbeat's pings are never
        # waited for, and each costs 150 bytes until its pong comes.
        self._woken = False
        self._event_: Optional[Event] = None

    @property
    def _event(self) -> Event:
        """Set once the pong arrived, was forgotten or the connection closed."""
        event = self._event_
        if event is None:
            event = self._event_ = _made_event(self._woken)
        return event

    def _wake(self) -> None:
        self._woken = True
        event = self._event_
        if event is not None:
            event.set()

    def done(self) -> bool:
        return self.latency is not None

    def wait(self, timeout: Optional[float] = None) -> float:
        seconds = None if timeout is None else timeout / 1000.0
        if self.hub is not None:
            latency: float = self.hub.call(self.connection.wait_pong, self, seconds)
            return latency
        return self.connection.wait_pong(self, seconds)

    def __repr__(self) -> str:
        state = "waiting" if self.latency is None else f"{self.latency:.3f} ms"
        return f"<gws.Pong {self.payload!r} {state}>"


def _made_event(already_set: bool) -> Event:
    """An Event made on first use, set if what it signals already happened."""
    event = Event()
    if already_set:
        event.set()
    return event


def _fragment_kind(item: Any) -> int:
    if isinstance(item, str):
        return OP_TEXT
    if isinstance(item, _BYTES_LIKE):
        return OP_BINARY
    raise TypeError(
        f"cannot send {type(item).__name__} as a fragment: items must be all str or all bytes"
    )


def to_message(message: MessageLike) -> Message:
    """A new :class:`Message` from what ``write``/``send`` accept (not
    iterables), payload as bytes. Raises TypeError / ValueError."""
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
    elif isinstance(message, _BYTES_LIKE):
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
