"""websocket-client's ``WebSocket`` and ``create_connection``, backed by gws.

Every gws connection of this layer is opened by :func:`_open_gws`, and
every gws exception is translated by :func:`_translate`: one place each.
"""

from __future__ import annotations

import socket as _socket
import ssl
import struct
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type, Union

import gevent.ssl as gssl

import gws
from gws import threaded
from gws.deadline import Deadline

from ._wsclient_abnf import (
    ABNF,
    STATUS_NORMAL,
    WebSocketAddressException,
    WebSocketBadStatusException,
    WebSocketConnectionClosedException,
    WebSocketException,
    WebSocketPayloadException,
    WebSocketProtocolException,
    WebSocketProxyException,
    WebSocketTimeoutException,
    _trace,
    frame_length,
    log,
    payload_bytes,
    trace,
)
from ._wsclient_options import (
    DEFAULT_SOCKET_OPTION,
    USE_ENVIRONMENT,
    handshake_headers,
    proxy_url,
    response_headers,
    tls_option,
)

__all__ = [
    "WebSocket",
    "create_connection",
    "setdefaulttimeout",
    "getdefaulttimeout",
    "handshake_response",
    "CONNECT_ARGUMENTS",
]

_default_timeout: List[Optional[float]] = [None]

# What connect() understands (websocket-client 1.9's names, plus gws_options).
CONNECT_ARGUMENTS = frozenset(
    (
        "header",
        "cookie",
        "origin",
        "connection",
        "suppress_origin",
        "suppress_host",
        "host",
        "timeout",
        "http_proxy_host",
        "http_proxy_port",
        "http_no_proxy",
        "http_proxy_auth",
        "http_proxy_timeout",
        "proxy_type",
        "redirect_limit",
        "subprotocols",
        "socket",
        # constructor arguments create_connection() also passes along
        "sockopt",
        "sslopt",
        "fire_cont_frame",
        "enable_multithread",
        "skip_utf8_validation",
        "get_mask_key",
        "dispatcher",
        "gws_options",
    )
)

_CONNECT_TIMEOUT_MS = 10000  # gws's default, used when websocket-client's timeout is None
_CLOSE_TIMEOUT = 3.0  # websocket-client's close(timeout=3)
_UNBOUNDED_CLOSE = 5.0  # close(timeout=None): gws never waits forever


def setdefaulttimeout(timeout: Optional[float]) -> None:
    """Set the default timeout (seconds) of new connections; None: no timeout."""
    _default_timeout[0] = timeout


def getdefaulttimeout() -> Optional[float]:
    """The default timeout (seconds) of new connections, or None."""
    return _default_timeout[0]


class handshake_response:  # noqa: N801 - websocket-client's name
    """What the server answered: ``status``, ``headers`` (dict, lower-case
    names), ``subprotocol``."""

    def __init__(self, status: int, headers: Dict[str, str], subprotocol: Optional[str]) -> None:
        self.status = status
        self.headers = headers
        self.subprotocol = subprotocol


class _SockOpt:
    """websocket-client's ``sock_opt``: ``sockopt``, ``sslopt``, ``timeout``."""

    def __init__(self, sockopt: Any, sslopt: Any) -> None:
        self.sockopt = list(sockopt or [])
        self.sslopt = dict(sslopt or {})
        self.timeout: Optional[float] = None


def _open_gws(url: str, options: Dict[str, Any], ping_payload: bytes) -> gws.WebSocket:
    """Open the gws connection behind a compat WebSocket: the one place this
    layer connects.

    ``thread=True`` (this layer's default) opens it in gws's thread mode:
    the connection lives on gws's hub thread, any OS thread may call it,
    and its heartbeat and ping answers go on while the calling thread
    blocks (``time.sleep``, C code), as websocket-client programs expect.
    ``gws_options={"thread": False}`` keeps it on the calling thread's hub
    instead (greenlet mode: cheaper calls, one thread only). Either way the
    connection is configured before its first frame is parsed.
    """
    opts = dict(options)
    if opts.pop("thread", True):
        hub = threaded.hub_thread()
        # undo: an open that completes just as the caller gives up (Ctrl-C)
        # is dropped, not left running on the hub thread with no owner.
        ws: gws.WebSocket = hub.call(
            _open_here, url, dict(opts, thread=True), ping_payload, undo=_abort
        )
        return ws
    return _open_here(url, opts, ping_payload)


