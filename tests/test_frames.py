"""frames.py: the sans-I/O codec, byte-exact against RFC 6455 section 5.7."""

from __future__ import annotations

import os
import struct

import pytest
from helpers import receive_impl  # noqa: F401 - a fixture
from hypothesis import given, settings
from hypothesis import strategies as st

import gws
from gws import frames
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
    apply_mask,
    encode_close_payload,
    encode_frame,
    is_valid_close_code,
    parse_close_payload,
)

KEY = bytes.fromhex("37fa213d")  # the masking key of the RFC examples


def decode_all(data: bytes, *, expect_masked: bool, chunk: int = 0, **kw) -> list:
    """Decode ``data`` fed ``chunk`` bytes at a time (0: all at once)."""
    decoder = FrameDecoder(expect_masked=expect_masked, **kw)
    out = []
    step = chunk or max(len(data), 1)
    for i in range(0, len(data), step):
        decoder.feed(data[i : i + step])
        while True:
            frame = decoder.next_frame()
            if frame is None:
                break
            out.append(frame)
    assert decoder.buffered == 0
    return out


def decode_error(data: bytes, *, expect_masked: bool, **kw) -> gws.ProtocolError:
    decoder = FrameDecoder(expect_masked=expect_masked, **kw)
    decoder.feed(data)
    with pytest.raises(gws.ProtocolError) as info:
        decoder.next_frame()
    return info.value


# -- RFC 6455 section 5.7 examples --------------------------------------------------

RFC_UNMASKED_HELLO = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
RFC_MASKED_HELLO = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
RFC_FRAGMENTED = (bytes([0x01, 0x03, 0x48, 0x65, 0x6C]), bytes([0x80, 0x02, 0x6C, 0x6F]))
RFC_PING = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
RFC_MASKED_PONG = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])


class TestRFCExamples:
    def test_single_frame_unmasked_text(self):
        assert encode_frame(OP_TEXT, b"Hello", mask=False) == RFC_UNMASKED_HELLO
        (frame,) = decode_all(RFC_UNMASKED_HELLO, expect_masked=False)
        assert frame == Message(True, False, False, False, OP_TEXT, False, b"Hello")

    def test_single_frame_masked_text(self):
        assert encode_frame(OP_TEXT, b"Hello", mask=True, mask_key=KEY) == RFC_MASKED_HELLO
        (frame,) = decode_all(RFC_MASKED_HELLO, expect_masked=True)
        assert frame.payload == b"Hello"
        assert frame.mask is True and frame.fin is True and frame.opcode == OP_TEXT

    def test_fragmented_unmasked_text(self):
        first, second = RFC_FRAGMENTED
        assert encode_frame(OP_TEXT, b"Hel", fin=False, mask=False) == first
        assert encode_frame(OP_CONTINUATION, b"lo", mask=False) == second
        f1, f2 = decode_all(first + second, expect_masked=False)
        assert (f1.opcode, f1.fin, f1.payload) == (OP_TEXT, False, b"Hel")
        assert (f2.opcode, f2.fin, f2.payload) == (OP_CONTINUATION, True, b"lo")

    def test_unmasked_ping(self):
        assert encode_frame(OP_PING, b"Hello", mask=False) == RFC_PING
        (frame,) = decode_all(RFC_PING, expect_masked=False)
        assert (frame.opcode, frame.payload) == (OP_PING, b"Hello")

    def test_masked_pong(self):
        assert encode_frame(OP_PONG, b"Hello", mask=True, mask_key=KEY) == RFC_MASKED_PONG
        (frame,) = decode_all(RFC_MASKED_PONG, expect_masked=True)
        assert (frame.opcode, frame.payload) == (OP_PONG, b"Hello")

    def test_256_bytes_binary_header(self):
        payload = bytes(range(256))
        data = encode_frame(OP_BINARY, payload, mask=False)
        assert data[:4] == bytes([0x82, 0x7E, 0x01, 0x00])
        assert data[4:] == payload
        (frame,) = decode_all(data, expect_masked=False)
        assert frame.payload == payload

    def test_64k_binary_header(self):
        payload = bytes(65536)
        data = encode_frame(OP_BINARY, payload, mask=False)
        assert data[:10] == bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00])
        assert len(data) == 10 + 65536
        (frame,) = decode_all(data, expect_masked=False)
        assert frame.payload == payload


# -- masking -------------------------------------------------------------------------


