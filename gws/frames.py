"""Sans-I/O WebSocket frame codec (RFC 6455 section 5).

No sockets and no gevent here: bytes go into :class:`FrameDecoder` and
:class:`Message` objects come out; :func:`encode_frame` (and
:func:`frame_bytes` under it) turns a frame into bytes. Everything is
byte-exact against the examples of RFC 6455 section 5.7.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any, Callable, List, Optional, Tuple, Union

from .errors import MessageTooBig, ProtocolError

__all__ = [
    "OP_CONTINUATION",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "Message",
    "FrameDecoder",
    "encode_frame",
    "first_byte",
    "frame_header",
    "frame_bytes",
    "new_mask_key",
    "apply_mask",
    "encode_close_payload",
    "parse_close_payload",
    "is_valid_close_code",
]

OP_CONTINUATION = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10

DATA_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY))
CONTROL_OPCODES = frozenset((OP_CLOSE, OP_PING, OP_PONG))
KNOWN_OPCODES = DATA_OPCODES | CONTROL_OPCODES

RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10

_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack
_UNPACK_16 = struct.Struct("!H").unpack_from
_UNPACK_64 = struct.Struct("!Q").unpack_from

Payload = Union[bytes, str]
# Frames from this payload length on that arrive in pieces are received
# straight into a buffer of their own (FrameDecoder.reserve), not copied
# through the decoder's buffer.
DIRECT_MIN = 32 * 1024

# What a frame can be built from: bytes-like, or str (sent as UTF-8).
FramePayload = Union[bytes, bytearray, memoryview, str]


class Message:
    """One WebSocket frame or message, with the seed's fields.

    ``payload`` is ``bytes``, except for a whole text message returned by
    ``read()``, whose payload is ``str``. ``len`` is the payload length in
    bytes (UTF-8 for ``str``).
    """

    __slots__ = ("fin", "rsv1", "rsv2", "rsv3", "opcode", "mask", "payload")

    def __init__(
        self,
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
        opcode: int = OP_BINARY,
        mask: bool = False,
        payload: Payload = b"",
    ) -> None:
        self.fin = fin
        self.rsv1 = rsv1
        self.rsv2 = rsv2
        self.rsv3 = rsv3
        self.opcode = opcode
        self.mask = mask
        self.payload = payload

    @property
    def len(self) -> int:
        """Payload length in bytes."""
        payload = self.payload
        if isinstance(payload, str):
            return len(payload.encode("utf-8"))
        return len(payload)

    @property
    def is_text(self) -> bool:
        return self.opcode == OP_TEXT

    @property
    def is_binary(self) -> bool:
        return self.opcode == OP_BINARY

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (
            self.fin == other.fin
            and self.rsv1 == other.rsv1
            and self.rsv2 == other.rsv2
            and self.rsv3 == other.rsv3
            and self.opcode == other.opcode
            and self.mask == other.mask
            and self.payload == other.payload
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        payload = self.payload
        shown = repr(payload[:60]) + ("..." if len(payload) > 60 else "")
        flags = "".join(
            name for name, on in (("R1", self.rsv1), ("R2", self.rsv2), ("R3", self.rsv3)) if on
        )
        return (
            f"Message(opcode={self.opcode}, fin={self.fin}, mask={self.mask}"
            f"{', ' + flags if flags else ''}, len={self.len}, payload={shown})"
        )


def py_apply_mask(data: Union[bytes, bytearray, memoryview], key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (masking is its own inverse).

    The pure-Python implementation; :func:`apply_mask` is the C one when
    ``gws._speedups`` is built (set ``GWS_NO_SPEEDUPS=1`` to force this one).
    """
    n = len(data)
    if n == 0:
        return b""
    if len(key) != 4:
        raise ValueError("mask key must be 4 bytes")
    # One big-integer XOR beats any per-byte loop by two orders of magnitude.
    repeated = key * ((n >> 2) + 1)
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated[:n], "little")).to_bytes(
        n, "little"
    )


