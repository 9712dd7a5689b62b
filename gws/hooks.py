"""Server handshake hooks, sans-I/O: decide before any 101 what a request gets.

A server (``gws.accept``/``gws.serve``, ``gws.wsgi.WebSocketHandler``) calls
:func:`run_hooks` on every parsed request head *before* it checks the
upgrade headers, so a hook sees plain HTTP requests too (a health check on
the WebSocket port). A hook answers with an :class:`HTTPResponse`, which the
server sends with :func:`render_response` and then closes the connection;
no 101 is ever sent after one. Then the server checks the upgrade and picks
the subprotocol with :func:`pick_subprotocol`.

* ``process_request(request)`` -> None (go on with the upgrade), an
  :class:`HTTPResponse` or a ``(status, headers, body)`` tuple.
* ``origins``: allow-list of ``Origin`` header values; None in the list
  allows requests without an ``Origin`` header (non-browser clients).
* ``select_subprotocol(request, offered)`` -> one of ``offered``, or None.
* :func:`basic_auth` builds a ``process_request`` for HTTP Basic auth.

No sockets, no gevent: bytes and values in, bytes and values out.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from http import HTTPStatus
from typing import (
    Any,
    Callable,
    Collection,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .errors import HandshakeError
from .handshake import Headers, _status_text, header_values

__all__ = [
    "HTTPResponse",
    "Request",
    "ProcessRequest",
    "SelectSubprotocol",
    "basic_auth",
    "basic_credentials",
    "check_hook_options",
    "check_origin",
    "run_hooks",
    "pick_subprotocol",
    "render_response",
    "response_status",
]

log = logging.getLogger("gws")


class Request(NamedTuple):
    """A client's upgrade request, as hooks and the handler see it.

    ``path`` is the request target (path and query). While hooks run,
    ``subprotocol`` and ``extensions`` are None (nothing is negotiated yet);
    the handler gets the ones chosen. ``address`` is the peer's address as
    the server reports it; ``method`` the request method (a hook sees
    requests that are no upgrade at all).
    """

    path: str
    headers: Headers
    subprotocol: Optional[str]
    extensions: Optional[str]
    address: Any = None
    method: str = "GET"

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = header_values(self.headers, name)
        return values[0] if values else None


class HTTPResponse(NamedTuple):
    """A plain HTTP answer given instead of the 101.

    ``body`` may be ``str`` (sent as UTF-8). ``Content-Length`` and
    ``Connection: close`` are always set by ``render_response``.
    """

    status: int
    headers: Sequence[Tuple[str, str]] = ()
    body: Union[bytes, str] = b""


ResponseLike = Union[HTTPResponse, Tuple[Any, ...]]
ProcessRequest = Callable[[Request], Optional[ResponseLike]]
"""``process_request(request)``: None goes on with the upgrade; anything
else is answered as plain HTTP, never a 101."""
SelectSubprotocol = Callable[[Request, List[str]], Optional[str]]
"""``select_subprotocol(request, offered)``: one of ``offered``, or None for none."""

_NO_BODY = (204, 304)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


response_status = _status_text
"""``response_status(401)`` is ``"401 Unauthorized"``: the status with its
standard reason phrase (the handshake's own error messages use it too)."""


def _text(status: int, message: str, headers: Sequence[Tuple[str, str]] = ()) -> HTTPResponse:
    return HTTPResponse(status, list(headers), (message + "\n").encode("utf-8"))


def _normalise(answer: Any) -> HTTPResponse:
    """An :class:`HTTPResponse` from what a hook returned; ValueError if it is no response."""
    if isinstance(answer, HTTPResponse):
        status, headers, body = answer
    elif isinstance(answer, tuple) and 1 <= len(answer) <= 3:
        status, headers, body = (tuple(answer) + ((), b""))[:3]
    else:
        raise ValueError(
            f"process_request must return None, an HTTPResponse or a (status, headers, body)"
            f" tuple, not {type(answer).__name__}"
        )
    if isinstance(status, HTTPStatus):
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"response status must be an int from 200 to 599, not {status!r}")
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    elif not isinstance(headers, (list, tuple)):
        raise ValueError(f"response headers must be a list of pairs, not {headers!r}")
    pairs: List[Tuple[str, str]] = []
    for pair in headers:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"response headers must be (name, value) pairs, not {pair!r}")
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError("response header names and values must be str")
        _check_header(name, value)
        pairs.append((name, value))
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        raise ValueError(f"response body must be bytes or str, not {type(body).__name__}")
    if body and status in _NO_BODY:
        raise ValueError(f"a {status} response cannot have a body")
    return HTTPResponse(status, pairs, body)


