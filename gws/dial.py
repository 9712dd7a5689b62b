"""The byte stream a client connection runs over, before TLS and the handshake.

:func:`open_stream` connects by TCP (directly or through a proxy, see
``proxy.py``), by unix socket, or takes over a socket the caller already
connected (option ``sock``). Every socket is a gevent socket, every wait
cooperative; names go to DNS IDNA-encoded (``url.ascii_host``) through
gevent's resolver. Socket options: ``TCP_NODELAY`` always, ``sockopt``
(``(level, name, value)`` triples, set before connecting) and
``keepalive``.
"""

from __future__ import annotations

import ipaddress
import math
import socket as _stdsocket
import ssl
from typing import Any, Callable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import gevent.socket as gsocket

from .errors import InvalidURL
from .proxy import FROM_ENV, choose_proxy, open_tunnel
from .url import ascii_host, netloc

__all__ = ["Stream", "open_stream", "SOCKET_OPTIONS"]

SOCKET_OPTIONS = frozenset(("proxy", "sock", "sockopt", "keepalive"))

SockOpt = Tuple[int, int, Union[int, bytes]]


class Stream(NamedTuple):
    """A connected socket, the ``Host`` header value for it, and the ASCII
    host name for TLS (SNI and certificate check; None if unknown)."""

    sock: gsocket.socket
    netloc: str
    hostname: Optional[str]


def _sockopts(opts: Mapping[str, Any]) -> List[SockOpt]:
    raw = opts.get("sockopt")
    items: List[SockOpt] = []
    if raw is not None:
        if not isinstance(raw, (list, tuple)):
            raise InvalidURL("option sockopt must be a list of (level, name, value) triples")
        for item in raw:
            ok = (
                isinstance(item, (list, tuple))
                and len(item) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) for v in item[:2])
                and isinstance(item[2], (int, bytes))
            )
            if not ok:
                raise InvalidURL(
                    f"option sockopt: {item!r} is not a (level, name, value) triple of ints"
                )
            items.append((item[0], item[1], item[2]))
    keepalive = opts.get("keepalive")
    if keepalive is None or keepalive is False:
        return items
    if keepalive is True:
        return items + [(gsocket.SOL_SOCKET, gsocket.SO_KEEPALIVE, 1)]
    if not isinstance(keepalive, (int, float)) or keepalive <= 0:
        raise InvalidURL("option keepalive must be True, False or a positive number of ms")
    seconds = max(1, math.ceil(keepalive / 1000))
    items.append((gsocket.SOL_SOCKET, gsocket.SO_KEEPALIVE, 1))
    # Linux names the idle time TCP_KEEPIDLE, macOS TCP_KEEPALIVE.
    idle = getattr(_stdsocket, "TCP_KEEPIDLE", None) or getattr(_stdsocket, "TCP_KEEPALIVE", None)
    if idle is not None:
        items.append((gsocket.IPPROTO_TCP, idle, seconds))
    if hasattr(_stdsocket, "TCP_KEEPINTVL"):
        items.append((gsocket.IPPROTO_TCP, _stdsocket.TCP_KEEPINTVL, seconds))
    return items


def _prepare(sock: gsocket.socket, sockopts: Sequence[SockOpt]) -> None:
    try:
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
    except OSError:
        pass
    for level, name, value in sockopts:
        try:
            sock.setsockopt(level, name, value)
        except OSError as exc:
            raise InvalidURL(
                f"option sockopt ({level}, {name}, {value!r}): {exc.strerror or exc}"
            ) from None


def tcp_connect(
    host: str, port: int, timeout: float, sockopts: Sequence[SockOpt] = ()
) -> gsocket.socket:
    """Connect to ``host:port`` (an ASCII name or an address), trying each
    address DNS gives in turn; ``sockopts`` are set before connecting."""
    try:
        family = gsocket.AF_INET6 if ipaddress.ip_address(host).version == 6 else gsocket.AF_INET
    except ValueError:  # a name: gevent's resolver (bounded by the caller's timeout)
        infos = gsocket.getaddrinfo(host, port, 0, gsocket.SOCK_STREAM)
    else:  # an address: no resolver round trip through gevent's thread pool
        infos = [(family, gsocket.SOCK_STREAM, 0, "", (host, port))]  # type: ignore[list-item]
    error: Optional[OSError] = None
    for fam, kind, proto, _name, address in infos:
        sock = gsocket.socket(fam, kind, proto)
        try:
            sock.settimeout(timeout)
            _prepare(sock, sockopts)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error if error is not None else OSError(f"no address for {host}")


def _unix_connect(path: str, timeout: float) -> gsocket.socket:
    if not isinstance(path, str) or not path:
        raise InvalidURL("option path must be a non-empty str")
    sock = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def adopt_socket(sock: Any) -> gsocket.socket:
    """The caller's connected socket as a gevent socket. A stdlib socket is
    taken over (detached into a gevent socket on the same descriptor), so no
    wait blocks the hub; gws closes it with the connection."""
    if isinstance(sock, gsocket.socket):
        return sock
    if isinstance(sock, ssl.SSLSocket):
        raise InvalidURL("option sock: pass the plain socket and let gws do TLS (option tls)")
    if isinstance(sock, _stdsocket.socket):
        return gsocket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    raise InvalidURL(f"option sock must be a connected socket, not {type(sock).__name__}")


def open_stream(
    opts: Mapping[str, Any], timeout: float, proxy_context: Callable[[], ssl.SSLContext]
) -> Stream:
    """Connect as options ``sock``, ``path``, ``host``, ``port``, ``proxy``,
    ``sockopt`` and ``keepalive`` say. Bad options raise
    :class:`~gws.InvalidURL` before any socket is opened; network failures
    raise ``OSError`` (:class:`~gws.proxy.ProxyError` for the proxy's)."""
    sockopts = _sockopts(opts)
    host = opts.get("host")
    port = opts.get("port")
    tls = bool(opts.get("tls"))
    if host is not None and (not isinstance(host, str) or not host):
        raise InvalidURL("option host must be a non-empty str")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
    ):
        raise InvalidURL(f"option port must be an int from 1 to 65535, got {port!r}")
    name = ascii_host(host) if host is not None else None
    if opts.get("sock") is not None:
        sock = adopt_socket(opts["sock"])
        sock.settimeout(timeout)
        shown = netloc(name, port or (443 if tls else 80), tls) if name else "localhost"
        return Stream(sock, shown, name)
    path = opts.get("path")
    if path is not None and host is None and port is None:
        return Stream(_unix_connect(path, timeout), "localhost", None)
    name = name or "127.0.0.1"
    port = port or (443 if tls else 80)
    proxy = choose_proxy(opts.get("proxy", FROM_ENV), name, port, tls)
    if proxy is not None:

        def dial(proxy_host: str, proxy_port: int) -> gsocket.socket:
            return tcp_connect(proxy_host, proxy_port, timeout, sockopts)

        sock = open_tunnel(proxy, name, port, dial, proxy_context)
    else:
        sock = tcp_connect(name, port, timeout, sockopts)
    return Stream(sock, netloc(name, port, tls), name)
