"""protocol.py: the sans-I/O state machine, driven with bytes and frames only.

No socket and no gevent hub: bytes built with :func:`encode_frame` go into
:class:`Protocol` (server frames unmasked for a client, client frames masked
with a pinned key for a server), fed 1, 2, 3, 7 bytes at a time and all at
once; what comes out is checked in ``messages``, ``outgoing`` and the state.
Classes follow the sections of RFC 6455 (and RFC 7692 for compression).
"""

from __future__ import annotations

import enum
import random
import struct
import zlib
from typing import Callable, List, NamedTuple, Optional

import pytest
from helpers import (
    encode_message,
    receive_impl,  # noqa: F401 - a fixture
)
from hypothesis import given, settings
from hypothesis import strategies as st

from gws.deflate import DeflateParams, PerMessageDeflate, stored_blocks
from gws.errors import AbnormalClosure, InvalidState, MessageTooBig, ProtocolError
from gws.frames import (
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
    encode_frame,
)
from gws.protocol import DEFAULT_MAX_SIZE, Assembler, Protocol, State

KEY = bytes.fromhex("37fa213d")  # the masking key of the RFC 6455 5.7 examples

# RFC 6455 section 5.7
RFC_UNMASKED_HELLO = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
RFC_MASKED_HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
RFC_FRAGMENTED = (bytes([0x01, 0x03, 0x48, 0x65, 0x6C]), bytes([0x80, 0x02, 0x6C, 0x6F]))
RFC_PING = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
RFC_UNMASKED_PONG = bytes([0x8A, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
RFC_MASKED_PONG = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])

# RFC 7692 section 7.2.3.1 / 7.2.3.2: "Hello" compressed, then again with the
# LZ77 window of the first (context takeover).
RFC7692_HELLO = bytes.fromhex("f248cdc9c90700")
RFC7692_HELLO_AGAIN = bytes.fromhex("f200110000")
RFC7692_FRAME = bytes.fromhex("c107") + RFC7692_HELLO
RFC7692_FRAGMENTED = (bytes.fromhex("4103f248cd"), bytes.fromhex("8004c9c90700"))

CHUNKS = [1, 2, 3, 7, 0]  # 0: all at once


@pytest.fixture(params=CHUNKS, ids=lambda c: f"chunk{c}" if c else "whole")
def chunk(request: pytest.FixtureRequest) -> int:
    return request.param


def feed(proto: Protocol, data: bytes, chunk: int = 0) -> None:
    """Feed ``data`` to ``proto`` ``chunk`` bytes at a time (0: all at once)."""
    step = chunk or max(len(data), 1)
    for i in range(0, len(data), step):
        proto.receive_data(data[i : i + step])


def from_server(opcode: int, payload: bytes = b"", **kw) -> bytes:
    """A frame as a server sends it: unmasked."""
    return encode_frame(opcode, payload, mask=False, **kw)


def from_client(opcode: int, payload: bytes = b"", **kw) -> bytes:
    """A frame as a client sends it: masked, with the RFC's key pinned."""
    return encode_frame(opcode, payload, mask=True, mask_key=KEY, **kw)


def wire(frame: Message) -> bytes:
    """An outgoing Message as bytes, masked (when it says so) with the pinned key."""
    return encode_message(frame, KEY)


def got(proto: Protocol) -> list:
    """The delivered messages as ``(opcode, payload)``."""
    return [(m.opcode, m.payload) for m in proto.messages]


def close_frame(code: Optional[int], reason: str = "", *, mask: bool) -> Message:
    return Message(True, False, False, False, OP_CLOSE, mask, encode_close_payload(code, reason))


def assert_failed(proto: Protocol, code: int) -> None:
    """The connection failed with ``code``: one close frame with it is owed."""
    assert proto.failed
    assert proto.state is State.CLOSING
    assert proto.close_code == code
    assert isinstance(proto.exception, ProtocolError)
    assert proto.exception.code == code
    assert list(proto.outgoing) == [close_frame(code, mask=proto.mask)]


class Side(NamedTuple):
    """This end of the connection: how to build its Protocol and how its peer
    frames bytes."""

    is_client: bool
    frame: Callable[..., bytes]

    def make(self, **kw) -> Protocol:
        return Protocol(is_client=self.is_client, **kw)


CLIENT = Side(True, from_server)
SERVER = Side(False, from_client)


@pytest.fixture(params=[CLIENT, SERVER], ids=["client", "server"])
def side(request: pytest.FixtureRequest) -> Side:
    return request.param


def peer_deflate(side: Side) -> PerMessageDeflate:
    """The peer's compressor for ``side``'s connection (default parameters)."""
    return PerMessageDeflate(DeflateParams(), is_client=not side.is_client)


def own_deflate(side: Side) -> PerMessageDeflate:
    return PerMessageDeflate(DeflateParams(), is_client=side.is_client)


# -- State ---------------------------------------------------------------------------------


class TestState:
    def test_state_is_an_int_enum(self):
        assert issubclass(State, enum.IntEnum)
        assert [(s.name, s.value) for s in State] == [("OPEN", 0), ("CLOSING", 1), ("CLOSED", 2)]
        assert State.OPEN < State.CLOSING < State.CLOSED
        assert State(1) is State.CLOSING

    def test_a_new_protocol(self, side):
        proto = side.make()
        assert proto.state is State.OPEN
        assert not (proto.close_sent or proto.close_received or proto.failed)
        assert proto.close_code is None and proto.close_reason is None
        assert proto.exception is None
        assert not proto.messages and not proto.outgoing
        assert not proto.fragmenting and not proto.close_done and not proto.should_close()
        assert proto.mask is side.is_client
        assert proto.decoder.expect_masked is not side.is_client
        assert proto.decoder.max_size == DEFAULT_MAX_SIZE == 16 * 1024 * 1024
        assert proto.decoder.rsv_allowed == 0

    def test_mask_option_overrides_the_default(self):
        assert Protocol(is_client=False, mask=True).mask is True
        assert Protocol(is_client=True, mask=False).mask is False

    def test_deflate_allows_rsv1_in_the_decoder(self, side):
        proto = side.make(deflate=own_deflate(side))
        assert proto.decoder.rsv_allowed == RSV1

    def test_we_close_first(self, side):
        proto = side.make()
        proto.start_close()
        assert proto.state is State.CLOSING and proto.close_sent and not proto.close_done
        feed(proto, side.frame(OP_CLOSE, b"\x03\xe8"))
        assert proto.state is State.CLOSING and proto.close_done
        proto.receive_eof()
        assert proto.state is State.CLOSED

    def test_peer_closes_first(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE, b"\x03\xe8"))
        assert proto.state is State.CLOSING and proto.close_done
        proto.receive_eof()
        assert proto.state is State.CLOSED

    def test_open_to_closed_on_eof(self, side):
        proto = side.make()
        proto.receive_eof()
        assert proto.state is State.CLOSED

    def test_open_to_closing_on_failure(self, side):
        proto = side.make()
        feed(proto, side.frame(3))  # reserved opcode
        assert proto.state is State.CLOSING and proto.close_done

    def test_connection_lost_without_an_error(self, side):
        proto = side.make()
        proto.connection_lost(None)
        assert proto.state is State.CLOSED
        assert proto.close_code == 1006 and proto.exception is None

    def test_connection_lost_with_an_error(self, side):
        proto = side.make()
        exc = ConnectionResetError("reset")
        proto.connection_lost(exc)
        assert proto.state is State.CLOSED
        assert proto.close_code == 1006 and proto.exception is exc

    def test_connection_lost_after_the_handshake_keeps_the_code(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE, encode_close_payload(1001, "away")))
        proto.connection_lost(None)
        assert (proto.state, proto.close_code, proto.close_reason) == (State.CLOSED, 1001, "away")
        assert proto.exception is None

    def test_closed_is_final(self, side):
        proto = side.make()
        proto.receive_eof()
        feed(proto, side.frame(OP_TEXT, b"late") + side.frame(OP_PING, b"p"))
        assert not proto.messages and not proto.outgoing
        proto.receive_eof()
        proto.fail(1002, ProtocolError("late"))
        proto.connection_lost(OSError("late"))
        assert proto.state is State.CLOSED and not proto.failed and not proto.outgoing
        assert isinstance(proto.exception, AbnormalClosure)
        with pytest.raises(InvalidState, match="closed"):
            proto.start_close()
        with pytest.raises(InvalidState, match="closed"):
            proto.send(Message(opcode=OP_TEXT, payload=b"x"))


# -- RFC 6455 5.6: data frames ---------------------------------------------------------------