def check_hook_options(
    process_request: Any = None, origins: Any = None, select_subprotocol: Any = None
) -> None:
    """Raise ValueError for a hook option a server cannot use (call it when
    the server is configured, so a mistake shows at once). ``origins`` must
    be a collection (an iterator would be used up): make it a list first."""
    if process_request is not None and not callable(process_request):
        raise ValueError("option process_request must be callable or None")
    if select_subprotocol is not None and not callable(select_subprotocol):
        raise ValueError("option select_subprotocol must be callable or None")
    if origins is not None:
        if isinstance(origins, (str, bytes)):
            raise ValueError("option origins must be a list of origins (str or None), not a str")
        if not isinstance(origins, Collection):
            # An iterator would be used up by this check (or by the first request).
            raise ValueError("option origins must be a list, tuple or set of origins")
        if not all(o is None or isinstance(o, str) for o in origins):
            raise ValueError("option origins must be a list of origins (str or None)")


def check_origin(
    request: Request, origins: Optional[Iterable[Optional[str]]]
) -> Optional[HTTPResponse]:
    """None when the request's ``Origin`` is allowed, else a 403 response.

    Allowed: ``origins`` is None (no check), or the single ``Origin``
    header's value is in ``origins`` (compared exactly, as browsers send the
    serialized origin, e.g. ``"https://app.example"``), or the request has
    no ``Origin`` header and None is in ``origins``. Several ``Origin``
    headers are refused.
    """
    if origins is None:
        return None
    allowed = list(origins)
    values = header_values(request.headers, "Origin")
    if not values:
        if None in allowed:
            return None
        return _text(403, "Forbidden: missing Origin header")
    if len(values) == 1 and values[0] in allowed:
        return None
    return _text(403, "Forbidden: origin not allowed")


def run_hooks(
    request: Request,
    *,
    process_request: Optional[ProcessRequest] = None,
    origins: Optional[Iterable[Optional[str]]] = None,
) -> Optional[HTTPResponse]:
    """The answer a request gets before any 101, or None to go on with the upgrade.

    The ``origins`` check runs first, then ``process_request``; what it
    returns is normalised to an :class:`HTTPResponse` (a ``(status, headers,
    body)`` tuple, ``str`` body, dict of headers are accepted). A hook that
    raises, or returns something that is no response (a 101 included), is
    logged with its traceback and answered ``500 Internal Server Error``:
    a broken hook never lets a request through.
    """
    refused = check_origin(request, origins)
    if refused is not None or process_request is None:
        return refused
    try:
        answer = process_request(request)
        if answer is None:
            return None
        return _normalise(answer)
    except Exception:
        log.exception("process_request failed for %s %s", request.method, _log_path(request))
        return _text(500, "Internal Server Error")


def pick_subprotocol(
    request: Request,
    offered: List[str],
    supported: Sequence[str],
    select_subprotocol: Optional[SelectSubprotocol] = None,
) -> Optional[str]:
    """The subprotocol to answer, or None.

    With ``select_subprotocol``, what it returns (it must be one of
    ``offered``, or None); without, the first of ``offered`` (the client's
    order) that is in ``supported``. A ``select_subprotocol`` that raises or
    returns one not offered is a server bug: :class:`HandshakeError` with
    status 500, the server answers that.
    """
    if select_subprotocol is None:
        return next((p for p in offered if p in supported), None)
    try:
        chosen = select_subprotocol(request, list(offered))
    except Exception as exc:
        log.exception("select_subprotocol failed for %s", _log_path(request))
        raise HandshakeError("select_subprotocol failed", 500) from exc
    if chosen is not None and (not isinstance(chosen, str) or chosen not in offered):
        raise HandshakeError(
            f"select_subprotocol returned {chosen!r}, which the client did not offer", 500
        )
    return chosen


