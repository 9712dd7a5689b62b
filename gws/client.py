"""connect() and open(): TCP / TLS / unix socket, the opening handshake, wrap_io.

``connect`` is the seed face (errors are values); ``open`` is the Pythonic
face (errors are exceptions) returning a :class:`WebSocket`.
"""

from __future__ import annotations

import base64
import functools
import logging
import ssl
import sys
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, Tuple, Union

import gevent
import gevent.socket as gsocket

from .connection import Connection, MessageLike, Pong
from .deflate import PerMessageDeflate, accept_response, make_offer
from .dial import SOCKET_OPTIONS, open_stream
from .errors import (
    ConnectionClosed,
    HandshakeError,
    InvalidState,
    InvalidURL,
    OpenTimeout,
    WebSocketError,
)
from .frames import Message
from .handshake import (
    MAX_HEAD,
    Headers,
    build_request,
    check_response,
    header_values,
    make_key,
    parse_response,
    split_tokens,
)
from .io import (
    IO_OPTIONS,
    Reader,
    Writer,
    check_io_options,
    make_connection,
)
from .protocol import CLOSED
from .redirects import DEFAULT_REDIRECTS, hide_query, location, next_hop, url_of
from .transport import read_head, wrap_tls
from .trust import cached_context as _cached_context  # noqa: F401 - tests clear its cache
from .trust import default_context, tls_context
from .url import split_url

__all__ = ["connect", "open", "Response", "WebSocket", "CONNECT_OPTIONS", "ConnectResult"]


log = logging.getLogger("gws")

CONNECT_OPTIONS = (
    frozenset(
        (
            "path",
            "host",
            "port",
            "tls",
            "pathname",
            "subprotocol",
            "headers",
            "timeout",
            "compression",
            "redirects",
            "origin",
            "user_agent",
        )
    )
    | SOCKET_OPTIONS
    | IO_OPTIONS
)
DEFAULT_TIMEOUT = 10000


class Response:
    """The server's reply to the upgrade request.

    Truthy; ``code`` (101), ``reason``, ``version`` (1.1), ``keep_alive``
    (alias ``keepAlive``), ``socket``, ``subprotocol``, ``extensions`` (dict
    of negotiated extension name -> parameters) and ``headers`` (name, value)
    pairs in received order. ``res[i]`` and ``len(res)`` index the headers,
    like the Lua table's numeric keys.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        version: float,
        headers: Headers,
        socket: gsocket.socket,
        subprotocol: Optional[str] = None,
        extensions: Optional[Dict[str, Dict[str, Any]]] = None,
    ) -> None:
        self.code = code
        self.reason = reason
        self.version = version
        self._headers: Optional[Headers] = headers
        self._head = b""  # the head ``headers`` is parsed from again once dropped
        self.socket = socket
        self.subprotocol = subprotocol
        self.extensions = extensions or {}
        self.url = ""
        """The URL finally connected to (after any redirects), without credentials."""
        self.redirects: List[str] = []
        """The URLs that answered with a redirect, in order."""
        conn = [v.lower() for v in split_tokens(header_values(headers, "Connection"))]
        self.keep_alive = "keep-alive" in conn

    @property
    def keepAlive(self) -> bool:  # noqa: N802 - the seed's name
        return self.keep_alive

    @property
    def headers(self) -> Headers:
        """The response's (name, value) header pairs, in received order."""
        headers = self._headers
        if headers is None:
            headers = self._headers = parse_response(self._head)[3]
        return headers

    @headers.setter
    def headers(self, headers: Headers) -> None:
        self._headers = headers

    def _keep_head(self, head: bytes) -> None:
        """Hold the raw head instead of the parsed headers (a third of the
        memory for a connection that lives long); ``headers`` parses it again
        when first asked for."""
        self._head = head
        self._headers = None

    def header(self, name: str) -> Optional[str]:
        """First value of header ``name`` (case-insensitive), or None."""
        values = header_values(self.headers, name)
        return values[0] if values else None

    def __getitem__(self, index: int) -> Tuple[str, str]:
        return self.headers[index]

    def __len__(self) -> int:
        return len(self.headers)

    def __bool__(self) -> Literal[True]:  # Literal: lets type checkers narrow ``if not res``
        return True

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.reason!r} subprotocol={self.subprotocol!r}>"


ConnectResult = Union[Tuple[Response, Reader, Writer], Tuple[None, str, None]]
"""What :func:`connect` returns. Type checkers narrow the tuple, not the names
unpacked from it: test ``result[0]`` (``if not result[0]:``) before unpacking."""