class TestDataFraming_5_6:
    def test_rfc_unmasked_hello_to_a_client(self, chunk):
        assert from_server(OP_TEXT, b"Hello") == RFC_UNMASKED_HELLO
        proto = Protocol(is_client=True)
        feed(proto, RFC_UNMASKED_HELLO, chunk)
        assert list(proto.messages) == [Message(True, False, False, False, OP_TEXT, False, "Hello")]
        assert not proto.outgoing and proto.state is State.OPEN

    def test_rfc_masked_hello_to_a_server(self, chunk):
        assert from_client(OP_TEXT, b"Hello") == RFC_MASKED_HELLO
        proto = Protocol(is_client=False)
        feed(proto, RFC_MASKED_HELLO, chunk)
        (msg,) = proto.messages
        assert (msg.opcode, msg.fin, msg.payload) == (OP_TEXT, True, "Hello")
        assert not proto.outgoing and proto.state is State.OPEN

    @pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536])
    def test_binary_lengths(self, side, n):
        payload = bytes(i % 251 for i in range(n))
        proto = side.make()
        feed(proto, side.frame(OP_BINARY, payload), 7)
        assert got(proto) == [(OP_BINARY, payload)]
        assert type(proto.messages[0].payload) is bytes

    def test_text_comes_out_as_str_and_binary_as_bytes(self, side, chunk):
        proto = side.make()
        text = "héllo wörld € 😀"
        feed(
            proto,
            side.frame(OP_TEXT, text.encode())
            + side.frame(OP_BINARY, text.encode())
            + side.frame(OP_TEXT)
            + side.frame(OP_BINARY),
            chunk,
        )
        assert got(proto) == [
            (OP_TEXT, text),
            (OP_BINARY, text.encode()),
            (OP_TEXT, ""),
            (OP_BINARY, b""),
        ]
        assert all(m.fin and not m.rsv1 for m in proto.messages)

    def test_a_message_arrives_with_its_last_byte(self, side):
        data = side.frame(OP_BINARY, b"x" * 200)
        proto = side.make()
        for i in range(len(data)):
            assert not proto.messages
            proto.receive_data(data[i : i + 1])
        assert got(proto) == [(OP_BINARY, b"x" * 200)]

    def test_the_caller_may_reuse_its_buffer(self, side):
        data = bytearray(side.frame(OP_BINARY, b"abcdef"))
        proto = side.make()
        proto.receive_data(data[:5])
        buf = bytearray(data[5:])
        proto.receive_data(buf)
        buf[:] = b"\x00" * len(buf)
        assert got(proto) == [(OP_BINARY, b"abcdef")]

    def test_a_masked_frame_from_the_server_fails_1002(self, chunk):
        proto = Protocol(is_client=True)
        feed(proto, RFC_MASKED_HELLO, chunk)
        assert_failed(proto, 1002)
        assert not proto.messages

    def test_an_unmasked_frame_from_the_client_fails_1002(self, chunk):
        proto = Protocol(is_client=False)
        feed(proto, RFC_UNMASKED_HELLO, chunk)
        assert_failed(proto, 1002)
        assert not proto.messages

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_reserved_opcodes_fail_1002(self, side, opcode):
        proto = side.make()
        feed(proto, side.frame(opcode, b"x"))
        assert_failed(proto, 1002)

    @pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
    def test_reserved_bits_fail_1002(self, side, bit):
        proto = side.make()
        feed(proto, side.frame(OP_BINARY, b"x", **{bit: True}))
        assert_failed(proto, 1002)

    def test_messages_before_a_failure_are_kept(self, side, chunk):
        proto = side.make()
        data = side.frame(OP_TEXT, b"one") + side.frame(5) + side.frame(OP_TEXT, b"two")
        feed(proto, data, chunk)
        assert got(proto) == [(OP_TEXT, "one")]
        assert_failed(proto, 1002)


# -- RFC 6455 5.4: fragmentation ----------------------------------------------------------


class TestFragmentation_5_4:
    def test_rfc_fragmented_hello(self, chunk):
        first, second = RFC_FRAGMENTED
        assert from_server(OP_TEXT, b"Hel", fin=False) == first
        assert from_server(OP_CONTINUATION, b"lo") == second
        proto = Protocol(is_client=True)
        feed(proto, first + second, chunk)
        assert list(proto.messages) == [Message(True, False, False, False, OP_TEXT, False, "Hello")]

    def test_binary_in_three_fragments_with_an_empty_one(self, side, chunk):
        proto = side.make()
        data = (
            side.frame(OP_BINARY, b"\x00\xff", fin=False)
            + side.frame(OP_CONTINUATION, b"", fin=False)
            + side.frame(OP_CONTINUATION, b"\x80" * 300)
        )
        feed(proto, data, chunk)
        assert got(proto) == [(OP_BINARY, b"\x00\xff" + b"\x80" * 300)]
        assert proto.messages[0].fin

    def test_nothing_is_delivered_before_the_final_fragment(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_TEXT, b"Hel", fin=False))
        assert not proto.messages and proto.assembler.in_message
        feed(proto, side.frame(OP_CONTINUATION, b"l", fin=False))
        assert not proto.messages and proto.assembler.in_message
        feed(proto, side.frame(OP_CONTINUATION, b"o"))
        assert got(proto) == [(OP_TEXT, "Hello")]
        assert not proto.assembler.in_message

    def test_control_frames_in_the_middle_of_a_message(self, side, chunk):
        proto = side.make()
        data = (
            side.frame(OP_TEXT, b"Hel", fin=False)
            + side.frame(OP_PING, b"Hello")
            + side.frame(OP_PONG, b"ignored")
            + side.frame(OP_CONTINUATION, b"lo")
        )
        feed(proto, data, chunk)
        assert got(proto) == [(OP_TEXT, "Hello")]
        (pong,) = proto.outgoing
        assert (pong.opcode, pong.payload) == (OP_PONG, b"Hello")

    def test_the_pong_is_owed_before_the_message_completes(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_BINARY, b"a", fin=False) + side.frame(OP_PING, b"p"))
        assert not proto.messages and len(proto.outgoing) == 1

    def test_continuation_without_a_message_fails_1002(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_CONTINUATION, b"lo"), chunk)
        assert_failed(proto, 1002)

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_new_message_inside_a_fragmented_one_fails_1002(self, side, chunk, opcode):
        proto = side.make()
        feed(proto, side.frame(OP_TEXT, b"Hel", fin=False) + side.frame(opcode, b"lo"), chunk)
        assert_failed(proto, 1002)
        assert not proto.messages

    def test_messages_follow_each_other(self, side, chunk):
        proto = side.make()
        data = b"".join(
            [
                side.frame(OP_TEXT, b"a", fin=False),
                side.frame(OP_CONTINUATION, b"b"),
                side.frame(OP_BINARY, b"c"),
                side.frame(OP_BINARY, b"d", fin=False),
                side.frame(OP_CONTINUATION, b"e"),
                side.frame(OP_TEXT, b"f"),
            ]
        )
        feed(proto, data, chunk)
        assert got(proto) == [
            (OP_TEXT, "ab"),
            (OP_BINARY, b"c"),
            (OP_BINARY, b"de"),
            (OP_TEXT, "f"),
        ]


# -- RFC 6455 5.5: control frames ----------------------------------------------------------


class TestControlFrames_5_5:
    def test_rfc_ping_to_a_client_gets_a_masked_pong(self, chunk):
        assert from_server(OP_PING, b"Hello") == RFC_PING
        proto = Protocol(is_client=True)
        feed(proto, RFC_PING, chunk)
        assert list(proto.outgoing) == [Message(True, False, False, False, OP_PONG, True, b"Hello")]
        assert wire(proto.outgoing[0]) == RFC_MASKED_PONG
        assert not proto.messages and proto.state is State.OPEN

    def test_masked_ping_to_a_server_gets_an_unmasked_pong(self, chunk):
        proto = Protocol(is_client=False)
        feed(proto, from_client(OP_PING, b"Hello"), chunk)
        (pong,) = proto.outgoing
        assert pong == Message(True, False, False, False, OP_PONG, False, b"Hello")
        assert wire(pong) == RFC_UNMASKED_PONG
        assert not proto.messages

    @pytest.mark.parametrize("n", [0, 1, 125])
    def test_pong_carries_the_pings_payload(self, side, n):
        payload = bytes(range(n))
        proto = side.make()
        feed(proto, side.frame(OP_PING, payload), 3)
        (pong,) = proto.outgoing
        assert (pong.opcode, pong.payload, pong.mask) == (OP_PONG, payload, side.is_client)

    def test_every_ping_is_answered_in_order(self, side, chunk):
        proto = side.make()
        feed(proto, b"".join(side.frame(OP_PING, b"%d" % i) for i in range(5)), chunk)
        assert [f.payload for f in proto.outgoing] == [b"0", b"1", b"2", b"3", b"4"]
        assert all(f.opcode == OP_PONG for f in proto.outgoing)

    def test_a_pong_is_not_answered(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_PONG, b"Hello"), chunk)
        assert not proto.outgoing and not proto.messages and proto.state is State.OPEN

    def test_no_pong_once_our_close_frame_was_sent(self, side, chunk):
        proto = side.make()
        proto.start_close(1000)
        proto.outgoing.clear()  # the close frame went out
        feed(proto, side.frame(OP_PING, b"late"), chunk)
        assert not proto.outgoing and not proto.messages

    def test_no_pong_after_the_echoed_close(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE, b"\x03\xe8") + side.frame(OP_PING, b"late"))
        assert [f.opcode for f in proto.outgoing] == [OP_CLOSE]

    @pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
    def test_fragmented_control_frame_fails_1002(self, side, opcode):
        proto = side.make()
        feed(proto, side.frame(opcode, b"", fin=False))
        assert_failed(proto, 1002)

    @pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
    def test_control_frame_over_125_bytes_fails_1002_on_its_header(self, side, opcode):
        data = side.frame(opcode, bytes(126))
        proto = side.make()
        feed(proto, data[:4])  # the header only: the length is known
        assert_failed(proto, 1002)

    def test_rsv1_on_a_control_frame_fails_even_with_deflate(self, side):
        proto = side.make(deflate=own_deflate(side))
        feed(proto, side.frame(OP_PING, b"x", rsv1=True))
        assert_failed(proto, 1002)


# -- RFC 6455 section 7: closing ----------------------------------------------------------


