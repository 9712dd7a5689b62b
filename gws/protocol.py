"""The WebSocket protocol state machine, without I/O (RFC 6455, RFC 7692).

Everything that decides what a connection may do lives here: which frames
are valid, how messages are reassembled, checked and inflated, when pongs
and close frames are owed, and what may be sent next. Bytes (or frames) go
in with :meth:`Protocol.receive_data` / :meth:`Protocol.receive_frame` /
:meth:`Protocol.receive_eof`; messages come out in :attr:`Protocol.messages`
and frames owed to the peer in :attr:`Protocol.outgoing`. Outgoing frames
pass through :meth:`Protocol.send`, which enforces the close handshake and
the fragment guard and applies permessage-deflate.

No sockets, no gevent, no clocks: :mod:`gws.connection` runs this over a
gevent transport, and the tests drive it byte by byte.
"""

from __future__ import annotations

import codecs
import enum
from typing import Callable, List, Optional, Union

from .deflate import PerMessageDeflate
from .errors import (
    AbnormalClosure,
    InvalidState,
    MessageTooBig,
    ProtocolError,
)
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RSV1,
    FrameDecoder,
    Message,
    encode_close_payload,
    parse_close_payload,
    parse_frame,
)

__all__ = ["State", "Protocol", "Assembler", "DEFAULT_MAX_SIZE"]

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


class State(enum.IntEnum):
    """Where a connection is in its life.

    OPEN: messages flow both ways. CLOSING: a close frame was sent or
    received (or the connection failed); no more data may be sent. CLOSED:
    the transport is closed.
    """

    OPEN = 0
    CLOSING = 1
    CLOSED = 2


OPEN, CLOSING, CLOSED = State.OPEN, State.CLOSING, State.CLOSED


