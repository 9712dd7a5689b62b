"""permessage-deflate (RFC 7692): negotiation and per-message (de)compression.

Sans-I/O: :func:`make_offer` / :func:`accept_response` on the client,
:func:`negotiate` on the server, and :class:`PerMessageDeflate` compresses and
decompresses message payloads, bounded by ``max_size``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import HandshakeError, MessageTooBig, ProtocolError

__all__ = [
    "EXTENSION",
    "DeflateParams",
    "PerMessageDeflate",
    "parse_extensions",
    "stored_blocks",
    "make_offer",
    "accept_response",
    "negotiate",
]

EXTENSION = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"
# zlib's deflate state is (1 << (window + 2)) + (1 << (mem_level + 9)) bytes
# plus ~6 KiB: 144 KiB at window 15 / memLevel 5, 30 KiB at 12 / 4. Our own
# window may always be smaller than the negotiated one (the peer's inflater
# only needs distances within its window), and on text and JSON a 4 KiB
# window and memLevel 4 compress within 1 % of 32 KiB / 5 (benchmarks/README.md).
# The inflater must use the peer's window: 32 KiB + 7 KiB at the default 15.
_MEM_LEVEL = 4
DEFAULT_WINDOW_BITS = 12
# After a message that did not shrink, the next 1, 2, 4 ... up to this many
# messages are sent as stored deflate blocks without trying, so
# incompressible traffic costs a compression attempt only now and then.
_MAX_SKIP = 32
_ADAPT_MIN = 256  # smaller messages are always compressed and never count as misses
_STORED_MAX = 65535  # longest stored block (RFC 1951 3.2.4)
_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_BITS = ("server_max_window_bits", "client_max_window_bits")
ParamValue = Union[bool, int]
Offer = Dict[str, ParamValue]


@dataclass(frozen=True)
class DeflateParams:
    """Negotiated permessage-deflate parameters (window bits 8-15)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def header(self) -> str:
        """This agreement as a ``Sec-WebSocket-Extensions`` value."""
        parts = [EXTENSION]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits != 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits != 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


def parse_extensions(values: List[str]) -> List[Tuple[str, List[Tuple[str, Optional[str]]]]]:
    """Parse ``Sec-WebSocket-Extensions`` values into ``[(name, [(param, value)])]``.

    Raises ValueError on syntax it cannot read.
    """
    result: List[Tuple[str, List[Tuple[str, Optional[str]]]]] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            parts = [p.strip() for p in item.split(";")]
            name = parts[0]
            if not name:
                raise ValueError(f"extension without a name in {value!r}")
            params: List[Tuple[str, Optional[str]]] = []
            for part in parts[1:]:
                if not part:
                    raise ValueError(f"empty extension parameter in {value!r}")
                key, eq, val = part.partition("=")
                key = key.strip()
                pval: Optional[str] = None
                if eq:
                    pval = val.strip()
                    if len(pval) >= 2 and pval[0] == pval[-1] == '"':
                        pval = pval[1:-1]
                params.append((key, pval))
            result.append((name, params))
    return result


def _bits(value: Optional[str], name: str) -> int:
    if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
        raise ValueError(f"{name} must be an integer from 8 to 15, got {value!r}")
    return int(value)


def _check_offer(spec: Mapping[str, Any]) -> Offer:
    offer: Offer = {}
    for key, value in spec.items():
        if key in _FLAGS:
            if not isinstance(value, bool):
                raise ValueError(f"compression option {key} must be True or False")
            if value:
                offer[key] = True
        elif key in _BITS:
            if value is None or value is False:
                continue
            if value is True and key == "client_max_window_bits":
                offer[key] = True
            elif isinstance(value, int) and not isinstance(value, bool) and 8 <= value <= 15:
                offer[key] = value
            else:
                raise ValueError(f"compression option {key} must be an int from 8 to 15")
        else:
            raise ValueError(f"unknown compression option {key!r}")
    return offer


def make_offer(compression: Any) -> Optional[Tuple[str, Offer]]:
    """Turn the ``compression`` option into ``(header value, offer)``, or None.

    ``"deflate"`` offers ``client_max_window_bits`` (letting the server pick
    our window); a dict offers exactly its parameters. Raises ValueError.
    """
    if compression is None or compression is False:
        return None
    if compression == "deflate" or compression is True:
        offer: Offer = {"client_max_window_bits": True}
    elif isinstance(compression, Mapping):
        offer = _check_offer(compression)
    else:
        raise ValueError('compression must be "deflate", None or a dict of RFC 7692 parameters')
    parts = [EXTENSION]
    for key, value in offer.items():
        parts.append(key if value is True else f"{key}={value}")
    return "; ".join(parts), offer