def _open_here(url: str, options: Dict[str, Any], ping_payload: bytes) -> gws.WebSocket:
    """Open and configure (on the connection's own hub thread): ping and
    pong frames delivered to ``recv`` (for ``on_ping``/``on_pong`` and
    ``recv_data(control_frame=True)``), the heartbeat's ping payload."""
    ws = gws.open(url, **options)
    conn = ws.connection
    conn.protocol.controls = True
    if ping_payload and conn.heartbeat is not None:
        conn.heartbeat.payload = ping_payload
    return ws


def _on_hub(ws: gws.WebSocket, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on the thread whose hub ``ws``'s connection lives
    on: gws's hub thread in thread mode, else right here."""
    if isinstance(ws, threaded.ThreadWebSocket):
        return threaded.hub_thread().call(fn, *args)
    return fn(*args)


def _abort(ws: gws.WebSocket) -> None:
    ws.connection.abort()


def _shutdown_socket(ws: gws.WebSocket) -> None:
    """``shutdown(SHUT_RDWR)`` the connection's socket from any thread,
    without waiting: a plain system call on its descriptor that touches
    neither the socket object nor the gevent loop it belongs to. The
    connection's own reader then sees the end and drops the connection
    there, on its thread. For ``__del__``, which must never block (the hub
    thread may be gone at interpreter exit)."""
    if ws.connection.closed.is_set():
        return
    fd = ws.response.socket.fileno()
    if fd < 0:
        return
    raw = _socket.socket(fileno=fd)
    try:
        raw.shutdown(_socket.SHUT_RDWR)
    finally:
        raw.detach()  # the descriptor stays the connection's


def _send_within(ws: gws.WebSocket, message: Any, timeout: float) -> bool:
    """Send (on the connection's hub) for at most ``timeout`` seconds;
    whether it ran out (gws then dropped the connection if part of the
    frame had gone out)."""
    with Deadline(timeout) as deadline:
        gws.WebSocket.send(ws, message)
    return deadline.expired


def _wait_closed(ws: gws.WebSocket, timeout: float) -> None:
    ws.connection.closed.wait(timeout)


def _close_within(ws: gws.WebSocket, code: int, reason: str, timeout: float) -> None:
    ws.connection.close_timeout = timeout
    gws.WebSocket.close(ws, code, reason)


def _unsupported(name: str, why: str) -> NotImplementedError:
    return NotImplementedError(f"{name} is not supported by gws.compat.websocket_client: {why}")


def _translate(exc: BaseException) -> BaseException:
    """The websocket-client exception for a gws (or socket) exception."""
    if isinstance(exc, gws.HeartbeatTimeout):
        return WebSocketTimeoutException("ping/pong timed out")
    if isinstance(exc, (gws.OpenTimeout, gws.ReceiveTimeout, _socket.timeout)):
        return WebSocketTimeoutException("Connection timed out")
    if isinstance(exc, gws.ProtocolError):
        if exc.code == 1007:
            return WebSocketPayloadException(str(exc))
        return WebSocketProtocolException(str(exc))
    if isinstance(exc, gws.ProxyError):
        return WebSocketProxyException(str(exc))
    if isinstance(exc, gws.RedirectError):
        return WebSocketException(str(exc))
    if isinstance(exc, gws.HandshakeError):
        status = exc.status
        if status == 101 or not status:
            return WebSocketException(f"Invalid WebSocket Header ({exc})")
        headers = response_headers(exc.headers)
        body = exc.body or None
        try:  # gws keeps no reason phrase (arbitrary server text): the standard one
            phrase: Optional[str] = HTTPStatus(status).phrase
        except ValueError:
            phrase = None
        shown = body.decode("utf-8", errors="replace") if body else None
        return WebSocketBadStatusException(
            f"Handshake status {status} {phrase} -+-+- {headers} -+-+- {shown}",
            status,
            phrase,
            headers,
            body,
        )
    if isinstance(exc, _socket.gaierror):
        return WebSocketAddressException(exc)
    if isinstance(exc, (gws.AbnormalClosure, gws.CloseTimeout)):
        return WebSocketConnectionClosedException("Connection to remote host was lost.")
    if isinstance(exc, (OSError, gws.WrongThread)):  # ConnectionResetError, ssl.SSLError...
        return exc  # as websocket-client raises them
    if isinstance(exc, gws.WebSocketError):
        return WebSocketConnectionClosedException(str(exc))
    return exc


class WebSocket:
    """websocket-client's low-level connection object, backed by gws.

    ``WebSocket().connect(url, **options)`` or :func:`create_connection`;
    ``send``/``recv`` and friends as in websocket-client 1.9. What gws does
    better underneath: permessage-deflate is offered (websocket-client has no
    compression), masking is fast, ``send`` from many greenlets never
    interleaves frames, and ``close()`` is always bounded.

    Threads: the connection runs in gws's thread mode, so any OS thread may
    call it (``send`` from one thread while another is in ``recv``), and
    gws answers pings and runs the heartbeat while the calling threads
    block. ``enable_multithread`` is accepted and has nothing left to do.
    ``gws_options={"thread": False}`` opens it on the calling thread's
    gevent hub instead (greenlet mode: cheaper calls; then only that thread
    may use it, another gets :class:`gws.WrongThread`). A WebSocket dropped
    without ``close()`` shuts its socket down when garbage-collected, as
    websocket-client's socket closes.

    Not supported (NotImplementedError naming the argument): ``get_mask_key``
    (gws takes every mask key from ``os.urandom``) and ``dispatcher`` (gws
    runs on gevent's loop). ``skip_utf8_validation=True`` is accepted but
    gws still checks UTF-8, as RFC 6455 requires.
    """

    def __init__(
        self,
        get_mask_key: Any = None,
        sockopt: Any = None,
        sslopt: Any = None,
        fire_cont_frame: bool = False,
        enable_multithread: bool = True,
        skip_utf8_validation: bool = False,
        dispatcher: Any = None,
        **_: Any,
    ) -> None:
        if get_mask_key is not None:
            raise _unsupported("get_mask_key", "gws draws every mask key from os.urandom")
        if dispatcher is not None:
            raise _unsupported("dispatcher", "gws runs every connection on gevent's loop")
        self.sock_opt = _SockOpt(sockopt, sslopt)
        self.handshake_response: Optional[handshake_response] = None
        self.close_frame: Optional[ABNF] = None
        self.skip_utf8_validation = skip_utf8_validation
        self.fire_cont_frame = fire_cont_frame
        self._fragmented: Optional[int] = None  # opcode of the message whose frames arrive
        self._ws: Optional[gws.WebSocket] = None
        self._peer_close_seen = False
        self._close_sent = False  # send_close() was called

    def __del__(self) -> None:
        # websocket-client's socket closes when its WebSocket is collected; a
        # gws connection would live on (on the hub thread, answering pings)
        # with nobody left to close it.
        ws = self.__dict__.get("_ws")
        if ws is not None:
            try:
                _shutdown_socket(ws)
            except Exception:  # noqa: BLE001 - nothing may escape __del__
                pass

    # -- properties ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        while True:
            yield self.recv()

    def __next__(self) -> Union[str, bytes]:
        return self.recv()

    def next(self) -> Union[str, bytes]:
        return self.__next__()

    def fileno(self) -> int:
        ws = self._ws
        if ws is None:
            raise WebSocketException("Connection not established")
        return ws.response.socket.fileno()

    def set_mask_key(self, func: Any) -> None:
        raise _unsupported("set_mask_key", "gws draws every mask key from os.urandom")

    def gettimeout(self) -> Optional[float]:
        """The timeout in seconds (None: none) of connect, recv and send."""
        return self.sock_opt.timeout

    def settimeout(self, timeout: Optional[float]) -> None:
        """Set the timeout in seconds of connect, recv and send (None: none)."""
        self.sock_opt.timeout = timeout

    timeout = property(gettimeout, settimeout)

    def getsubprotocol(self) -> Optional[str]:
        return self.handshake_response.subprotocol if self.handshake_response else None

    subprotocol = property(getsubprotocol)

    def getstatus(self) -> Optional[int]:
        return self.handshake_response.status if self.handshake_response else None

    status = property(getstatus)

    def getheaders(self) -> Optional[Dict[str, str]]:
        return self.handshake_response.headers if self.handshake_response else None

    headers = property(getheaders)

    def is_ssl(self) -> bool:
        ws = self._ws
        return ws is not None and isinstance(ws.response.socket, (ssl.SSLSocket, gssl.SSLSocket))

    @property
    def connected(self) -> bool:
        """True from ``connect`` until this object learns the connection
        ended, as websocket-client's flag: ``send_close``/``close``, or
        ``recv`` returning the peer's close frame or raising. gws reads ahead
        on its own, so the transport may already be closed while messages
        are still queued for ``recv``: ``while ws.connected: ws.recv()``
        still gets every one of them (and a failed ``send`` in another
        thread does not end that loop early)."""
        return self._ws is not None and not self._close_sent and not self._peer_close_seen

    @property
    def sock(self) -> Any:
        """The connection's socket (gevent's), or None once shut down."""
        ws = self._ws
        return None if ws is None else ws.response.socket

    @property
    def gws_connection(self) -> Optional[gws.WebSocket]:
        """The gws connection underneath (None before connect, after shutdown)."""
        return self._ws

    # -- connecting ------------------------------------------------------------------------

    def connect(self, url: str, **options: Any) -> None:
        """Connect to ``url`` (``ws://`` or ``wss://``), as websocket-client.

        Options: ``header`` (list of ``"Name: value"`` or dict), ``cookie``,
        ``origin``, ``suppress_origin``, ``host``, ``timeout`` (seconds),
        ``subprotocols``, the proxy options (``http_proxy_host``,
        ``http_proxy_port``, ``http_proxy_auth``, ``http_no_proxy``,
        ``proxy_type``, ``http_proxy_timeout``), ``redirect_limit``,
        ``socket``; gws's own options go in ``gws_options`` (a dict, e.g.
        ``{"compression": None, "max_size": None}``). An option gws cannot
        honour raises NotImplementedError naming it.
        """
        self._connect(url, options, None)

    def _connect(
        self,
        url: str,
        options: Dict[str, Any],
        ping: Optional[Tuple[float, Optional[float], bytes]],
    ) -> None:
        unknown = sorted(set(options) - CONNECT_ARGUMENTS)
        if unknown:
            raise TypeError(f"connect() got an unexpected keyword argument {unknown[0]!r}")
        if "timeout" in options:
            self.sock_opt.timeout = options["timeout"]
        opts = self._gws_options(url, options)
        if ping is not None:
            interval, timeout, payload = ping
            opts["heartbeat"] = interval * 1000.0
            if timeout:
                opts["heartbeat_timeout"] = timeout * 1000.0
        trace(f"connecting to {url}")
        try:
            ws = _open_gws(url, opts, ping[2] if ping is not None else b"")
        except (gws.WebSocketError, OSError) as exc:
            if isinstance(exc, gws.InvalidURL):
                raise
            raise _translate(exc) from exc
        try:
            self._setup(ws, options)
        except BaseException:
            _on_hub(ws, _abort, ws)
            raise
        if self._ws is not None:  # connect() again: the previous connection is dropped
            self.shutdown()
        self._ws = ws
        self._peer_close_seen = False
        self._close_sent = False
        self.close_frame = None
        self._fragmented = None

    def _gws_options(self, url: str, options: Dict[str, Any]) -> Dict[str, Any]:
        parsed = gws.parse_url(url)[0]
        if parsed is None:
            # websocket-client raises ValueError for a malformed URL
            raise ValueError(gws.parse_url(url)[1])
        if options.get("connection") is not None:
            raise _unsupported("connection", "gws writes the Connection header itself")
        if options.get("suppress_host"):
            raise _unsupported("suppress_host", "gws always sends a Host header")
        # websocket-client sends no User-Agent of its own
        opts: Dict[str, Any] = {"close_timeout": _CLOSE_TIMEOUT * 1000, "user_agent": None}
        timeout = self.sock_opt.timeout
        connect_timeout = timeout or options.get("http_proxy_timeout")
        opts["timeout"] = connect_timeout * 1000.0 if connect_timeout else _CONNECT_TIMEOUT_MS
        opts["headers"] = handshake_headers(
            parsed.host,
            parsed.port,
            parsed.tls,
            header=options.get("header"),
            cookie=options.get("cookie"),
            origin=options.get("origin"),
            host=options.get("host"),
            suppress_origin=bool(options.get("suppress_origin")),
        )
        subprotocols = options.get("subprotocols")
        if subprotocols:
            opts["subprotocol"] = list(subprotocols)
        if parsed.tls:
            opts["tls"] = tls_option(self.sock_opt.sslopt)
        proxy = proxy_url(
            parsed.host,
            options.get("http_proxy_host"),
            options.get("http_proxy_port"),
            options.get("http_proxy_auth"),
            options.get("http_no_proxy"),
            options.get("proxy_type"),
        )
        if proxy is not USE_ENVIRONMENT:
            opts["proxy"] = proxy
        opts["redirects"] = options.get("redirect_limit", 3)
        opts["sockopt"] = DEFAULT_SOCKET_OPTION + [tuple(o) for o in self.sock_opt.sockopt]
        if options.get("socket") is not None:
            opts["sock"] = options["socket"]
        opts.update(options.get("gws_options") or {})
        if self.fire_cont_frame:
            # Frames as they arrive; uncompressed, since gws inflates whole messages only.
            if (options.get("gws_options") or {}).get("compression") is not None:
                raise _unsupported("fire_cont_frame with compression", "gws inflates messages")
            opts["fragments"] = True
            opts["compression"] = None
        return opts

    def _setup(self, ws: gws.WebSocket, options: Dict[str, Any]) -> None:
        """After the handshake: websocket-client's checks and what it keeps."""
        subprotocols = options.get("subprotocols")
        chosen = ws.subprotocol
        if subprotocols and chosen is None:
            # websocket-client fails a handshake whose reply chose no subprotocol
            log.error(f"Invalid subprotocol: {subprotocols}")
            raise WebSocketException("Invalid WebSocket Header")
        headers = response_headers(ws.response.headers)
        self.handshake_response = handshake_response(
            ws.response.code, headers, None if chosen is None else chosen.lower()
        )

    # -- sending ---------------------------------------------------------------------------

    def _require(self) -> gws.WebSocket:
        ws = self._ws
        if ws is None:
            raise WebSocketConnectionClosedException("socket is already closed.")
        return ws

    def _send(self, message: Any) -> None:
        ws = self._require()
        timeout = self.sock_opt.timeout
        try:
            if timeout is None:
                ws.send(message)
                return
            expired = _on_hub(ws, _send_within, ws, message, timeout)
        except gws.ConnectionClosed as exc:
            raise WebSocketConnectionClosedException("socket is already closed.") from exc
        if expired:
            raise WebSocketTimeoutException("Connection timed out")

    def send(self, payload: Union[bytes, str], opcode: int = ABNF.OPCODE_TEXT) -> int:
        """Send one message; returns the length of the frame on the wire as
        websocket-client counts it (before compression)."""
        if opcode == ABNF.OPCODE_TEXT and type(payload) is str:
            data = payload.encode("utf-8")
            message: Any = payload
        else:
            data = payload_bytes(payload, opcode)
            if opcode == ABNF.OPCODE_CLOSE:
                self._send_close_payload(data)
                return frame_length(len(data))
            message = data if opcode == ABNF.OPCODE_BINARY else {"opcode": opcode, "payload": data}
        if _trace.enabled:
            trace(f"++Sent decoded: fin=1 opcode={opcode} data={data!r}")
        self._send(message)
        return frame_length(len(data))

    def send_text(self, text_data: str) -> int:
        return self.send(text_data, ABNF.OPCODE_TEXT)

    def send_bytes(self, data: Union[bytes, bytearray]) -> int:
        return self.send(bytes(data), ABNF.OPCODE_BINARY)

    def send_binary(self, payload: bytes) -> int:
        return self.send(payload, ABNF.OPCODE_BINARY)

    def send_frame(self, frame: ABNF) -> int:
        """Send one frame made with ``ABNF.create_frame`` (``fin=0`` frames
        and OPCODE_CONT continue a fragmented message)."""
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            raise ValueError("rsv bits cannot be set by hand: gws sets them for compression")
        data = payload_bytes(frame.data, frame.opcode)
        if frame.opcode == ABNF.OPCODE_CLOSE:
            self._send_close_payload(data)
        else:
            self._send({"opcode": frame.opcode, "fin": bool(frame.fin), "payload": data})
        return frame_length(len(data))

    def ping(self, payload: Union[str, bytes] = "") -> None:
        """Send a ping (the pong is delivered by ``recv_data(True)``)."""
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        self._send({"opcode": ABNF.OPCODE_PING, "payload": data})

    def pong(self, payload: Union[str, bytes] = "") -> None:
        """Send an unsolicited pong."""
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        self._send({"opcode": ABNF.OPCODE_PONG, "payload": data})

    def _send_close_payload(self, data: bytes) -> None:
        if len(data) >= 2:
            code = struct.unpack("!H", data[:2])[0]
            self.send_close(code, data[2:])
        else:
            self.send_close()

    # -- receiving -------------------------------------------------------------------------

    def recv(self) -> Union[str, bytes]:
        """The next message: ``str`` for text, ``bytes`` for binary, ``""``
        once for the peer's close frame; then WebSocketConnectionClosedException.
        WebSocketTimeoutException after ``timeout`` seconds without a message
        (the connection stays usable)."""
        msg = self._next(False)
        if msg is None:
            return ""
        opcode = msg.opcode
        if opcode == ABNF.OPCODE_TEXT:
            payload = msg.payload
            return payload if isinstance(payload, str) else payload.decode("utf-8")
        if opcode == ABNF.OPCODE_BINARY:
            return msg.payload
        return ""

    def recv_data(self, control_frame: bool = False) -> Tuple[int, bytes]:
        """``(opcode, data)`` of the next message (``data`` is bytes, text
        too); with ``control_frame`` pings and pongs as well."""
        opcode, frame = self.recv_data_frame(control_frame)
        data = frame.data
        return opcode, data if isinstance(data, bytes) else data.encode("utf-8")

    def recv_data_frame(self, control_frame: bool = False) -> Tuple[int, ABNF]:
        """``(opcode, ABNF)`` of the next message (or ping/pong with
        ``control_frame``; the close frame once, as OPCODE_CLOSE)."""
        msg = self._next(control_frame)
        if msg is None:
            frame = self.close_frame
            assert frame is not None
            return ABNF.OPCODE_CLOSE, frame
        payload = msg.payload
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        return msg.opcode, ABNF(int(msg.fin), 0, 0, 0, msg.opcode, 0, data)

    def recv_frame(self) -> ABNF:
        """The next frame: a whole message (gws reassembles fragments)
        unless ``fire_cont_frame``, or a ping, pong or close frame."""
        return self.recv_data_frame(True)[1]

    def _next(self, control_frame: bool) -> Optional[gws.Message]:
        """The next message (or control frame); None for the peer's close
        frame (then in ``close_frame``). Raises as websocket-client does."""
        ws = self._ws
        if ws is None:
            raise WebSocketConnectionClosedException("Connection is closed")
        while True:
            timeout = self.sock_opt.timeout
            try:
                msg = ws.recv(None if timeout is None else timeout * 1000.0)
            except gws.ReceiveTimeout as exc:
                raise WebSocketTimeoutException("Connection timed out") from exc
            except gws.ConnectionClosed as exc:
                self._closed(ws, exc)
                return None
            opcode = msg.opcode
            if _trace.enabled:
                trace(f"++Rcv decoded: fin={int(msg.fin)} opcode={opcode} data={msg.payload!r}")
            if opcode == ABNF.OPCODE_CLOSE:
                continue  # fire_cont_frame: the close frame; the next recv tells the close
            if opcode > ABNF.OPCODE_CLOSE:
                if not control_frame:
                    continue
            elif self.fire_cont_frame:
                self._check_sequence(msg)
            return msg

    def _check_sequence(self, frame: gws.Message) -> None:
        """websocket-client's checks on frames delivered one by one: a
        continuation needs a message to continue, a new message must not
        start inside one."""
        opcode = frame.opcode
        if opcode == ABNF.OPCODE_CONT:
            if self._fragmented is None:
                raise WebSocketProtocolException("Illegal frame")
        elif self._fragmented is not None:
            raise WebSocketProtocolException("Illegal frame")
        else:
            self._fragmented = opcode
        if frame.fin:
            self._fragmented = None

    def _closed(self, ws: gws.WebSocket, closed: gws.ConnectionClosed) -> None:
        """The gws connection ended while receiving: note the peer's close
        frame the first time (recv returns it), raise otherwise."""
        exc = ws.read.exception
        frame = _close_frame(ws)
        if exc is None and frame is not None and not self._peer_close_seen:
            self._peer_close_seen = True
            self.close_frame = frame
            return
        self.shutdown()
        if exc is None:
            raise WebSocketConnectionClosedException(
                "Connection to remote host was lost."
            ) from closed
        raise _translate(exc) from exc

    # -- closing ---------------------------------------------------------------------------

    def send_close(self, status: int = STATUS_NORMAL, reason: Union[str, bytes] = b"") -> None:
        """Send a close frame. gws runs the whole close handshake here
        (bounded by the close timeout); a following ``recv`` returns the
        peer's close frame, as with websocket-client."""
        if status < 0 or status >= ABNF.LENGTH_16:
            raise ValueError("code is invalid range")
        ws = self._require()
        if not self.connected or ws.connection.state is not gws.State.OPEN:
            raise WebSocketConnectionClosedException("socket is already closed.")
        text = reason.decode("utf-8", errors="replace") if isinstance(reason, bytes) else reason
        self._close_sent = True
        try:
            ws.close(status, text)
        except ValueError as exc:
            log.debug(f"send_close({status}): {exc}; dropping the connection")
            _on_hub(ws, _abort, ws)

    def close(
        self,
        status: int = STATUS_NORMAL,
        reason: Union[str, bytes] = b"",
        timeout: Optional[float] = _CLOSE_TIMEOUT,
    ) -> None:
        """Close: send a close frame, wait up to ``timeout`` seconds for the
        peer's (``close_frame`` keeps it), then drop the socket. Never raises
        for network trouble. ``timeout=None`` still waits at most 5 s: gws
        never waits forever for a peer (websocket-client's close can hang)."""
        ws = self._ws
        if ws is None:
            return
        bound = _UNBOUNDED_CLOSE if timeout is None else timeout
        state = ws.connection.state
        if state is not gws.State.OPEN:
            if state is gws.State.CLOSING:  # another thread's close, or the peer's, under way
                _on_hub(ws, _wait_closed, ws, bound)
            if self.close_frame is None and ws.read.exception is None:
                self.close_frame = _close_frame(ws)
            self.shutdown()
            return
        if status < 0 or status >= ABNF.LENGTH_16:
            raise ValueError("code is invalid range")
        self.close_frame = None
        text = reason.decode("utf-8", errors="replace") if isinstance(reason, bytes) else reason
        try:
            _on_hub(ws, _close_within, ws, status, text, bound)
        except ValueError as exc:  # a code gws may not send (1005, 1006...): drop instead
            log.debug(f"close({status}): {exc}; dropping the connection")
        except Exception as exc:  # noqa: BLE001 - websocket-client's close never raises
            log.debug(f"close failed: {exc}")
        if ws.read.exception is None:
            self.close_frame = _close_frame(ws)
        self.shutdown()

    def abort(self) -> None:
        """Drop the connection now: wakes a ``recv`` waiting in another
        thread (or greenlet), which raises WebSocketConnectionClosedException."""
        ws = self._ws
        if ws is not None:
            _on_hub(ws, _abort, ws)  # on the connection's own thread

    def shutdown(self) -> None:
        """Close the socket now, without a close handshake."""
        ws = self._ws
        self._ws = None
        if ws is not None:
            _on_hub(ws, _abort, ws)


def _close_frame(ws: gws.WebSocket) -> Optional[ABNF]:
    """The close frame the peer sent, rebuilt from gws's close code and
    reason (None when none was received)."""
    code = ws.close_code
    if code is None or code == 1006:
        return None
    if code == 1005:
        return ABNF(1, 0, 0, 0, ABNF.OPCODE_CLOSE, 0, b"")
    reason = (ws.close_reason or "").encode("utf-8")
    return ABNF(1, 0, 0, 0, ABNF.OPCODE_CLOSE, 0, struct.pack("!H", code) + reason)


def create_connection(
    url: str,
    timeout: Optional[float] = None,
    class_: Type[WebSocket] = WebSocket,
    **options: Any,
) -> WebSocket:
    """Connect to ``url`` and return the :class:`WebSocket`, as
    websocket-client's ``create_connection`` (``timeout`` in seconds; None:
    :func:`getdefaulttimeout`). See :meth:`WebSocket.connect` for options.

    Unlike websocket-client, the handshake is bounded even with no timeout
    (gws's 10 s), and ``recv`` can never hang on a dead peer when a
    heartbeat is set (``gws_options={"heartbeat": ms}``).
    """
    sockopt = options.pop("sockopt", [])
    sslopt = options.pop("sslopt", {})
    fire_cont_frame = options.pop("fire_cont_frame", False)
    enable_multithread = options.pop("enable_multithread", True)
    skip_utf8_validation = options.pop("skip_utf8_validation", False)
    websock = class_(
        sockopt=sockopt,
        sslopt=sslopt,
        fire_cont_frame=fire_cont_frame,
        enable_multithread=enable_multithread,
        skip_utf8_validation=skip_utf8_validation,
        **options,
    )
    websock.settimeout(timeout if timeout is not None else getdefaulttimeout())
    websock.connect(url, **options)
    return websock