class TestClosing_7:
    def test_close_received_is_echoed_with_its_code_only(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE, encode_close_payload(1001, "going away")), chunk)
        assert list(proto.outgoing) == [close_frame(1001, mask=side.is_client)]
        assert proto.state is State.CLOSING
        assert proto.close_sent and proto.close_received and proto.close_done
        assert (proto.close_code, proto.close_reason) == (1001, "going away")
        assert not proto.failed and proto.exception is None
        assert not proto.messages

    def test_rfc_bytes_of_the_echo(self):
        proto = Protocol(is_client=True)
        feed(proto, from_server(OP_CLOSE, b"\x03\xe8bye"))
        masked_code = bytes([0x03 ^ KEY[0], 0xE8 ^ KEY[1]])
        assert wire(proto.outgoing[0]) == bytes([0x88, 0x82]) + KEY + masked_code
        proto = Protocol(is_client=False)
        feed(proto, from_client(OP_CLOSE, b"\x03\xe8bye"))
        assert wire(proto.outgoing[0]) == bytes([0x88, 0x02, 0x03, 0xE8])

    def test_empty_close_means_1005_and_is_echoed_empty(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE), chunk)
        assert (proto.close_code, proto.close_reason) == (1005, "")
        assert list(proto.outgoing) == [close_frame(None, mask=side.is_client)]
        assert proto.state is State.CLOSING and proto.exception is None

    def test_reason_of_123_bytes(self, side):
        proto = side.make()
        reason = "é" * 61 + "x"  # 123 bytes of UTF-8
        feed(proto, side.frame(OP_CLOSE, encode_close_payload(4000, reason)))
        assert (proto.close_code, proto.close_reason) == (4000, reason)

    def test_should_close_on_the_server_once_the_echo_is_sent(self):
        proto = Protocol(is_client=False)
        feed(proto, from_client(OP_CLOSE, b"\x03\xe8"))
        assert not proto.should_close()  # the echo is still owed
        proto.outgoing.pop(0)
        assert proto.should_close()
        proto.receive_eof()
        assert proto.state is State.CLOSED and not proto.should_close()
        assert proto.exception is None

    def test_a_client_waits_for_the_servers_eof(self):
        proto = Protocol(is_client=True)
        feed(proto, from_server(OP_CLOSE, b"\x03\xe8"))
        proto.outgoing.pop(0)
        assert proto.close_done and not proto.should_close()
        proto.receive_eof()
        assert proto.state is State.CLOSED and proto.exception is None
        assert proto.close_code == 1000

    def test_we_close_first_then_the_peer_answers(self, side, chunk):
        proto = side.make()
        proto.start_close(1001, "bye")
        assert list(proto.outgoing) == [close_frame(1001, "bye", mask=side.is_client)]
        assert proto.state is State.CLOSING and proto.close_sent and not proto.close_received
        assert proto.close_code is None
        proto.outgoing.pop(0)
        assert not proto.should_close()  # the peer's close frame is awaited
        feed(proto, side.frame(OP_CLOSE, encode_close_payload(1000, "ok")), chunk)
        assert not proto.outgoing  # no second close frame
        assert (proto.close_code, proto.close_reason) == (1000, "ok")
        assert proto.close_done and not proto.failed
        assert proto.should_close() is (not side.is_client)
        proto.receive_eof()
        assert proto.state is State.CLOSED and proto.exception is None

    def test_start_close_without_a_code(self, side):
        proto = side.make()
        proto.start_close(None)
        assert proto.outgoing[0].payload == b""

    def test_start_close_default_is_1000(self, side):
        proto = side.make()
        proto.start_close()
        assert proto.outgoing[0].payload == b"\x03\xe8"

    def test_data_still_arrives_after_our_close(self, side, chunk):
        proto = side.make()
        proto.start_close()
        feed(proto, side.frame(OP_TEXT, b"in flight"), chunk)
        assert got(proto) == [(OP_TEXT, "in flight")]

    def test_start_close_twice_is_invalid(self, side):
        proto = side.make()
        proto.start_close()
        with pytest.raises(InvalidState, match="closing"):
            proto.start_close()
        assert len(proto.outgoing) == 1

    def test_start_close_after_the_peers_close_is_invalid(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE, b"\x03\xe8"))
        with pytest.raises(InvalidState):
            proto.start_close()
        assert len(proto.outgoing) == 1

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000])
    def test_start_close_with_an_invalid_code(self, side, code):
        proto = side.make()
        with pytest.raises(ValueError):
            proto.start_close(code)
        assert proto.state is State.OPEN and not proto.outgoing and not proto.close_sent

    def test_start_close_with_an_invalid_reason(self, side):
        proto = side.make()
        with pytest.raises(ValueError):
            proto.start_close(1000, "x" * 124)
        with pytest.raises(ValueError):
            proto.start_close(None, "a reason without a code")
        assert proto.state is State.OPEN and not proto.outgoing

    def test_eof_after_the_handshake(self, side):
        proto = side.make()
        proto.start_close()
        feed(proto, side.frame(OP_CLOSE, b"\x03\xe8"))
        proto.receive_eof()
        assert proto.state is State.CLOSED
        assert proto.exception is None and proto.close_code == 1000

    def test_eof_while_open_is_an_abnormal_closure(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_TEXT, b"Hel", fin=False), chunk)
        proto.receive_eof()
        assert proto.state is State.CLOSED
        assert (proto.close_code, proto.close_reason) == (1006, "")
        assert isinstance(proto.exception, AbnormalClosure)
        assert not proto.outgoing and not proto.messages

    def test_eof_after_our_close_only_is_an_abnormal_closure(self, side):
        proto = side.make()
        proto.start_close()
        proto.receive_eof()
        assert proto.state is State.CLOSED and proto.close_code == 1006
        assert isinstance(proto.exception, AbnormalClosure)

    def test_eof_after_a_failure_keeps_the_failure(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_CONTINUATION, b"x"))
        exc = proto.exception
        proto.receive_eof()
        assert proto.state is State.CLOSED and proto.close_code == 1002
        assert proto.exception is exc

    def test_fail_queues_a_close_frame_with_its_code(self, side):
        proto = side.make()
        exc = RuntimeError("handler crashed")
        proto.fail(1011, exc)
        assert list(proto.outgoing) == [close_frame(1011, mask=side.is_client)]
        assert proto.failed and proto.close_done and proto.close_sent
        assert proto.state is State.CLOSING
        assert proto.exception is exc
        assert (proto.close_code, proto.close_reason) == (1011, "")
        proto.outgoing.pop(0)
        assert proto.should_close() is (not side.is_client)

    def test_fail_twice_sends_one_close_frame(self, side):
        proto = side.make()
        first = ProtocolError("first")
        proto.fail(1002, first)
        proto.fail(1011, ProtocolError("second"))
        assert len(proto.outgoing) == 1
        assert proto.close_code == 1002 and proto.exception is first

    def test_fail_after_our_close_sends_no_second_close(self, side):
        proto = side.make()
        proto.start_close()
        proto.fail(1011, RuntimeError("x"))
        assert [f.payload for f in proto.outgoing] == [b"\x03\xe8"]
        assert proto.failed and proto.close_code == 1011

    def test_input_stops_after_a_failure(self, side):
        proto = side.make()
        proto.fail(1011, RuntimeError("x"))
        feed(proto, side.frame(OP_TEXT, b"x") + side.frame(OP_PING, b"p"))
        assert not proto.messages and len(proto.outgoing) == 1

    def test_bytes_after_a_close_frame_are_ignored(self, side, chunk):
        proto = side.make()
        data = (
            side.frame(OP_TEXT, b"before")
            + side.frame(OP_CLOSE, b"\x03\xe8")
            + side.frame(OP_TEXT, b"after")
            + side.frame(OP_PING, b"p")
            + b"\xff\xff garbage that is not a frame"
        )
        feed(proto, data, chunk)
        feed(proto, side.frame(OP_BINARY, b"later"), chunk)
        assert got(proto) == [(OP_TEXT, "before")]
        assert [f.opcode for f in proto.outgoing] == [OP_CLOSE]
        assert not proto.failed and proto.close_code == 1000

    @pytest.mark.parametrize(
        ("payload", "code"),
        [
            (b"\x03", 1002),
            (struct.pack("!H", 1005), 1002),
            (struct.pack("!H", 1006), 1002),
            (struct.pack("!H", 999), 1002),
            (struct.pack("!H", 5000), 1002),
            (b"\x03\xe8\xff\xfe", 1007),
        ],
    )
    def test_invalid_close_frames_fail_the_connection(self, side, payload, code):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE, payload))
        assert_failed(proto, code)
        assert not proto.close_received


# -- RFC 6455 8.1: UTF-8 --------------------------------------------------------------------


STREAM_TO_CLIENT = b"".join(
    [
        RFC_UNMASKED_HELLO,
        *RFC_FRAGMENTED,
        RFC_PING,
        from_server(OP_BINARY, bytes(300)),
        from_server(OP_TEXT, "héllo wörld €".encode()),
        from_server(OP_CLOSE, encode_close_payload(1000, "bye")),
    ]
)


