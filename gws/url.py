"""parse_url(): a ws:// or wss:// URL -> Url(host, port, tls, pathname).

Also ``ws+unix:///path/to.sock:/request/path`` (a unix socket, as websocket-client
and Node's ws spell it) and :func:`ascii_host` for internationalised names.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple, Optional, Tuple
from urllib.parse import unquote

from .errors import InvalidURL

__all__ = ["Url", "parse_url", "split_url", "ascii_host", "url_host", "netloc"]


class Url(NamedTuple):
    """A parsed WebSocket URL, with the seed's fields.

    ``host`` has no brackets for IPv6 literals; ``pathname`` is path plus
    query ("/" when the URL has none). ``username``/``password`` hold any
    credentials in the URL (they are sent as HTTP Basic auth, never logged).
    """

    host: str
    port: int
    tls: bool
    pathname: str
    username: Optional[str] = None
    password: Optional[str] = None
    unix_path: Optional[str] = None
    """The socket file of a ``ws+unix://`` URL (``host`` is then "localhost")."""

    def __repr__(self) -> str:
        # Credentials never appear in a repr, log line or error string.
        unix = f", unix_path={self.unix_path!r}" if self.unix_path is not None else ""
        return (
            f"Url(host={self.host!r}, port={self.port}, tls={self.tls},"
            f" pathname={self.pathname!r}{unix})"
        )

    @property
    def netloc(self) -> str:
        """``host[:port]`` as it belongs in a Host header (port omitted if default)."""
        return netloc(self.host, self.port, self.tls)


def url_host(host: str) -> str:
    """``host`` as a URL or a Host header writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def netloc(host: str, port: int, tls: bool) -> str:
    """``host[:port]`` for a Host header or a ws/wss URL, without the port
    when it is the scheme's default (443 with ``tls``, else 80)."""
    shown = url_host(host)
    return shown if port == (443 if tls else 80) else f"{shown}:{port}"


def split_url(url: str) -> Url:
    """Like :func:`parse_url` but raises :class:`InvalidURL`."""
    if not isinstance(url, str):
        raise InvalidURL(f"URL must be a str, not {type(url).__name__}")
    if any(c in url for c in " \t\r\n\x00"):
        raise InvalidURL("URL contains whitespace or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidURL(f"not a WebSocket URL (missing ws:// or wss://): {_safe(url)}")
    scheme = scheme.lower()
    if scheme in ("ws+unix", "wss+unix"):
        return _split_unix(scheme == "wss+unix", rest)
    if scheme not in ("ws", "wss"):
        raise InvalidURL(f"unsupported scheme {scheme!r}: use ws:// or wss://")
    tls = scheme == "wss"
    if "#" in rest:
        raise InvalidURL("WebSocket URLs must not have a fragment (#...)")
    cut = len(rest)
    for ch in "/?":
        i = rest.find(ch)
        if i != -1 and i < cut:
            cut = i
    authority, target = rest[:cut], rest[cut:]
    if not target:
        target = "/"
    elif target[0] == "?":
        target = "/" + target
    username = password = None
    if "@" in authority:
        # Percent-decoded (RFC 3986 3.2.1): "p%40ss" is the password "p@ss".
        userinfo, _, authority = authority.rpartition("@")
        user, has_pw, pw = userinfo.partition(":")
        username = unquote(user)
        password = unquote(pw) if has_pw else None
    if authority.startswith("["):
        end = authority.find("]")
        if end == -1:
            raise InvalidURL("unterminated IPv6 address in URL")
        host = authority[1:end]
        after = authority[end + 1 :]
        if after and not after.startswith(":"):
            raise InvalidURL("unexpected characters after IPv6 address")
        port_text = after[1:] if after else ""
        has_port = bool(after)
        if ":" not in host:
            raise InvalidURL(f"invalid IPv6 address {host!r}")
    else:
        host, has_colon, port_text = authority.partition(":")
        has_port = bool(has_colon)
        if "[" in host or "]" in host:
            raise InvalidURL("invalid host in URL")
    if not host:
        raise InvalidURL("URL has no host")
    if has_port:
        if not port_text.isdigit() or not port_text.isascii():
            raise InvalidURL(f"invalid port {port_text!r}")
        port = int(port_text)
        if not 0 < port < 65536:
            raise InvalidURL(f"port {port} out of range 1-65535")
    else:
        port = 443 if tls else 80
    return Url(host, port, tls, target, username, password)


def _split_unix(tls: bool, rest: str) -> Url:
    """``ws+unix://`` URLs: the socket path runs up to the first ":", the
    request target follows it (default "/")."""
    if not rest.startswith("/"):
        raise InvalidURL("ws+unix:// URLs need an absolute socket path: ws+unix:///path.sock:/")
    path, sep, target = rest.partition(":")
    if not target:
        target = "/"
    elif target[0] == "?":
        target = "/" + target
    elif target[0] != "/":
        raise InvalidURL("the request path of a ws+unix:// URL must start with / or ?")
    if "#" in target:
        raise InvalidURL("WebSocket URLs must not have a fragment (#...)")
    return Url("localhost", 443 if tls else 80, tls, target, unix_path=path)


def ascii_host(host: str) -> str:
    """``host`` as it goes to DNS, SNI and the Host header: IDNA (punycode)
    for an internationalised name, lower-cased ASCII names unchanged.

    Uses the ``idna`` package (IDNA 2008 with UTS 46 mapping, as browsers do)
    when installed, else Python's built-in IDNA 2003 codec. Raises
    :class:`InvalidURL` for a name that cannot be encoded.
    """
    if host.isascii():
        return host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # pragma: no cover - an IP literal is ASCII
        return host
    try:
        import idna
    except ImportError:  # pragma: no cover - idna ships with most environments
        try:
            return host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURL(f"host name {host!r} cannot be encoded as IDNA: {exc}") from None
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidURL(f"host name {host!r} cannot be encoded as IDNA: {exc}") from None


def parse_url(url: str) -> Tuple[Optional[Url], Optional[str]]:
    """Parse a WebSocket URL: ``(Url, None)`` on success, ``(None, error)`` otherwise.

    >>> parse_url("ws://ex.example.org/path/name")[0]
    Url(host='ex.example.org', port=80, tls=False, pathname='/path/name')
    """
    try:
        return split_url(url), None
    except InvalidURL as exc:
        return None, str(exc)


def _safe(url: str) -> str:
    """The URL with any userinfo hidden, for error messages."""
    head, sep, tail = url.partition("://")
    if not sep:  # "user:pw@host/..." or "//user:pw@host" hide userinfo too
        head, tail = "", url
    rest = tail.lstrip("/")
    lead = tail[: len(tail) - len(rest)]
    # without "://" a "/" may sit inside the userinfo ("ws:/user:pw@host"): ignore it
    ends = "/?#" if sep else "?#"
    cut = min([i for i in (rest.find(c) for c in ends) if i != -1] or [len(rest)])
    at = rest.rfind("@", 0, cut)
    if at != -1:
        rest = "***@" + rest[at + 1 :]
    return (head + sep + lead + rest)[:200]
