"""The accept side for gevent servers: validate an upgrade, answer 101, wrap_io.

``accept(sock)`` turns an accepted socket into ``(Request, read, write)``;
``serve(handler, host, port)`` runs a :class:`gevent.server.StreamServer`
calling ``handler(request, read, write)`` per connection; :func:`echo` is a
ready handler.
"""

from __future__ import annotations

import logging
import os
import ssl
from time import monotonic
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

import gevent
import gevent.socket as gsocket
import gevent.ssl as gssl
from gevent import Greenlet
from gevent.server import StreamServer

from .connection import Connection
from .deadline import Deadline
from .deflate import PerMessageDeflate, negotiate
from .errors import CloseTimeout, HandshakeError, WebSocketError
from .frames import Message
from .handshake import (
    MAX_HEAD,
    HeadTooLarge,
    build_accept,
    check_request,
    header_values,
    parse_request,
    split_tokens,
)
from .hooks import (
    HTTPResponse,
    ProcessRequest,
    Request,
    SelectSubprotocol,
    check_hook_options,
    check_origin,
    pick_subprotocol,
    render_response,
    response_status,
    run_hooks,
)
from .io import IO_OPTIONS, Reader, Writer, check_io_options, make_connection
from .protocol import CLOSED, CLOSING, OPEN
from .transport import read_head, wrap_tls

__all__ = ["Request", "Server", "accept", "serve", "echo", "Handler"]

log = logging.getLogger("gws")


Handler = Callable[[Request, Reader, Writer], Any]


HOOK_OPTIONS = frozenset(("process_request", "origins", "select_subprotocol"))
SERVER_OPTIONS = frozenset(("subprotocols", "compression", "headers", "timeout")) | HOOK_OPTIONS


def _check_accept_options(
    subprotocols: Sequence[str],
    compression: Any,
    timeout: Optional[float],
    io_options: Mapping[str, Any],
    process_request: Any = None,
    origins: Any = None,
    select_subprotocol: Any = None,
) -> None:
    """Raise ValueError for an accept()/serve() option gws does not know or cannot use."""
    unknown = set(io_options) - IO_OPTIONS
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
    if "mask" in io_options:
        raise ValueError("a server never masks (RFC 6455 5.1): mask is not a server option")
    check_io_options(io_options)
    if isinstance(subprotocols, str) or not all(isinstance(p, str) for p in subprotocols):
        raise ValueError("option subprotocols must be a list of str")
    if compression not in (None, "deflate"):
        raise ValueError('option compression must be "deflate" or None')
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError("option timeout must be a positive number of milliseconds or None")
    check_hook_options(process_request, origins, select_subprotocol)