class TestMasking:
    @pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 8, 125, 1000, 65537])
    def test_apply_mask_is_its_own_inverse(self, n):
        data = bytes((i * 7 + 3) % 256 for i in range(n))
        masked = apply_mask(data, KEY)
        assert len(masked) == n
        assert apply_mask(masked, KEY) == data
        # the RFC's definition, byte by byte
        assert masked == bytes(b ^ KEY[i % 4] for i, b in enumerate(data))

    def test_apply_mask_accepts_memoryview_and_bytearray(self):
        data = b"Hello"
        assert apply_mask(memoryview(data), KEY) == apply_mask(bytearray(data), KEY)
        assert apply_mask(data, KEY) == RFC_MASKED_HELLO[6:]

    def test_bad_key_length(self):
        with pytest.raises(ValueError):
            apply_mask(b"abc", b"\x00\x01\x02")

    def test_masked_round_trip_with_pinned_key(self):
        payload = b"x" * 300
        data = encode_frame(OP_BINARY, payload, mask=True, mask_key=b"\x01\x02\x03\x04")
        assert data[:4] == bytes([0x82, 0xFE, 0x01, 0x2C])
        assert data[4:8] == b"\x01\x02\x03\x04"
        assert data[8:] != payload
        (frame,) = decode_all(data, expect_masked=True)
        assert frame.payload == payload and frame.mask

    def test_mask_key_comes_from_os_urandom(self, monkeypatch):
        # Keys are drawn from os.urandom in batches of 256; every key of a
        # batch is used once, then the next batch is drawn.
        calls = []

        def fake_urandom(n):
            calls.append(n)
            return KEY * (n // 4)

        monkeypatch.setattr(frames.os, "urandom", fake_urandom)
        monkeypatch.setattr(frames, "_keys", [])
        assert encode_frame(OP_TEXT, b"Hello") == RFC_MASKED_HELLO
        assert calls == [4 * frames._KEY_BATCH]
        for _ in range(frames._KEY_BATCH - 1):
            assert encode_frame(OP_TEXT, b"Hello") == RFC_MASKED_HELLO
        assert calls == [4 * frames._KEY_BATCH]
        encode_frame(OP_TEXT, b"Hello")
        assert calls == [4 * frames._KEY_BATCH] * 2

    def test_keys_of_a_batch_are_the_urandom_bytes_in_turn(self, monkeypatch):
        blob = bytes(range(256)) * 4
        monkeypatch.setattr(frames.os, "urandom", lambda n: blob[:n])
        monkeypatch.setattr(frames, "_keys", [])
        keys = [frames.new_mask_key() for _ in range(frames._KEY_BATCH)]
        assert sorted(keys) == sorted(blob[i : i + 4] for i in range(0, len(blob), 4))

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_a_forked_child_does_not_reuse_the_parents_keys(self):
        frames.new_mask_key()
        frames.new_mask_key()  # the parent holds a batch with at most 254 keys left
        left = len(frames._keys)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                frames.new_mask_key()
                os.write(w, bytes([len(frames._keys)]))
            finally:
                os._exit(0)
        os.close(w)
        try:
            data = os.read(r, 1)
        finally:
            os.close(r)
            os.waitpid(pid, 0)
        assert left < frames._KEY_BATCH - 1
        assert data == bytes([frames._KEY_BATCH - 1])  # the child drew a batch of its own

    def test_fresh_key_per_frame(self):
        keys = {encode_frame(OP_BINARY, b"abcd")[2:6] for _ in range(20)}
        assert len(keys) > 1


# -- lengths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "header"),
    [
        (0, bytes([0x82, 0x00])),
        (125, bytes([0x82, 125])),
        (126, bytes([0x82, 126, 0x00, 0x7E])),
        (65535, bytes([0x82, 126, 0xFF, 0xFF])),
        (65536, bytes([0x82, 127]) + struct.pack("!Q", 65536)),
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_length_boundaries(n, header, masked):
    payload = bytes(i % 251 for i in range(n))
    data = encode_frame(OP_BINARY, payload, mask=masked, mask_key=KEY)
    if masked:
        header = bytes([header[0], header[1] | 0x80]) + header[2:]
        assert data == header + KEY + apply_mask(payload, KEY)
    else:
        assert data == header + payload
    (frame,) = decode_all(data, expect_masked=masked)
    assert frame.payload == payload
    assert frame.len == n


def test_decoder_wanted_tracks_the_header_then_the_payload():
    decoder = FrameDecoder(expect_masked=False)
    assert decoder.next_frame() is None and decoder.wanted == 2
    decoder.feed(b"\x82\x7e")
    assert decoder.next_frame() is None and decoder.wanted == 4
    decoder.feed(b"\x01\x00")
    assert decoder.next_frame() is None and decoder.wanted == 4 + 256
    decoder.feed(b"\x82\x7f")
    decoder = FrameDecoder(expect_masked=False)
    decoder.feed(b"\x82\x7f\x00")
    assert decoder.next_frame() is None and decoder.wanted == 10


# -- chunking -----------------------------------------------------------------------------


STREAM = b"".join(
    [
        RFC_UNMASKED_HELLO,
        *RFC_FRAGMENTED,
        RFC_PING,
        encode_frame(OP_BINARY, bytes(300), mask=False),
        encode_frame(OP_TEXT, "héllo wörld €".encode(), mask=False),
        encode_frame(OP_CLOSE, encode_close_payload(1000, "bye"), mask=False),
    ]
)
EXPECTED = [
    (OP_TEXT, True, b"Hello"),
    (OP_TEXT, False, b"Hel"),
    (OP_CONTINUATION, True, b"lo"),
    (OP_PING, True, b"Hello"),
    (OP_BINARY, True, bytes(300)),
    (OP_TEXT, True, "héllo wörld €".encode()),
    (OP_CLOSE, True, b"\x03\xe8bye"),
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 10, 64, 0])
def test_decoding_in_every_chunking(chunk):
    frames_ = decode_all(STREAM, expect_masked=False, chunk=chunk)
    assert [(f.opcode, f.fin, f.payload) for f in frames_] == EXPECTED


def test_one_byte_at_a_time_yields_each_frame_on_its_last_byte():
    decoder = FrameDecoder(expect_masked=False)
    ends = []
    for i in range(len(STREAM)):
        decoder.feed(STREAM[i : i + 1])
        frame = decoder.next_frame()
        if frame is not None:
            ends.append(i + 1)
            assert decoder.next_frame() is None
    lengths = [
        len(RFC_UNMASKED_HELLO),
        len(RFC_FRAGMENTED[0]),
        len(RFC_FRAGMENTED[1]),
        len(RFC_PING),
        4 + 300,
        2 + len("héllo wörld €".encode()),
        2 + 5,
    ]
    expected_ends = [sum(lengths[: i + 1]) for i in range(len(lengths))]
    assert ends == expected_ends


def test_masked_stream_one_byte_at_a_time():
    data = b"".join(
        encode_frame(op, payload, fin=fin, mask=True, mask_key=KEY) for op, fin, payload in EXPECTED
    )
    frames_ = decode_all(data, expect_masked=True, chunk=1)
    assert [(f.opcode, f.fin, f.payload) for f in frames_] == EXPECTED


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.sampled_from([OP_BINARY, OP_TEXT, OP_CONTINUATION, OP_PING, OP_PONG]),
            st.binary(max_size=300),
            st.booleans(),
        ),
        max_size=6,
    ),
    masked=st.booleans(),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_round_trip_property(messages, masked, chunk):
    sent = []
    data = b""
    for opcode, payload, fin in messages:
        if opcode >= OP_CLOSE:
            payload, fin = payload[:125], True
        if opcode == OP_TEXT:
            payload = payload.decode("latin-1").encode("utf-8")[:300]
            payload = payload.decode("utf-8", "ignore").encode("utf-8")
        if opcode in (OP_TEXT, OP_CONTINUATION):
            opcode = OP_BINARY  # keep the stream free of text-state checks here
        sent.append((opcode, fin, payload))
        data += encode_frame(opcode, payload, fin=fin, mask=masked)
    got = decode_all(data, expect_masked=masked, chunk=chunk)
    assert [(f.opcode, f.fin, f.payload) for f in got] == sent