def render_response(response: HTTPResponse, *, method: str = "GET") -> bytes:
    """The bytes of ``response`` as an HTTP/1.1 reply that closes the connection.

    ``"HTTP/1.1 <status> <standard reason>"``, the response's headers in
    order, ``Content-Length`` (not for 204/304), ``Content-Type:
    text/plain; charset=utf-8`` when there is a body and no Content-Type,
    ``Connection: close``, then the body (left out for ``method="HEAD"``).
    The response's own Content-Length, Connection and Transfer-Encoding
    headers are replaced. ValueError for a header with a line break or an
    invalid name, or a status that is no final response.
    """
    response = _normalise(response)
    status, headers, body = response
    assert isinstance(body, bytes)
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    has_type = False
    for name, value in headers:
        lname = name.lower()
        if lname in ("content-length", "connection", "transfer-encoding"):
            continue
        has_type = has_type or lname == "content-type"
        lines.append(f"{name}: {value}")
    if status not in _NO_BODY:
        if body and not has_type:
            lines.append("Content-Type: text/plain; charset=utf-8")
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if method == "HEAD" else head + body


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _check_header(name: str, value: str) -> None:
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ValueError(f"invalid response header name {name!r}")
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"response header {name} has a line break or NUL in its value")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"response header {name} is not latin-1 text") from None


def _log_path(request: Request) -> str:
    """The request path without its query (which may carry a token), for logs."""
    return request.path.split("?", 1)[0]


# -- HTTP Basic authentication (RFC 7617) ------------------------------------------------------


def basic_credentials(request: Request) -> Optional[Tuple[str, str]]:
    """``(username, password)`` from the request's ``Authorization: Basic``
    header, or None when it is missing or malformed. A handler behind
    :func:`basic_auth` can read the user name with it."""
    values = header_values(request.headers, "Authorization")
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    return username, password


def basic_auth(
    credentials: Union[Mapping[str, str], Callable[[str, str], bool]],
    realm: str = "gws",
) -> ProcessRequest:
    """A ``process_request`` hook for HTTP Basic auth (RFC 7617).

    ``credentials`` is a mapping of user name to password, or a callable
    ``check(username, password) -> bool``. A request without valid
    credentials is answered ``401 Unauthorized`` with ``WWW-Authenticate:
    Basic realm="<realm>", charset="UTF-8"``; passwords are compared in
    constant time (``hmac.compare_digest``). Credentials never appear in a
    response or a log line. Combine it with another hook by calling it
    from yours: ``return auth(request) or other(request)``.
    """
    if isinstance(credentials, Mapping):
        table = dict(credentials)
        if not all(isinstance(u, str) and isinstance(p, str) for u, p in table.items()):
            raise ValueError("basic_auth credentials must map str user names to str passwords")

        def check_table(username: str, password: str) -> bool:
            expected = table.get(username)
            # Compare even for an unknown user, so its answer takes as long.
            ok = hmac.compare_digest(
                (expected if expected is not None else password + "\x00").encode("utf-8"),
                password.encode("utf-8"),
            )
            return ok and expected is not None

        check: Callable[[str, str], bool] = check_table
    elif callable(credentials):
        check = credentials
    else:
        raise ValueError("basic_auth credentials must be a mapping or a callable")
    if not isinstance(realm, str) or any(c in realm for c in '"\\\r\n\x00'):
        raise ValueError(
            "basic_auth realm must be a str without quotes, backslashes or line breaks"
        )
    challenge = [("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"')]

    def process_request(request: Request) -> Optional[HTTPResponse]:
        pair = basic_credentials(request)
        if pair is None:
            return _text(401, "Unauthorized: missing credentials", challenge)
        if not check(*pair):
            return _text(401, "Unauthorized: invalid credentials", challenge)
        return None

    return process_request
