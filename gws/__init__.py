"""gws: a synchronous WebSocket (RFC 6455) client and server on gevent.

A Python port of the Lua library coro-websocket 3.1.0::

    res, read, write = gws.connect("ws://127.0.0.1:8765/")
    if not res:
        raise SystemExit(read)          # the error string
    write({"payload": "Hello There!"})
    for msg in read:
        print(msg.payload)

and a Pythonic face: ``with gws.open(url) as ws: ws.send("hi"); ws.recv()``.
"""

from .client import CONNECT_OPTIONS, Response, WebSocket, connect, open
from .errors import (
    ConnectionClosed,
    HandshakeError,
    InvalidURL,
    MessageTooBig,
    OpenTimeout,
    ProtocolError,
    WebSocketError,
)
from .frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Message,
)
from .io import Reader, Writer, socket_io, wrap_io
from .server import Request, accept, echo, serve
from .url import Url, parse_url

__version__ = "0.1.0"

# coro-websocket's camelCase names
parseUrl = parse_url
wrapIo = wrap_io

__all__ = [
    "CONNECT_OPTIONS",
    "ConnectionClosed",
    "HandshakeError",
    "InvalidURL",
    "Message",
    "MessageTooBig",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "OpenTimeout",
    "ProtocolError",
    "Reader",
    "Request",
    "Response",
    "Url",
    "WebSocket",
    "WebSocketError",
    "Writer",
    "accept",
    "connect",
    "echo",
    "open",
    "parseUrl",
    "parse_url",
    "serve",
    "socket_io",
    "wrapIo",
    "wrap_io",
]