# -- protocol errors ---------------------------------------------------------------------


class TestProtocolErrors:
    @pytest.mark.parametrize("bits", [0x40, 0x20, 0x10, 0x70])
    def test_reserved_bits_without_extension(self, bits):
        err = decode_error(bytes([0x82 | bits, 0x00]), expect_masked=False)
        assert err.code == 1002
        assert "reserved" in str(err)

    def test_rsv1_allowed_when_negotiated(self):
        (frame,) = decode_all(bytes([0xC2, 0x01, 0x00]), expect_masked=False, rsv_allowed=RSV1)
        assert frame.rsv1 is True
        err = decode_error(bytes([0xA2, 0x00]), expect_masked=False, rsv_allowed=RSV1)
        assert err.code == 1002

    def test_rsv1_on_control_frame_even_when_negotiated(self):
        err = decode_error(bytes([0xC9, 0x00]), expect_masked=False, rsv_allowed=RSV1)
        assert err.code == 1002

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_reserved_opcodes(self, opcode):
        err = decode_error(bytes([0x80 | opcode, 0x00]), expect_masked=False)
        assert err.code == 1002
        assert str(opcode) in str(err)
        assert type(err) is gws.ProtocolError

    @pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
    def test_fragmented_control_frame(self, opcode):
        err = decode_error(bytes([opcode, 0x00]), expect_masked=False)
        assert err.code == 1002
        assert "fragmented" in str(err)

    @pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
    def test_oversized_control_frame_refused_on_its_header(self, opcode):
        # 126 bytes declared, none of them sent yet
        err = decode_error(bytes([0x80 | opcode, 126, 0x00, 126]), expect_masked=False)
        assert err.code == 1002
        assert "125" in str(err)

    def test_control_frame_of_125_bytes_is_fine(self):
        (frame,) = decode_all(encode_frame(OP_PING, bytes(125), mask=False), expect_masked=False)
        assert frame.len == 125

    def test_length_with_most_significant_bit(self):
        data = bytes([0x82, 0x7F]) + struct.pack("!Q", 1 << 63)
        err = decode_error(data, expect_masked=False)
        assert err.code == 1002
        err = decode_error(bytes([0x82, 0x7F]) + b"\xff" * 8, expect_masked=False, max_size=10)
        assert err.code == 1002

    def test_masked_frame_from_server(self):
        err = decode_error(RFC_MASKED_HELLO, expect_masked=False)
        assert err.code == 1002
        assert "masked" in str(err)

    def test_unmasked_frame_from_client(self):
        err = decode_error(RFC_UNMASKED_HELLO, expect_masked=True)
        assert err.code == 1002
        assert "masked" in str(err)

    def test_declared_length_over_max_size_before_payload(self):
        decoder = FrameDecoder(expect_masked=False, max_size=1000)
        decoder.feed(bytes([0x82, 126]) + struct.pack("!H", 1001))  # header only
        with pytest.raises(gws.MessageTooBig) as info:
            decoder.next_frame()
        assert info.value.code == 1009
        assert isinstance(info.value, gws.ProtocolError)

    def test_64bit_length_over_max_size(self):
        decoder = FrameDecoder(expect_masked=True, max_size=1 << 20)
        decoder.feed(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 40))
        with pytest.raises(gws.MessageTooBig):
            decoder.next_frame()

    def test_length_equal_to_max_size_is_fine(self):
        data = encode_frame(OP_BINARY, bytes(1000), mask=False)
        (frame,) = decode_all(data, expect_masked=False, max_size=1000)
        assert frame.len == 1000


