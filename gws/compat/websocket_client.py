"""websocket-client 1.9's public API, backed by gws: change one import.

::

    import gws.compat.websocket_client as websocket   # was: import websocket

    ws = websocket.create_connection("ws://127.0.0.1:8765/", timeout=5)
    ws.send("Hello, World")
    print(ws.recv())
    ws.close()

``create_connection``, ``WebSocket``, ``WebSocketApp`` (``run_forever``
with ``ping_interval``, ``ping_timeout``, ``ping_payload``, ``reconnect``),
``ABNF``, the ``STATUS_*`` codes, ``enableTrace``, ``setdefaulttimeout`` and
the exception classes keep websocket-client's names, signatures, defaults
and behaviour; durations stay in seconds. The callbacks of ``WebSocketApp``
come in the same order with the same arguments, and the same exceptions are
raised (``WebSocketBadStatusException.status_code`` on a refused upgrade,
``WebSocketTimeoutException`` on a recv timeout,
``WebSocketConnectionClosedException`` once closed).

What changes underneath, all fixes: ``ping_interval`` is gws's heartbeat,
so a dead peer is noticed (websocket-client can wait forever on one);
permessage-deflate is offered (websocket-client has no compression); the
handshake and ``close()`` are always bounded; concurrent sends never
interleave frames. An argument gws cannot honour raises NotImplementedError
naming it (``get_mask_key``, ``dispatcher``, ``suppress_host``,
``connection``). gws's
own options go in ``gws_options`` (a dict, ms units) of
``create_connection``/``connect``/``run_forever``.

Connections run in gws's thread mode: any thread may call them, and pings
are answered while the calling threads block. ``gws_options={"thread":
False}`` keeps a connection on the calling thread's gevent hub instead.
"""

from __future__ import annotations

from ._wsclient_abnf import (
    ABNF,
    STATUS_ABNORMAL_CLOSED,
    STATUS_BAD_GATEWAY,
    STATUS_GOING_AWAY,
    STATUS_INVALID_EXTENSION,
    STATUS_INVALID_PAYLOAD,
    STATUS_MESSAGE_TOO_BIG,
    STATUS_NORMAL,
    STATUS_POLICY_VIOLATION,
    STATUS_PROTOCOL_ERROR,
    STATUS_SERVICE_RESTART,
    STATUS_STATUS_NOT_AVAILABLE,
    STATUS_TLS_HANDSHAKE_ERROR,
    STATUS_TRY_AGAIN_LATER,
    STATUS_UNEXPECTED_CONDITION,
    STATUS_UNSUPPORTED_DATA_TYPE,
    VALID_CLOSE_STATUS,
    WebSocketAddressException,
    WebSocketBadStatusException,
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketPayloadException,
    WebSocketProtocolException,
    WebSocketProxyException,
    WebSocketTimeoutException,
    debug,
    dump,
    enableTrace,
    error,
    isEnabledForDebug,
    isEnabledForError,
    isEnabledForTrace,
    trace,
    warning,
)
from ._wsclient_app import WebSocketApp, set_reconnect
from ._wsclient_core import (
    WebSocket,
    create_connection,
    getdefaulttimeout,
    handshake_response,
    setdefaulttimeout,
)
from ._wsclient_options import DEFAULT_SOCKET_OPTION

__version__ = "1.9.2"
"""The websocket-client version whose API this module follows."""

__all__ = [
    "ABNF",
    "DEFAULT_SOCKET_OPTION",
    "STATUS_ABNORMAL_CLOSED",
    "STATUS_BAD_GATEWAY",
    "STATUS_GOING_AWAY",
    "STATUS_INVALID_EXTENSION",
    "STATUS_INVALID_PAYLOAD",
    "STATUS_MESSAGE_TOO_BIG",
    "STATUS_NORMAL",
    "STATUS_POLICY_VIOLATION",
    "STATUS_PROTOCOL_ERROR",
    "STATUS_SERVICE_RESTART",
    "STATUS_STATUS_NOT_AVAILABLE",
    "STATUS_TLS_HANDSHAKE_ERROR",
    "STATUS_TRY_AGAIN_LATER",
    "STATUS_UNEXPECTED_CONDITION",
    "STATUS_UNSUPPORTED_DATA_TYPE",
    "VALID_CLOSE_STATUS",
    "WebSocket",
    "WebSocketAddressException",
    "WebSocketApp",
    "WebSocketBadStatusException",
    "WebSocketConnectionClosedException",
    "WebSocketException",
    "WebSocketPayloadException",
    "WebSocketProtocolException",
    "WebSocketProxyException",
    "WebSocketTimeoutException",
    "create_connection",
    "debug",
    "dump",
    "enableTrace",
    "error",
    "getdefaulttimeout",
    "handshake_response",
    "isEnabledForDebug",
    "isEnabledForError",
    "isEnabledForTrace",
    "set_reconnect",
    "setdefaulttimeout",
    "trace",
    "warning",
]