def py_parse_frame(
    data: Union[bytes, bytearray, memoryview], expect_masked: bool, max_size: int
) -> Optional[Tuple[int, Payload, int]]:
    """The common frame at the start of ``data``, decoded in one step:
    ``(opcode, payload, end)`` for a complete, final, uncompressed text or
    binary frame, masked as ``expect_masked`` says, at most ``max_size``
    bytes (-1: no limit); text comes back as ``str``, binary as ``bytes``.
    None for anything else (incomplete, control, fragmented, reserved bits,
    wrong masking, too long, invalid UTF-8): :class:`FrameDecoder` handles
    and reports those. The pure-Python ``parse_frame``."""
    have = len(data)
    if have < 2:
        return None
    b0 = data[0]
    b1 = data[1]
    opcode = b0 & 0x0F
    if b0 & 0xF0 != 0x80 or not 1 <= opcode <= 2 or bool(b1 & 0x80) is not expect_masked:
        return None
    length = b1 & 0x7F
    pos = 2
    if length == 126:
        if have < 4:
            return None
        (length,) = _UNPACK_16(data, 2)
        pos = 4
    elif length == 127:
        if have < 10:
            return None
        (length,) = _UNPACK_64(data, 2)
        pos = 10
    if expect_masked:
        pos += 4
    end = pos + length
    if end > have or 0 <= max_size < length:
        return None
    if expect_masked:
        payload = apply_mask(memoryview(data)[pos:end], bytes(data[pos - 4 : pos]))
    else:
        payload = bytes(data[pos:end])
    if opcode == OP_TEXT:
        try:
            return opcode, payload.decode("utf-8"), end
        except UnicodeDecodeError:
            return None
    return opcode, payload, end


def py_take_payload(buffer: Union[bytearray, memoryview], key: Optional[bytes]) -> bytes:
    """The bytes of a filled payload buffer, unmasked with ``key`` if given
    (the pure-Python ``take_payload``: one copy)."""
    return bytes(buffer) if key is None else apply_mask(buffer, key)


def py_payload_buffer(n: int) -> Any:
    """A writable buffer of ``n`` bytes for a large payload to be received
    into (the pure-Python ``PayloadBuffer``). Anonymous memory, so its pages
    are backed only as bytes arrive: a peer that announces a 16 MiB frame
    and sends 32 KiB of it costs 32 KiB, not the 16 MiB a ``bytearray(n)``
    would zero at once."""
    return mmap.mmap(-1, n)


apply_mask = py_apply_mask
parse_frame = py_parse_frame
take_payload = py_take_payload
PayloadBuffer: Callable[[int], Any] = py_payload_buffer
if not os.environ.get("GWS_NO_SPEEDUPS"):
    try:
        from . import _speedups
    except ImportError:  # not compiled: the pure-Python versions serve
        pass
    else:
        apply_mask = _speedups.apply_mask
        parse_frame = _speedups.parse_frame
        take_payload = _speedups.take_payload
        PayloadBuffer = _speedups.PayloadBuffer


# Masking keys come from os.urandom, drawn 256 at a time: a getrandom()
# call per frame cost more than the rest of a small frame's encoding.
# list.pop() is atomic, so threads never share a key (two that refill at
# once just draw more); a forked child drops its copy of the parent's keys.
_KEY_BATCH = 256
_keys: List[bytes] = []

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_keys.clear)


def new_mask_key() -> bytes:
    """A fresh 4-byte masking key from ``os.urandom`` (RFC 6455 5.3)."""
    try:
        return _keys.pop()
    except IndexError:
        data = os.urandom(4 * _KEY_BATCH)
        _keys.extend([data[i : i + 4] for i in range(0, len(data), 4)])
        return _keys.pop()


def first_byte(
    opcode: int, fin: bool = True, rsv1: bool = False, rsv2: bool = False, rsv3: bool = False
) -> int:
    """A frame's first byte: FIN, the reserved bits and the opcode."""
    b0 = opcode | (0x80 if fin else 0)
    if rsv1:
        b0 |= RSV1
    if rsv2:
        b0 |= RSV2
    if rsv3:
        b0 |= RSV3
    return b0


def frame_header(b0: int, length: int, masked: bool) -> bytes:
    """A frame's header up to (not including) the masking key."""
    mbit = 0x80 if masked else 0
    if length < 126:
        return bytes((b0, mbit | length))
    if length < 65536:
        return _PACK_16(b0, mbit | 126, length)
    return _PACK_64(b0, mbit | 127, length)