# -- close payloads -----------------------------------------------------------------------


class TestClosePayload:
    def test_encode(self):
        assert encode_close_payload(1000, "bye") == b"\x03\xe8bye"
        assert encode_close_payload(4000) == b"\x0f\xa0"
        assert encode_close_payload(None) == b""
        assert encode_close_payload(1001, "é") == b"\x03\xe9\xc3\xa9"

    def test_encode_refuses(self):
        with pytest.raises(ValueError):
            encode_close_payload(None, "reason without code")
        with pytest.raises(ValueError):
            encode_close_payload(1000, "x" * 124)
        encode_close_payload(1000, "x" * 123)
        for code in (999, 1004, 1005, 1006, 1015, 5000):
            with pytest.raises(ValueError):
                encode_close_payload(code)

    def test_parse(self):
        assert parse_close_payload(b"") == (None, "")
        assert parse_close_payload(b"\x03\xe8") == (1000, "")
        assert parse_close_payload(b"\x0f\xa1" + "ça va".encode()) == (4001, "ça va")

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
    def test_invalid_codes_rejected(self, code):
        with pytest.raises(gws.ProtocolError) as info:
            parse_close_payload(struct.pack("!H", code))
        assert info.value.code == 1002
        assert not is_valid_close_code(code)

    @pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4999])
    def test_valid_codes(self, code):
        assert is_valid_close_code(code)
        assert parse_close_payload(struct.pack("!H", code)) == (code, "")

    def test_one_byte_payload(self):
        with pytest.raises(gws.ProtocolError) as info:
            parse_close_payload(b"\x03")
        assert info.value.code == 1002

    def test_non_utf8_reason(self):
        with pytest.raises(gws.ProtocolError) as info:
            parse_close_payload(b"\x03\xe8\xff\xfe")
        assert info.value.code == 1007


# -- Message ------------------------------------------------------------------------------


class TestMessage:
    def test_defaults_are_the_seeds(self):
        msg = Message()
        assert (msg.fin, msg.rsv1, msg.rsv2, msg.rsv3) == (True, False, False, False)
        assert msg.opcode == OP_BINARY and msg.mask is False and msg.payload == b""
        assert msg.len == 0

    def test_len_is_utf8_bytes(self):
        assert Message(opcode=OP_TEXT, payload="héllo").len == 6
        assert Message(payload=b"abc").len == 3

    def test_equality_and_repr(self):
        assert Message(payload=b"a") == Message(payload=b"a")
        assert Message(payload=b"a") != Message(payload=b"b")
        assert Message(payload=b"a") != Message(payload=b"a", fin=False)
        assert "len=3" in repr(Message(payload=b"abc"))
        assert Message().is_binary and Message(opcode=OP_TEXT).is_text


# -- the optional C accelerator and the pure-Python fallback ------------------