def accept_response(offer: Optional[Offer], values: List[str]) -> Optional[DeflateParams]:
    """Check the server's ``Sec-WebSocket-Extensions`` against what we offered.

    Returns the agreed parameters, None when the server declined, and raises
    :class:`HandshakeError` for anything we did not offer or allow.
    """
    try:
        extensions = parse_extensions(values)
    except ValueError as exc:
        raise HandshakeError(f"malformed Sec-WebSocket-Extensions: {exc}") from None
    if not extensions:
        return None
    if offer is None:
        raise HandshakeError(
            f"server accepted extension {extensions[0][0]!r}, which was not offered"
        )
    if len(extensions) > 1 or extensions[0][0].lower() != EXTENSION:
        names = ", ".join(name for name, _ in extensions)
        raise HandshakeError(f"server accepted extensions that were not offered: {names}")
    seen: Dict[str, Optional[str]] = {}
    for key, value in extensions[0][1]:
        if key in seen:
            raise HandshakeError(f"duplicate {key} in permessage-deflate response")
        seen[key] = value
    try:
        for key, value in seen.items():
            if key in _FLAGS and value is not None:
                raise ValueError(f"{key} takes no value")
            if key not in _FLAGS and key not in _BITS:
                raise ValueError(f"unknown parameter {key}")
        server_bits = 15
        if "server_max_window_bits" in seen:
            server_bits = _bits(seen["server_max_window_bits"], "server_max_window_bits")
            asked = offer.get("server_max_window_bits")
            if isinstance(asked, int) and server_bits > asked:
                raise ValueError(
                    f"server_max_window_bits {server_bits} exceeds the offered {asked}"
                )
        elif "server_max_window_bits" in offer:
            raise ValueError("server ignored the server_max_window_bits we required")
        if "server_no_context_takeover" in offer and "server_no_context_takeover" not in seen:
            raise ValueError("server ignored the server_no_context_takeover we required")
        client_bits = 15
        offered_client = offer.get("client_max_window_bits")
        if "client_max_window_bits" in seen:
            if offered_client is None:
                raise ValueError("client_max_window_bits was not offered")
            client_bits = _bits(seen["client_max_window_bits"], "client_max_window_bits")
        if isinstance(offered_client, int) and offered_client is not True:
            client_bits = min(client_bits, offered_client)
    except ValueError as exc:
        raise HandshakeError(f"unacceptable permessage-deflate response: {exc}") from None
    return DeflateParams(
        server_no_context_takeover="server_no_context_takeover" in seen,
        client_no_context_takeover="client_no_context_takeover" in seen
        or "client_no_context_takeover" in offer,
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
    )


def negotiate(values: List[str]) -> Optional[DeflateParams]:
    """Server side: accept the first valid permessage-deflate offer, or None.

    The reply header is ``params.header()``. Offers with unknown or malformed
    parameters are declined, as RFC 7692 section 5 asks.
    """
    try:
        extensions = parse_extensions(values)
    except ValueError:
        return None
    for name, params in extensions:
        if name.lower() != EXTENSION:
            continue
        keys = [k for k, _ in params]
        if len(set(keys)) != len(keys):
            continue
        try:
            got = dict(params)
            server_bits = client_bits = 15
            for key, value in got.items():
                if key in _FLAGS:
                    if value is not None:
                        raise ValueError(key)
                elif key == "server_max_window_bits":
                    server_bits = _bits(value, key)
                elif key == "client_max_window_bits":
                    if value is not None:
                        client_bits = _bits(value, key)
                else:
                    raise ValueError(key)
        except ValueError:
            continue
        return DeflateParams(
            server_no_context_takeover="server_no_context_takeover" in got,
            client_no_context_takeover="client_no_context_takeover" in got,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
        )
    return None


def stored_blocks(data: Union[bytes, bytearray, memoryview]) -> bytes:
    """``data`` as a permessage-deflate payload of stored (uncompressed)
    deflate blocks: a copy, 5 bytes of header per 65,535 bytes.

    The stream is byte-aligned at a message boundary, so each block is a
    0x00 header byte (not final, stored), LEN, NLEN and the bytes; the
    payload ends with the header byte of the empty stored block whose
    ``00 00 ff ff`` RFC 7692 removes from every message.
    """
    view = memoryview(data)
    out = bytearray()
    for start in range(0, len(view), _STORED_MAX):
        chunk = view[start : start + _STORED_MAX]
        n = len(chunk)
        out += bytes((0, n & 0xFF, n >> 8, ~n & 0xFF, (~n >> 8) & 0xFF))
        out += chunk
    out.append(0)
    return bytes(out)


