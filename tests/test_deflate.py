"""deflate.py: permessage-deflate (RFC 7692) negotiation and compression."""

from __future__ import annotations

import os
import zlib

import pytest

import gws
from gws.deflate import (
    DeflateParams,
    PerMessageDeflate,
    accept_response,
    make_offer,
    negotiate,
    parse_extensions,
)

# -- offers ------------------------------------------------------------------------------


class TestOffer:
    def test_default_deflate(self):
        assert make_offer("deflate") == (
            "permessage-deflate; client_max_window_bits",
            {"client_max_window_bits": True},
        )
        assert make_offer(True) == make_offer("deflate")

    @pytest.mark.parametrize("value", [None, False])
    def test_no_compression(self, value):
        assert make_offer(value) is None

    def test_dict_offers_exactly_its_params(self):
        header, offer = make_offer(
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 10,
                "client_max_window_bits": 12,
            }
        )
        assert header == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12"
        )
        assert offer == {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 10,
            "client_max_window_bits": 12,
        }

    def test_empty_dict_offers_the_bare_extension(self):
        assert make_offer({}) == ("permessage-deflate", {})

    def test_false_flags_are_left_out(self):
        header, offer = make_offer(
            {"server_no_context_takeover": False, "client_max_window_bits": True}
        )
        assert header == "permessage-deflate; client_max_window_bits"
        assert offer == {"client_max_window_bits": True}

    @pytest.mark.parametrize(
        "spec",
        [
            "gzip",
            42,
            {"bogus": True},
            {"server_max_window_bits": 7},
            {"server_max_window_bits": 16},
            {"client_max_window_bits": 16},
            {"server_max_window_bits": True},  # only client_max_window_bits may go without value
            {"server_max_window_bits": "10"},
            {"server_no_context_takeover": 1},
            {"client_no_context_takeover": "yes"},
        ],
    )
    def test_bad_specs(self, spec):
        with pytest.raises(ValueError):
            make_offer(spec)


# -- the server's answer ---------------------------------------------------------------------


DEFAULT_OFFER = make_offer("deflate")[1]


def answer(values, offer=DEFAULT_OFFER):
    return accept_response(offer, values)


