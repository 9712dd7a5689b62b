"""WebSockets for WSGI apps under gevent's WSGI server (``gevent.pywsgi``).

``WSGIServer(addr, app, handler_class=gws.wsgi.WebSocketHandler)`` serves
``app`` as usual and upgrades requests carrying ``Upgrade: websocket``: the
request is validated and answered ``101`` by gws's sans-I/O handshake code,
then ``app(environ, start_response)`` runs with ``environ["wsgi.websocket"]``
set to a :class:`WebSocket` (gevent-websocket's API plus gws's ``read`` /
``write``). When the app returns, the connection is closed with 1000, or
with 1011 if the app raised (or answered a 5xx after the upgrade, as Flask
does for a failing view). Every other request is plain WSGI.
:func:`close_websockets` closes a server's open WebSockets with 1001 (what
``WebSocketServer.stop()`` and the gunicorn worker do when they stop).

Options (the ``gws.accept`` handshake options and the ``wrap_io`` options,
durations in ms) come from :meth:`WebSocketHandler.configure`, and per path
from a :class:`WebSocketApp` (or any application with a
``gws_websocket_options(environ)`` method). This is also gevent-websocket's
replacement: ``WebSocketServer``, ``Resource``, ``WebSocketApplication`` and
``WebSocketError`` are here under its names.
"""

from __future__ import annotations

import logging
import re
import socket
from types import MappingProxyType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

import gevent
from gevent.pywsgi import WSGIHandler, WSGIServer

from .connection import Connection
from .deflate import PerMessageDeflate, negotiate
from .errors import ConnectionClosed, HandshakeError, InvalidState, WebSocketError
from .frames import OP_BINARY, Message
from .handshake import (
    Headers,
    build_accept,
    build_reject,
    check_request,
    header_values,
    split_tokens,
)
from .hooks import (
    HTTPResponse,
    Request,
    check_hook_options,
    pick_subprotocol,
    render_response,
    run_hooks,
)
from .io import IO_OPTIONS, Reader, Writer, check_io_options, make_connection
from .protocol import CLOSED, OPEN
from .server import finish_handler_connection

__all__ = [
    "WebSocket",
    "WebSocketHandler",
    "WebSocketApp",
    "WebSocketServer",
    "WebSocketError",
    "Resource",
    "WebSocketApplication",
    "Client",
    "close_websockets",
    "HANDSHAKE_OPTIONS",
    "check_options",
]

log = logging.getLogger("gws")

#: Options of the opening handshake; the rest are ``wrap_io`` options (``IO_OPTIONS``).
HANDSHAKE_OPTIONS = frozenset(
    ("subprotocols", "compression", "headers", "process_request", "origins", "select_subprotocol")
)

_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key

WSGIApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]
WebSocketView = Callable[["WebSocket"], Any]


def check_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    """Return ``options`` as a dict, or raise ValueError naming the first
    option the WSGI handler does not know or cannot use."""
    opts = dict(options)
    unknown = set(opts) - HANDSHAKE_OPTIONS - IO_OPTIONS
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
    if "mask" in opts:
        raise ValueError("a server never masks (RFC 6455 5.1): mask is not a server option")
    check_io_options(opts)
    subprotocols = opts.get("subprotocols", ())
    if isinstance(subprotocols, str) or not all(isinstance(p, str) for p in subprotocols):
        raise ValueError("option subprotocols must be a list of str")
    if opts.get("compression", "deflate") not in (None, "deflate"):
        raise ValueError('option compression must be "deflate" or None')
    check_hook_options(
        opts.get("process_request"), opts.get("origins"), opts.get("select_subprotocol")
    )
    headers = opts.get("headers", ())
    if isinstance(headers, (str, bytes)) or not all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in headers
    ):
        raise ValueError("option headers must be a list of (name, value) pairs of str")
    build_accept(_SAMPLE_KEY, headers=headers)  # ValueError for a bad name or value, now
    return opts