def py_frame_bytes(b0: int, payload: FramePayload, key: Optional[bytes]) -> bytes:
    """One whole frame: the header (first byte ``b0``), then with a masking
    ``key`` the key and the payload masked with it, else the payload. A
    ``str`` payload is sent as UTF-8 (UnicodeEncodeError for a lone
    surrogate, as ``str.encode``).

    The pure-Python implementation; :func:`frame_bytes` is the C one, which
    builds the frame in one allocation, when ``gws._speedups`` is built.
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if key is None:
        return frame_header(b0, len(payload), False) + payload
    if len(key) != 4:
        raise ValueError("mask key must be 4 bytes")
    return frame_header(b0, len(payload), True) + key + py_apply_mask(payload, key)


frame_bytes = py_frame_bytes
if not os.environ.get("GWS_NO_SPEEDUPS"):
    try:
        from ._speedups import frame_bytes  # noqa: F811
    except ImportError:  # not compiled (or an older build): the pure-Python one serves
        pass


def encode_frame(
    opcode: int,
    payload: FramePayload = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bool = True,
    mask_key: Optional[bytes] = None,
) -> bytes:
    """Serialize one frame (a ``str`` payload as UTF-8). With ``mask`` a key
    is drawn from ``os.urandom`` (:func:`new_mask_key`) unless ``mask_key``
    pins it (for tests)."""
    key = None
    if mask:
        key = mask_key if mask_key is not None else new_mask_key()
    return frame_bytes(first_byte(opcode, fin, rsv1, rsv2, rsv3), payload, key)


def _frame_message(b0: int, masked: bool, payload: bytes) -> Message:
    """The :class:`Message` for a received frame whose first header byte is ``b0``."""
    return Message(
        bool(b0 & 0x80),
        bool(b0 & RSV1),
        bool(b0 & RSV2),
        bool(b0 & RSV3),
        b0 & 0x0F,
        masked,
        payload,
    )


class FrameDecoder:
    """Incremental frame parser: ``feed()`` bytes, then call ``next_frame()``.

    ``expect_masked``: frames must carry a mask (True on the server side) or
    must not (False on the client side); anything else is a protocol error.
    ``rsv_allowed``: reserved bits an extension negotiated (``RSV1`` for
    permessage-deflate). ``max_size``: data frames declaring a longer payload
    are refused with :class:`MessageTooBig` before any of it is buffered.

    ``next_frame()`` returns a :class:`Message` (payload unmasked ``bytes``)
    or ``None`` when more bytes are needed; ``wanted`` then tells how many
    buffered bytes the next frame needs in total. While a frame's payload is
    still arriving, ``partial_opcode`` and ``partial_rsv1`` describe it and
    ``take_partial()`` hands out its bytes received so far, so a caller can
    check text before the frame completes. Frames carry bytes only: what
    they mean (UTF-8, reassembly) is :mod:`gws.protocol`'s job.

    A frame of ``DIRECT_MIN`` bytes or more that arrives in pieces gets a
    buffer of its own once its header is checked: ``reserve()`` returns a
    writable view of the part still missing, which an I/O layer may receive
    into (then ``commit(n)``) instead of calling ``feed()``; either way each
    payload byte is copied once, and with the C speedups the buffer becomes
    the payload without a copy.
    """

    __slots__ = (
        "expect_masked",
        "max_size",
        "rsv_allowed",
        "buffer",
        "wanted",
        "partial_opcode",
        "partial_rsv1",
        "_partial_pos",
        "_partial_end",
        "_partial_masked",
        "_taken",
        "_payload",
        "_fill",
        "_length",
        "_head",
        "_b0",
        "_key",
    )

    def __init__(
        self,
        *,
        expect_masked: bool,
        max_size: Optional[int] = None,
        rsv_allowed: int = 0,
    ) -> None:
        self.expect_masked = expect_masked
        self.max_size = max_size
        self.rsv_allowed = rsv_allowed
        self.buffer = bytearray()
        self.wanted = 2
        self.partial_opcode = -1  # opcode of the frame whose payload is arriving, or -1
        self.partial_rsv1 = False
        self._partial_pos = 0
        self._partial_end = 0
        self._partial_masked = False
        self._taken = 0
        # The large frame being received into a buffer of its own (see reserve()).
        self._payload: Any = None
        self._fill = 0  # payload bytes in it
        self._length = 0  # its payload length
        self._head = 0  # its header length, masking key included
        self._b0 = 0  # its first header byte
        self._key: Optional[bytes] = None  # its masking key

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Append bytes received from the peer."""
        if self._payload is not None:
            data = self._fill_payload(data)
            if not data:
                return
        elif not self.buffer and len(data) >= DIRECT_MIN and self._start_payload(data):
            return
        self.buffer += data

    def reserve(self) -> Optional[memoryview]:
        """A writable view of the missing part of a large frame's payload
        (see the class docstring), or None when bytes should come through
        ``feed()``. Receive into it, release it, then ``commit()``."""
        if self._payload is None:
            return None
        return memoryview(self._payload)[self._fill : self._length]

    def commit(self, n: int) -> None:
        """``n`` bytes were written at the start of the last ``reserve()`` view."""
        self._fill += n

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        if self._payload is not None:
            return self._head + self._fill + len(self.buffer)
        return len(self.buffer)

    def next_frame(self) -> Optional[Message]:
        """Return the next complete frame, or None if more bytes are needed."""
        if self._payload is not None:
            if self._fill < self._length:
                return None
            return self._payload_frame()
        buf = self.buffer
        have = len(buf)
        if have < 2:
            self.wanted = 2
            return None
        b0 = buf[0]
        b1 = buf[1]
        length = b1 & 0x7F
        pos = 2
        if length == 126:
            if have < 4:
                self.wanted = 4
                return None
            (length,) = _UNPACK_16(buf, 2)
            pos = 4
        elif length == 127:
            if have < 10:
                self.wanted = 10
                return None
            (length,) = _UNPACK_64(buf, 2)
            pos = 10
        masked = b1 & 0x80
        if self.partial_opcode < 0:
            self._check_header(b0, masked, length, pos)
        if masked:
            pos += 4
        end = pos + length
        if have < end:
            self.wanted = end
            if self.partial_opcode < 0:
                if length >= DIRECT_MIN and have >= pos:
                    self._begin_payload(buf, b0, pos, length)
                    buf.clear()
                    return None
                self.partial_opcode = b0 & 0x0F
                self.partial_rsv1 = bool(b0 & RSV1)
                self._partial_pos = pos
                self._partial_end = end
                self._partial_masked = bool(masked)
            return None
        if length < 4096:
            payload = bytes(buf[pos:end])
            if masked:
                payload = apply_mask(payload, bytes(buf[pos - 4 : pos]))
        else:
            # Slicing a bytearray copies; a memoryview slice copies only once.
            view = memoryview(buf)
            try:
                if masked:
                    payload = apply_mask(view[pos:end], bytes(view[pos - 4 : pos]))
                else:
                    payload = bytes(view[pos:end])
            finally:
                view.release()
        del buf[:end]
        self.wanted = 2
        if self.partial_opcode >= 0:
            self.partial_opcode = -1
            self._taken = 0
        return _frame_message(b0, bool(masked), payload)

    def take_partial(self) -> bytes:
        """Unmasked payload bytes of the frame still arriving (see
        ``partial_opcode``) that no earlier call returned; ``b""`` if none.
        The complete frame, once ``next_frame()`` returns it, still carries
        its whole payload."""
        if self.partial_opcode < 0:
            return b""
        start = self._taken
        if self._payload is not None:
            have = self._fill
            if have <= start:
                return b""
            chunk = memoryview(self._payload)[start:have]
            key = self._key
        else:
            pos = self._partial_pos
            start += pos
            have = min(len(self.buffer), self._partial_end)
            if have <= start:
                return b""
            chunk = memoryview(self.buffer)[start:have]
            key = bytes(self.buffer[pos - 4 : pos]) if self._partial_masked else None
            have -= pos
        try:
            if key is None:
                return bytes(chunk)
            offset = self._taken % 4
            return apply_mask(chunk, key[offset:] + key[:offset])
        finally:
            chunk.release()
            self._taken = have

    def _start_payload(self, data: Union[bytes, bytearray, memoryview]) -> bool:
        """With nothing buffered: if ``data`` starts with a valid header of a
        large frame it does not complete, take that frame into a buffer of
        its own and return True. (An invalid header is left to next_frame()
        to report.)"""
        have = len(data)
        b0 = data[0]
        b1 = data[1]
        length = b1 & 0x7F
        if length == 127:
            (length,) = _UNPACK_64(data, 2)
            pos = 10
        elif length == 126:
            (length,) = _UNPACK_16(data, 2)
            pos = 4
        else:
            return False
        masked = b1 & 0x80
        if length < DIRECT_MIN or have >= pos + (4 if masked else 0) + length:
            return False
        try:
            self._check_header(b0, masked, length, pos)
        except ProtocolError:
            return False
        if masked:
            pos += 4
        self._begin_payload(data, b0, pos, length)
        return True

    def _begin_payload(
        self, data: Union[bytes, bytearray, memoryview], b0: int, pos: int, length: int
    ) -> None:
        """Move the frame whose header (``pos`` bytes) starts ``data``, and
        of which ``data`` holds the rest, into a payload buffer."""
        payload = PayloadBuffer(length)
        have = len(data) - pos
        with memoryview(payload) as view, memoryview(data) as src:
            view[:have] = src[pos:]
        self._payload = payload
        self._fill = have
        self._length = length
        self._head = pos
        self._b0 = b0
        self._key = bytes(data[pos - 4 : pos]) if data[1] & 0x80 else None
        self._taken = 0
        self.wanted = pos + length
        self.partial_opcode = b0 & 0x0F
        self.partial_rsv1 = bool(b0 & RSV1)

    def _fill_payload(self, data: Union[bytes, bytearray, memoryview]) -> Any:
        """Copy what ``data`` holds of the large frame's payload into its
        buffer; return the rest of ``data``."""
        fill = self._fill
        n = min(len(data), self._length - fill)
        with memoryview(self._payload) as view, memoryview(data) as src:
            view[fill : fill + n] = src[:n]
        self._fill = fill + n
        return data[n:]

    def _payload_frame(self) -> Message:
        """The large frame, its payload complete."""
        key = self._key
        payload = take_payload(self._payload, key)
        self._payload = None
        self._key = None
        self._fill = self._length = self._head = 0
        self.partial_opcode = -1
        self._taken = 0
        self.wanted = 2
        b0 = self._b0
        return _frame_message(b0, key is not None, payload)

    def _check_header(self, b0: int, masked: int, length: int, header_len: int) -> None:
        rsv = b0 & 0x70
        if rsv & ~self.rsv_allowed:
            raise ProtocolError(f"reserved bits set without a negotiated extension (0x{rsv:02x})")
        opcode = b0 & 0x0F
        if opcode not in KNOWN_OPCODES:
            raise ProtocolError(f"reserved opcode {opcode}")
        if opcode >= OP_CLOSE:
            if not b0 & 0x80:
                raise ProtocolError("fragmented control frame")
            if length > 125:
                raise ProtocolError("control frame payload longer than 125 bytes")
            if rsv:
                raise ProtocolError("reserved bits set on a control frame")
        if header_len == 10 and length >> 63:
            raise ProtocolError("frame length has its most significant bit set")
        if bool(masked) != self.expect_masked:
            raise ProtocolError(
                "client frame is not masked" if self.expect_masked else "server frame is masked"
            )
        if self.max_size is not None and length > self.max_size:
            raise MessageTooBig(f"frame of {length} bytes exceeds max_size {self.max_size}")


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 7.4, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def encode_close_payload(code: Optional[int], reason: str = "") -> bytes:
    """Payload of a close frame; ``code=None`` gives the empty payload."""
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"invalid close code {code}")
    data = struct.pack("!H", code) + reason.encode("utf-8")
    if len(data) > 125:
        raise ValueError("close reason longer than 123 bytes in UTF-8")
    return data


def parse_close_payload(payload: bytes) -> tuple[Optional[int], str]:
    """Return ``(code, reason)`` of a close frame, code None when absent.

    Raises :class:`ProtocolError` (1002) for a one-byte payload or an invalid
    code, and 1007 for a reason that is not UTF-8.
    """
    n = len(payload)
    if n == 0:
        return None, ""
    if n == 1:
        raise ProtocolError("close frame payload of one byte")
    (code,) = _UNPACK_16(payload, 0)
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not valid UTF-8", 1007) from None
    return code, reason