def accept(
    sock: gsocket.socket,
    *,
    subprotocols: Sequence[str] = (),
    compression: Any = "deflate",
    headers: Sequence[Tuple[str, str]] = (),
    timeout: Optional[float] = 10000,
    address: Any = None,
    process_request: Optional[ProcessRequest] = None,
    origins: Optional[Iterable[Optional[str]]] = None,
    select_subprotocol: Optional[SelectSubprotocol] = None,
    **io_options: Any,
) -> Tuple[Request, Reader, Writer]:
    """Run the server side of the opening handshake on a connected socket.

    Once the request head is parsed, and before the upgrade headers are
    checked, the hooks decide (see ``gws.hooks``): with ``origins``, a
    request whose ``Origin`` is not in the list gets a 403; then
    ``process_request(request)`` may answer any request, a plain HTTP one
    too, with an :class:`gws.HTTPResponse` or a ``(status, headers,
    body)`` tuple instead of the 101 (a 401, a 200 health check). Such a
    request is answered, and accept() raises :class:`HandshakeError` whose
    ``status``, ``headers`` and ``body`` are those of the answer.

    The subprotocol is ``select_subprotocol(request, offered)`` when given,
    else the first one the client offered that is in ``subprotocols``;
    permessage-deflate is accepted unless ``compression`` is None. Remaining
    options go to wrap_io (``mask`` is always False). ``timeout`` (ms)
    bounds the whole handshake, the hooks and the TLS handshake of an
    ``SSLSocket`` made with ``do_handshake_on_connect=False`` included; on
    expiry the client gets a 408. Raises :class:`HandshakeError` (after
    answering the client with an HTTP error) for a bad request, ValueError
    for a bad option.
    """
    origin_list: Optional[List[Optional[str]]] = _origin_list(origins)
    _check_accept_options(
        subprotocols,
        compression,
        timeout,
        io_options,
        process_request,
        origin_list,
        select_subprotocol,
    )
    deadline = Deadline(None if timeout is None else timeout / 1000.0)
    answered = False
    with deadline:
        if isinstance(sock, (ssl.SSLSocket, gssl.SSLSocket)) and not getattr(
            sock, "do_handshake_on_connect", True
        ):
            sock.do_handshake()
        try:
            head, rest = read_head(sock, MAX_HEAD)
        except HandshakeError as exc:
            status = 431 if isinstance(exc, HeadTooLarge) else 400
            _reject(sock, status, str(exc))
            raise HandshakeError(str(exc), status) from None
        try:
            method, target, req_headers = parse_request(head)
        except HandshakeError as exc:
            _reject(sock, exc.status or 400, str(exc))
            raise
        request = Request(target, req_headers, None, None, address, method)
        refused = _hook_answer(request, process_request, origin_list)
        if refused is not None:
            answered = True  # from here on, a timeout cannot send a 408 as well
            sock.sendall(render_response(refused[0], method=method))
            raise refused[1]
        try:
            key = check_request(method, req_headers)
            offered = split_tokens(header_values(req_headers, "Sec-WebSocket-Protocol"))
            chosen = pick_subprotocol(request, offered, subprotocols, select_subprotocol)
        except HandshakeError as exc:
            _reject(sock, exc.status or 400, str(exc))
            raise
        params = None
        if compression is not None:
            params = negotiate(header_values(req_headers, "Sec-WebSocket-Extensions"))
        ext_header = params.header() if params else None
        sock.sendall(
            build_accept(key, subprotocol=chosen, extensions=ext_header, headers=list(headers))
        )
    if deadline.expired:
        if answered:
            raise HandshakeError("handshake timed out answering the hooks' response", 408)
        _reject(sock, 408, "opening handshake timed out")
        raise HandshakeError("handshake timed out", 408)
    deflate = PerMessageDeflate(params, is_client=False) if params else None
    opts = dict(io_options)
    opts["mask"] = False
    conn = make_connection(opts, is_client=False, deflate=deflate, sock=sock, initial=rest)
    request = request._replace(subprotocol=chosen, extensions=ext_header)
    return request, Reader(conn), Writer(conn)


def _origin_list(origins: Any) -> Any:
    """``origins`` as a list, so a generator is not used up by the first
    request; what is no iterable is left for the option check to refuse."""
    if origins is None or isinstance(origins, (str, bytes)):
        return origins
    try:
        return list(origins)
    except TypeError:
        return origins


def _hook_answer(
    request: Request,
    process_request: Optional[ProcessRequest],
    origins: Optional[List[Optional[str]]],
) -> Optional[Tuple[HTTPResponse, HandshakeError]]:
    """What the hooks answer instead of a 101, and the error accept() raises
    once it is sent; None to go on with the upgrade."""
    refused = check_origin(request, origins)
    if refused is not None:
        origin = request.header("Origin")
        why = "no Origin header" if origin is None else f"origin {origin[:200]!r} not allowed"
        answer: Optional[HTTPResponse] = refused
    else:
        answer = run_hooks(request, process_request=process_request)
        why = "answered by process_request"
    if answer is None:
        return None
    path = request.path.split("?", 1)[0]
    assert isinstance(answer.body, bytes)
    error = HandshakeError(
        f"{request.method} {path[:200]}: {why} with {response_status(answer.status)}",
        answer.status,
        list(answer.headers),
        answer.body,
    )
    return answer, error