class Client:
    """An entry of ``server.clients`` (gevent-websocket's name): who is
    connected. Apps may set attributes of their own on it (a nickname)."""

    def __init__(self, address: Any, ws: WebSocket) -> None:
        self.address = address
        self.ws = ws

    @property
    def connection(self) -> Connection:
        """The connection, so ``gws.broadcast(server.clients.values(), msg)`` works."""
        return self.ws.connection

    def __repr__(self) -> str:
        return f"<gws.wsgi.Client {self.address!r}>"


def close_websockets(server: Any, code: int = 1001, reason: str = "going away") -> List[Any]:
    """Start the close handshake, with ``code``, on every WebSocket that
    ``server`` (a pywsgi server using :class:`WebSocketHandler`) has open;
    return the greenlets doing it. Each app's ``receive()`` then returns
    None, so its handler ends; every close is bounded by ``close_timeout``.
    """
    clients = list(getattr(server, "clients", {}).values())
    return [gevent.spawn(_going_away, client.ws, code, reason) for client in clients]


def _going_away(ws: WebSocket, code: int, reason: str) -> None:
    if ws.closed:  # closing already
        return
    try:
        ws.close(code, reason)
    except (WebSocketError, OSError) as exc:
        log.debug("closing %r with %s failed: %s", ws, code, exc)


class _NoApp:
    def on_close(self, *args: Any) -> None:
        pass


class WebSocket:
    """The server side of one WebSocket connection, as a WSGI app sees it.

    gevent-websocket's API: :meth:`receive` (``str`` for text, ``bytes`` for
    binary, None once closed), :meth:`send` (``binary=None``: ``str`` goes
    as text, anything else as binary), :meth:`close`, ``closed``, ``path``,
    ``origin``, ``protocol``, ``version``, ``environ``, ``handler``,
    ``current_app``, ``logger``. gws's own: ``read`` / ``write`` (the seed
    face), :meth:`recv` (a :class:`~gws.Message`, raises
    :class:`~gws.ConnectionClosed`), ``ping()``, iteration over messages,
    ``request`` (a :class:`gws.Request`), ``subprotocol``, ``extensions``,
    ``compressed``, ``close_code`` and ``close_reason``.
    """

    def __init__(
        self,
        connection: Connection,
        request: Request,
        environ: Dict[str, Any],
        handler: Optional[WSGIHandler] = None,
    ) -> None:
        self.connection = connection
        self.read = Reader(connection)
        self.write = Writer(connection)
        self.request = request
        self.environ = environ
        self.handler = handler

    # -- gevent-websocket's API ------------------------------------------------

    def receive(self) -> Optional[Union[str, bytes]]:
        """The next message's payload (``str`` or ``bytes``), or None once
        the connection is closed (``close_code`` / ``error`` tell how)."""
        msg = self.read()
        if msg is None:
            return None
        return msg.payload

    def send(self, message: Any, binary: Optional[bool] = None) -> None:
        """Send one message; ``binary=None`` sends ``str`` as text and
        ``bytes``-like as binary. ``binary=False`` with bytes sends them as
        text (they must be UTF-8). ``None`` on an open connection sends
        nothing, as in gevent-websocket.

        Raises :class:`WebSocketError` (``InvalidState`` or
        ``ConnectionClosed``) once the connection is closed or closing.
        """
        conn = self.connection
        if message is None:
            if conn.state is not OPEN:
                raise InvalidState("connection is closed")
            return
        if binary is None:
            binary = not isinstance(message, str)
        if binary:
            payload = message.encode("utf-8") if isinstance(message, str) else bytes(message)
            conn.send(Message(opcode=OP_BINARY, payload=payload))
        elif isinstance(message, str):
            conn.send(message)
        else:
            text = bytes(message).decode("utf-8")  # UnicodeDecodeError (a ValueError)
            conn.send(text)

    def close(self, code: int = 1000, message: Union[bytes, str] = b"") -> None:
        """Run the close handshake with ``code`` and reason ``message``
        (bounded by ``close_timeout``). Idempotent; never raises for a
        connection already closed. ValueError for an invalid code."""
        conn = self.connection
        if conn.state is CLOSED:
            return
        reason = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        try:
            conn.close(code, reason or "")
        except (InvalidState, ConnectionClosed):
            pass

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the connection failed."""
        return self.connection.state is not OPEN

    @property
    def path(self) -> Optional[str]:
        return self.environ.get("PATH_INFO")

    @property
    def origin(self) -> Optional[str]:
        return self.environ.get("HTTP_ORIGIN")

    @property
    def protocol(self) -> Optional[str]:
        """The subprotocol chosen in the handshake (gevent-websocket gave
        the client's whole ``Sec-WebSocket-Protocol`` header here; that is
        ``environ["HTTP_SEC_WEBSOCKET_PROTOCOL"]``)."""
        return self.request.subprotocol

    @property
    def version(self) -> str:
        return "13"

    @property
    def current_app(self) -> Any:
        """``server.application.current_app`` when the app has one (gevent-websocket)."""
        server = getattr(self.handler, "server", None)
        app = getattr(server, "application", None)
        return getattr(app, "current_app", None) or _NoApp()

    @property
    def logger(self) -> logging.Logger:
        return log

    # -- gws's own -------------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Message:
        """The next :class:`~gws.Message`; ``timeout`` in ms raises
        :class:`~gws.ReceiveTimeout`. Raises :class:`~gws.ConnectionClosed`
        once closed."""
        conn = self.connection
        msg = conn.read(None if timeout is None else timeout / 1000.0)
        if msg is None:
            raise conn.closed_error() from conn.exception
        return msg

    def ping(self, payload: Union[bytes, str] = b"") -> None:
        self.connection.ping(payload)

    def __iter__(self) -> Iterator[Message]:
        """Messages (:class:`~gws.Message`) until the connection closes."""
        return iter(self.read)

    @property
    def subprotocol(self) -> Optional[str]:
        return self.request.subprotocol

    @property
    def extensions(self) -> Optional[str]:
        """The ``Sec-WebSocket-Extensions`` value answered (None: no compression)."""
        return self.request.extensions

    @property
    def compressed(self) -> bool:
        """Whether permessage-deflate was negotiated."""
        return self.connection.protocol.deflate is not None

    @property
    def close_code(self) -> Optional[int]:
        return self.connection.close_code

    @property
    def close_reason(self) -> Optional[str]:
        return self.connection.close_reason

    @property
    def error(self) -> Optional[str]:
        """Why the connection ended abnormally (None while open or after a clean close)."""
        return self.connection.error

    def __repr__(self) -> str:
        state = self.connection.state.name.lower()
        return f"<gws.wsgi.WebSocket {state} path={self.path!r} subprotocol={self.subprotocol!r}>"


class _AfterUpgrade:
    """The ``start_response`` an app gets after the 101: its HTTP response
    has nowhere to go, but its status is kept (a 5xx, which frameworks such
    as Flask answer for a view that raised, closes the connection with 1011)."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0

    def __call__(self, status: str, headers: Any, exc_info: Any = None) -> Callable[..., None]:
        try:
            self.status = int(str(status).split(" ", 1)[0])
        except ValueError:
            self.status = 0
        return lambda data: None


