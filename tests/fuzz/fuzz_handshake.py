"""atheris harness: the sans-I/O opening handshake on arbitrary bytes.

parse_response/check_response/accept_response (client side) and
parse_request/check_request/negotiate (server side) may raise only
gws.HandshakeError; errors never carry a Set-Cookie value.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401 - puts the checkout on sys.path
import atheris

with atheris.instrument_imports():
    from gws.deflate import accept_response, negotiate
    from gws.errors import HandshakeError
    from gws.handshake import (
        check_request,
        check_response,
        find_head_end,
        header_values,
        parse_request,
        parse_response,
    )

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
OFFERS = [
    None,
    {"client_max_window_bits": True},
    {"server_max_window_bits": 10, "server_no_context_takeover": True},
]


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    fdp = atheris.FuzzedDataProvider(data)
    offer = OFFERS[fdp.ConsumeIntInRange(0, len(OFFERS) - 1)]
    head = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        end = find_head_end(head, 4096)
    except HandshakeError:
        end = -1
    try:
        _version, code, reason, headers = parse_response(head if end == -1 else head[:end])
        check_response(code, reason, headers, KEY, ("chat",))
        accept_response(offer, header_values(headers, "Sec-WebSocket-Extensions"))
    except HandshakeError as exc:
        for name, value in exc.headers:
            if name.lower() == "set-cookie" and value != "<redacted>":
                raise AssertionError("Set-Cookie value in a HandshakeError") from None
    try:
        method, _target, headers = parse_request(head)
        check_request(method, headers)
        negotiate(header_values(headers, "Sec-WebSocket-Extensions"))
    except HandshakeError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