def test_speedups_are_built_where_a_compiler_exists() -> None:
    """CI has gcc: the C masking must be in use there, not silently missing."""
    import shutil

    if not shutil.which("cc") and not shutil.which("gcc"):
        pytest.skip("no C compiler: gws installs with pure-Python masking")
    from gws import _speedups  # noqa: F401 - must import

    if os.environ.get("GWS_NO_SPEEDUPS"):
        assert frames.apply_mask is frames.py_apply_mask
        assert frames.frame_bytes is frames.py_frame_bytes
    else:
        assert frames.apply_mask is not frames.py_apply_mask
        assert frames.frame_bytes is not frames.py_frame_bytes


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 125, 4096, 65537])
def test_c_and_python_masking_agree(n: int) -> None:
    _speedups = pytest.importorskip("gws._speedups")
    data = os.urandom(n)
    key = os.urandom(4)
    assert _speedups.apply_mask(data, key) == frames.py_apply_mask(data, key)
    assert _speedups.apply_mask(bytearray(data), key) == frames.py_apply_mask(data, key)
    assert _speedups.apply_mask(memoryview(data), key) == frames.py_apply_mask(data, key)
    assert frames.py_apply_mask(frames.py_apply_mask(data, key), key) == data


def test_c_masking_rejects_a_bad_key() -> None:
    _speedups = pytest.importorskip("gws._speedups")
    with pytest.raises(ValueError):
        _speedups.apply_mask(b"abc", b"123")


@pytest.mark.parametrize("size", [5, 4095, 4096, 70000])
def test_codec_round_trip_with_pure_python_masking(monkeypatch, size: int) -> None:
    monkeypatch.setattr(frames, "apply_mask", frames.py_apply_mask)
    payload = os.urandom(size)
    key = b"\x37\xfa\x21\x3d"
    wire = frames.encode_frame(2, payload, mask=True, mask_key=key)
    assert wire[-size:] == frames.py_apply_mask(payload, key)
    decoder = frames.FrameDecoder(expect_masked=True)
    decoder.feed(wire)
    frame = decoder.next_frame()
    assert frame is not None and frame.payload == payload and frame.mask


# -- the receive path: parse_frame, and large payloads received in place ------------

LENGTHS = [0, 1, 125, 126, 65535, 65536, 1 << 20]


def sample(n: int) -> bytes:
    return bytes((i * 7 + (i >> 8)) % 251 for i in range(n))


