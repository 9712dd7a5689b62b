"""The ``proxy`` option: which proxy (if any) a connection goes through, and
the tunnel through it.

* :func:`parse_proxy` reads a proxy URL: ``http://[user:pass@]host:port``
  (HTTP CONNECT), ``https://`` (the same over TLS to the proxy),
  ``socks4://``, ``socks4a://``, ``socks5://``, ``socks5h://``.
* :func:`choose_proxy` applies the option: a URL, ``None`` (direct, no
  environment lookup) or, by default, the environment as ``urllib.request``
  reads it (``https_proxy`` for wss, ``http_proxy`` for ws, then
  ``all_proxy``; lower case before upper case; ``no_proxy`` honoured).
* :func:`open_tunnel` connects to the proxy and asks it for a tunnel.

Credentials never appear in a repr, an error or a log line: errors name
the proxy as ``scheme://host:port``.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import urllib.request
from typing import Any, Callable, NamedTuple, Optional
from urllib.parse import unquote, urlsplit

import gevent.socket as gsocket

from .errors import HandshakeError, InvalidURL, WebSocketError
from .handshake import _status_text, parse_response
from .transport import read_head, wrap_tls
from .url import ascii_host, url_host

__all__ = ["ProxyError", "Proxy", "parse_proxy", "choose_proxy", "open_tunnel", "FROM_ENV"]

log = logging.getLogger("gws")

FROM_ENV: Any = object()
"""The default of the ``proxy`` option: look in the environment."""

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}
_MAX_CONNECT_REPLY = 16 * 1024
SOCKS_REQUIREMENT = "python-socks>=3.0,<3.3"  # as socks.REQUIREMENT and setup.cfg


class ProxyError(WebSocketError, ConnectionError):
    """The proxy could not be reached, refused the tunnel (HTTP 407, 403,
    502..., a SOCKS error) or answered nonsense. The message names the proxy
    (``scheme://host:port``), never its credentials; ``status`` is the HTTP
    status of an HTTP proxy's refusal (0 otherwise)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0])


class Proxy(NamedTuple):
    """A parsed proxy URL. ``host`` is ASCII (IDNA); ``username``/``password``
    are percent-decoded and never shown by ``repr``."""

    scheme: str
    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None

    @property
    def label(self) -> str:
        """``scheme://host:port``: how errors and logs name this proxy."""
        return f"{self.scheme}://{url_host(self.host)}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.label!r})"


def parse_proxy(url: str) -> Proxy:
    """Parse a proxy URL (a bare ``host:port`` means ``http://``); raises
    :class:`~gws.InvalidURL` with the credentials left out of the message."""
    if not isinstance(url, str) or not url:
        raise InvalidURL("option proxy must be a proxy URL string or None")
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidURL(f"invalid proxy URL {_hide(url)}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(
            f"unsupported proxy scheme {scheme!r}: use http, https, socks4, socks4a,"
            " socks5 or socks5h"
        )
    if not parts.hostname:
        raise InvalidURL(f"proxy URL has no host: {_hide(url)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidURL(f"a proxy URL has no path or query: {_hide(url)}")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme.startswith("socks") and not all(
        value is None or (value.isascii() and len(value) < 256 and "\x00" not in value)
        for value in (username, password)
    ):
        # RFC 1929 fields are 1-255 octets; python-socks sends them as ASCII
        raise InvalidURL(
            f"SOCKS credentials must be ASCII, at most 255 characters each: {_hide(url)}"
        )
    return Proxy(
        scheme,
        ascii_host(parts.hostname),
        port or _DEFAULT_PORTS[scheme],
        username or None,
        password,
    )


def _hide(url: str) -> str:
    # Up to the last "@": a password may hold an unencoded "/", "?" or "#"
    # (a proxy URL has no path that could hold an "@" of its own).
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return (scheme + sep + rest)[:200]


def _has_proxy_variables() -> bool:
    """Whether any ``*_proxy`` variable (any case) is set. A shortcut for the
    common case: ``getproxies_environment()`` decodes every variable, tens of
    microseconds a connect; the raw keys are scanned in about one."""
    raw = getattr(os.environ, "_data", None)
    if not isinstance(raw, dict):  # pragma: no cover - not CPython's os.environ
        return True
    return any(key[-1:] in _Y and key[-6:].lower() in _SUFFIX for key in raw)


_Y = (b"y", b"Y", "y", "Y")
_SUFFIX = (b"_proxy", "_proxy")


def proxy_from_environment(host: str, port: int, tls: bool) -> Optional[str]:
    """The proxy URL the environment names for a ws (``tls`` False) or wss
    connection to ``host:port``, or None: ``https_proxy`` / ``http_proxy``,
    then ``all_proxy``, as ``urllib.request.getproxies_environment`` reads
    them (lower case wins; ``HTTP_PROXY`` is ignored in a CGI request), and
    None when ``no_proxy`` matches the host (``urllib.request``'s rules:
    ``*``, names and domain suffixes, optional ``:port``)."""
    if not _has_proxy_variables():
        return None
    proxies = urllib.request.getproxies_environment()
    url = proxies.get("https" if tls else "http") or proxies.get("all")
    if not url:
        return None
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if proxies.get("no") and bypass(f"{url_host(host)}:{port}", proxies):
        return None
    return url


def choose_proxy(option: Any, host: str, port: int, tls: bool) -> Optional[Proxy]:
    """The proxy for a connection to ``host:port`` given option ``proxy``:
    :data:`FROM_ENV` (the default) looks in the environment, None, False or
    "" connect directly, a str is a proxy URL."""
    if option is FROM_ENV:
        found = proxy_from_environment(host, port, tls)
        if found is None:
            return None
        try:
            return parse_proxy(found)
        except InvalidURL as exc:
            raise InvalidURL(f"{'https' if tls else 'http'}_proxy/all_proxy: {exc}") from None
    if option is None or option is False or option == "":
        return None
    if isinstance(option, Proxy):
        return option
    if not isinstance(option, str):
        raise InvalidURL("option proxy must be a proxy URL string or None")
    return parse_proxy(option)


def _basic(username: Optional[str], password: Optional[str]) -> str:
    cred = f"{username or ''}:{password or ''}".encode()
    return "Basic " + base64.b64encode(cred).decode("ascii")


def _http_connect(sock: gsocket.socket, proxy: Proxy, host: str, port: int) -> None:
    target = f"{url_host(host)}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.username is not None or proxy.password is not None:
        lines.append(f"Proxy-Authorization: {_basic(proxy.username, proxy.password)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        head, rest = read_head(sock, _MAX_CONNECT_REPLY)
        _version, code, _reason, _headers = parse_response(head)
    except HandshakeError as exc:
        raise ProxyError(f"proxy {proxy.label} gave no valid reply to CONNECT: {exc}") from None
    if not 200 <= code < 300:
        hint = ""
        if code == 407:
            given = proxy.username is not None or proxy.password is not None
            hint = " (its credentials were rejected)" if given else " (it needs credentials)"
        raise ProxyError(
            f"proxy {proxy.label} refused the tunnel to {target}: {_status_text(code)}{hint}",
            code,
        )
    if rest:
        raise ProxyError(f"proxy {proxy.label} sent data before the tunnel was used")


def open_tunnel(
    proxy: Proxy,
    host: str,
    port: int,
    dial: Callable[[str, int], gsocket.socket],
    proxy_context: Callable[[], ssl.SSLContext],
) -> gsocket.socket:
    """A socket tunnelled through ``proxy`` to ``host:port`` (ASCII host).

    ``dial(host, port)`` opens the TCP connection to the proxy (with the
    caller's socket options); ``proxy_context()`` gives the SSL context for
    an ``https://`` proxy. Raises :class:`ProxyError`.
    """
    handshake = _http_connect if proxy.scheme in ("http", "https") else _socks_handshake()
    if proxy.scheme == "socks4" and ":" in host:
        raise ProxyError(
            f"SOCKS4 proxy {proxy.label} cannot reach the IPv6 address {host}: use socks5://"
        )
    try:
        sock = dial(proxy.host, proxy.port)
    except OSError as exc:
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(exc, gsocket.gaierror):
            reason = f"DNS lookup failed: {exc}"
        else:
            reason = exc.strerror or str(exc)
        raise ProxyError(f"cannot connect to proxy {proxy.label}: {reason}") from None
    try:
        if proxy.scheme == "https":
            try:
                sock = wrap_tls(sock, proxy_context(), server_hostname=proxy.host)
            except ssl.SSLError as exc:
                raise ProxyError(f"TLS to proxy {proxy.label} failed: {exc}") from None
        handshake(sock, proxy, host, port)
    except (ProxyError, TimeoutError):
        sock.close()
        raise
    except OSError as exc:  # a reset or a broken pipe: still the proxy's doing
        sock.close()
        raise ProxyError(
            f"proxy {proxy.label} broke off the tunnel to {host}:{port}: {exc.strerror or exc}"
        ) from None
    except BaseException:
        sock.close()
        raise
    log.debug("tunnel to %s:%d through %s", host, port, proxy.label)
    return sock


def _socks_handshake() -> Callable[[gsocket.socket, Proxy, str, int], None]:
    """The SOCKS handshake, or a ProxyError (before any socket is opened)
    when python-socks is missing."""
    try:
        from .socks import SocksRefused, socks_handshake
    except ImportError as exc:
        raise ProxyError(
            f"socks:// proxies need {SOCKS_REQUIREMENT} (pip install 'gws-client[socks]'): {exc}"
        ) from None

    def handshake(sock: gsocket.socket, proxy: Proxy, host: str, port: int) -> None:
        version = proxy.scheme[:6]
        remote_dns = proxy.scheme in ("socks4a", "socks5h")
        try:
            socks_handshake(sock, version, remote_dns, proxy.username, proxy.password, host, port)
        except SocksRefused as exc:
            raise ProxyError(
                f"SOCKS proxy {proxy.label} refused the tunnel to {host}:{port}: {exc}"
            ) from None
        except gsocket.gaierror as exc:
            raise ProxyError(
                f"DNS lookup of {host} failed (for proxy {proxy.label}): {exc}"
            ) from None

    return handshake