class PerMessageDeflate:
    """Compress outgoing and decompress incoming message payloads.

    ``is_client`` picks which half of ``params`` applies to each direction.
    Compressors are created lazily, so an idle connection costs no zlib state.

    :meth:`encode` decides per whole message whether compressing pays: after
    a message deflate did not shrink, the next ones (1, 2, 4 ... up to 32,
    until one shrinks again) go out as *stored* deflate blocks, a copy with 5
    bytes per 64 KiB, instead of being compressed; :meth:`compress` always
    compresses. ``window_bits`` caps the window of our compressor (never
    above what was negotiated): a smaller window is always decodable and
    costs less memory.
    """

    def __init__(
        self,
        params: DeflateParams,
        *,
        is_client: bool,
        level: int = 1,
        window_bits: int = DEFAULT_WINDOW_BITS,
    ) -> None:
        self.params = params
        self._skip = 0  # messages still to send stored without trying
        self._backoff = 0  # how many the next failure to shrink skips
        if is_client:
            self._out_reset = params.client_no_context_takeover
            out_bits = params.client_max_window_bits
            self._in_reset = params.server_no_context_takeover
            in_bits = params.server_max_window_bits
        else:
            self._out_reset = params.server_no_context_takeover
            out_bits = params.server_max_window_bits
            self._in_reset = params.client_no_context_takeover
            in_bits = params.client_max_window_bits
        # zlib refuses a raw deflate window of 8; 9 keeps distances within 256.
        # ``window_bits`` caps our compressor's window below the negotiated one.
        self._out_bits = -max(min(out_bits, window_bits), 9)
        self._in_bits = -max(in_bits, 9)
        self._level = level
        # zlib's (de)compressor types are not exposed at runtime: these
        # annotations are never evaluated (attribute targets in a function).
        self._comp: Optional[zlib._Compress] = None
        self._decomp: Optional[zlib._Decompress] = None

    def encode(self, data: bytes) -> bytes:
        """One whole (unfragmented) message's payload as sent, RSV1 set.

        Every message stays compressed in RFC 7692's sense (some peers,
        Autobahn's kosoku among them, mishandle uncompressed messages on a
        compressed connection); what changes is how. A message that did not
        shrink is sent as deflate produced it, and the compressor keeps its
        context. While skipping, messages are written as stored blocks,
        which our compressor never sees; so it is dropped, and the next
        compressed message starts a fresh one. That is always decodable: a
        fresh compressor refers to no bytes before it, and the peer's
        inflater, which holds the stored bytes in its window, is simply
        never asked for them (what ``no_context_takeover`` does after every
        message).
        """
        if len(data) < _ADAPT_MIN:  # a miss this small costs little: no backoff
            return self.compress(data)
        if self._skip:
            self._skip -= 1
            self._comp = None
            return stored_blocks(data)
        out = self.compress(data)
        if len(out) < len(data):
            self._backoff = 0
        else:
            self._backoff = self._skip = min(_MAX_SKIP, self._backoff * 2 or 1)
        return out

    def compress(self, data: bytes, fin: bool = True) -> bytes:
        """Compress one message (or one fragment of it, ``fin=False``)."""
        comp = self._comp
        if comp is None:
            comp = self._comp = zlib.compressobj(
                self._level, zlib.DEFLATED, self._out_bits, _MEM_LEVEL
            )
        out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            if out.endswith(_TAIL):
                out = out[:-4]
            if self._out_reset:
                self._comp = None
        return out

    def decompress(self, data: bytes, fin: bool, limit: Optional[int]) -> bytes:
        """Inflate one received fragment of a compressed message.

        ``limit`` is how many more bytes the message may grow by (None: no
        limit). Going past it raises :class:`MessageTooBig` without holding
        more than ``limit + 1`` inflated bytes.
        """
        decomp = self._decomp
        if decomp is None:
            decomp = self._decomp = zlib.decompressobj(self._in_bits)
        if fin:
            data = data + _TAIL
        try:
            if limit is None:
                out = decomp.decompress(data)
            else:
                out = decomp.decompress(data, limit + 1)
                if len(out) > limit or decomp.unconsumed_tail:
                    self._decomp = None
                    raise MessageTooBig("message exceeds max_size once decompressed")
        except zlib.error as exc:
            self._decomp = None
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from None
        if fin and self._in_reset:
            self._decomp = None
        return out
