"""Sans-I/O opening handshake (RFC 6455 section 4).

Client side: :func:`make_key`, :func:`build_request`, :func:`parse_response`,
:func:`check_response`. Server side: :func:`parse_request`,
:func:`check_request`, :func:`build_accept`, :func:`build_reject`. Bytes in,
bytes out; the I/O lives in ``client.py`` and ``server.py``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from http import HTTPStatus
from typing import Iterable, List, Optional, Sequence, Tuple

from .errors import HandshakeError

__all__ = [
    "GUID",
    "MAX_HEAD",
    "Headers",
    "HeadTooLarge",
    "make_key",
    "accept_key",
    "build_request",
    "find_head_end",
    "parse_response",
    "check_response",
    "parse_request",
    "check_request",
    "build_accept",
    "build_reject",
    "header_values",
    "split_tokens",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024
"""Largest handshake head (status line + headers) accepted, in bytes."""
MAX_HEADERS = 256

Headers = List[Tuple[str, str]]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ],
# HTTP-version = "HTTP/" DIGIT "." DIGIT, status-code = 3DIGIT,
# reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ). A missing SP before an empty
# reason phrase is tolerated ("HTTP/1.1 101"), as many servers send it.
_STATUS_LINE = re.compile(r"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?\Z")
_SENSITIVE = frozenset(("authorization", "proxy-authorization", "cookie", "set-cookie"))


class HeadTooLarge(HandshakeError):
    """The handshake head grew past :data:`MAX_HEAD` (a server answers 431)."""


def make_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 bytes from ``os.urandom``, base64."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server must answer for ``key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _check_header_pair(name: str, value: str) -> None:
    if not isinstance(name, str) or not isinstance(value, str):
        raise ValueError("header names and values must be str")
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"header {name} has a line break or NUL in its value")


def build_request(
    netloc: str,
    pathname: str,
    key: str,
    *,
    subprotocols: Sequence[str] = (),
    extensions: Optional[str] = None,
    headers: Iterable[Tuple[str, str]] = (),
    origin: Optional[str] = None,
    user_agent: Optional[str] = None,
) -> bytes:
    """The HTTP/1.1 upgrade request. User ``headers`` come last and may add a
    ``Host``; they cannot replace the upgrade headers. ``origin`` and
    ``user_agent`` add those headers unless ``headers`` has them."""
    if not pathname.startswith("/") or any(c in pathname for c in " \r\n\x00"):
        raise ValueError(f"invalid request target {pathname!r}")
    user = list(headers)
    for name, value in user:
        _check_header_pair(name, value)
    names = {name.lower() for name, _ in user}
    reserved = names & {
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-accept",
    }
    if reserved:
        raise ValueError(f"header {sorted(reserved)[0]} is set by gws and cannot be overridden")
    lines = [f"GET {pathname} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {netloc}")
    lines += [
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols and "sec-websocket-protocol" not in names:
        for proto in subprotocols:
            if not _TOKEN.match(proto):
                raise ValueError(f"invalid subprotocol {proto!r}")
        lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
    if extensions and "sec-websocket-extensions" not in names:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    for name, extra in (("Origin", origin), ("User-Agent", user_agent)):
        if extra is not None and name.lower() not in names:
            _check_header_pair(name, extra)
            lines.append(f"{name}: {extra}")
    lines += [f"{name}: {value}" for name, value in user]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def find_head_end(buf: bytes, limit: int = MAX_HEAD) -> int:
    """Index just past the blank line ending the head, or -1 if not there yet.

    Raises :class:`HandshakeError` once ``limit`` bytes arrived without one.
    """
    end = buf.find(b"\r\n\r\n")
    if end == -1:
        if len(buf) > limit:
            raise HeadTooLarge(f"handshake headers larger than {limit} bytes")
        return -1
    if end + 4 > limit:
        raise HeadTooLarge(f"handshake headers larger than {limit} bytes")
    return end + 4


def _parse_header_lines(lines: List[bytes]) -> Headers:
    if len(lines) > MAX_HEADERS:
        raise HandshakeError(f"more than {MAX_HEADERS} handshake headers")
    headers: Headers = []
    for raw in lines:
        if raw[:1] in (b" ", b"\t"):
            raise HandshakeError("obsolete folded header line in handshake")
        name, sep, value = raw.partition(b":")
        text = name.decode("latin-1")
        if not sep or not _TOKEN.match(text):
            raise HandshakeError(f"malformed header line {raw[:80]!r}")
        headers.append((text, value.strip(b" \t").decode("latin-1")))
    return headers


def parse_response(head: bytes) -> Tuple[float, int, str, Headers]:
    """Parse a response head (ending in a blank line) -> (version, code, reason, headers)."""
    lines = head.split(b"\r\n")
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise HandshakeError("empty handshake response")
    status = lines[0].decode("latin-1")
    m = _STATUS_LINE.match(status)
    if not m:
        raise HandshakeError(f"malformed status line {status[:80]!r}")
    major, minor, code_text, reason = m.groups()
    if major != "1":
        raise HandshakeError(
            f"unsupported HTTP version HTTP/{major}.{minor} in status line (need HTTP/1.x)"
        )
    code = int(code_text)
    if not 100 <= code <= 599:
        raise HandshakeError(f"invalid status code {code_text} in status line (need 100-599)")
    return int(major) + int(minor) / 10, code, reason or "", _parse_header_lines(lines[1:])


def header_values(headers: Headers, name: str) -> List[str]:
    """Every value of header ``name`` (case-insensitive), in order."""
    lname = name.lower()
    return [v for n, v in headers if n.lower() == lname]


def split_tokens(values: Iterable[str]) -> List[str]:
    """Comma-separated header values flattened into stripped, non-empty items."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def redact(headers: Headers) -> Headers:
    """Headers with credentials replaced, fit for logs and error messages."""
    return [(n, "<redacted>" if n.lower() in _SENSITIVE else v) for n, v in headers]