def _merge_options(url_or_options: Any, options: Mapping[str, Any]) -> Dict[str, Any]:
    opts: Dict[str, Any] = {}
    if isinstance(url_or_options, str):
        url = split_url(url_or_options)
        if url.unix_path is not None:
            opts.update(path=url.unix_path, tls=url.tls, pathname=url.pathname)
        else:
            opts.update(host=url.host, port=url.port, tls=url.tls, pathname=url.pathname)
        if url.username or url.password:  # "ws://@h/" sends no Authorization
            cred = f"{url.username or ''}:{url.password or ''}".encode()
            opts["_auth"] = "Basic " + base64.b64encode(cred).decode("ascii")
    elif isinstance(url_or_options, Mapping):
        opts.update(url_or_options)
    elif url_or_options is not None:
        raise InvalidURL(
            f"connect() takes a URL string or an options dict, not {type(url_or_options).__name__}"
        )
    for key, value in options.items():
        if key == "tls" and value is False and opts.get("tls") and isinstance(url_or_options, str):
            raise InvalidURL("tls=False contradicts a wss:// URL")
        opts[key] = value
    unknown = set(opts) - CONNECT_OPTIONS - {"_auth"}
    if unknown:
        name = sorted(unknown)[0]
        hint = " (mask is a wrap_io option: connect always masks)" if name == "mask" else ""
        raise InvalidURL(f"unknown option {name!r}{hint}")
    if opts.get("mask", True) is not True:
        raise InvalidURL("connect always masks (RFC 6455 5.3); mask is a wrap_io option")
    return opts


def _headers(value: Any) -> List[Tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, (Mapping, list, tuple)):
        raise InvalidURL("headers must be a dict or a list of (name, value) pairs")
    items = value.items() if isinstance(value, Mapping) else value
    pairs: List[Tuple[str, str]] = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidURL("headers must be a dict or a list of (name, value) pairs")
        pairs.append((str(item[0]), str(item[1])))
    return pairs


def _tls_context(tls: Any) -> Tuple[Optional[ssl.SSLContext], Optional[str]]:
    """The SSL context for option ``tls``, and any server_name override (trust.py)."""
    return tls_context(tls)


def _open_socket(opts: Mapping[str, Any], timeout: float) -> Tuple[gsocket.socket, str, str]:
    """Connect (TCP, proxy tunnel, unix or the caller's ``sock``); return
    (socket, netloc for the Host header, ASCII host name for TLS)."""
    stream = open_stream(opts, timeout, default_context)
    return stream.sock, stream.netloc, stream.hostname or "127.0.0.1"


def _handshake(
    sock: gsocket.socket, netloc: str, opts: Mapping[str, Any]
) -> Tuple[Response, Optional[PerMessageDeflate], bytes]:
    pathname = opts.get("pathname") or "/"
    if not isinstance(pathname, str):
        raise InvalidURL("option pathname must be a str")
    if not pathname.startswith("/"):
        pathname = "/" + pathname
    sub = opts.get("subprotocol")
    if sub is not None and not (
        isinstance(sub, str)
        or (isinstance(sub, (list, tuple)) and all(isinstance(p, str) for p in sub))
    ):
        raise InvalidURL("option subprotocol must be a str or a list of str")
    subprotocols: Sequence[str] = [sub] if isinstance(sub, str) else list(sub or ())
    headers = _headers(opts.get("headers"))
    if "_auth" in opts and not any(n.lower() == "authorization" for n, _ in headers):
        headers.append(("Authorization", opts["_auth"]))
    try:
        offer = make_offer(opts.get("compression", "deflate"))
    except ValueError as exc:
        raise InvalidURL(str(exc)) from None
    key = make_key()
    origin = opts.get("origin")
    user_agent = opts.get("user_agent", _default_user_agent())
    try:
        request = build_request(
            netloc,
            pathname,
            key,
            subprotocols=subprotocols,
            extensions=offer[0] if offer else None,
            headers=headers,
            origin=origin,
            user_agent=user_agent,
        )
    except ValueError as exc:
        raise InvalidURL(str(exc)) from None
    sock.sendall(request)
    head, rest = read_head(sock, MAX_HEAD)
    version, code, reason, resp_headers = parse_response(head)
    try:
        subprotocol = check_response(code, reason, resp_headers, key, subprotocols)
    except HandshakeError as exc:
        exc.body = rest
        raise
    params = accept_response(
        offer[1] if offer else None, header_values(resp_headers, "Sec-WebSocket-Extensions")
    )
    deflate = PerMessageDeflate(params, is_client=True) if params else None
    extensions = {"permessage-deflate": params.__dict__.copy()} if params else {}
    response = Response(
        code, sys.intern(reason), version, resp_headers, sock, subprotocol, extensions
    )
    response._keep_head(head)
    return response, deflate, rest