class TestAcceptResponse:
    def test_declined(self):
        assert answer([]) is None
        assert answer([""]) is None

    def test_plain_accept(self):
        assert answer(["permessage-deflate"]) == DeflateParams()

    def test_all_parameters(self):
        params = answer(
            [
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                "server_max_window_bits=10; client_max_window_bits=9"
            ]
        )
        assert params == DeflateParams(True, True, 10, 9)

    def test_quoted_value(self):
        assert (
            answer(['permessage-deflate; client_max_window_bits="12"']).client_max_window_bits == 12
        )

    def test_case_insensitive_extension_name(self):
        assert answer(["Permessage-Deflate"]) == DeflateParams()

    def test_server_window_within_offer(self):
        offer = make_offer({"server_max_window_bits": 12})[1]
        assert (
            answer(["permessage-deflate; server_max_window_bits=12"], offer).server_max_window_bits
            == 12
        )
        assert (
            answer(["permessage-deflate; server_max_window_bits=9"], offer).server_max_window_bits
            == 9
        )

    def test_client_window_capped_by_our_offer(self):
        offer = make_offer({"client_max_window_bits": 11})[1]
        assert answer(["permessage-deflate"], offer).client_max_window_bits == 11
        assert (
            answer(["permessage-deflate; client_max_window_bits=10"], offer).client_max_window_bits
            == 10
        )

    def test_smallest_window_accepted(self):
        params = answer(["permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"])
        assert (params.server_max_window_bits, params.client_max_window_bits) == (8, 8)

    def test_client_no_context_takeover_we_asked_for_applies(self):
        offer = make_offer({"client_no_context_takeover": True})[1]
        assert answer(["permessage-deflate"], offer).client_no_context_takeover is True

    @pytest.mark.parametrize(
        ("values", "offer"),
        [
            (["permessage-deflate"], None),  # nothing offered
            (["x-webkit-deflate-frame"], DEFAULT_OFFER),  # unoffered extension
            (["permessage-deflate, permessage-deflate"], DEFAULT_OFFER),
            (["permessage-deflate", "x-custom"], DEFAULT_OFFER),
            (["permessage-deflate; foo"], DEFAULT_OFFER),  # unknown parameter
            (["permessage-deflate; foo=1"], DEFAULT_OFFER),
            (
                ["permessage-deflate; server_max_window_bits=13"],
                make_offer({"server_max_window_bits": 12})[1],
            ),
            (["permessage-deflate"], make_offer({"server_max_window_bits": 12})[1]),
            (["permessage-deflate"], make_offer({"server_no_context_takeover": True})[1]),
            (["permessage-deflate; client_max_window_bits=10"], {}),  # not offered
            (["permessage-deflate; client_max_window_bits"], DEFAULT_OFFER),  # needs a value
            (
                ["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
                DEFAULT_OFFER,
            ),
            (
                ["permessage-deflate; client_max_window_bits=10; client_max_window_bits=10"],
                DEFAULT_OFFER,
            ),
            (["permessage-deflate; server_max_window_bits=7"], DEFAULT_OFFER),
            (["permessage-deflate; server_max_window_bits=16"], DEFAULT_OFFER),
            (["permessage-deflate; server_max_window_bits=abc"], DEFAULT_OFFER),
            (["permessage-deflate; server_max_window_bits"], DEFAULT_OFFER),
            (["permessage-deflate; server_max_window_bits=-9"], DEFAULT_OFFER),
            (["permessage-deflate; client_max_window_bits=20"], DEFAULT_OFFER),
            (["permessage-deflate; server_no_context_takeover=1"], DEFAULT_OFFER),
            (["permessage-deflate; ; server_no_context_takeover"], DEFAULT_OFFER),
            (["; server_no_context_takeover"], DEFAULT_OFFER),
        ],
    )
    def test_unacceptable(self, values, offer):
        with pytest.raises(gws.HandshakeError):
            accept_response(offer, values)


# -- the server's choice -----------------------------------------------------------------------


class TestNegotiate:
    def test_default_client_offer(self):
        params = negotiate(["permessage-deflate; client_max_window_bits"])
        assert params == DeflateParams()
        assert params.header() == "permessage-deflate"

    def test_parameters_echoed(self):
        offer = (
            "permessage-deflate; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12"
        )
        params = negotiate([offer])
        assert params == DeflateParams(False, True, 10, 12)
        assert params.header() == offer

    def test_first_acceptable_offer_wins(self):
        params = negotiate(
            ["x-foo, permessage-deflate; bogus", "permessage-deflate; server_no_context_takeover"]
        )
        assert params == DeflateParams(server_no_context_takeover=True)

    @pytest.mark.parametrize(
        "values",
        [
            [],
            ["x-webkit-deflate-frame"],
            ["permessage-deflate; server_max_window_bits=7"],
            ["permessage-deflate; server_max_window_bits"],
            ["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            ["permessage-deflate; server_no_context_takeover=yes"],
            ["permessage-deflate; unknown"],
            ["; broken"],
        ],
    )
    def test_declined(self, values):
        assert negotiate(values) is None

    @pytest.mark.parametrize(
        "spec",
        [
            "deflate",
            {},
            {"server_no_context_takeover": True},
            {"client_no_context_takeover": True, "client_max_window_bits": 9},
            {"server_max_window_bits": 8, "client_max_window_bits": True},
        ],
    )
    def test_client_accepts_what_the_server_negotiates(self, spec):
        header, offer = make_offer(spec)
        params = negotiate([header])
        assert params is not None
        assert accept_response(offer, [params.header()]) == params


def test_parse_extensions():
    assert parse_extensions(["a; x=1; y, b", 'c; z="q"']) == [
        ("a", [("x", "1"), ("y", None)]),
        ("b", []),
        ("c", [("z", "q")]),
    ]
    with pytest.raises(ValueError):
        parse_extensions(["a;;b"])


# -- compression -------------------------------------------------------------------------------


def pair(params: DeflateParams):
    return PerMessageDeflate(params, is_client=True), PerMessageDeflate(params, is_client=False)


TEXTS = [
    b"Hello There!" * 50,
    b"",
    os.urandom(3000),
    b"the quick brown fox jumps over the lazy dog " * 400,
    bytes(100_000),
]


class TestCompression:
    @pytest.mark.parametrize("no_takeover", [False, True])
    def test_round_trip_both_directions(self, no_takeover):
        params = DeflateParams(no_takeover, no_takeover)
        client, server = pair(params)
        for data in TEXTS * 2:
            assert server.decompress(client.compress(data), True, None) == data
            assert client.decompress(server.compress(data), True, None) == data

    def test_context_takeover_shrinks_repeats(self):
        client, _ = pair(DeflateParams())
        msg = os.urandom(500).hex().encode()
        first, second = client.compress(msg), client.compress(msg)
        assert len(second) < len(first) / 4

    def test_no_context_takeover_compresses_each_message_alone(self):
        client, server = pair(DeflateParams(client_no_context_takeover=True))
        msg = os.urandom(500).hex().encode()
        first, second = client.compress(msg), client.compress(msg)
        assert first == second
        # each decompresses with a fresh inflater
        fresh = PerMessageDeflate(DeflateParams(client_no_context_takeover=True), is_client=False)
        assert fresh.decompress(second, True, None) == msg
        assert server.decompress(first, True, None) == msg

    def test_rfc7692_example_hello(self):
        # RFC 7692 section 7.2.3.1: "Hello" compressed in one message
        _, server = pair(DeflateParams())
        assert server.decompress(bytes.fromhex("f248cdc9c90700"), True, None) == b"Hello"
        # section 7.2.3.2: the same message again, with context takeover
        assert server.decompress(bytes.fromhex("f200110000"), True, None) == b"Hello"

    def test_trailing_empty_block_removed(self):
        client, _ = pair(DeflateParams())
        assert not client.compress(b"Hello").endswith(b"\x00\x00\xff\xff")

    @pytest.mark.parametrize("bits", range(8, 16))
    def test_window_bits(self, bits):
        params = DeflateParams(False, False, bits, bits)
        client, server = pair(params)
        data = b"".join(os.urandom(40) * 20 + b"-" * (i % 50) for i in range(200))
        for _ in range(3):
            assert server.decompress(client.compress(data), True, None) == data
            assert client.decompress(server.compress(data), True, None) == data

    @pytest.mark.parametrize("bits", range(9, 16))
    def test_our_output_fits_the_negotiated_window(self, bits):
        # a peer whose inflater has exactly the negotiated window must read us
        params = DeflateParams(False, False, 15, bits)
        client = PerMessageDeflate(params, is_client=True)
        peer = zlib.decompressobj(-bits)
        data = (os.urandom(1 << bits) * 3) + b"tail"
        for _ in range(2):
            out = peer.decompress(client.compress(data) + b"\x00\x00\xff\xff")
            assert out == data

    def test_fragmented_message(self):
        client, server = pair(DeflateParams())
        parts = [b"frag-one " * 100, b"frag-two " * 100, b"end"]
        compressed = [client.compress(p, fin=i == len(parts) - 1) for i, p in enumerate(parts)]
        out = b"".join(
            server.decompress(c, i == len(parts) - 1, None) for i, c in enumerate(compressed)
        )
        assert out == b"".join(parts)

    def test_bomb_bounded_by_limit(self):
        _, server = pair(DeflateParams())
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = comp.compress(bytes(10 * 1024 * 1024)) + comp.flush(zlib.Z_SYNC_FLUSH)
        bomb = bomb[:-4]  # RFC 7692 7.2.1: drop the empty block's tail
        assert len(bomb) < 20_000
        with pytest.raises(gws.MessageTooBig) as info:
            server.decompress(bomb, True, 1000)
        assert info.value.code == 1009

    def test_limit_is_inclusive(self):
        client, server = pair(DeflateParams())
        assert server.decompress(client.compress(b"a" * 1000), True, 1000) == b"a" * 1000
        with pytest.raises(gws.MessageTooBig):
            server.decompress(client.compress(b"a" * 1001), True, 1000)

    def test_fragment_limit(self):
        client, server = pair(DeflateParams())
        first = client.compress(b"b" * 600, fin=False)
        assert server.decompress(first, False, 1000) == b"b" * 600
        second = client.compress(b"b" * 600, fin=True)
        with pytest.raises(gws.MessageTooBig):
            server.decompress(second, True, 400)

    def test_invalid_compressed_data(self):
        _, server = pair(DeflateParams())
        with pytest.raises(gws.ProtocolError) as info:
            server.decompress(b"\xff\xff\xff\xff garbage", True, None)
        assert info.value.code == 1007


class TestOwnWindow:
    """Our compressor's window is capped (memory) but never above the agreement."""

    @pytest.mark.parametrize(("negotiated", "used"), [(15, 12), (12, 12), (10, 10), (8, 9)])
    def test_window_is_the_smaller_of_the_cap_and_the_agreement(self, negotiated, used):
        params = DeflateParams(client_max_window_bits=negotiated)
        deflate = PerMessageDeflate(params, is_client=True)
        assert deflate._out_bits == -used
        data = bytes(range(256)) * 64 + b"tail" * 1000  # matches 16 KiB apart
        peer = PerMessageDeflate(params, is_client=False)
        # The peer inflates with exactly the negotiated window: what we send fits it.
        assert peer.decompress(deflate.compress(data), True, None) == data

    def test_the_cap_is_a_parameter(self):
        deflate = PerMessageDeflate(DeflateParams(), is_client=False, window_bits=15)
        assert deflate._out_bits == -15
