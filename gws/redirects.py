"""Following HTTP redirects of the opening handshake (sans-I/O).

A server may answer the upgrade request with 301, 302, 303, 307 or 308 and
a ``Location``; gws follows up to ``redirects`` of them (default 3, as
websocket-client; 0 follows none). :func:`next_hop` turns the options of
one attempt and the ``Location`` into the options of the next:

* relative and absolute locations; ``http://`` / ``https://`` mean
  ``ws://`` / ``wss://``; credentials in a ``Location`` are ignored;
* never from ``wss`` to ``ws``;
* to another origin (scheme, host, port or socket file): no
  ``Authorization``, no ``Cookie``, no credentials from the URL, no
  ``server_name`` override;
* a loop or a chain longer than the limit is a :class:`RedirectError`
  listing the chain.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urljoin, urlsplit

from .errors import HandshakeError, InvalidURL
from .handshake import header_values
from .url import netloc, split_url

__all__ = [
    "REDIRECT_CODES",
    "DEFAULT_REDIRECTS",
    "RedirectError",
    "location",
    "url_of",
    "next_hop",
    "hide_query",
]

REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
DEFAULT_REDIRECTS = 3
_DROPPED_CROSS_ORIGIN = frozenset(("authorization", "cookie"))


class RedirectError(HandshakeError):
    """A redirect gws will not follow; ``chain`` lists the URLs (credentials
    and query strings left out), the refused target last."""

    def __init__(self, message: str, chain: List[str], status: int = 0) -> None:
        shown = [hide_query(url) for url in chain]
        super().__init__(f"{message}: {' -> '.join(shown)}", status)
        self.chain = shown


def hide_query(url: str) -> str:
    """``url`` with any query string shown as ``?…`` (it may hold a token)."""
    return url.split("?", 1)[0] + "?…" if "?" in url else url


def location(exc: HandshakeError) -> Optional[str]:
    """The ``Location`` of a redirect reply, or None if ``exc`` is no redirect."""
    if exc.status not in REDIRECT_CODES:
        return None
    values = header_values(exc.headers, "Location")
    return values[0].strip() if values and values[0].strip() else None


def _origin(opts: Mapping[str, Any]) -> Tuple[Any, ...]:
    tls = bool(opts.get("tls"))
    if opts.get("host") is None and opts.get("port") is None and opts.get("path") is not None:
        return ("unix", tls, opts.get("path"))
    default = "localhost" if opts.get("sock") is not None else "127.0.0.1"  # as dial.py
    host = str(opts.get("host") or default).lower()
    return ("tcp", tls, host, opts.get("port") or (443 if tls else 80))


def url_of(opts: Mapping[str, Any]) -> str:
    """The URL an attempt with ``opts`` asks for, without credentials."""
    tls = bool(opts.get("tls"))
    pathname = str(opts.get("pathname") or "/")
    if not pathname.startswith("/"):
        pathname = "/" + pathname
    origin = _origin(opts)
    if origin[0] == "unix":
        return f"{'wss' if tls else 'ws'}+unix://{origin[2]}:{pathname}"
    return f"{'wss' if tls else 'ws'}://{netloc(origin[2], origin[3], tls)}{pathname}"


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # RFC 3986 3.1
_AS_HTTP = {"ws": "http", "wss": "https"}
_AS_WS = {"http": "ws", "https": "wss"}


def _resolve(opts: Mapping[str, Any], loc: str) -> str:
    """``loc`` resolved against the URL of ``opts`` (RFC 3986 5.2), without
    any fragment (meaningless to a WebSocket, refused in its URLs)."""
    loc = loc.split("#", 1)[0]
    scheme = _SCHEME.match(loc)
    if scheme:  # absolute (a "://" later in a relative reference is no scheme)
        name = scheme.group()[:-1]
        return _AS_WS.get(name.lower(), name) + loc[len(name) :]
    tls = bool(opts.get("tls"))
    if loc.startswith("//"):  # a network-path reference: the scheme stays
        parts = urlsplit("http:" + loc)
        query = f"?{parts.query}" if parts.query else ""
        # (urljoin leaves dot segments in these; in an absolute path it removes them)
        joined = urljoin(f"http://{parts.netloc}/", (parts.path or "/") + query)
        return ("wss" if tls else "ws") + joined[len("http") :]
    if _origin(opts)[0] == "unix":  # relative to a socket file: only the path changes
        joined = urljoin("http://localhost" + str(opts.get("pathname") or "/"), loc)
        target = joined[len("http://localhost") :] or "/"
        return url_of(opts).rsplit(":", 1)[0] + ":" + target
    # urljoin knows http(s) on every Python; ws and wss only on newer ones
    base = url_of(opts)
    ws_scheme, rest = base.split(":", 1)
    joined = urljoin(_AS_HTTP[ws_scheme] + ":" + rest, loc)
    http_scheme, rest = joined.split(":", 1)
    return _AS_WS[http_scheme] + ":" + rest


def next_hop(
    opts: Mapping[str, Any], loc: str, chain: List[str], limit: int, status: int = 0
) -> Dict[str, Any]:
    """Options for following a redirect to ``loc`` from the attempt made with
    ``opts``. ``chain`` holds the URLs asked for so far (``url_of``), the
    current one last; the new URL is appended. Raises :class:`RedirectError`
    (its message shows the chain with query strings hidden)."""
    if opts.get("sock") is not None:
        raise RedirectError(
            f"cannot follow a {status} redirect on a socket given by option sock", chain, status
        )
    try:
        url = split_url(_resolve(opts, loc))
    except InvalidURL as exc:
        raise RedirectError(f"invalid redirect Location ({exc})", chain, status) from None
    new: Dict[str, Any] = dict(opts)
    new["pathname"] = url.pathname
    if url.unix_path is not None:
        new.pop("host", None)
        new.pop("port", None)
        new["path"] = url.unix_path
    else:
        new["host"], new["port"] = url.host, url.port
        new.pop("path", None)
    if url.tls and not opts.get("tls"):
        new["tls"] = True
    elif not url.tls:
        new["tls"] = False
    shown = chain + [url_of(new)]
    if opts.get("tls") and not url.tls:
        raise RedirectError("refusing a redirect from wss:// to ws://", shown, status)
    if shown[-1] in chain:
        raise RedirectError("redirect loop", shown, status)
    if len(chain) > limit:
        raise RedirectError(f"too many redirects (limit {limit})", shown, status)
    if _origin(new) != _origin(opts):
        new.pop("_auth", None)
        headers = opts.get("headers")
        if headers:
            items = headers.items() if isinstance(headers, Mapping) else headers
            new["headers"] = [
                (n, v) for n, v in items if str(n).lower() not in _DROPPED_CROSS_ORIGIN
            ]
        tls = new.get("tls")
        if isinstance(tls, Mapping) and "server_name" in tls:
            new["tls"] = {k: v for k, v in tls.items() if k != "server_name"}
    chain.append(shown[-1])
    return new