def _check_request_options(opts: Mapping[str, Any]) -> None:
    """Options of the request itself, checked before any socket is opened."""
    for name in ("origin", "user_agent"):
        value = opts.get(name)
        if value is not None and (
            not isinstance(value, str) or any(c in value for c in "\r\n\x00")
        ):
            raise InvalidURL(f"option {name} must be a str (one line) or None")


@functools.lru_cache(maxsize=1)
def _default_user_agent() -> str:
    from . import __version__

    return f"gws/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"


def _establish(url_or_options: Any, options: Mapping[str, Any]) -> Tuple[Response, Reader, Writer]:
    """Open a connection; raises WebSocketError subclasses or OSError."""
    opts = _merge_options(url_or_options, options)
    try:
        check_io_options(opts)
    except ValueError as exc:
        raise InvalidURL(str(exc)) from None
    timeout_ms = opts.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms <= 0:
        raise InvalidURL("option timeout must be a positive number of milliseconds")
    timeout = timeout_ms / 1000.0
    limit = opts.get("redirects", DEFAULT_REDIRECTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidURL("option redirects must be an int >= 0")
    _check_request_options(opts)
    chain = [url_of(opts)]
    ctx, server_name = _tls_context(opts.get("tls"))
    timer = gevent.Timeout(timeout)
    timer.start()
    sock = None
    try:
        while True:
            sock, netloc, hostname = _open_socket(opts, timeout)
            if ctx is not None:
                sock = wrap_tls(sock, ctx, server_hostname=server_name or hostname)
            try:
                response, deflate, rest = _handshake(sock, netloc, opts)
                break
            except HandshakeError as exc:
                target = location(exc) if limit else None
                if target is None:
                    raise
                opts = next_hop(opts, target, chain, limit, exc.status)
                log.debug("following a %d redirect to %s", exc.status, hide_query(chain[-1]))
            sock.close()
            sock = None
            ctx, server_name = _tls_context(opts.get("tls"))
    except gevent.Timeout as exc:
        if sock is not None:
            sock.close()
        if exc is not timer:
            raise
        raise OpenTimeout(f"timed out after {timeout_ms} ms while connecting") from None
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    finally:
        timer.close()
    sock.settimeout(None)
    response.url = chain[-1]
    response.redirects = chain[:-1]
    io_opts = {k: v for k, v in opts.items() if k in IO_OPTIONS}
    io_opts["mask"] = True
    conn = make_connection(io_opts, is_client=True, deflate=deflate, sock=sock, initial=rest)
    return response, Reader(conn), Writer(conn)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, gsocket.gaierror):
        return f"DNS lookup failed: {exc}"
    if isinstance(exc, (TimeoutError, gsocket.timeout)) and not isinstance(exc, WebSocketError):
        return "timed out while connecting"
    if isinstance(exc, OSError) and not isinstance(exc, WebSocketError):  # not OpenTimeout
        return f"connection failed: {exc.strerror or exc}"
    return str(exc)


def _split_thread(url_or_options: Any, options: Dict[str, Any]) -> Tuple[bool, Any]:
    """Take option ``thread`` out of the keyword options (popped) or the
    options dict (copied); return (thread, url_or_options)."""
    thread = options.pop("thread", None)
    if isinstance(url_or_options, Mapping) and "thread" in url_or_options:
        url_or_options = dict(url_or_options)
        in_dict = url_or_options.pop("thread")
        thread = in_dict if thread is None else thread
    if thread is None:
        return False, url_or_options
    if not isinstance(thread, bool):
        raise InvalidURL("option thread must be True or False")
    return thread, url_or_options


def connect(
    url_or_options: Union[str, Mapping[str, Any], None] = None, /, **options: Any
) -> ConnectResult:
    """Open a WebSocket connection (the seed face).

    Accepts an options dict, keyword options, or a ws:// / wss:// URL plus
    keyword options. Returns ``(Response, read, write)``, or
    ``(None, error_string, None)`` for any failure: never raises for
    network, TLS, handshake or option errors. ``thread=True``: thread mode
    (:mod:`gws.threaded`), where any OS thread may use the connection.
    """
    try:
        thread, url_or_options = _split_thread(url_or_options, options)
    except InvalidURL as exc:
        return None, str(exc), None
    if thread:
        from . import threaded

        return threaded.connect(url_or_options, options)  # type: ignore[no-any-return]
    try:
        res, read, write = _establish(url_or_options, options)
    except (WebSocketError, OSError, ValueError, TypeError) as exc:
        # TypeError: an option of the wrong type (tls ca=5, path=5...)
        message = _describe(exc)
        log.debug("connect failed: %s", message)
        return None, message, None
    return res, read, write