class TestUtf8_8_1:
    @pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 10, 64, 0])
    def test_whole_text_messages_are_str_in_every_chunking(self, chunk):
        proto = Protocol(is_client=True)
        feed(proto, STREAM_TO_CLIENT, chunk)
        assert got(proto) == [
            (OP_TEXT, "Hello"),
            (OP_TEXT, "Hello"),  # the fragments reassembled
            (OP_BINARY, bytes(300)),
            (OP_TEXT, "héllo wörld €"),
        ]
        assert [(f.opcode, f.payload) for f in proto.outgoing] == [
            (OP_PONG, b"Hello"),
            (OP_CLOSE, b"\x03\xe8"),
        ]
        assert (proto.close_code, proto.close_reason) == (1000, "bye")

    @pytest.mark.parametrize("chunk", [1, 3, 0])
    def test_invalid_utf8_fails_with_1007(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_TEXT, b"ok \xff no"), chunk)
        assert_failed(proto, 1007)
        assert not proto.messages

    @pytest.mark.parametrize(
        "bad",
        [
            b"\xff",
            b"\xc0\xaf",  # overlong "/"
            b"\xed\xa0\x80",  # a surrogate
            b"\xf4\x90\x80\x80",  # past U+10FFFF
            b"\x80",  # a lone continuation byte
            b"\xe2\x82",  # truncated at the end of the message
        ],
    )
    def test_invalid_sequences(self, side, chunk, bad):
        proto = side.make()
        feed(proto, side.frame(OP_TEXT, b"abc" + bad), chunk)
        assert_failed(proto, 1007)

    def test_a_fragmented_message_ending_inside_a_character(self, side, chunk):
        proto = side.make()
        euro = "€".encode()
        data = side.frame(OP_TEXT, b"a" + euro[:1], fin=False)
        data += side.frame(OP_CONTINUATION, euro[1:2])  # fin, one byte short
        feed(proto, data, chunk)
        assert_failed(proto, 1007)

    def test_invalid_byte_in_first_half_fails_before_the_frame_completes(self, side):
        data = side.frame(OP_TEXT, b"valid start \xff" + b"a" * 100)
        proto = side.make()
        proto.receive_data(data[: len(data) // 2])
        assert_failed(proto, 1007)

    def test_masked_partial_frame(self):
        data = from_client(OP_TEXT, b"abcdefg\xc0\xaf" + b"z" * 100)  # overlong encoding
        proto = Protocol(is_client=False)
        proto.receive_data(data[:30])
        assert_failed(proto, 1007)

    @pytest.mark.parametrize("step", [1, 2, 3, 7])
    def test_fails_as_soon_as_the_bad_byte_is_received(self, side, step):
        good = "€uro ".encode() * 5
        data = side.frame(OP_TEXT, good + b"\xff" + b"a" * 200)
        bad_end = len(data) - 200  # the stream up to and including the bad byte
        proto = side.make()
        pos = 0
        while not proto.failed:
            assert pos < bad_end
            proto.receive_data(data[pos : pos + step])
            pos += step
        assert pos - step < bad_end <= pos  # failed in the read that brought it
        assert_failed(proto, 1007)

    def test_valid_text_split_inside_a_character_is_fine(self, side):
        text = "€uro " * 40
        proto = side.make()
        feed(proto, side.frame(OP_TEXT, text.encode()), 1)
        assert got(proto) == [(OP_TEXT, text)]
        assert not proto.failed

    def test_continuation_frame_checked_too(self, side):
        first = side.frame(OP_TEXT, b"Hel", fin=False)
        cont = side.frame(OP_CONTINUATION, b"lo \xff" + b"b" * 100)
        proto = side.make()
        proto.receive_data(first + cont[:20])
        assert_failed(proto, 1007)

    def test_continuation_finishing_a_character_from_the_previous_fragment(self, side):
        euro = "€".encode()  # e2 82 ac, split across fragments
        first = side.frame(OP_TEXT, b"a" + euro[:1], fin=False)
        cont = side.frame(OP_CONTINUATION, euro[1:] + b"b" * 200)
        proto = side.make()
        feed(proto, first + cont, 1)
        assert got(proto) == [(OP_TEXT, "a€" + "b" * 200)]

    @pytest.mark.parametrize("chunk", [1, 2, 3, 4, 7, 0])
    def test_masked_continuation_finishing_a_character(self, chunk):
        emoji = "😀".encode()  # 4 bytes: 3 continuation bytes go to the next fragment
        first = from_client(OP_TEXT, emoji[:1], fin=False)
        cont = from_client(OP_CONTINUATION, emoji[1:] + b"c" * 50)
        proto = Protocol(is_client=False)
        feed(proto, first + cont, chunk)
        assert got(proto) == [(OP_TEXT, "😀" + "c" * 50)]

    def test_a_character_over_four_fragments_one_byte_at_a_time(self, side):
        emoji = "😀".encode()
        data = side.frame(OP_TEXT, emoji[:1], fin=False)
        data += side.frame(OP_CONTINUATION, emoji[1:2], fin=False)
        data += side.frame(OP_PING, b"between")
        data += side.frame(OP_CONTINUATION, emoji[2:3], fin=False)
        data += side.frame(OP_CONTINUATION, emoji[3:])
        proto = side.make()
        feed(proto, data, 1)
        assert got(proto) == [(OP_TEXT, "😀")]
        assert [f.opcode for f in proto.outgoing] == [OP_PONG]

    def test_stray_continuation_bytes_after_the_first_three_still_fail_early(self, side):
        first = side.frame(OP_TEXT, b"\xf0", fin=False)
        cont = side.frame(OP_CONTINUATION, b"\x9f\x98\x80\x80" + b"d" * 100)
        header = len(cont) - 104
        proto = side.make()
        proto.receive_data(first)
        assert not proto.failed and not proto.messages
        for i in range(header + 3):
            proto.receive_data(cont[i : i + 1])
            assert not proto.failed
        proto.receive_data(cont[header + 3 : header + 4])  # the fourth: one too many
        assert_failed(proto, 1007)

    def test_binary_frames_are_not_checked(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_BINARY, b"\xff" * 200), chunk)
        assert got(proto) == [(OP_BINARY, b"\xff" * 200)]

    def test_continuation_of_binary_message_not_checked(self, side, chunk):
        data = side.frame(OP_BINARY, b"\xff", fin=False)
        data += side.frame(OP_CONTINUATION, b"\xff" * 100)
        proto = side.make()
        feed(proto, data, chunk)
        assert got(proto) == [(OP_BINARY, b"\xff" * 101)]

    def test_compressed_text_frames_are_not_checked_as_text(self, side, chunk):
        with pytest.raises(UnicodeDecodeError):
            RFC7692_HELLO.decode("utf-8")  # the compressed bytes are not UTF-8
        proto = side.make(deflate=own_deflate(side))
        feed(proto, side.frame(OP_TEXT, RFC7692_HELLO, rsv1=True), chunk)
        assert got(proto) == [(OP_TEXT, "Hello")]

    def test_compressed_fragments_are_not_checked_as_text(self, side, chunk):
        peer = peer_deflate(side)
        text = "€" * 300
        part1 = peer.compress(text.encode()[:400], False)
        part2 = peer.compress(text.encode()[400:], True)
        proto = side.make(deflate=own_deflate(side))
        data = side.frame(OP_TEXT, part1, fin=False, rsv1=True) + side.frame(OP_CONTINUATION, part2)
        feed(proto, data, chunk)
        assert got(proto) == [(OP_TEXT, text)]

    def test_compressed_invalid_utf8_fails_1007_once_inflated(self, side, chunk):
        peer = peer_deflate(side)
        proto = side.make(deflate=own_deflate(side))
        feed(proto, side.frame(OP_TEXT, peer.compress(b"abc\xff"), rsv1=True), chunk)
        assert_failed(proto, 1007)

    def test_one_text_message_after_another(self, side, chunk):
        proto = side.make()
        texts = ["€" * 50, "😀" * 30, "plain", ""]
        feed(proto, b"".join(side.frame(OP_TEXT, t.encode()) for t in texts), chunk)
        assert got(proto) == [(OP_TEXT, t) for t in texts]


# -- max_size --------------------------------------------------------------------------------


class TestMaxSize:
    def test_a_frame_over_max_size_fails_1009_on_its_header(self, side):
        data = side.frame(OP_BINARY, bytes(1001))
        proto = side.make(max_size=1000)
        proto.receive_data(data[:4])  # 16-bit length: the header says it all
        assert_failed(proto, 1009)
        assert isinstance(proto.exception, MessageTooBig)

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_a_frame_of_max_size_is_fine(self, side, chunk, opcode):
        proto = side.make(max_size=100)
        feed(proto, side.frame(opcode, b"x" * 100), chunk)
        expected = b"x" * 100 if opcode == OP_BINARY else "x" * 100
        assert got(proto) == [(opcode, expected)]

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_fragments_adding_up_past_max_size_fail_1009(self, side, chunk, opcode):
        data = side.frame(opcode, b"a" * 60, fin=False) + side.frame(OP_CONTINUATION, b"b" * 41)
        proto = side.make(max_size=100)
        feed(proto, data, chunk)
        assert_failed(proto, 1009)
        assert not proto.messages

    def test_fragments_adding_up_to_max_size_are_fine(self, side, chunk):
        data = (
            side.frame(OP_BINARY, b"a" * 40, fin=False)
            + side.frame(OP_CONTINUATION, b"b" * 40, fin=False)
            + side.frame(OP_CONTINUATION, b"c" * 20)
        )
        proto = side.make(max_size=100)
        feed(proto, data, chunk)
        assert got(proto) == [(OP_BINARY, b"a" * 40 + b"b" * 40 + b"c" * 20)]

    def test_the_limit_is_per_message(self, side, chunk):
        data = b"".join(side.frame(OP_BINARY, bytes(80)) for _ in range(5))
        proto = side.make(max_size=100)
        feed(proto, data, chunk)
        assert len(proto.messages) == 5 and not proto.failed

    def test_control_frames_do_not_count(self, side):
        data = (
            side.frame(OP_BINARY, bytes(90), fin=False)
            + side.frame(OP_PING, bytes(100))
            + side.frame(OP_CONTINUATION, bytes(10))
        )
        proto = side.make(max_size=100)
        feed(proto, data)
        assert got(proto) == [(OP_BINARY, bytes(100))]

    def test_default_max_size(self, side):
        proto = side.make()
        header = side.frame(OP_BINARY, b"")[:1] + (b"\xff" if not side.is_client else b"\x7f")
        proto.receive_data(header + struct.pack("!Q", DEFAULT_MAX_SIZE + 1))
        assert_failed(proto, 1009)

    @pytest.mark.parametrize("step", [4099, 0])
    def test_max_size_none_means_no_limit(self, side, step):
        proto = side.make(max_size=None)
        assert proto.decoder.max_size is None and proto.assembler.max_size is None
        big = bytes(range(256)) * 400  # 100 KiB
        data = side.frame(OP_BINARY, big) + side.frame(OP_TEXT, b"a" * 70000, fin=False)
        data += side.frame(OP_CONTINUATION, b"b" * 70000)
        feed(proto, data, step)
        assert got(proto) == [(OP_BINARY, big), (OP_TEXT, "a" * 70000 + "b" * 70000)]

    def test_a_compressed_message_inflating_past_max_size_fails_1009(self, side, chunk):
        peer = peer_deflate(side)
        compressed = peer.compress(bytes(5000))
        assert len(compressed) < 100
        proto = side.make(max_size=1000, deflate=own_deflate(side))
        feed(proto, side.frame(OP_BINARY, compressed, rsv1=True), chunk)
        assert_failed(proto, 1009)

    def test_compressed_fragments_inflating_past_max_size_fail_1009(self, side, chunk):
        peer = peer_deflate(side)
        part1 = peer.compress(bytes(600), False)
        part2 = peer.compress(bytes(600), True)
        proto = side.make(max_size=1000, deflate=own_deflate(side))
        data = side.frame(OP_BINARY, part1, fin=False, rsv1=True)
        data += side.frame(OP_CONTINUATION, part2)
        feed(proto, data, chunk)
        assert_failed(proto, 1009)

    def test_str_payload_from_receive_frame_counts_utf8_bytes(self):
        proto = Protocol(is_client=True, max_size=20)
        proto.receive_frame(Message(True, False, False, False, OP_TEXT, False, "€" * 10))  # 30 B
        assert_failed(proto, 1009)


# -- RFC 7692: permessage-deflate ---------------------------------------------------------


class TestDeflate_RFC7692:
    def test_rfc7692_compressed_hello(self, chunk):
        proto = Protocol(is_client=True, deflate=own_deflate(CLIENT))
        feed(proto, RFC7692_FRAME, chunk)
        assert list(proto.messages) == [Message(True, False, False, False, OP_TEXT, False, "Hello")]

    def test_rfc7692_context_takeover(self, chunk):
        proto = Protocol(is_client=True, deflate=own_deflate(CLIENT))
        data = RFC7692_FRAME + from_server(OP_TEXT, RFC7692_HELLO_AGAIN, rsv1=True)
        feed(proto, data, chunk)
        assert got(proto) == [(OP_TEXT, "Hello"), (OP_TEXT, "Hello")]

    def test_rfc7692_fragmented_compressed_hello(self, chunk):
        first, second = RFC7692_FRAGMENTED
        assert from_server(OP_TEXT, RFC7692_HELLO[:3], fin=False, rsv1=True) == first
        proto = Protocol(is_client=True, deflate=own_deflate(CLIENT))
        feed(proto, first + second, chunk)
        assert got(proto) == [(OP_TEXT, "Hello")]

    def test_a_compressed_message_from_the_peer_is_inflated(self, side, chunk):
        peer = peer_deflate(side)
        proto = side.make(deflate=own_deflate(side))
        messages = [(OP_TEXT, "héllo " * 50), (OP_BINARY, bytes(range(256)) * 4), (OP_TEXT, "x")]
        data = b""
        for opcode, payload in messages:
            raw = payload.encode() if isinstance(payload, str) else payload
            data += side.frame(opcode, peer.compress(raw), rsv1=True)
        feed(proto, data, chunk)
        assert got(proto) == messages
        assert not any(m.rsv1 for m in proto.messages)

    def test_uncompressed_messages_still_pass(self, side, chunk):
        proto = side.make(deflate=own_deflate(side))
        feed(proto, side.frame(OP_TEXT, b"plain") + side.frame(OP_BINARY, b"\xff"), chunk)
        assert got(proto) == [(OP_TEXT, "plain"), (OP_BINARY, b"\xff")]

    def test_rsv1_without_deflate_negotiated_fails_1002(self, side, chunk):
        proto = side.make()
        feed(proto, side.frame(OP_TEXT, RFC7692_HELLO, rsv1=True), chunk)
        assert_failed(proto, 1002)

    def test_rsv1_on_a_continuation_fails_1002(self, side, chunk):
        peer = peer_deflate(side)
        data = side.frame(OP_TEXT, peer.compress(b"Hel", False), fin=False, rsv1=True)
        data += side.frame(OP_CONTINUATION, peer.compress(b"lo", True), rsv1=True)
        proto = side.make(deflate=own_deflate(side))
        feed(proto, data, chunk)
        assert_failed(proto, 1002)

    def test_garbage_compressed_data_fails_the_connection(self, side, chunk):
        proto = side.make(deflate=own_deflate(side))
        feed(proto, side.frame(OP_BINARY, b"\xff\xff\xff\xff", rsv1=True), chunk)
        assert_failed(proto, 1007)


# -- Protocol.send ---------------------------------------------------------------------------


def text(payload: bytes, **kw) -> Message:
    return Message(opcode=OP_TEXT, payload=payload, **kw)


def copy(m: Message) -> Message:
    """A fresh Message: send() sets fields of the one it is given."""
    return Message(m.fin, m.rsv1, m.rsv2, m.rsv3, m.opcode, m.mask, m.payload)


class TestSend:
    def test_the_client_masks(self):
        proto = Protocol(is_client=True)
        frame = text(b"Hello")
        out = proto.send(frame)
        assert out is frame and out.mask is True
        assert wire(out) == RFC_MASKED_HELLO
        assert not proto.outgoing

    def test_the_server_does_not_mask(self):
        proto = Protocol(is_client=False)
        out = proto.send(text(b"Hello", mask=True))
        assert out.mask is False
        assert wire(out) == RFC_UNMASKED_HELLO

    def test_mask_option(self):
        assert Protocol(is_client=False, mask=True).send(text(b"Hello")).mask is True

    def test_rfc_fragments_from_the_server(self):
        proto = Protocol(is_client=False)
        first = proto.send(Message(False, False, False, False, OP_TEXT, False, b"Hel"))
        second = proto.send(Message(True, False, False, False, OP_CONTINUATION, False, b"lo"))
        assert (wire(first), wire(second)) == RFC_FRAGMENTED

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG])
    def test_control_frames(self, side, opcode):
        proto = side.make()
        out = proto.send(Message(opcode=opcode, payload=b"Hello"))
        assert out.mask is side.is_client
        if opcode == OP_PING and not side.is_client:
            assert wire(out) == RFC_PING
        if opcode == OP_PONG and side.is_client:
            assert wire(out) == RFC_MASKED_PONG
        proto.send(Message(opcode=opcode, payload=bytes(125)))

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG])
    def test_control_frame_over_125_bytes(self, side, opcode):
        proto = side.make()
        with pytest.raises(ValueError, match="125"):
            proto.send(Message(opcode=opcode, payload=bytes(126)))

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG])
    def test_fragmented_control_frame(self, side, opcode):
        proto = side.make()
        with pytest.raises(ValueError, match="fragmented"):
            proto.send(Message(fin=False, opcode=opcode, payload=b"x"))

    def test_close_goes_through_start_close(self, side):
        proto = side.make()
        with pytest.raises(ValueError):
            proto.send(Message(opcode=OP_CLOSE, payload=b"\x03\xe8"))
        assert proto.state is State.OPEN and not proto.close_sent

    @pytest.mark.parametrize("opcode", [3, 7, 11, 15])
    def test_reserved_opcodes(self, side, opcode):
        proto = side.make()
        with pytest.raises(ValueError):
            proto.send(Message(opcode=opcode))

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_PONG])
    def test_nothing_after_start_close(self, side, opcode):
        proto = side.make()
        proto.start_close()
        with pytest.raises(InvalidState, match="closing"):
            proto.send(Message(opcode=opcode, payload=b"x"))

    def test_nothing_after_the_peers_close_or_a_failure(self, side):
        proto = side.make()
        feed(proto, side.frame(OP_CLOSE))
        with pytest.raises(InvalidState):
            proto.send(text(b"x"))
        proto = side.make()
        proto.fail(1011, RuntimeError("x"))
        with pytest.raises(InvalidState):
            proto.send(Message(opcode=OP_PING))

    def test_the_outgoing_fragment_guard(self, side):
        proto = side.make()
        assert not proto.fragmenting
        with pytest.raises(ValueError, match="continuation"):
            proto.send(Message(opcode=OP_CONTINUATION, payload=b"x"))
        proto.send(Message(fin=False, opcode=OP_TEXT, payload=b"a"))
        assert proto.fragmenting
        for opcode in (OP_TEXT, OP_BINARY):
            for fin in (True, False):
                with pytest.raises(ValueError, match="fragments are open"):
                    proto.send(Message(fin=fin, opcode=opcode, payload=b"x"))
        assert proto.fragmenting
        proto.send(Message(opcode=OP_PING, payload=b"between fragments"))
        proto.send(Message(fin=False, opcode=OP_CONTINUATION, payload=b"b"))
        assert proto.fragmenting
        proto.send(Message(fin=True, opcode=OP_CONTINUATION, payload=b"c"))
        assert not proto.fragmenting
        with pytest.raises(ValueError, match="continuation"):
            proto.send(Message(opcode=OP_CONTINUATION, payload=b"x"))
        proto.send(Message(opcode=OP_BINARY, payload=b"next message"))

    def test_deflate_compresses_with_rsv1_on_the_first_frame_only(self, side):
        proto = side.make(deflate=own_deflate(side))
        out = proto.send(text(b"Hello"))
        assert out.rsv1 and out.payload == RFC7692_HELLO
        out = proto.send(text(b"Hello"))
        assert out.rsv1 and out.payload == RFC7692_HELLO_AGAIN
        first = proto.send(Message(fin=False, opcode=OP_BINARY, payload=b"x" * 500))
        ping = proto.send(Message(opcode=OP_PING, payload=b"p"))
        middle = proto.send(Message(fin=False, opcode=OP_CONTINUATION, payload=b"y" * 500))
        last = proto.send(Message(fin=True, opcode=OP_CONTINUATION, payload=b"z" * 500))
        assert (first.rsv1, middle.rsv1, last.rsv1) == (True, False, False)
        assert (ping.rsv1, ping.payload) == (False, b"p")
        peer = peer_deflate(side)
        assert peer.decompress(RFC7692_HELLO, True, None) == b"Hello"
        assert peer.decompress(RFC7692_HELLO_AGAIN, True, None) == b"Hello"
        inflated = peer.decompress(first.payload, False, None)
        inflated += peer.decompress(middle.payload, False, None)
        inflated += peer.decompress(last.payload, True, None)
        assert inflated == b"x" * 500 + b"y" * 500 + b"z" * 500

    def test_compress_keeps_the_rfc7692_bytes(self, side):
        deflate = own_deflate(side)
        assert deflate.compress(b"Hello") == RFC7692_HELLO
        assert deflate.compress(b"Hello") == RFC7692_HELLO_AGAIN

    def test_incompressible_messages_back_off_to_stored_blocks(self, side):
        proto = side.make(deflate=own_deflate(side))
        noise = random.Random(7).randbytes
        peer = peer_deflate(side)
        stored = []
        for _ in range(7):
            data = noise(4096)
            out = proto.send(Message(opcode=OP_BINARY, payload=data))
            assert out.rsv1  # every message stays compressed in RFC 7692's sense
            assert peer.decompress(out.payload, True, None) == data
            stored.append(out.payload == stored_blocks(data))
        tiny = noise(100)  # under 256 bytes: compressed, never counted as a miss
        small = proto.send(Message(opcode=OP_BINARY, payload=tiny))
        assert peer.decompress(small.payload, True, None) == tiny
        assert proto.deflate._skip == 3
        # miss, 1 stored, miss, 2 stored, miss, 4 stored (3 of them still owed)
        assert stored == [False, True, False, True, True, False, True]
        assert proto.deflate._skip == 3
        outs = [proto.send(Message(opcode=OP_BINARY, payload=b"z" * 4096)) for _ in range(5)]
        assert [len(o.payload) < 100 for o in outs] == [False, False, False, True, True]
        assert proto.deflate._backoff == 0  # compression resumed
        for out in outs:
            assert peer.decompress(out.payload, True, None) == b"z" * 4096

    @pytest.mark.parametrize("size", [0, 1, 65535, 65536, 200_000])
    def test_stored_blocks_inflate_to_the_data(self, size):
        data = random.Random(size).randbytes(size)
        inflater = zlib.decompressobj(-15)
        assert inflater.decompress(stored_blocks(data) + b"\x00\x00\xff\xff") == data
        assert len(stored_blocks(data)) == size + 5 * -(-size // 65535) + 1

    @pytest.mark.parametrize("no_takeover", [False, True], ids=["takeover", "no-takeover"])
    def test_peer_decodes_every_message_of_a_mixed_stream(self, side, no_takeover):
        # Compressible, incompressible, small and fragmented messages mixed:
        # the peer's inflater stays in step whatever encode() decided.
        params = DeflateParams(
            client_no_context_takeover=no_takeover, server_no_context_takeover=no_takeover
        )
        sender = side.make(deflate=PerMessageDeflate(params, is_client=side.is_client))
        receiver = Protocol(
            is_client=not side.is_client,
            deflate=PerMessageDeflate(params, is_client=not side.is_client),
        )
        rng = random.Random(11)
        expected = []
        data = b""
        for _ in range(300):
            kind = rng.choice(["text", "noise", "small", "fragmented", "repeat"])
            if kind == "text":
                words = " ".join(rng.choice(["alpha", "beta", "gamma"]) for _ in range(300))
                data += wire(sender.send(Message(opcode=OP_TEXT, payload=words.encode())))
                expected.append((OP_TEXT, words))
                continue
            if kind == "noise":
                payload_b = rng.randbytes(rng.randrange(64, 9000))
            elif kind == "small":
                payload_b = rng.randbytes(rng.randrange(0, 80))
            elif kind == "repeat":
                payload_b = b"repeat me " * rng.randrange(7, 200)
            if kind == "fragmented":
                parts = [rng.randbytes(300), b"q" * 700, rng.randbytes(50)]
                for j, part in enumerate(parts):
                    op = OP_BINARY if j == 0 else OP_CONTINUATION
                    data += wire(sender.send(Message(fin=j == 2, opcode=op, payload=part)))
                expected.append((OP_BINARY, b"".join(parts)))
            else:
                data += wire(sender.send(Message(opcode=OP_BINARY, payload=payload_b)))
                expected.append((OP_BINARY, payload_b))
        feed(receiver, data, 4096)
        assert not receiver.failed, receiver.exception
        assert got(receiver) == expected

    def test_a_frame_already_compressed_is_left_alone(self, side):
        proto = side.make(deflate=own_deflate(side))
        out = proto.send(Message(rsv1=True, opcode=OP_TEXT, payload=RFC7692_HELLO))
        assert out.rsv1 and out.payload == RFC7692_HELLO

    @pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
    def test_round_trip_between_two_protocols(self, chunk, deflate):
        client = Protocol(is_client=True, deflate=own_deflate(CLIENT) if deflate else None)
        server = Protocol(is_client=False, deflate=own_deflate(SERVER) if deflate else None)
        sent = [
            Message(opcode=OP_TEXT, payload="héllo".encode()),
            Message(fin=False, opcode=OP_TEXT, payload="€".encode()[:2]),
            Message(opcode=OP_PING, payload=b"ping"),
            Message(opcode=OP_CONTINUATION, payload="€".encode()[2:] + b"!"),
            Message(opcode=OP_BINARY, payload=bytes(1000)),
        ]
        for sender, receiver in ((client, server), (server, client)):
            data = b"".join(wire(sender.send(copy(m))) for m in sent)
            feed(receiver, data, chunk)
            assert got(receiver) == [(OP_TEXT, "héllo"), (OP_TEXT, "€!"), (OP_BINARY, bytes(1000))]
            assert [(f.opcode, f.payload) for f in receiver.outgoing] == [(OP_PONG, b"ping")]
            assert not receiver.failed


# -- fragments=True --------------------------------------------------------------------------


class TestFragmentsMode:
    def test_frames_are_delivered_as_they_arrive(self, side, chunk):
        proto = side.make(fragments=True)
        data = (
            side.frame(OP_TEXT, b"Hel", fin=False)
            + side.frame(OP_PING, b"Hello")
            + side.frame(OP_CONTINUATION, b"lo")
            + side.frame(OP_PONG, b"pong")
            + side.frame(OP_TEXT, "é".encode())
            + side.frame(OP_BINARY, b"\x00")
        )
        feed(proto, data, chunk)
        assert [(m.opcode, m.fin, m.payload) for m in proto.messages] == [
            (OP_TEXT, False, b"Hel"),
            (OP_PING, True, b"Hello"),
            (OP_CONTINUATION, True, b"lo"),
            (OP_PONG, True, b"pong"),
            (OP_TEXT, True, "é".encode()),
            (OP_BINARY, True, b"\x00"),
        ]
        assert all(type(m.payload) is bytes for m in proto.messages)
        assert [(f.opcode, f.payload) for f in proto.outgoing] == [(OP_PONG, b"Hello")]

    def test_a_frame_comes_with_its_last_byte(self, side):
        data = side.frame(OP_TEXT, b"Hel", fin=False)
        proto = side.make(fragments=True)
        proto.receive_data(data[:-1])
        assert not proto.messages
        proto.receive_data(data[-1:])
        assert len(proto.messages) == 1

    def test_the_close_frame_is_delivered_and_echoed(self, side, chunk):
        proto = side.make(fragments=True)
        feed(proto, side.frame(OP_CLOSE, b"\x03\xe8bye") + side.frame(OP_TEXT, b"after"), chunk)
        assert [(m.opcode, m.payload) for m in proto.messages] == [(OP_CLOSE, b"\x03\xe8bye")]
        assert list(proto.outgoing) == [close_frame(1000, mask=side.is_client)]
        assert proto.state is State.CLOSING and proto.close_code == 1000

    def test_frame_errors_still_fail(self, side):
        proto = side.make(fragments=True)
        feed(proto, side.frame(OP_PING, bytes(126)))
        assert_failed(proto, 1002)

    def test_receive_frame_gives_bytes(self):
        proto = Protocol(is_client=True, fragments=True)
        proto.receive_frame(Message(True, False, False, False, OP_TEXT, False, "é"))
        proto.receive_frame(Message(True, False, False, False, OP_PING, False, "p"))
        assert [(m.opcode, m.payload) for m in proto.messages] == [
            (OP_TEXT, "é".encode()),
            (OP_PING, b"p"),
        ]
        assert proto.outgoing[0].payload == b"p"


# -- the receive fast path: whole frames straight from the caller's buffer --------------


@pytest.mark.usefixtures("receive_impl")
class TestWholeFrameFastPath:
    """receive_data() takes a whole text or binary frame at the start of the
    data in one step; everything else must come out exactly as before."""

    def test_lazy_delivers_one_message_and_keeps_the_rest(self, side):
        proto = side.make()
        data = side.frame(OP_TEXT, "é".encode()) + side.frame(OP_BINARY, b"two")
        proto.receive_data(memoryview(data), lazy=True)
        assert got(proto) == [(OP_TEXT, "é")]
        assert proto.messages[0].mask is not side.is_client
        assert proto.decoder.buffered == len(side.frame(OP_BINARY, b"two"))
        assert proto.parse_buffered() and got(proto) == [(OP_TEXT, "é"), (OP_BINARY, b"two")]
        assert proto.decoder.buffered == 0 and not proto.parse_buffered()

    def test_not_lazy_delivers_everything(self, side):
        proto = side.make()
        data = side.frame(OP_BINARY, b"one") + side.frame(OP_PING, b"p") + side.frame(OP_TEXT, b"3")
        proto.receive_data(data)
        assert got(proto) == [(OP_BINARY, b"one"), (OP_TEXT, "3")]
        assert [(f.opcode, f.payload) for f in proto.outgoing] == [(OP_PONG, b"p")]

    def test_fragments_mode_still_gets_frames_with_bytes(self, side):
        proto = side.make(fragments=True)
        proto.receive_data(side.frame(OP_TEXT, "é".encode()))
        assert [(m.opcode, m.fin, m.payload) for m in proto.messages] == [
            (OP_TEXT, True, "é".encode())
        ]

    def test_a_whole_frame_inside_a_fragmented_message_fails(self, side):
        proto = side.make()
        proto.receive_data(side.frame(OP_TEXT, b"He", fin=False))
        assert proto.decoder.buffered == 0 and proto.assembler.in_message
        proto.receive_data(side.frame(OP_BINARY, b"x"))
        assert_failed(proto, 1002)

    @pytest.mark.parametrize(
        "payload, opcode, code",
        [(b"\xff", OP_TEXT, 1007), (b"x" * 11, OP_BINARY, 1009), (b"\xe2\x82", OP_TEXT, 1007)],
    )
    def test_what_the_fast_path_refuses_fails_as_before(self, side, payload, opcode, code):
        proto = side.make(max_size=10)
        proto.receive_data(side.frame(opcode, payload))
        assert_failed(proto, code)
        assert not proto.messages

    def test_nothing_is_parsed_after_a_close(self, side):
        proto = side.make()
        proto.receive_data(side.frame(OP_CLOSE, b"\x03\xe8"))
        proto.receive_data(side.frame(OP_BINARY, b"late"))
        assert not proto.messages and proto.close_code == 1000

    @pytest.mark.parametrize("n", [40_000, 1 << 20])
    def test_large_frames_received_in_place(self, side, n):
        """What Connection does with reserve()/commit(); text is checked as it
        arrives, and bytes after the frame come through receive_data."""
        text = ("añ€🙂" * n)[: n // 4]
        wire = side.frame(OP_TEXT, text.encode()) + side.frame(OP_BINARY, b"next")
        proto = side.make()
        pos = 0
        while pos < len(wire):
            view = proto.reserve()
            if view is None:
                proto.receive_data(wire[pos : pos + 5000], lazy=True)
                pos += 5000
            else:
                k = min(len(view), 5000)
                view[:k] = wire[pos : pos + k]
                view.release()
                proto.commit(k)
                pos += k
        while proto.parse_buffered():
            pass
        assert got(proto) == [(OP_TEXT, text), (OP_BINARY, b"next")]

    def test_payload_bytes_are_never_taken_for_frames(self, side, chunk):
        # A payload of whole empty frames, received in pieces through receive_data.
        payload = b"\x82\x00" * 30_000 if side.is_client else b"\x82\x80abcd" * 10_000
        proto = side.make()
        feed(proto, side.frame(OP_BINARY, payload), chunk * 1000)
        assert got(proto) == [(OP_BINARY, payload)]

    def test_invalid_utf8_in_a_large_frame_fails_before_it_completes(self, side):
        wire = side.frame(OP_TEXT, b"ok" * 20_000 + b"\xff" + b"a" * 60_000)
        proto = side.make()
        proto.receive_data(wire[:1000])
        assert not proto.failed
        view = proto.reserve()
        assert view is not None
        view[:45_000] = wire[1000:46_000]
        view.release()
        proto.commit(45_000)
        assert_failed(proto, 1007)
        assert proto.reserve() is None


# -- receive_frame (frame-level transports) -----------------------------------------------


def frame_of(opcode: int, payload, fin: bool = True, **kw) -> Message:
    return Message(fin=fin, opcode=opcode, payload=payload, **kw)


class TestReceiveFrame:
    def test_a_whole_text_message(self):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(OP_TEXT, "héllo"))
        proto.receive_frame(frame_of(OP_TEXT, "héllo".encode()))
        proto.receive_frame(frame_of(OP_BINARY, bytearray(b"\x00\xff")))
        proto.receive_frame(frame_of(OP_BINARY, memoryview(b"mv")))
        assert got(proto) == [
            (OP_TEXT, "héllo"),
            (OP_TEXT, "héllo"),
            (OP_BINARY, b"\x00\xff"),
            (OP_BINARY, b"mv"),
        ]
        assert type(proto.messages[2].payload) is bytes and type(proto.messages[3].payload) is bytes

    def test_str_fragments_of_a_text_message_are_reassembled(self):
        # Was a TypeError (str fragments joined with bytes): pinned.
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(OP_TEXT, "Hé", fin=False))
        proto.receive_frame(frame_of(OP_CONTINUATION, "ll", fin=False))
        proto.receive_frame(frame_of(OP_CONTINUATION, "o €"))
        assert got(proto) == [(OP_TEXT, "Héllo €")]
        assert not proto.failed

    def test_str_and_bytes_fragments_mixed(self):
        proto = Protocol(is_client=False)
        euro = "€".encode()
        proto.receive_frame(frame_of(OP_TEXT, b"a" + euro[:1], fin=False))
        proto.receive_frame(frame_of(OP_CONTINUATION, euro[1:], fin=False))
        proto.receive_frame(frame_of(OP_CONTINUATION, "ü"))
        assert got(proto) == [(OP_TEXT, "a€ü")]

    def test_a_binary_message_with_str_fragments(self):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(OP_BINARY, "é", fin=False))
        proto.receive_frame(frame_of(OP_CONTINUATION, "x"))
        assert got(proto) == [(OP_BINARY, "éx".encode())]

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_reserved_opcodes_fail_1002(self, opcode):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(opcode, b"x"))
        assert_failed(proto, 1002)
        assert not proto.messages

    @pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
    def test_oversized_control_frame_fails_1002(self, opcode):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(opcode, bytes(126)))
        assert_failed(proto, 1002)

    def test_oversized_str_control_frame_counts_bytes(self):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(OP_PING, "é" * 63))  # 63 characters, 126 bytes
        assert_failed(proto, 1002)

    @pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
    def test_fragmented_control_frame_fails_1002(self, opcode):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(opcode, b"", fin=False))
        assert_failed(proto, 1002)

    def test_ping_is_answered(self, side):
        proto = side.make()
        proto.receive_frame(frame_of(OP_PING, "Hello"))
        assert list(proto.outgoing) == [
            Message(True, False, False, False, OP_PONG, side.is_client, b"Hello")
        ]

    def test_close_is_echoed_and_ends_input(self, side):
        proto = side.make()
        proto.receive_frame(frame_of(OP_CLOSE, b"\x0f\xa0done"))
        proto.receive_frame(frame_of(OP_TEXT, "after"))
        assert (proto.close_code, proto.close_reason) == (4000, "done")
        assert list(proto.outgoing) == [close_frame(4000, mask=side.is_client)]
        assert not proto.messages

    def test_invalid_utf8_fails_1007(self):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(OP_TEXT, b"\xff"))
        assert_failed(proto, 1007)

    @pytest.mark.parametrize(
        "frame",
        [
            frame_of(OP_CONTINUATION, b"x"),
            frame_of(OP_BINARY, b"x", rsv1=True),
            frame_of(OP_BINARY, b"x", rsv2=True),
            frame_of(OP_TEXT, "x", rsv3=True),
        ],
        ids=["stray-continuation", "rsv1", "rsv2", "rsv3"],
    )
    def test_data_frame_errors_fail_1002(self, frame):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame)
        assert_failed(proto, 1002)

    def test_a_compressed_frame(self):
        proto = Protocol(is_client=True, deflate=own_deflate(CLIENT))
        proto.receive_frame(frame_of(OP_TEXT, RFC7692_HELLO, rsv1=True))
        assert got(proto) == [(OP_TEXT, "Hello")]

    @pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
    def test_reserved_bits_on_a_control_frame_fail_1002(self, bit):
        proto = Protocol(is_client=True)
        proto.receive_frame(frame_of(OP_PING, b"x", **{bit: True}))
        assert_failed(proto, 1002)