@pytest.mark.usefixtures("receive_impl")
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("n", LENGTHS)
def test_parse_frame_decodes_whole_frames_of_every_length_class(n, masked) -> None:
    payload = sample(n)
    text = ("é" * n)[: n // 2]
    for opcode, body, expect in ((OP_BINARY, payload, payload), (OP_TEXT, text.encode(), text)):
        wire = encode_frame(opcode, body, mask=masked, mask_key=KEY)
        trailer = b"\x82\x00"
        got = frames.parse_frame(memoryview(wire + trailer), masked, -1)
        assert got == (opcode, expect, len(wire))
        assert type(got[1]) is type(expect)
        assert frames.parse_frame(wire, masked, len(body)) == (opcode, expect, len(wire))


@pytest.mark.usefixtures("receive_impl")
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_parse_frame_leaves_every_prefix_to_the_decoder(masked) -> None:
    for n in (0, 5, 125, 126, 300):
        wire = encode_frame(OP_BINARY, sample(n), mask=masked, mask_key=KEY)
        for cut in range(len(wire)):
            assert frames.parse_frame(wire[:cut], masked, -1) is None


@pytest.mark.parametrize(
    "wire, masked, max_size",
    [
        (encode_frame(OP_PING, b"hi", mask=False), False, -1),  # control frame
        (encode_frame(OP_CLOSE, b"\x03\xe8", mask=False), False, -1),
        (encode_frame(OP_TEXT, b"a", fin=False, mask=False), False, -1),  # fragment
        (encode_frame(OP_CONTINUATION, b"a", mask=False), False, -1),
        (encode_frame(OP_BINARY, b"a", rsv1=True, mask=False), False, -1),  # compressed
        (encode_frame(OP_BINARY, b"a", rsv2=True, mask=False), False, -1),
        (encode_frame(OP_BINARY, b"a", rsv3=True, mask=False), False, -1),
        (bytes([0x83, 0x00]), False, -1),  # reserved opcode
        (encode_frame(OP_BINARY, b"a", mask=True), False, -1),  # masked from a server
        (encode_frame(OP_BINARY, b"a", mask=False), True, -1),  # unmasked from a client
        (encode_frame(OP_BINARY, b"abc", mask=False), False, 2),  # over max_size
        (encode_frame(OP_TEXT, b"\xff\xfe", mask=False), False, -1),  # invalid UTF-8
        (encode_frame(OP_TEXT, b"\xe2\x82", mask=False), False, -1),  # truncated UTF-8
        (bytes([0x82, 0x7F]) + struct.pack("!Q", 1 << 63), False, -1),  # MSB set
    ],
)
@pytest.mark.usefixtures("receive_impl")
def test_parse_frame_leaves_everything_unusual_to_the_decoder(wire, masked, max_size):
    assert frames.parse_frame(wire + b"\x00" * 16, masked, max_size) is None


def feed_by_reserve(decoder: FrameDecoder, data: bytes, step: int) -> list:
    """What Connection does: receive into reserve()'s view when there is one,
    else feed(); ``step`` bytes at most per receive."""
    out = []
    pos = 0
    while pos < len(data):
        view = decoder.reserve()
        if view is None:
            decoder.feed(data[pos : pos + step])
            pos = min(pos + step, len(data))
        else:
            n = min(step, len(view), len(data) - pos)
            assert n > 0
            view[:n] = data[pos : pos + n]
            view.release()
            decoder.commit(n)
            pos += n
        while True:
            frame = decoder.next_frame()
            if frame is None:
                break
            out.append(frame)
    return out


@pytest.mark.usefixtures("receive_impl")
@pytest.mark.parametrize("via", ["feed", "reserve"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("n", LENGTHS)
def test_decoder_is_byte_exact_for_every_length_class_and_split(via, masked, n):
    payload = sample(n)
    wire = encode_frame(OP_BINARY, payload, mask=masked, mask_key=KEY)
    wire += encode_frame(OP_TEXT, b"after", mask=masked, mask_key=KEY)
    # Splits: inside the header, just after it, mid-payload, just before the end.
    cuts = sorted({1, 2, 3, 9, 10, 13, 14, 15, len(wire) // 3, len(wire) - 8, len(wire) - 1})
    for cut in cuts:
        decoder = FrameDecoder(expect_masked=masked)
        out = []
        for piece in (wire[:cut], wire[cut:]):
            out += feed_by_reserve(decoder, piece, len(piece)) if via == "reserve" else []
            if via == "feed":
                decoder.feed(piece)
                while (frame := decoder.next_frame()) is not None:
                    out.append(frame)
        assert [(f.opcode, f.payload, f.mask, f.fin) for f in out] == [
            (OP_BINARY, payload, masked, True),
            (OP_TEXT, b"after", masked, True),
        ], cut
        assert decoder.buffered == 0 and decoder.reserve() is None


@pytest.mark.usefixtures("receive_impl")
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_small_frames_split_at_every_byte_boundary(masked) -> None:
    for n in (0, 1, 125, 126, 200):
        payload = sample(n)
        wire = encode_frame(OP_BINARY, payload, mask=masked, mask_key=KEY)
        for cut in range(1, len(wire)):
            decoder = FrameDecoder(expect_masked=masked)
            decoder.feed(wire[:cut])
            assert decoder.next_frame() is None
            decoder.feed(wire[cut:])
            frame = decoder.next_frame()
            assert frame is not None and frame.payload == payload, (n, cut)
            assert decoder.buffered == 0


@pytest.mark.usefixtures("receive_impl")
@pytest.mark.parametrize("step", [1000, 4096, 65536, 300_000])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_large_frame_received_in_place_in_many_pieces(masked, step) -> None:
    payload = sample(1 << 20)
    wire = encode_frame(OP_BINARY, payload, mask=masked, mask_key=KEY) * 2
    decoder = FrameDecoder(expect_masked=masked)
    out = feed_by_reserve(decoder, wire, step)
    assert [f.payload for f in out] == [payload, payload]
    assert all(type(f.payload) is bytes for f in out)


@pytest.mark.usefixtures("receive_impl")
def test_large_frame_buffered_counts_every_byte_received() -> None:
    payload = sample(100_000)
    wire = encode_frame(OP_BINARY, payload, mask=False)
    decoder = FrameDecoder(expect_masked=False)
    decoder.feed(wire[:50_000])
    assert decoder.next_frame() is None
    assert decoder.buffered == 50_000 and decoder.wanted == len(wire)
    assert decoder.partial_opcode == OP_BINARY
    view = decoder.reserve()
    assert view is not None and len(view) == len(wire) - 50_000
    view[:10] = wire[50_000:50_010]
    view.release()
    decoder.commit(10)
    assert decoder.buffered == 50_010 and decoder.next_frame() is None
    decoder.feed(wire[50_010:] + b"\x82")  # and the first byte of the next frame
    assert decoder.buffered == len(wire) + 1
    frame = decoder.next_frame()
    assert frame is not None and frame.payload == payload
    assert decoder.buffered == 1 and decoder.partial_opcode == -1


@pytest.mark.usefixtures("receive_impl")
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_take_partial_reads_a_large_frame_as_it_arrives(masked) -> None:
    text = ("añ€🙂" * 20_000).encode()
    wire = encode_frame(OP_TEXT, text, mask=masked, mask_key=KEY)
    decoder = FrameDecoder(expect_masked=masked)
    seen = b""
    for start in range(0, len(wire), 7777):
        view = decoder.reserve()
        piece = wire[start : start + 7777]
        if view is None:
            decoder.feed(piece)
        else:
            view[: len(piece)] = piece
            view.release()
            decoder.commit(len(piece))
        frame = decoder.next_frame()
        if frame is None:
            seen += decoder.take_partial()
    assert frame is not None and frame.payload == text
    assert text.startswith(seen) and len(seen) > len(text) - 7777


@pytest.mark.usefixtures("receive_impl")
def test_large_frame_header_is_checked_before_any_buffer_is_taken() -> None:
    wire = encode_frame(OP_BINARY, sample(100_000), mask=False)
    decoder = FrameDecoder(expect_masked=False, max_size=99_999)
    decoder.feed(wire[:40_000])  # the invalid header is reported, not buffered apart
    assert decoder.reserve() is None
    with pytest.raises(gws.MessageTooBig):
        decoder.next_frame()
    decoder = FrameDecoder(expect_masked=True)  # a server frame on the server side
    decoder.feed(wire[:40_000])
    assert decoder.reserve() is None
    with pytest.raises(gws.ProtocolError, match="not masked"):
        decoder.next_frame()


def test_c_payload_buffer_is_handed_over_without_a_copy_only_when_unshared() -> None:
    speedups = pytest.importorskip("gws._speedups")
    buf = speedups.PayloadBuffer(8)
    assert len(buf) == 8
    view = memoryview(buf)
    view[:] = b"abcdefgh"
    copy = speedups.take_payload(buf, None)  # a view is still alive: a copy
    assert copy == b"abcdefgh"
    view[:4] = b"ABCD"  # the copy is not shared with the buffer
    assert copy == b"abcdefgh"
    view.release()
    taken = speedups.take_payload(buf, KEY)
    assert taken == apply_mask(b"ABCDefgh", KEY)
    assert len(buf) == 0
    with pytest.raises(BufferError):
        memoryview(buf)
    with pytest.raises(ValueError):
        speedups.take_payload(speedups.PayloadBuffer(1), b"abc")
    assert speedups.take_payload(bytearray(b"xy"), None) == b"xy"


# -- frame_bytes: whole frames in one allocation (C) against the pure Python ---------

# Strings of each PEP 393 kind, with non-ASCII characters of every UTF-8 width.
STR_KINDS = {
    "ascii": "Hello, world! " * 3,
    "latin1": "héllo wörld naïve café \xff\x80 ",
    "bmp": "✓ok 日本 ߿ࠀ\uffff héllo ",
    "astral": "😀 𐀀 \U0010ffff 日本 é x",
}
LENGTHS = [0, 125, 126, 65535, 65536, 1 << 20]


def speedups():
    return pytest.importorskip("gws._speedups")


def text_of(kind: str, n: int) -> str:
    """A str of ``kind`` whose UTF-8 is exactly ``n`` bytes (padded with ASCII)."""
    base = STR_KINDS[kind]
    parts, size = [], 0
    while True:
        for ch in base:
            width = len(ch.encode("utf-8"))
            if size + width > n:
                return "".join(parts) + "x" * (n - size)
            parts.append(ch)
            size += width


def expected_frame(b0: int, data: bytes, key) -> bytes:
    """The RFC's definition, byte by byte."""
    n = len(data)
    mbit = 0x80 if key is not None else 0
    if n < 126:
        header = bytes([b0, mbit | n])
    elif n < 65536:
        header = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        header = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if key is None:
        return header + data
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


class TestFrameBytes:
    def test_rfc_examples(self):
        for build in (frames.py_frame_bytes, speedups().frame_bytes):
            assert build(0x81, b"Hello", None) == RFC_UNMASKED_HELLO
            assert build(0x81, "Hello", None) == RFC_UNMASKED_HELLO
            assert build(0x81, b"Hello", KEY) == RFC_MASKED_HELLO
            assert build(0x81, "Hello", KEY) == RFC_MASKED_HELLO
            assert build(0x8A, bytearray(b"Hello"), KEY) == RFC_MASKED_PONG
            assert build(0x89, memoryview(b"Hello"), None) == RFC_PING
            assert build(0x01, "Hel", None) + build(0x80, "lo", None) == b"".join(RFC_FRAGMENTED)
            payload = bytes(range(256))
            assert build(0x82, payload, None) == bytes([0x82, 0x7E, 0x01, 0x00]) + payload

    @pytest.mark.parametrize("n", LENGTHS)
    @pytest.mark.parametrize("key", [None, KEY, b"\x00\x00\x00\x00", b"\xff\xfe\xfd\xfc"])
    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_bytes_of_every_length_class(self, n, key, kind):
        data = os.urandom(n)
        b0 = 0x82
        want = frames.frame_header(b0, n, key is not None) + (key or b"")
        want += frames.py_apply_mask(data, key) if key is not None else data
        assert speedups().frame_bytes(b0, kind(data), key) == want
        assert frames.py_frame_bytes(b0, kind(data), key) == want
        if n <= 65536:
            assert want == expected_frame(b0, data, key)
        (frame,) = decode_all(want, expect_masked=key is not None)
        assert frame.payload == data

    @pytest.mark.parametrize("n", LENGTHS)
    @pytest.mark.parametrize("kind", sorted(STR_KINDS))
    @pytest.mark.parametrize("key", [None, KEY])
    def test_str_of_every_kind_and_length_class(self, n, kind, key):
        text = text_of(kind, n)
        data = text.encode("utf-8")
        assert len(data) == n
        want = frames.py_frame_bytes(0x81, data, key)
        assert speedups().frame_bytes(0x81, text, key) == want
        assert frames.py_frame_bytes(0x81, text, key) == want
        (frame,) = decode_all(want, expect_masked=key is not None)
        assert frame.payload == data

    @pytest.mark.parametrize("length", range(0, 20))
    @pytest.mark.parametrize("ch", ["é", "\x80", "\xff", "߿", "ࠀ", "日", "\uffff", "😀"])
    def test_a_wide_character_at_every_position_of_a_word(self, length, ch):
        """The C encoder goes 8 (latin-1) or 4 (BMP) characters at a time:
        a wide character at each offset, and at the very end of the str."""
        for pos in range(length + 1):
            text = "a" * pos + ch + "b" * (length - pos)
            assert speedups().frame_bytes(0x81, text, KEY) == frames.py_frame_bytes(
                0x81, text.encode("utf-8"), KEY
            ), (pos, length)

    @pytest.mark.parametrize(
        "text", ["\ud800", "a\udfff", "日本\ud83d", "😀\udc00x", "x" * 300 + "\udbff", "é\ud800"]
    )
    def test_lone_surrogates_raise_as_str_encode_does(self, text):
        with pytest.raises(UnicodeEncodeError) as want:
            text.encode("utf-8")
        for build in (frames.py_frame_bytes, speedups().frame_bytes):
            for key in (None, KEY):
                with pytest.raises(UnicodeEncodeError) as got:
                    build(0x81, text, key)
                assert got.value.args == want.value.args

    def test_bad_arguments(self):
        build = speedups().frame_bytes
        for bad_key in (b"abc", b"abcde", "abcd", bytearray(b"abcd")):
            with pytest.raises(ValueError):
                build(0x82, b"x", bad_key)
        with pytest.raises(ValueError):
            frames.py_frame_bytes(0x82, b"x", b"abc")
        for bad_b0 in (-1, 256):
            with pytest.raises(ValueError):
                build(bad_b0, b"x", None)
        with pytest.raises(TypeError):
            build(0x82, 3, None)
        with pytest.raises(TypeError):
            build(0x82, b"x")  # type: ignore[call-arg]

    def test_encode_frame_builds_the_first_byte(self):
        assert frames.first_byte(OP_TEXT) == 0x81
        assert frames.first_byte(OP_CONTINUATION, fin=False) == 0x00
        assert frames.first_byte(OP_BINARY, True, True, True, True) == 0xF2
        for fin in (False, True):
            for bits in range(8):
                rsv = [bool(bits & 4), bool(bits & 2), bool(bits & 1)]
                data = encode_frame(
                    OP_BINARY, b"x", fin=fin, rsv1=rsv[0], rsv2=rsv[1], rsv3=rsv[2], mask=False
                )
                assert data[0] == (0x80 if fin else 0) | (bits << 4) | OP_BINARY

    @settings(max_examples=300, deadline=None)
    @given(
        payload=st.one_of(st.binary(max_size=300), st.text(max_size=200)),
        key=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
        b0=st.integers(0, 255),
    )
    def test_c_and_python_agree(self, payload, key, b0):
        assert speedups().frame_bytes(b0, payload, key) == frames.py_frame_bytes(b0, payload, key)

    @settings(max_examples=200, deadline=None)
    @given(text=st.text(st.characters(blacklist_categories=()), max_size=60))
    def test_c_and_python_agree_on_any_code_point(self, text):
        """Surrogates included: both raise the same error, or give the same bytes."""
        results = []
        for build in (frames.py_frame_bytes, speedups().frame_bytes):
            try:
                results.append(build(0x81, text, KEY))
            except UnicodeEncodeError as exc:
                results.append(exc.args)
        assert results[0] == results[1]
