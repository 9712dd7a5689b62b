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
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import gevent.socket as gsocket
import gevent.ssl as gssl
from gevent.server import StreamServer

from .deadline import Deadline
from .deflate import PerMessageDeflate, negotiate
from .errors import HandshakeError, WebSocketError
from .frames import Message
from .handshake import (
    MAX_HEAD,
    HeadTooLarge,
    build_accept,
    build_reject,
    check_request,
    header_values,
    parse_request,
    split_tokens,
)
from .hooks import Request
from .io import IO_OPTIONS, Reader, Writer, check_io_options, make_connection
from .protocol import CLOSING, OPEN
from .transport import read_head, wrap_tls

__all__ = ["Request", "Server", "accept", "serve", "echo", "Handler"]

log = logging.getLogger("gws")


Handler = Callable[[Request, Reader, Writer], Any]


def _check_accept_options(
    subprotocols: Sequence[str],
    compression: Any,
    timeout: Optional[float],
    io_options: Mapping[str, Any],
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


def accept(
    sock: gsocket.socket,
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
    ``timeout`` (ms) bounds the whole handshake, the TLS handshake of an
    ``SSLSocket`` made with ``do_handshake_on_connect=False`` included; on
    expiry the client gets a 408. Raises :class:`HandshakeError` (after
    answering the client with an HTTP error) for a bad request, ValueError
    for a bad option.
    """
    _check_accept_options(subprotocols, compression, timeout, io_options)
    deadline = Deadline(None if timeout is None else timeout / 1000.0)
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
            key = check_request(method, req_headers)
        except HandshakeError as exc:
            _reject(sock, exc.status or 400, str(exc))
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
    if deadline.expired:
        _reject(sock, 408, "opening handshake timed out")
        raise HandshakeError("handshake timed out", 408)
    deflate = PerMessageDeflate(params, is_client=False) if params else None
    opts = dict(io_options)
    opts["mask"] = False
    conn = make_connection(opts, is_client=False, deflate=deflate, sock=sock, initial=rest)
    return Request(target, req_headers, chosen, ext_header, address), Reader(conn), Writer(conn)


def _reject(sock: gsocket.socket, status: int, message: str) -> None:
    """Answer an HTTP error without blocking on a client that does not read."""
    try:
        sock.setblocking(False)
        sock.send(build_reject(status, message))
    except (OSError, ValueError):
        pass


def echo(request: Request, read: Reader, write: Writer) -> None:
    """Handler that sends every message back with the same opcode."""
    for msg in read:
        ok, _ = write(Message(opcode=msg.opcode, payload=msg.payload))
        if not ok:
            break


class Server(StreamServer):
    """The :class:`gevent.server.StreamServer` that :func:`serve` returns;
    ``stop()`` also removes the unix socket file it listens on."""

    unix_path: Optional[str] = None
    ssl_context: Optional[ssl.SSLContext] = None

    @property
    def ssl_enabled(self) -> bool:
        return self.ssl_context is not None

    def stop(self, timeout: Optional[float] = None) -> None:
        try:
            super().stop(timeout)
        finally:
            path = self.unix_path
            if path is not None:
                self.unix_path = None
                try:
                    os.unlink(path)
                except OSError:
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
    Stop it with ``server.stop()``. ``options`` go to :func:`accept` and are
    checked here: a bad one raises ValueError now, not per connection. A
    ``host`` starting with ``unix:`` listens on that unix socket path
    instead (the file is removed on stop). A handler that raises is logged
    and its connection closed with 1011; the server goes on.
    """
    accept_options = dict(options)
    _check_accept_options(
        accept_options.get("subprotocols", ()),
        accept_options.get("compression", "deflate"),
        accept_options.get("timeout", 10000),
        {k: v for k, v in accept_options.items() if k in IO_OPTIONS},
    )
    unknown = (
        set(accept_options) - IO_OPTIONS - {"subprotocols", "compression", "headers", "timeout"}
    )
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")

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
        try:
            handler(request, read, write)
        except Exception:
            log.exception("WebSocket handler failed")
            conn.fail(1011, "handler error")
        finally:
            if conn.state is OPEN:
                try:
                    conn.close(1000, "")
                except WebSocketError:
                    pass
            elif conn.state is CLOSING:
                conn.abort()

    listener: Union[gsocket.socket, Tuple[str, int]]
    unix_path = None
    if host.startswith("unix:"):
        unix_path = host[5:]
        listener = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        listener.bind(unix_path)
        listener.listen(1024)
    else:
        listener = (host, port)
    serve_one = handle
    if ssl_context is not None:

        def serve_one(sock: gsocket.socket, address: Any) -> None:
            # The TLS handshake happens in accept(), inside its timeout.
            try:
                tls_sock = wrap_tls(
                    sock, ssl_context, server_side=True, do_handshake_on_connect=False
                )
            except (OSError, ValueError) as exc:
                log.debug("TLS setup with %s failed: %s", address, exc)
                sock.close()
                return
            try:
                handle(tls_sock, address)
            finally:
                tls_sock.close()

    server = Server(listener, serve_one)
    server.ssl_context = ssl_context
    server.unix_path = unix_path
    if start:
        server.start()
    return server