# -- FrameDecoder's partial frames (what Protocol checks UTF-8 with) ----------------------


class TestDecoderPartial:
    def test_nothing_arriving(self):
        decoder = FrameDecoder(expect_masked=False)
        assert decoder.partial_opcode == -1 and decoder.partial_rsv1 is False
        assert decoder.take_partial() == b""
        decoder.feed(b"\x81")  # half a header
        assert decoder.next_frame() is None
        assert decoder.partial_opcode == -1 and decoder.take_partial() == b""

    def test_unmasked_partial_frame(self):
        data = from_server(OP_TEXT, b"Hello, world")
        decoder = FrameDecoder(expect_masked=False)
        decoder.feed(data[:2])
        assert decoder.next_frame() is None
        assert decoder.partial_opcode == OP_TEXT and decoder.partial_rsv1 is False
        assert decoder.take_partial() == b""
        decoder.feed(data[2:7])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == b"Hello"
        assert decoder.take_partial() == b""  # nothing new
        decoder.feed(data[7:10])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == b", w"
        decoder.feed(data[10:])
        frame = decoder.next_frame()
        assert frame is not None and frame.payload == b"Hello, world"  # whole payload
        assert decoder.partial_opcode == -1 and decoder.take_partial() == b""

    @pytest.mark.parametrize("step", [1, 2, 3, 7])
    def test_masked_partial_frame_in_every_chunking(self, step):
        payload = bytes(range(200))
        data = from_client(OP_BINARY, payload, fin=False)
        decoder = FrameDecoder(expect_masked=True)
        pieces: List[bytes] = []
        frame = None
        for i in range(0, len(data), step):
            decoder.feed(data[i : i + step])
            frame = decoder.next_frame()
            if frame is None:
                assert decoder.partial_opcode in (-1, OP_BINARY)
                pieces.append(decoder.take_partial())
        assert frame is not None and frame.payload == payload and not frame.fin
        taken = b"".join(pieces)
        assert payload.startswith(taken) and len(taken) > len(payload) - step - 1

    def test_take_partial_is_optional(self):
        data = from_client(OP_TEXT, b"abcdefgh")
        decoder = FrameDecoder(expect_masked=True)
        decoder.feed(data[:9])
        assert decoder.next_frame() is None
        decoder.feed(data[9:11])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == b"abcde"  # everything so far, unmasked
        decoder.feed(data[11:])
        assert decoder.next_frame().payload == b"abcdefgh"

    @pytest.mark.parametrize("n", [126, 65536])
    def test_extended_lengths(self, n):
        payload = bytes(i % 251 for i in range(n))
        data = from_client(OP_BINARY, payload)
        header = len(data) - n
        decoder = FrameDecoder(expect_masked=True)
        decoder.feed(data[: header + 10])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == payload[:10]
        decoder.feed(data[header + 10 : -1])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == payload[10:-1]
        decoder.feed(data[-1:])
        assert decoder.next_frame().payload == payload

    def test_partial_rsv1_and_opcode(self):
        decoder = FrameDecoder(expect_masked=False, rsv_allowed=RSV1)
        decoder.feed(from_server(OP_TEXT, b"compressed", rsv1=True)[:5])
        assert decoder.next_frame() is None
        assert (decoder.partial_opcode, decoder.partial_rsv1) == (OP_TEXT, True)
        decoder = FrameDecoder(expect_masked=False)
        decoder.feed(from_server(OP_PING, b"ping")[:3])
        assert decoder.next_frame() is None
        assert (decoder.partial_opcode, decoder.partial_rsv1) == (OP_PING, False)
        decoder = FrameDecoder(expect_masked=False)
        decoder.feed(from_server(OP_CONTINUATION, b"cont")[:3])
        assert decoder.next_frame() is None
        assert decoder.partial_opcode == OP_CONTINUATION

    def test_the_next_frame_starts_afresh(self):
        first = from_client(OP_TEXT, b"first!")
        second = from_client(OP_BINARY, b"second")
        decoder = FrameDecoder(expect_masked=True)
        decoder.feed(first[:8])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == b"fi"
        decoder.feed(first[8:] + second[:9])
        assert decoder.next_frame().payload == b"first!"
        assert decoder.next_frame() is None
        assert decoder.partial_opcode == OP_BINARY
        assert decoder.take_partial() == b"sec"

    def test_the_decoder_does_not_check_utf8(self):
        data = from_server(OP_TEXT, b"\xff\xfe" * 10)
        decoder = FrameDecoder(expect_masked=False)
        decoder.feed(data[:6])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == b"\xff\xfe" * 2
        decoder.feed(data[6:])
        frame = decoder.next_frame()
        assert (frame.opcode, frame.payload) == (OP_TEXT, b"\xff\xfe" * 10)

    def test_the_assembler_wants_uncompressed_text_only(self):
        assembler = Assembler(None, None)
        assert assembler.wants_partial(OP_TEXT, False)
        assert not assembler.wants_partial(OP_TEXT, True)
        assert not assembler.wants_partial(OP_BINARY, False)
        assert not assembler.wants_partial(OP_CONTINUATION, False)  # no message open
        assert not assembler.wants_partial(OP_PING, False)
        assert assembler.feed(Message(False, False, False, False, OP_TEXT, False, b"a")) is None
        assert assembler.in_message
        assert assembler.wants_partial(OP_CONTINUATION, False)
        assert not assembler.wants_partial(OP_TEXT, False)  # would be a protocol error
        assembler.feed(Message(True, False, False, False, OP_CONTINUATION, False, b""))
        assert not assembler.in_message
        assembler.feed(Message(False, False, False, False, OP_BINARY, False, b"a"))
        assert not assembler.wants_partial(OP_CONTINUATION, False)

    def test_take_partial_stops_at_the_frames_end(self):
        decoder = FrameDecoder(expect_masked=False)
        data = from_server(OP_TEXT, b"abcdef")
        decoder.feed(data[:4])
        assert decoder.next_frame() is None
        assert decoder.take_partial() == b"ab"
        decoder.feed(data[4:] + from_server(OP_BINARY, b"XYZ"))
        assert decoder.take_partial() == b"cdef"


