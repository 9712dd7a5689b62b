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

from .broadcast import broadcast
from .client import CONNECT_OPTIONS, Response, WebSocket, connect
from .client import open as open  # noqa: A004 - gws.open, kept out of __all__
from .errors import (
    AbnormalClosure,
    CloseTimeout,
    ConnectionClosed,
    HandshakeError,
    HeartbeatTimeout,
    InvalidState,
    InvalidURL,
    MessageTooBig,
    OpenTimeout,
    ProtocolError,
    ReceiveTimeout,
    WebSocketError,
    WrongThread,
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
from .hooks import HTTPResponse, basic_auth
from .io import Reader, Writer, socket_io, wrap_io
from .protocol import State
from .proxy import ProxyError
from .redirects import RedirectError
from .server import Request, Server, accept, echo, serve
from .url import Url, parse_url

__version__ = "0.2.0.dev0"

# coro-websocket's camelCase names
parseUrl = parse_url
wrapIo = wrap_io

# ``open`` is left out of __all__: ``from gws import *`` must not shadow the
# built-in open(). Use ``gws.open``.
__all__ = [
    "AbnormalClosure",
    "CONNECT_OPTIONS",
    "CloseTimeout",
    "ConnectionClosed",
    "HTTPResponse",
    "HandshakeError",
    "HeartbeatTimeout",
    "InvalidState",
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
    "ProxyError",
    "Reader",
    "ReceiveTimeout",
    "RedirectError",
    "Request",
    "Response",
    "Server",
    "State",
    "Url",
    "WebSocket",
    "WebSocketError",
    "Writer",
    "WrongThread",
    "accept",
    "basic_auth",
    "broadcast",
    "connect",
    "echo",
    "parseUrl",
    "parse_url",
    "serve",
    "socket_io",
    "wrapIo",
    "wrap_io",
]