def _status_text(code: int) -> str:
    """``code`` with its standard reason phrase when it has one: "404 Not Found"."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def check_response(
    code: int,
    reason: str,
    headers: Headers,
    key: str,
    subprotocols: Sequence[str] = (),
) -> Optional[str]:
    """Validate a client's view of the server's reply; return the chosen
    subprotocol. Raises :class:`HandshakeError` explaining what is wrong.

    Extensions are checked by the caller, which knows what it offered.
    """
    if code != 101:
        # The reason phrase is not quoted: RFC 9112 section 4 says a client
        # SHOULD ignore it, and it is arbitrary server text (the standard phrase
        # of a registered code is named instead; ``reason`` stays available).
        raise HandshakeError(
            f"server answered {_status_text(code)} instead of 101 Switching Protocols",
            code,
            redact(headers),
        )
    upgrade = [v.lower() for v in split_tokens(header_values(headers, "Upgrade"))]
    if upgrade != ["websocket"]:
        raise HandshakeError("missing or wrong Upgrade header in reply", code, redact(headers))
    connection = [v.lower() for v in split_tokens(header_values(headers, "Connection"))]
    if "upgrade" not in connection:
        raise HandshakeError("missing or wrong Connection header in reply", code, redact(headers))
    accept = header_values(headers, "Sec-WebSocket-Accept")
    if len(accept) != 1 or accept[0] != accept_key(key):
        raise HandshakeError("wrong Sec-WebSocket-Accept in reply", code, redact(headers))
    protocols = split_tokens(header_values(headers, "Sec-WebSocket-Protocol"))
    if not protocols:
        return None
    if len(protocols) > 1:
        raise HandshakeError("server chose more than one subprotocol", code, redact(headers))
    if protocols[0] not in subprotocols:
        raise HandshakeError(
            f"server chose subprotocol {protocols[0]!r}, which was not offered",
            code,
            redact(headers),
        )
    return protocols[0]


def parse_request(head: bytes) -> Tuple[str, str, Headers]:
    """Parse a request head -> (method, target, headers)."""
    lines = head.split(b"\r\n")
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise HandshakeError("empty handshake request", 400)
    m = re.match(r"^([A-Z]+) (\S+) HTTP/1\.1$", lines[0].decode("latin-1"))
    if not m:
        raise HandshakeError("malformed request line", 400)
    try:
        headers = _parse_header_lines(lines[1:])
    except HandshakeError as exc:
        raise HandshakeError(str(exc), 400) from None
    return m.group(1), m.group(2), headers


def check_request(method: str, headers: Headers) -> str:
    """Validate a client's upgrade request; return its ``Sec-WebSocket-Key``.

    Raises :class:`HandshakeError` whose ``status`` is the HTTP status to answer.
    """
    if method != "GET":
        raise HandshakeError(f"method {method} not allowed for a WebSocket upgrade", 405)
    if [v.lower() for v in split_tokens(header_values(headers, "Upgrade"))] != ["websocket"]:
        raise HandshakeError("missing or wrong Upgrade header", 426)
    if "upgrade" not in [v.lower() for v in split_tokens(header_values(headers, "Connection"))]:
        raise HandshakeError("missing or wrong Connection header", 400)
    if header_values(headers, "Sec-WebSocket-Version") != ["13"]:
        raise HandshakeError("unsupported Sec-WebSocket-Version (need 13)", 426)
    keys = header_values(headers, "Sec-WebSocket-Key")
    if len(keys) != 1:
        raise HandshakeError("missing Sec-WebSocket-Key", 400)
    try:
        raw = base64.b64decode(keys[0], validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise HandshakeError("malformed Sec-WebSocket-Key", 400)
    return keys[0]


def build_accept(
    key: str,
    *,
    subprotocol: Optional[str] = None,
    extensions: Optional[str] = None,
    headers: Iterable[Tuple[str, str]] = (),
) -> bytes:
    """The ``101 Switching Protocols`` reply to a valid request."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    for name, value in headers:
        _check_header_pair(name, value)
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 426: "Upgrade Required"}


def build_reject(status: int, message: str) -> bytes:
    """A plain-text HTTP error reply that closes the connection."""
    body = (message + "\n").encode("utf-8")
    extra = "Sec-WebSocket-Version: 13\r\n" if status == 426 else ""
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    ).encode("latin-1") + body