# -- the same outcome in every chunking ------------------------------------------------------


PIECES = [b"a", "€".encode(), "😀".encode(), b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80"]


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([OP_TEXT, OP_TEXT, OP_CONTINUATION, OP_BINARY, OP_PING, OP_CLOSE]),
            st.lists(st.sampled_from(PIECES), max_size=6),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    ),
    is_client=st.booleans(),
    chunks=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=20),
)
def test_chunking_never_changes_the_outcome(frames, is_client, chunks):
    """Whatever the reads, the same messages, frames owed and close code."""
    peer = from_server if is_client else from_client
    data = b""
    for opcode, pieces, fin in frames:
        payload = b"".join(pieces)
        if opcode == OP_CLOSE:
            payload = b"\x03\xe8" + payload
        if opcode >= OP_CLOSE:
            payload, fin = payload[:125], True
        data += peer(opcode, payload, fin=fin)

    def outcome(sizes: List[int]) -> tuple:
        proto = Protocol(is_client=is_client)
        pos = 0
        for size in sizes:
            proto.receive_data(data[pos : pos + size])
            pos += size
        proto.receive_data(data[pos:])
        return (
            got(proto),
            [(f.opcode, f.payload) for f in proto.outgoing],
            proto.close_code,
            proto.failed,
            proto.state,
        )

    assert outcome(chunks * (len(data) // len(chunks) + 1)) == outcome([])


class TestLazyParsing:
    """``receive_data(lazy=True)`` stops at each completed message, so an
    error later in the same read cannot overtake the reply to an earlier
    message (Autobahn 3.2-3.4, 4.x and 5.15 grade that strictly)."""

    def test_stops_after_the_first_message_and_parse_buffered_goes_on(self):
        proto = Protocol(is_client=True)
        data = (
            from_server(OP_TEXT, b"one")
            + from_server(OP_PING, b"p")
            + from_server(OP_TEXT, b"two", rsv2=True)  # a protocol error
        )
        proto.receive_data(data, lazy=True)
        assert got(proto) == [(OP_TEXT, "one")]
        assert not proto.failed and not proto.outgoing
        proto.messages.clear()
        assert proto.parse_buffered()  # the ping (a pong is owed), then the bad frame
        assert [f.opcode for f in proto.outgoing] == [OP_PONG, OP_CLOSE]
        assert proto.failed and proto.close_code == 1002
        assert not proto.parse_buffered()

    def test_eager_parsing_takes_everything(self):
        proto = Protocol(is_client=True)
        proto.receive_data(from_server(OP_TEXT, b"a") + from_server(OP_BINARY, b"b"))
        assert got(proto) == [(OP_TEXT, "a"), (OP_BINARY, b"b")]

    def test_parse_buffered_with_nothing_buffered(self):
        proto = Protocol(is_client=True)
        assert not proto.parse_buffered()
        proto.receive_data(from_server(OP_TEXT, b"abc")[:3], lazy=True)
        assert not proto.parse_buffered() and not proto.messages

    def test_a_queued_message_does_not_stall_parsing(self):
        """An unread message must not make each read parse one frame only:
        the heartbeat's pump relies on pongs behind it being parsed."""
        proto = Protocol(is_client=True)
        proto.receive_data(from_server(OP_TEXT, b"unread"), lazy=True)
        pings = b"".join(from_server(OP_PING, bytes([i])) for i in range(5))
        proto.receive_data(pings + from_server(OP_TEXT, b"next") + pings, lazy=True)
        assert got(proto) == [(OP_TEXT, "unread"), (OP_TEXT, "next")]
        assert [f.payload for f in proto.outgoing] == [bytes([i]) for i in range(5)]