class Assembler:
    """Turns data frames into messages: reassembly, permessage-deflate,
    ``max_size`` and UTF-8 validation, the one place each of them happens.

    :meth:`feed` takes one data frame and returns the completed
    :class:`Message` (``str`` payload for text, ``bytes`` for binary) or
    None while a fragmented message is unfinished. :meth:`check_partial`
    validates the first bytes of a text frame that is still arriving, so
    invalid UTF-8 fails as soon as it is received. Raises
    :class:`ProtocolError` (1002, 1007) or :class:`MessageTooBig` (1009).
    """

    __slots__ = (
        "max_size",
        "deflate",
        "_opcode",
        "_compressed",
        "_size",
        "_parts",
        "_utf8",
        "_pieces",
        "_checked",
    )

    def __init__(self, max_size: Optional[int], deflate: Optional[PerMessageDeflate]) -> None:
        self.max_size = max_size
        self.deflate = deflate
        self._opcode: Optional[int] = None  # opcode of the fragmented message in progress
        self._compressed = False
        self._size = 0
        # Binary fragments go into one buffer (a list of parts costs ~40 bytes
        # per tiny fragment); text is kept as the validator's decoded pieces.
        self._parts = bytearray()
        self._utf8: Optional[codecs.IncrementalDecoder] = None
        self._pieces: List[str] = []
        self._checked = 0  # bytes of the arriving frame already validated

    @property
    def in_message(self) -> bool:
        """Whether a fragmented message is unfinished."""
        return self._opcode is not None

    def wants_partial(self, opcode: int, rsv1: bool) -> bool:
        """Whether a frame with this header, still arriving, is uncompressed text."""
        if opcode == OP_TEXT:
            return not rsv1 and self._opcode is None
        return opcode == OP_CONTINUATION and self._opcode == OP_TEXT and not self._compressed

    def check_partial(self, chunk: bytes) -> None:
        """Validate the next bytes of an arriving text frame (see wants_partial)."""
        if not chunk:
            return
        utf8 = self._utf8
        if utf8 is None:
            utf8 = self._utf8 = _Utf8Decoder()
        try:
            self._pieces.append(utf8.decode(chunk, False))
        except UnicodeDecodeError:
            raise ProtocolError("text message is not valid UTF-8", 1007) from None
        self._checked += len(chunk)

    def feed(self, frame: Message) -> Optional[Message]:
        """Take one data frame; return the message it completes, else None."""
        opcode = frame.opcode
        if frame.rsv2 or frame.rsv3:
            raise ProtocolError("reserved bits rsv2/rsv3 set without a negotiated extension")
        max_size = self.max_size
        payload: Union[bytes, str] = frame.payload
        if opcode == OP_CONTINUATION:
            first = self._opcode
            if first is None:
                raise ProtocolError("continuation frame without a message to continue")
            if frame.rsv1:
                raise ProtocolError("rsv1 set on a continuation frame")
        else:
            if self._opcode is not None:
                raise ProtocolError("new data message inside a fragmented message")
            compressed = frame.rsv1
            if compressed and self.deflate is None:
                raise ProtocolError("rsv1 set without permessage-deflate")
            if frame.fin and self._utf8 is None:
                # A whole message in one frame, nothing of it checked yet.
                if compressed:
                    payload = self.deflate.decompress(payload, True, max_size)  # type: ignore[union-attr,arg-type]
                elif max_size is not None and (
                    len(payload) > max_size
                    if isinstance(payload, bytes)
                    else len(payload.encode("utf-8")) > max_size  # str from a custom raw_read
                ):
                    raise MessageTooBig(f"message exceeds max_size {max_size}")
                if opcode == OP_TEXT:
                    if not isinstance(payload, str):
                        try:
                            payload = payload.decode("utf-8")
                        except UnicodeDecodeError:
                            raise ProtocolError("text message is not valid UTF-8", 1007) from None
                elif isinstance(payload, str):
                    payload = payload.encode("utf-8")
                # The frame becomes the message: fin is set, rsv bits are not.
                frame.payload = payload
                frame.rsv1 = False
                return frame
            first = self._opcode = opcode
            self._compressed = compressed
            self._size = 0
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        if self._compressed:
            limit = None if max_size is None else max_size - self._size
            data = self.deflate.decompress(data, frame.fin, limit)  # type: ignore[union-attr]
        self._size += len(data)
        if max_size is not None and self._size > max_size:
            raise MessageTooBig(f"message exceeds max_size {max_size}")
        if first == OP_TEXT:
            utf8 = self._utf8
            if utf8 is None:
                utf8 = self._utf8 = _Utf8Decoder()
            skip = self._checked
            if skip:
                self._checked = 0
                data = memoryview(data)[skip:]  # type: ignore[assignment]
            try:
                self._pieces.append(utf8.decode(data, frame.fin))
            except UnicodeDecodeError:
                raise ProtocolError("text message is not valid UTF-8", 1007) from None
        else:
            self._parts += data
        if not frame.fin:
            return None
        self._opcode = None
        if first == OP_TEXT:
            result: Union[bytes, str] = "".join(self._pieces)
            self._pieces = []
            self._utf8 = None
        else:
            result = bytes(self._parts)
            self._parts = bytearray()
        return Message(True, False, False, False, first, frame.mask, result)