class WebSocketHandler(WSGIHandler):
    """A :class:`gevent.pywsgi.WSGIHandler` that upgrades WebSocket requests.

    ``WSGIServer(addr, app, handler_class=WebSocketHandler)``. Options are
    the class's ``websocket_options`` (set them with :meth:`configure`),
    overridden per request by ``app.gws_websocket_options(environ)`` when
    the app has that method (a :class:`WebSocketApp` does); if it returns
    None the request is not a WebSocket endpoint and goes to the app as
    plain HTTP.

    A refused upgrade (a malformed request, the ``origins`` allow-list,
    ``process_request``) is answered with a plain HTTP response and logged,
    never with a 101.
    """

    #: Handshake and wrap_io options, as :meth:`configure` takes them (read-only).
    websocket_options: Mapping[str, Any] = MappingProxyType({})
    #: The class of ``environ["wsgi.websocket"]``.
    websocket_class: Type[WebSocket] = WebSocket

    websocket: Optional[WebSocket] = None

    @classmethod
    def configure(cls, **options: Any) -> Type[WebSocketHandler]:
        """A subclass with these options (merged over this class's).

        Handshake: ``subprotocols`` (list, first offered one wins),
        ``select_subprotocol(request, offered)``, ``compression``
        ("deflate" or None), ``headers`` (extra 101 headers),
        ``origins`` (allow-list; 403 otherwise), ``process_request(request)``
        (return an HTTP response to refuse). Connection: ``heartbeat``,
        ``heartbeat_timeout``, ``heartbeat_opcode``, ``max_size``,
        ``fragments``, ``close_timeout`` (ms). Raises ValueError now for a
        bad option.
        """
        merged = dict(cls.websocket_options)
        merged.update(check_options(options))
        return type(cls.__name__, (cls,), {"websocket_options": MappingProxyType(merged)})

    # -- pywsgi hooks ----------------------------------------------------------

    def run_application(self) -> None:
        environ = self.environ
        assert environ is not None
        if not self._is_websocket_request():
            super().run_application()
            return
        options = self._options_for(environ)
        if options is None:
            super().run_application()
            return
        ws = self._upgrade(options)
        if ws is None:
            return
        self._run_websocket(ws)

    # -- the upgrade -----------------------------------------------------------

    def _is_websocket_request(self) -> bool:
        environ = self.environ or {}
        if "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
            return False  # the common case, a plain request, decided without a header scan
        upgrade = split_tokens(header_values(self._request_headers(), "Upgrade"))
        return any(token.lower() == "websocket" for token in upgrade)

    def _request_headers(self) -> Headers:
        return [(str(name), str(value)) for name, value in self.headers.items()]

    def _options_for(self, environ: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        options = dict(self.websocket_options)
        per_app = getattr(self.application, "gws_websocket_options", None)
        if per_app is not None:
            extra = per_app(environ)
            if extra is None:
                return None
            options.update(extra)
        return options

    def _refuse(self, status: int, data: bytes, why: str) -> None:
        """Answer a refused upgrade with ``data`` (a whole HTTP response)."""
        log.info("refused WebSocket upgrade from %s: %s %s", self.client_address, status, why)
        self._answered(data)
        try:
            self._send(data)
        except OSError:
            pass

    def _answered(self, response: bytes) -> None:
        """Record the status and headers of a response written by hand, for
        the access log (pywsgi's or gunicorn's); no further request is read
        from this connection."""
        head = response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        status = head[0][9:].decode("latin-1")
        self.close_connection = True
        self.code = int(status.split(" ", 1)[0])
        self.status = status.encode("latin-1")  # type: ignore[assignment]  # bytes at run time
        self._orig_status = status
        # bytes pairs at run time, as pywsgi's own start_response makes them
        headers: Any = [
            (name, value.strip()) for name, _, value in (line.partition(b":") for line in head[1:])
        ]
        self.response_headers = headers
        self.headers_sent = True

    def _send(self, data: bytes) -> None:
        assert self.socket is not None
        self.socket.sendall(data)
        self.response_length += len(data)

    def _upgrade(self, options: Mapping[str, Any]) -> Optional[WebSocket]:
        """Validate, run the hooks, answer 101 and build the connection;
        None when the request was refused (already answered)."""
        headers = self._request_headers()
        try:
            if self.request_version != "HTTP/1.1":
                raise HandshakeError("a WebSocket upgrade needs HTTP/1.1", 400)
            key = check_request(self.command or "", headers)
        except HandshakeError as exc:
            status = exc.status or 400
            self._refuse(status, build_reject(status, str(exc)), str(exc))
            return None
        target = self.path or "/"
        probe = Request(target, headers, None, None, self.client_address, "GET")
        answer = run_hooks(
            probe, process_request=options.get("process_request"), origins=options.get("origins")
        )
        if answer is not None:
            self._refuse(answer.status, render_response(answer), "refused by a hook")
            return None
        offered = split_tokens(header_values(headers, "Sec-WebSocket-Protocol"))
        try:
            chosen = pick_subprotocol(
                probe, offered, options.get("subprotocols", ()), options.get("select_subprotocol")
            )
        except HandshakeError as exc:  # logged by pick_subprotocol: a server bug, not the client's
            self._refuse(500, render_response(HTTPResponse(500, (), str(exc) + "\n")), str(exc))
            return None
        params = None
        if options.get("compression", "deflate") is not None:
            params = negotiate(header_values(headers, "Sec-WebSocket-Extensions"))
        ext_header = params.header() if params else None
        reply = build_accept(
            key, subprotocol=chosen, extensions=ext_header, headers=list(options.get("headers", ()))
        )
        io_options = {k: v for k, v in options.items() if k in IO_OPTIONS}
        io_options["mask"] = False
        sock = self.socket
        initial = self._buffered_input(sock)
        sock.settimeout(None)  # gws bounds its own waits (close_timeout, heartbeat)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._answered(reply)
        try:
            self._send(reply)
        except OSError as exc:
            log.debug("client %s left before the 101: %s", self.client_address, exc)
            return None
        deflate = PerMessageDeflate(params, is_client=False) if params else None
        conn = make_connection(
            io_options, is_client=False, deflate=deflate, sock=sock, initial=initial
        )
        request = Request(target, headers, chosen, ext_header, self.client_address, "GET")
        assert self.environ is not None
        return self.websocket_class(conn, request, self.environ, self)

    def _buffered_input(self, sock: Any) -> bytes:
        """Bytes the request reader buffered past the head (a client's first
        frames, if it sent them early): taken without waiting for more."""
        rfile = self.rfile
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            data = rfile.peek()
            return bytes(rfile.read1(len(data))) if data else b""
        except OSError:
            return b""
        finally:
            sock.settimeout(timeout)

    # -- running the app -------------------------------------------------------

    def _run_websocket(self, ws: WebSocket) -> None:
        environ = self.environ
        assert environ is not None
        self.websocket = ws
        environ["wsgi.websocket"] = ws
        environ["wsgi.websocket_version"] = "13"
        environ["gws.request"] = ws.request
        server: Any = self.server
        clients = getattr(server, "clients", None)
        if clients is None:
            clients = server.clients = {}
        address = self.client_address
        clients[address] = Client(address, ws)
        conn = ws.connection
        app: Any = self.application
        start_response = _AfterUpgrade()
        try:
            result = app(environ, start_response)
            try:
                for _ in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if start_response.status >= 500 and conn.state is OPEN:
                log.error(
                    "WebSocket application answered %s: closing with 1011", start_response.status
                )
                conn.fail(1011, "handler error")
        except WebSocketError as exc:
            if conn.state is CLOSED:  # e.g. send() after the peer closed: the usual ending
                log.debug("WebSocket application ended with %r after the close", exc)
            else:
                log.exception("WebSocket application failed")
                conn.fail(1011, "handler error")
        except Exception:
            log.exception("WebSocket application failed")
            conn.fail(1011, "handler error")
        finally:
            if clients.get(address) is not None and clients[address].ws is ws:
                del clients[address]
            finish_handler_connection(conn)
            environ["wsgi.websocket"] = None
            self.websocket = None

    @property
    def active_client(self) -> Client:
        """This connection's entry in ``server.clients`` (gevent-websocket)."""
        server: Any = self.server
        return server.clients[self.client_address]  # type: ignore[no-any-return]


class WebSocketServer(WSGIServer):
    """A :class:`gevent.pywsgi.WSGIServer` with :class:`WebSocketHandler`
    (gevent-websocket's ``WebSocketServer``). Keyword arguments that are
    WebSocket options (see :meth:`WebSocketHandler.configure`) configure the
    handler; the rest go to ``WSGIServer``. ``clients`` maps each connected
    address to a :class:`Client`."""

    handler_class = WebSocketHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("debug", None)  # gevent-websocket's; logging goes to "gws"
        options = {
            k: kwargs.pop(k) for k in list(kwargs) if k in HANDSHAKE_OPTIONS or k in IO_OPTIONS
        }
        if options:
            base = kwargs.get("handler_class") or self.handler_class
            kwargs["handler_class"] = base.configure(**options)
        self.clients: Dict[Any, Client] = {}
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        """Stop accepting, and close every open WebSocket with 1001 (going
        away); ``stop(timeout)`` (which calls this first) then waits up to
        ``timeout`` s for the apps to return before killing them."""
        super().close()
        close_websockets(self)


class WebSocketApp:
    """WSGI middleware routing WebSocket requests by path.

    ::

        sockets = gws.wsgi.WebSocketApp(flask_app)

        @sockets.route("/echo", heartbeat=20000)
        def echo(ws):
            for msg in ws:
                ws.send(msg.payload)

        WSGIServer(addr, sockets, handler_class=gws.wsgi.WebSocketHandler)

    Serve this object (not the wrapped app): then an upgrade request for a
    path with no route is passed to the wrapped app as plain HTTP before
    any 101 (so it gets the app's 404), and each route's options (handshake
    hooks, heartbeat, ``max_size``...) apply to its connections. Other
    requests go to ``app`` (404 when there is none).
    """

    def __init__(self, app: Optional[WSGIApp] = None, **options: Any) -> None:
        self.app = app
        self.options = check_options(options)
        self.routes: Dict[str, Tuple[WebSocketView, Dict[str, Any]]] = {}

    def route(self, path: str, **options: Any) -> Callable[[WebSocketView], WebSocketView]:
        """Decorator: ``view(ws)`` serves WebSocket requests for ``path``
        (the exact ``PATH_INFO``) with these options over the app's."""
        merged = dict(self.options)
        merged.update(check_options(options))

        def register(view: WebSocketView) -> WebSocketView:
            self.routes[path] = (view, merged)
            return view

        return register

    def add_route(self, path: str, view: WebSocketView, **options: Any) -> None:
        self.route(path, **options)(view)

    def gws_websocket_options(self, environ: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """The options for this request's path, None if it has no route."""
        found = self.routes.get(environ.get("PATH_INFO", ""))
        return None if found is None else found[1]

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        ws = environ.get("wsgi.websocket")
        found = self.routes.get(environ.get("PATH_INFO", ""))
        if ws is not None and found is not None:
            found[0](ws)
            return []
        if self.app is not None:
            return self.app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]


# -- gevent-websocket's resource API -----------------------------------------------


class WebSocketApplication:
    """gevent-websocket's per-connection class: ``on_open``, ``on_message``
    (default: echo), ``on_close``; used through :class:`Resource`."""

    protocol_name_value: Optional[str] = None

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    def handle(self) -> None:
        self.on_open()
        while True:
            message = self.ws.receive()
            if message is None:
                break
            self.on_message(message)
        self.on_close(self.ws.close_reason)

    def on_open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_close(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_message(self, message: Any, *args: Any, **kwargs: Any) -> None:
        self.ws.send(message, **kwargs)

    @classmethod
    def protocol_name(cls) -> Optional[str]:
        return cls.protocol_name_value


class Resource:
    """gevent-websocket's router: ``Resource([(path_regex, app_or_class), ...])``
    (or an ordered dict). :class:`WebSocketApplication` subclasses serve
    WebSocket requests, plain WSGI apps the rest; the first match wins."""

    def __init__(
        self,
        apps: Union[Sequence[Tuple[str, Any]], Mapping[str, Any], None] = None,
        **options: Any,
    ) -> None:
        items = list(apps.items()) if isinstance(apps, Mapping) else list(apps or [])
        self.apps: List[Tuple[str, Any]] = items
        self.options = check_options(options)

    @staticmethod
    def _is_websocket_app(app: Any) -> bool:
        return isinstance(app, type) and issubclass(app, WebSocketApplication)

    def _app_by_path(self, path: str, websocket: bool) -> Any:
        for pattern, app in self.apps:
            if re.match(pattern, path) and websocket == self._is_websocket_app(app):
                return app
        return None

    def gws_websocket_options(self, environ: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        app = self._app_by_path(environ.get("PATH_INFO", ""), True)
        if app is None:
            return None
        options = dict(self.options)
        name = app.protocol_name()
        if name and "subprotocols" not in options:
            options["subprotocols"] = [name]
        return options

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Any:
        ws = environ.get("wsgi.websocket")
        app = self._app_by_path(environ.get("PATH_INFO", ""), ws is not None)
        if ws is not None and app is not None:
            app(ws).handle()
            return []
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        return app(environ, start_response)