class WebSocket:
    """A connection with the Pythonic face; ``read``/``write`` are the seed face.

    Use as a context manager; iterate for messages until the peer closes.
    """

    def __init__(self, response: Response, read: Reader, write: Writer) -> None:
        self.response = response
        self.read = read
        self.write = write
        self._conn: Connection = read.connection

    @property
    def connection(self) -> Connection:
        return self._conn

    @property
    def subprotocol(self) -> Optional[str]:
        return self.response.subprotocol

    @property
    def closed(self) -> bool:
        return self._conn.state is CLOSED

    @property
    def close_code(self) -> Optional[int]:
        return self._conn.close_code

    @property
    def close_reason(self) -> Optional[str]:
        return self._conn.close_reason

    @property
    def close_description(self) -> Optional[str]:
        """Who closed and why ("peer closed with 1001 (going away)"); None while open."""
        return self._conn.close_description

    @property
    def latency(self) -> Optional[float]:
        """The last measured ping round trip in ms (heartbeat pings too), or None."""
        return self._conn.latency

    def _closed_error(self) -> ConnectionClosed:
        return self._conn.closed_error()

    def send(self, message: MessageLike) -> None:
        """Send ``str`` as text, ``bytes`` as binary, a Message / dict as one
        frame, or an iterable of str (or of bytes) as one fragmented message.

        Raises :class:`ConnectionClosed` if the connection is closed or
        closing, ``TypeError``/``ValueError`` for a message gws cannot send.
        """
        try:
            self._conn.send(message)
        except InvalidState as exc:
            raise self._closed_error() from exc

    def recv(self, timeout: Optional[float] = None) -> Message:
        """Next message (``payload`` is str for text, bytes for binary).

        ``timeout`` (ms) raises :class:`~gws.ReceiveTimeout` (a
        ``TimeoutError``) and leaves the connection usable. Raises
        :class:`ConnectionClosed` once the connection is closed.
        """
        msg = self._receive(None if timeout is None else timeout / 1000.0)
        if msg is None:
            raise self._closed_error() from self._conn.exception
        return msg

    def _receive(self, timeout: Optional[float]) -> Optional[Message]:
        # The next message, None once closed; timeout in seconds. Thread mode
        # takes it from its read-ahead queue instead.
        return self._conn.read(timeout)

    def ping(
        self,
        payload: Union[bytes, str] = b"",
        *,
        wait: bool = False,
        timeout: Optional[float] = None,
    ) -> Pong:
        """Send a ping; return its :class:`~gws.Pong`, whose ``wait()``
        returns the round trip in ms. ``wait=True`` waits here (at most
        ``timeout`` ms: :class:`~gws.PongTimeout`), ``.latency`` is then set.
        """
        try:
            pong = self._conn.ping(payload)
        except InvalidState as exc:
            raise self._closed_error() from exc
        if wait:
            pong.wait(timeout)
        return pong

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (waits at most ``close_timeout``); idempotent.

        Raises ValueError for an invalid code or reason.
        """
        conn = self._conn
        if conn.state is CLOSED:
            return
        try:
            conn.close(code, reason)
        except (InvalidState, ConnectionClosed):
            pass

    def __iter__(self) -> Iterator[Message]:
        return iter(self.read)

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._conn.state.name.lower()
        return f"<gws.WebSocket {state} subprotocol={self.subprotocol!r}>"


def open(
    url_or_options: Union[str, Mapping[str, Any], None] = None, /, **options: Any
) -> WebSocket:  # noqa: A001
    """Open a WebSocket connection (the Pythonic face); raises on failure.

    Raises :class:`~gws.InvalidURL` for a bad URL or option,
    :class:`~gws.HandshakeError` for a refused upgrade,
    :class:`~gws.OpenTimeout` on timeout, ``ssl.SSLError`` / ``OSError``
    for TLS and network failures. ``thread=True``: thread mode
    (:mod:`gws.threaded`), where any OS thread may use the connection.
    """
    thread, url_or_options = _split_thread(url_or_options, options)
    if thread:
        from . import threaded

        return threaded.open(url_or_options, options)
    res, read, write = _establish(url_or_options, options)
    return WebSocket(res, read, write)
