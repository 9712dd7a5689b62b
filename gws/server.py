"""The accept side for gevent servers: validate an upgrade, answer 101, wrap_io.

``accept(sock)`` turns an accepted socket into ``(Request, read, write)``;
``serve(handler, host, port)`` runs a :class:`gevent.server.StreamServer`
calling ``handler(request, read, write)`` per connection; :func:`echo` is a
ready handler.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Tuple

import gevent
import gevent.socket as gsocket
from gevent.server import StreamServer

from .deflate import PerMessageDeflate, negotiate
from .errors import HandshakeError
from .frames import RSV1, Message
from .handshake import (
    MAX_HEAD,
    Headers,
    HeadTooLarge,
    build_accept,
    build_reject,
    check_request,
    header_values,
    parse_request,
    split_tokens,
)
from .io import DEFAULT_MAX_SIZE, IO_OPTIONS, Connection, Reader, Writer, read_head, socket_io

__all__ = ["Request", "accept", "serve", "echo", "Handler"]

log = logging.getLogger("gws")


class Request(NamedTuple):
    """A client's upgrade request, as the handler sees it."""

    path: str
    headers: Headers
    subprotocol: Optional[str]
    extensions: Optional[str]
    address: Any = None

    def header(self, name: str) -> Optional[str]:
        values = header_values(self.headers, name)
        return values[0] if values else None


Handler = Callable[[Request, Reader, Writer], Any]


def accept(
    sock: Any,
    *,
    subprotocols: Sequence[str] = (),
    compression: Any = "deflate",
    headers: Sequence[Tuple[str, str]] = (),
    timeout: Optional[float] = 10000,
    address: Any = None,
    **io_options: Any,
) -> Tuple[Request, Reader, Writer]:
    """Run the server side of the opening handshake on a connected socket.

    Chooses the first subprotocol the client offered that is in
    ``subprotocols``; accepts permessage-deflate unless ``compression`` is
    None. Remaining options go to wrap_io (``mask`` is always False).
    Raises :class:`HandshakeError` (after answering the client with an HTTP
    error) for a bad request; ``timeout`` (ms) bounds the handshake.
    """
    unknown = set(io_options) - IO_OPTIONS
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
    timer = gevent.Timeout(
        None if timeout is None else timeout / 1000.0, HandshakeError("handshake timed out", 408)
    )
    timer.start()
    try:
        try:
            head, rest = read_head(sock, MAX_HEAD)
        except HandshakeError as exc:
            status = 431 if isinstance(exc, HeadTooLarge) else 400
            raise HandshakeError(str(exc), status) from None
        try:
            method, target, req_headers = parse_request(head)
            key = check_request(method, req_headers)
        except HandshakeError as exc:
            try:
                sock.sendall(build_reject(exc.status or 400, str(exc)))
            except OSError:
                pass
            raise
        offered = split_tokens(header_values(req_headers, "Sec-WebSocket-Protocol"))
        chosen = next((p for p in offered if p in subprotocols), None)
        params = None
        if compression is not None:
            params = negotiate(header_values(req_headers, "Sec-WebSocket-Extensions"))
        ext_header = params.header() if params else None
        sock.sendall(
            build_accept(key, subprotocol=chosen, extensions=ext_header, headers=list(headers))
        )
    finally:
        timer.close()
    deflate = PerMessageDeflate(params, is_client=False) if params else None
    raw_read, raw_write = socket_io(
        sock,
        mask=False,
        max_size=io_options.get("max_size", DEFAULT_MAX_SIZE),
        rsv_allowed=RSV1 if deflate else 0,
        initial=rest,
    )
    opts = dict(io_options)
    opts["mask"] = False
    conn = Connection(raw_read, raw_write, opts, deflate)
    return Request(target, req_headers, chosen, ext_header, address), Reader(conn), Writer(conn)


def echo(request: Request, read: Reader, write: Writer) -> None:
    """Handler that sends every message back with the same opcode."""
    for msg in read:
        ok, _ = write(Message(opcode=msg.opcode, payload=msg.payload))
        if not ok:
            break


def serve(
    handler: Handler = echo,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ssl_context: Any = None,
    start: bool = True,
    **options: Any,
) -> StreamServer:
    """Serve WebSocket connections with ``handler(request, read, write)``.

    Returns the started :class:`gevent.server.StreamServer` (``port=0``
    picks a free port: read it from ``server.server_port``). Stop it with
    ``server.stop()``. ``options`` go to :func:`accept`. A ``host`` starting
    with ``unix:`` listens on that unix socket path instead.
    """

    def handle(sock: Any, address: Any) -> None:
        if sock.family in (gsocket.AF_INET, gsocket.AF_INET6):
            try:
                sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            request, read, write = accept(sock, address=address, **options)
        except HandshakeError as exc:
            log.debug("rejected upgrade from %s: %s", address, exc)
            sock.close()
            return
        except OSError as exc:
            log.debug("handshake with %s failed: %s", address, exc)
            sock.close()
            return
        conn = read.connection
        try:
            handler(request, read, write)
        except Exception:
            log.exception("WebSocket handler failed")
            conn._fail(1011, "handler error")
        finally:
            if conn.state == 0:
                conn.close(1000, "")
            elif conn.state == 1:
                conn._abort(None)

    listener: Any
    if host.startswith("unix:"):
        listener = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        listener.bind(host[5:])
        listener.listen(1024)
    else:
        listener = (host, port)
    kwargs: Mapping[str, Any] = {"ssl_context": ssl_context} if ssl_context is not None else {}
    server = StreamServer(listener, handle, **kwargs)
    if start:
        server.start()
    return server