class Protocol:
    """One WebSocket connection's protocol state, fed by its I/O layer.

    ``is_client``: this end is the client (RFC 6455 7.1.1: after the close
    handshake it waits for the server to close TCP). ``mask``: mask outgoing
    frames (defaults to ``is_client``). ``fragments``: deliver frames as they
    arrive, control frames included, instead of whole messages.
    ``controls`` (an attribute, default False): with whole messages, also
    deliver the ping and pong frames received, in order between them (the
    websocket-client compatibility layer's ``on_ping``/``on_pong``).

    After each ``receive_*`` call: :attr:`messages` holds what to deliver,
    :attr:`outgoing` the frames owed to the peer (pongs, close frames) in
    order, and :attr:`state` / :attr:`close_code` / :attr:`exception` tell
    where the connection stands. :meth:`should_close` says when the I/O layer
    must close the transport.
    """

    __slots__ = (
        "is_client",
        "mask",
        "fragments",
        "controls",
        "deflate",
        "state",
        "close_sent",
        "close_received",
        "failed",
        "close_code",
        "close_reason",
        "exception",
        "messages",
        "outgoing",
        "decoder",
        "assembler",
        "_out_opcode",
        "_out_compressing",
        "on_pong",
        "_whole",
        "_max_size",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        mask: Optional[bool] = None,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        deflate: Optional[PerMessageDeflate] = None,
        fragments: bool = False,
    ) -> None:
        self.is_client = is_client
        self.mask = is_client if mask is None else mask
        self.fragments = fragments
        self.controls = False
        self.deflate = deflate
        self.state = OPEN
        self.close_sent = False
        self.close_received = False
        self.failed = False
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.exception: Optional[BaseException] = None
        # Lists, not deques: they hold a message or two at a time (parsing is
        # lazy), and an empty deque costs 600 bytes per connection.
        self.messages: List[Message] = []
        self.outgoing: List[Message] = []
        self.decoder = FrameDecoder(
            expect_masked=not self.mask,
            max_size=max_size,
            rsv_allowed=RSV1 if deflate is not None else 0,
        )
        self.assembler = Assembler(max_size, deflate)
        # receive_data's fast path: whole messages wanted, max_size (-1: none)
        self._whole = not fragments
        self._max_size = -1 if max_size is None else max_size
        self._out_opcode: Optional[int] = None  # the open outgoing fragmented message
        self._out_compressing = False
        #: Called with each pong's payload (the I/O layer matches it to its pings).
        self.on_pong: Optional[Callable[[bytes], None]] = None

    # -- receiving -------------------------------------------------------------

    def receive_data(
        self, data: Union[bytes, bytearray, memoryview], *, lazy: bool = False
    ) -> None:
        """Bytes from the transport (the caller may reuse ``data`` afterwards).

        ``lazy``: process frames only up to the first one that completes a
        message and leave the rest buffered for :meth:`parse_buffered`, so a
        peer's error later in the same read does not overtake the reply to
        an earlier message (what Autobahn's strict grading expects).
        """
        if self.close_received or self.failed or self.state is CLOSED:
            return  # RFC 6455 5.5.1: nothing after a close frame is processed
        decoder = self.decoder
        if (
            self._whole
            and not decoder.buffer
            and decoder.partial_opcode < 0
            and self.assembler._opcode is None
        ):
            # The common case in one step: a whole text or binary message
            # frame at the start of the data, straight from the caller's buffer.
            frame = parse_frame(data, decoder.expect_masked, self._max_size)
            if frame is not None:
                opcode, payload, end = frame
                self.messages.append(
                    Message(True, False, False, False, opcode, decoder.expect_masked, payload)
                )
                if end == len(data):
                    return
                data = data[end:]
                if lazy:
                    decoder.feed(data)
                    return
        decoder.feed(data)
        self._parse(lazy)

    def reserve(self) -> Optional[memoryview]:
        """Where the I/O layer may receive the next bytes directly: a writable
        view of the missing part of a large frame's payload (see
        :meth:`~gws.frames.FrameDecoder.reserve`), or None (then use
        :meth:`receive_data`). Receive into it, release it, then :meth:`commit`."""
        if self.close_received or self.failed or self.state is CLOSED:
            return None
        return self.decoder.reserve()

    def commit(self, n: int) -> None:
        """``n`` bytes (n > 0) arrived in the last :meth:`reserve` view; process
        them as :meth:`receive_data` with ``lazy=True`` would."""
        self.decoder.commit(n)
        self._parse(True)

    def buffer(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Take bytes without parsing them yet: :meth:`parse_buffered` will.
        (Bytes that arrived with the handshake: what they ask of us, pongs
        included, must go out in order with what follows.)"""
        self.decoder.feed(data)

    def parse_buffered(self) -> bool:
        """Lazily process frames already received but not yet parsed (see
        :meth:`receive_data`); return whether any was."""
        if self.close_received or self.failed or self.state is CLOSED:
            return False
        if self.decoder.buffered < 2:
            return False
        return self._parse(True)

    def _parse(self, lazy: bool) -> bool:
        decoder = self.decoder
        messages = self.messages
        queued = len(messages)
        parsed = False
        try:
            while True:
                frame = decoder.next_frame()
                if frame is None:
                    break
                parsed = True
                self._frame(frame)
                if self.close_received or self.failed or (lazy and len(messages) > queued):
                    return True
            if decoder.partial_opcode >= 0 and not self.fragments:
                assembler = self.assembler
                if assembler.wants_partial(decoder.partial_opcode, decoder.partial_rsv1):
                    assembler.check_partial(decoder.take_partial())
        except ProtocolError as exc:
            self.fail(exc.code, exc)
            return True
        return parsed

    def receive_frame(self, frame: Message) -> None:
        """One decoded frame from a frame-level transport (``wrap_io``'s
        ``raw_read``); checked as strictly as frames decoded here."""
        if self.close_received or self.failed or self.state is CLOSED:
            return
        opcode = frame.opcode
        payload = frame.payload
        if not isinstance(payload, bytes):
            whole_text = opcode == OP_TEXT and frame.fin and not frame.rsv1
            if isinstance(payload, str):
                if not whole_text or self.fragments:
                    frame.payload = payload.encode("utf-8")
            else:
                frame.payload = bytes(payload)
        try:
            if OP_BINARY < opcode < OP_CLOSE or opcode > OP_PONG:
                raise ProtocolError(f"reserved opcode {opcode}")
            if opcode >= OP_CLOSE:
                if not frame.fin or len(frame.payload) > 125:
                    raise ProtocolError("fragmented or oversized control frame")
                if frame.rsv1 or frame.rsv2 or frame.rsv3:
                    raise ProtocolError("reserved bits set on a control frame")
            self._frame(frame)
        except ProtocolError as exc:
            self.fail(exc.code, exc)

    def receive_eof(self) -> None:
        """The transport reached end of stream."""
        if self.state is CLOSED:
            return
        if not (self.close_received or self.failed):
            self._lost(AbnormalClosure("connection closed without a close frame"))
        self.state = CLOSED

    def _frame(self, frame: Message) -> None:
        opcode = frame.opcode
        if opcode < OP_CLOSE:
            if self.fragments:
                self.messages.append(frame)
                return
            message = self.assembler.feed(frame)
            if message is not None:
                self.messages.append(message)
            return
        if opcode == OP_PONG and self.on_pong is not None:
            self.on_pong(frame.payload)  # type: ignore[arg-type]
        if opcode == OP_PING:
            if not self.close_sent:
                self.outgoing.append(
                    Message(True, False, False, False, OP_PONG, self.mask, frame.payload)
                )
        elif opcode == OP_CLOSE:
            self._on_close(frame.payload)  # type: ignore[arg-type]
        if self.fragments or (self.controls and opcode != OP_CLOSE):
            self.messages.append(frame)

    def _on_close(self, payload: bytes) -> None:
        code, reason = parse_close_payload(payload)  # ProtocolError: fail
        self.close_received = True
        self.close_code = 1005 if code is None else code
        self.close_reason = reason
        if not self.close_sent:
            self._queue_close(b"" if code is None else payload[:2])
        self.state = CLOSING

    # -- closing ---------------------------------------------------------------

    def start_close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        """Queue our close frame (RFC 6455 7.1.2). Raises ValueError for an
        invalid code or reason, :class:`InvalidState` once closing."""
        payload = encode_close_payload(code, reason)
        if self.close_sent or self.state is not OPEN:
            raise InvalidState(
                "connection is already closed" if self.state is CLOSED else "connection is closing"
            )
        self._queue_close(payload)

    def fail(self, code: int, exc: BaseException) -> None:
        """Fail the connection (RFC 6455 7.1.7): queue a close frame with
        ``code`` unless one was sent, stop processing input, remember why."""
        if self.state is CLOSED or self.failed:
            return
        self.failed = True
        if self.exception is None:
            self.exception = exc
        if self.close_code is None:
            self.close_code = code
            self.close_reason = ""
        if not self.close_sent:
            self._queue_close(encode_close_payload(code))
        self.state = CLOSING

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """The transport failed or was dropped (``exc`` None: deliberately,
        after a finished close handshake); the connection is CLOSED."""
        if self.state is CLOSED:
            return
        if exc is not None:
            self._lost(exc)
        elif self.close_code is None:
            self.close_code = 1006
            self.close_reason = ""
        self.state = CLOSED

    def _lost(self, exc: BaseException) -> None:
        if self.close_code is None:
            self.close_code = 1006
            self.close_reason = ""
        if self.exception is None and not self.close_received:
            self.exception = exc

    def _queue_close(self, payload: bytes) -> None:
        self.close_sent = True
        self.state = CLOSING
        self.outgoing.append(Message(True, False, False, False, OP_CLOSE, self.mask, payload))

    def should_close(self) -> bool:
        """Whether the I/O layer should close the transport now that
        :attr:`outgoing` is sent: after the close handshake (or a failure) on
        the server side. A client waits for the server to close TCP first."""
        if self.state is not CLOSING or self.outgoing:
            return False
        done = self.failed or (self.close_sent and self.close_received)
        return done and not self.is_client

    @property
    def close_done(self) -> bool:
        """Whether the close handshake finished or the connection failed:
        what remains is closing the transport."""
        return self.failed or (self.close_sent and self.close_received)

    # -- sending ---------------------------------------------------------------

    @property
    def fragmenting(self) -> bool:
        """Whether an outgoing fragmented message is open (its final frame not sent)."""
        return self._out_opcode is not None

    def sends_plain(self) -> bool:
        """Whether a whole data message may go out now exactly as given (but
        masked, on a client): open, no fragmented message open, no
        compression. :meth:`send` would return such a frame unchanged, so a
        writer that checks this may skip it."""
        return self.state is OPEN and self._out_opcode is None and self.deflate is None

    def send(self, frame: Message) -> Message:
        """Vet one outgoing data, ping or pong frame and return it ready to
        write (masked as this side must, compressed when negotiated).

        Raises :class:`InvalidState` once a close frame was sent, and
        ValueError when the frame breaks the fragment rules: a new data
        message while another's fragments are open, or a continuation with
        none open. Call it in send order: compression state advances.
        """
        if self.close_sent or self.state is not OPEN:
            raise InvalidState(
                "connection is closed" if self.state is CLOSED else "connection is closing"
            )
        opcode = frame.opcode
        frame.mask = self.mask
        if opcode >= OP_CLOSE:
            if opcode == OP_CLOSE or opcode > OP_PONG:
                raise ValueError(f"cannot send opcode {opcode} as a control frame")
            if len(frame.payload) > 125:
                raise ValueError("control frame payload longer than 125 bytes")
            if not frame.fin:
                raise ValueError("control frames cannot be fragmented")
            return frame
        if opcode == OP_CONTINUATION:
            if self._out_opcode is None:
                raise ValueError("continuation frame without an open fragmented message")
        elif opcode > OP_BINARY:
            raise ValueError(f"reserved opcode {opcode}")
        elif self._out_opcode is not None:
            raise ValueError("a data frame cannot start while another message's fragments are open")
        else:
            deflate = self.deflate
            if deflate is not None and not frame.rsv1 and frame.fin:  # a whole message
                frame.payload = deflate.encode(frame.payload)  # type: ignore[arg-type]
                frame.rsv1 = True
                return frame
            self._out_compressing = deflate is not None and not frame.rsv1
            if not frame.fin:
                self._out_opcode = opcode
        if self._out_compressing:
            frame.payload = self.deflate.compress(frame.payload, frame.fin)  # type: ignore[union-attr,arg-type]
            frame.rsv1 = opcode != OP_CONTINUATION
        if frame.fin:
            self._out_opcode = None
            self._out_compressing = False
        return frame