def _reject(sock: gsocket.socket, status: int, message: str) -> None:
    """Answer an HTTP error without blocking on a client that does not read."""
    extra = [("Sec-WebSocket-Version", "13")] if status == 426 else []
    try:
        sock.setblocking(False)
        sock.send(render_response(HTTPResponse(status, extra, message + "\n")))
    except (OSError, ValueError):
        pass


def finish_handler_connection(conn: Connection) -> None:
    """What a server does once a handler returned: close an open connection
    with 1000, drop one whose close handshake is still under way."""
    if conn.state is OPEN:
        try:
            conn.close(1000, "")
        except WebSocketError:
            pass
    elif conn.state is CLOSING:
        conn.abort()


def echo(request: Request, read: Reader, write: Writer) -> None:
    """Handler that sends every message back with the same opcode."""
    for msg in read:
        ok, _ = write(Message(opcode=msg.opcode, payload=msg.payload))
        if not ok:
            break


class Server(StreamServer):
    """The :class:`gevent.server.StreamServer` that :func:`serve` returns.

    ``connections`` lists the open WebSocket connections (for
    :func:`gws.broadcast`); ``stop()`` shuts down gracefully and removes the
    unix socket file the server listens on.
    """

    unix_path: Optional[str] = None
    ssl_context: Optional[ssl.SSLContext] = None
    #: Seconds ``stop()`` waits by default (gevent's unit and attribute name).
    stop_timeout = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections: Dict[Connection, None] = {}  # insertion-ordered set
        self._greenlets: Set[Greenlet[..., Any]] = set()
        self.stopping = False

    @property
    def ssl_enabled(self) -> bool:
        return self.ssl_context is not None

    @property
    def connections(self) -> List[Connection]:
        """The connections whose handler is running, oldest first (a copy)."""
        return list(self._connections)

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop accepting, close every open connection with 1001, wait for
        the handlers; return within ``timeout`` seconds (default
        ``stop_timeout``, 5).

        Every open connection gets a close frame with code 1001 ("going
        away") at once. A client that has not completed the close handshake
        shortly before the deadline (0.2 x timeout, at most 0.5 s, before
        it) is dropped; handlers still running at the deadline are killed.
        A connection still in its opening handshake that completes it before
        the deadline is closed with 1001 before its handler runs; one that
        does not is dropped at the deadline. May be called from a handler:
        that one is neither waited for nor killed.
        """
        seconds = self.stop_timeout if timeout is None else max(float(timeout), 0.0)
        end = monotonic() + seconds
        self.stopping = True
        try:
            self.close()
            self._close_connections(end - min(0.5, 0.2 * seconds))
            me = gevent.getcurrent()
            running = [g for g in self._greenlets if g is not me]
            if running:
                gevent.joinall(running, timeout=max(end - monotonic(), 0.0))
                alive = [g for g in running if not g.dead]
                if alive:
                    log.info("server stop: killing %d handler(s) still running", len(alive))
                    gevent.killall(alive, block=False)
        finally:
            path = self.unix_path
            if path is not None:
                self.unix_path = None
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def _close_connections(self, grace_end: float) -> None:
        conns = [c for c in self._connections if c.state is not CLOSED]
        if not conns:
            return
        closers = [gevent.spawn(_going_away, c) for c in conns]
        gevent.joinall(closers, timeout=max(grace_end - monotonic(), 0.0))
        late = [c for c in conns if c.state is not CLOSED]
        if late:
            log.info("server stop: dropping %d connection(s) that did not close in time", len(late))
            for conn in late:
                conn.abort(CloseTimeout("server stopped before the close handshake completed"))
        gevent.killall([g for g in closers if not g.dead], block=False)

    def _serve(self, sock: gsocket.socket, address: Any, run: Callable[[], None]) -> None:
        """Run one connection's ``run`` as a tracked greenlet."""
        me = gevent.getcurrent()
        if not isinstance(me, Greenlet):  # a custom spawn, not gevent's: run untracked
            run()
            return
        self._greenlets.add(me)
        try:
            run()
        finally:
            self._greenlets.discard(me)


def _going_away(conn: Connection) -> None:
    try:
        conn.close(1001, "server shutting down")
    except (WebSocketError, OSError, ValueError):
        pass


def serve(
    handler: Handler = echo,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: Optional[ssl.SSLContext] = None,
    start: bool = True,
    **options: Any,
) -> Server:
    """Serve WebSocket connections with ``handler(request, read, write)``.

    Returns the started :class:`Server`, a gevent ``StreamServer``
    (``port=0`` picks a free port: read it from ``server.server_port``).
    Stop it with ``server.stop()``, which closes open connections with 1001.
    ``options`` go to :func:`accept` (``subprotocols``, ``compression``,
    ``headers``, ``timeout``, the hooks ``process_request``, ``origins``
    and ``select_subprotocol``, and wrap_io's options) and are checked here:
    a bad one raises ValueError now, not per connection. A ``host`` starting
    with ``unix:`` listens on that unix socket path instead (the file is
    removed on stop). A request the hooks answer, or a bad one, is logged
    at INFO ("rejected upgrade from ..."). A handler that raises is logged
    and its connection closed with 1011; the server goes on.
    """
    accept_options = dict(options)
    if "origins" in accept_options:
        accept_options["origins"] = _origin_list(accept_options["origins"])
    unknown = set(accept_options) - IO_OPTIONS - SERVER_OPTIONS
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
    _check_accept_options(
        accept_options.get("subprotocols", ()),
        accept_options.get("compression", "deflate"),
        accept_options.get("timeout", 10000),
        {k: v for k, v in accept_options.items() if k in IO_OPTIONS},
        accept_options.get("process_request"),
        accept_options.get("origins"),
        accept_options.get("select_subprotocol"),
    )

    def handle(sock: gsocket.socket, address: Any) -> None:
        if sock.family in (gsocket.AF_INET, gsocket.AF_INET6):
            try:
                sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            request, read, write = accept(sock, address=address, **accept_options)
        except HandshakeError as exc:
            log.info("rejected upgrade from %s: %s", address, exc)
            sock.close()
            return
        except (OSError, ValueError) as exc:
            log.debug("handshake with %s failed: %s", address, exc)
            sock.close()
            return
        conn = read.connection
        if server.stopping:
            _going_away(conn)
            return
        server._connections[conn] = None
        try:
            handler(request, read, write)
        except Exception:
            log.exception("WebSocket handler failed")
            conn.fail(1011, "handler error")
        finally:
            server._connections.pop(conn, None)
            finish_handler_connection(conn)

    listener: Union[gsocket.socket, Tuple[str, int]]
    unix_path = None
    if host.startswith("unix:"):
        unix_path = host[5:]
        listener = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        listener.bind(unix_path)
        listener.listen(1024)
    else:
        listener = (host, port)

    def serve_plain(sock: gsocket.socket, address: Any) -> None:
        server._serve(sock, address, lambda: handle(sock, address))

    def serve_tls(sock: gsocket.socket, address: Any) -> None:
        # The TLS handshake happens in accept(), inside its timeout.
        assert ssl_context is not None
        try:
            tls_sock = wrap_tls(sock, ssl_context, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            log.debug("TLS setup with %s failed: %s", address, exc)
            sock.close()
            return
        try:
            server._serve(tls_sock, address, lambda: handle(tls_sock, address))
        finally:
            tls_sock.close()

    server = Server(listener, serve_plain if ssl_context is None else serve_tls)
    server.ssl_context = ssl_context
    server.unix_path = unix_path
    if start:
        server.start()
    return server
