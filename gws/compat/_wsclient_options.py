"""websocket-client's connection arguments turned into gws options.

Pure functions, no I/O: :func:`proxy_url` (``http_proxy_host`` and friends
to gws's ``proxy`` URL), :func:`tls_option` (``sslopt`` to gws's ``tls``),
:func:`handshake_headers` (``header``, ``cookie``, ``origin``, ``host``...
to gws's ``headers``) and :func:`response_headers` (gws's header pairs to
websocket-client's dict). Each is unit-tested on its own.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from gws.url import url_host

from ._wsclient_abnf import WebSocketException, WebSocketProxyException

__all__ = [
    "USE_ENVIRONMENT",
    "DEFAULT_SOCKET_OPTION",
    "PROXY_TYPES",
    "proxy_url",
    "is_no_proxy_host",
    "tls_option",
    "handshake_headers",
    "header_pairs",
    "response_headers",
]


class _UseEnvironment:
    """Marker: pass no ``proxy`` option, so gws takes the proxy from the
    environment (``http_proxy``/``https_proxy``/``no_proxy``)."""

    def __repr__(self) -> str:
        return "USE_ENVIRONMENT"


USE_ENVIRONMENT = _UseEnvironment()

PROXY_TYPES = ("http", "socks4", "socks4a", "socks5", "socks5h")

# websocket-client's defaults: no Nagle, TCP keepalive after 30 s idle.
DEFAULT_SOCKET_OPTION: List[Tuple[int, int, int]] = [(socket.SOL_TCP, socket.TCP_NODELAY, 1)]
if hasattr(socket, "SO_KEEPALIVE"):
    DEFAULT_SOCKET_OPTION.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
if hasattr(socket, "TCP_KEEPIDLE"):
    DEFAULT_SOCKET_OPTION.append((socket.SOL_TCP, socket.TCP_KEEPIDLE, 30))
if hasattr(socket, "TCP_KEEPINTVL"):
    DEFAULT_SOCKET_OPTION.append((socket.SOL_TCP, socket.TCP_KEEPINTVL, 10))
if hasattr(socket, "TCP_KEEPCNT"):
    DEFAULT_SOCKET_OPTION.append((socket.SOL_TCP, socket.TCP_KEEPCNT, 3))


# -- proxies -------------------------------------------------------------------------------


def _in_network(ip: str, net: str) -> bool:
    try:
        return ipaddress.ip_network(ip).subnet_of(ipaddress.ip_network(net))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def is_no_proxy_host(
    hostname: str,
    no_proxy: Optional[Sequence[str]],
    environ: Optional[Mapping[str, str]] = None,
) -> bool:
    """Whether ``hostname`` bypasses the proxy, by websocket-client's rules:
    ``no_proxy`` (else the ``no_proxy``/``NO_PROXY`` variable) lists names
    (``example.com`` also matches its subdomains, as does ``.example.com``),
    IP networks (``10.0.0.0/8``) or ``*``."""
    env = os.environ if environ is None else environ
    entries = list(no_proxy or ())
    if not entries:
        value = env.get("no_proxy", env.get("NO_PROXY", "")).replace(" ", "")
        entries = [e for e in value.split(",") if e]
    if "*" in entries or hostname in entries:
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        return any(_in_network(hostname, net) for net in entries if "/" in net)
    for domain in entries:
        if domain.startswith("."):
            if hostname.endswith(domain.lstrip(".")):
                return True
        elif hostname.endswith("." + domain):
            return True
    return False


def proxy_url(
    hostname: str,
    http_proxy_host: Optional[str] = None,
    http_proxy_port: Union[int, str, None] = None,
    http_proxy_auth: Optional[Tuple[str, str]] = None,
    http_no_proxy: Optional[Sequence[str]] = None,
    proxy_type: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> Union[str, None, _UseEnvironment]:
    """gws's ``proxy`` option for websocket-client's proxy arguments.

    Returns a URL (``http://user:pass@host:port``, ``socks5h://...``, with
    the credentials percent-encoded), None when ``hostname`` is in the
    no-proxy list (connect directly), or :data:`USE_ENVIRONMENT` when no
    proxy host is given (websocket-client then reads ``http_proxy`` /
    ``https_proxy``, as gws does by default). Raises
    :class:`WebSocketProxyException` for a proxy host without a port or an
    unknown ``proxy_type``.
    """
    kind = proxy_type or "http"
    if kind not in PROXY_TYPES:
        raise WebSocketProxyException("Only http, socks4, socks5 proxy protocols are supported")
    if is_no_proxy_host(hostname, http_no_proxy, environ):
        return None
    if not http_proxy_host:
        return USE_ENVIRONMENT
    if not http_proxy_port:
        raise WebSocketProxyException("Cannot use port 0 when proxy_host specified")
    try:
        port = int(http_proxy_port)
    except ValueError:
        raise WebSocketProxyException(f"invalid proxy port {http_proxy_port!r}") from None
    if not 0 < port < 65536:
        raise WebSocketProxyException(f"invalid proxy port {http_proxy_port!r}")
    host = http_proxy_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    userinfo = ""
    if http_proxy_auth and http_proxy_auth[0]:
        userinfo = quote(str(http_proxy_auth[0]), safe="")
        if len(http_proxy_auth) > 1 and http_proxy_auth[1]:
            userinfo += ":" + quote(str(http_proxy_auth[1]), safe="")
        userinfo += "@"
    return f"{kind}://{userinfo}{host}:{port}"


# -- TLS -----------------------------------------------------------------------------------

_SSLOPT_KEYS = frozenset(
    (
        "cert_reqs",
        "ca_certs",
        "ca_cert_path",
        "certfile",
        "keyfile",
        "password",
        "check_hostname",
        "server_hostname",
        "context",
        "ciphers",
        "cert_chain",
        "ecdh_curve",
        "ssl_version",
        "do_handshake_on_connect",
        "suppress_ragged_eofs",
    )
)
# Keys gws's own ``tls`` dict expresses (a context gws builds and caches).
_DICT_KEYS = frozenset(("cert_reqs", "ca_certs", "certfile", "keyfile", "check_hostname"))


def tls_option(
    sslopt: Optional[Mapping[str, Any]], environ: Optional[Mapping[str, str]] = None
) -> Union[bool, Dict[str, Any], ssl.SSLContext]:
    """gws's ``tls`` option for websocket-client's ``sslopt`` (wss only).

    As websocket-client: certificates and host names are verified unless
    ``cert_reqs`` is ``ssl.CERT_NONE``; ``WEBSOCKET_CLIENT_CA_BUNDLE`` names
    a CA file or directory when ``ca_certs``/``ca_cert_path`` are not given;
    ``context`` is used as it is. The trust store when no CA is given is
    gws's (certifi's bundle), not the system's. Returns True, a gws ``tls``
    dict, or an ``ssl.SSLContext`` built here for the options gws's dict
    does not have (``ciphers``, ``ca_cert_path``, ``password``, ...).
    Raises NotImplementedError naming an unknown or unsupported key,
    :class:`WebSocketException` for a contradictory or unloadable setting.
    """
    env = os.environ if environ is None else environ
    user = dict(sslopt or {})
    unknown = sorted(set(user) - _SSLOPT_KEYS)
    if unknown:
        raise NotImplementedError(
            f"sslopt key {unknown[0]!r} is not supported by gws.compat.websocket_client"
        )
    for key in ("do_handshake_on_connect", "suppress_ragged_eofs"):
        if user.get(key, True) is not True:
            raise NotImplementedError(
                f"sslopt {key}=False is not supported: gws runs the TLS handshake on connect"
            )
        user.pop(key, None)
    if "context" in user:
        if user.get("server_hostname"):
            raise NotImplementedError(
                "sslopt server_hostname together with context is not supported"
            )
        context = user["context"]
        if not isinstance(context, ssl.SSLContext):
            raise WebSocketException("sslopt context must be an ssl.SSLContext")
        return context
    opts: Dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED}
    opts.update(user)
    bundle = env.get("WEBSOCKET_CLIENT_CA_BUNDLE")
    if bundle and os.path.isfile(bundle) and opts.get("ca_certs") is None:
        opts["ca_certs"] = bundle
    elif bundle and os.path.isdir(bundle) and opts.get("ca_cert_path") is None:
        opts["ca_cert_path"] = bundle
    cert_reqs = opts["cert_reqs"]
    check_hostname = opts.get("check_hostname", cert_reqs != ssl.CERT_NONE)
    insecure = cert_reqs == ssl.CERT_NONE and not check_hostname
    if cert_reqs == ssl.CERT_NONE and check_hostname:
        raise WebSocketException(
            "SSL certificate verification configuration failed: "
            "check_hostname cannot be enabled when cert_reqs is CERT_NONE"
        )
    simple = set(opts) - {"server_hostname"} <= _DICT_KEYS and (
        insecure or (cert_reqs == ssl.CERT_REQUIRED and check_hostname)
    )
    if simple:
        return _tls_dict(opts, insecure)
    if opts.get("server_hostname"):
        raise NotImplementedError(
            "sslopt server_hostname is supported only with the keys gws's tls dict has "
            "(cert_reqs, ca_certs, certfile, keyfile, check_hostname)"
        )
    return _build_context(opts, insecure, bool(check_hostname))


def _tls_dict(opts: Mapping[str, Any], insecure: bool) -> Union[bool, Dict[str, Any]]:
    """gws's ``tls`` dict for ``sslopt`` keys it has names for (True: none set)."""
    tls: Dict[str, Any] = {}
    if insecure:
        tls["insecure"] = True
    elif opts.get("ca_certs"):
        tls["ca"] = opts["ca_certs"]
    if opts.get("certfile"):
        tls["cert"] = opts["certfile"]
        if opts.get("keyfile"):
            tls["key"] = opts["keyfile"]
    if opts.get("server_hostname"):
        tls["server_name"] = opts["server_hostname"]
    return tls or True


def _build_context(opts: Mapping[str, Any], insecure: bool, check_hostname: bool) -> ssl.SSLContext:
    """An SSLContext for ``sslopt`` settings gws's tls dict cannot express,
    built as websocket-client builds it (gevent's SSLContext)."""
    import gevent.ssl as gssl

    ctx = gssl.SSLContext(opts.get("ssl_version", ssl.PROTOCOL_TLS_CLIENT))
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        cafile, capath = opts.get("ca_certs"), opts.get("ca_cert_path")
        try:
            if cafile or capath:
                ctx.load_verify_locations(cafile=cafile, capath=capath)
            else:
                import certifi

                ctx.load_verify_locations(cafile=certifi.where())
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise WebSocketException(f"SSL CA certificate loading failed: {exc}") from exc
        ctx.check_hostname = check_hostname
        ctx.verify_mode = opts["cert_reqs"]
    try:
        if opts.get("certfile"):
            ctx.load_cert_chain(opts["certfile"], opts.get("keyfile"), opts.get("password"))
        if "cert_chain" in opts:
            chain = opts["cert_chain"]
            if not isinstance(chain, (tuple, list)) or len(chain) != 3:
                raise ValueError("cert_chain must be a tuple/list of (certfile, keyfile, password)")
            ctx.load_cert_chain(*chain)
    except (OSError, ssl.SSLError) as exc:
        raise WebSocketException(f"SSL client certificate loading failed: {exc}") from exc
    if "ciphers" in opts:
        try:
            ctx.set_ciphers(opts["ciphers"])
        except ssl.SSLError as exc:
            raise WebSocketException(f"SSL cipher configuration failed: {exc}") from exc
    if "ecdh_curve" in opts:
        try:
            ctx.set_ecdh_curve(opts["ecdh_curve"])
        except ValueError as exc:
            raise WebSocketException(f"SSL ECDH curve configuration failed: {exc}") from exc
    return ctx


# -- handshake headers ---------------------------------------------------------------------


def header_pairs(header: Any) -> List[Tuple[str, str]]:
    """websocket-client's ``header`` (a list of ``"Name: value"`` lines or a
    dict; None values are dropped) as (name, value) pairs."""
    if not header:
        return []
    if isinstance(header, Mapping):
        return [(str(k), str(v)) for k, v in header.items() if v is not None]
    pairs = []
    for line in header:
        name, sep, value = str(line).partition(":")
        if not sep:
            raise ValueError(f"header line {line!r} has no ':'")
        pairs.append((name.strip(), value.strip()))
    return pairs


def handshake_headers(
    hostname: str,
    port: int,
    is_secure: bool,
    header: Any = None,
    cookie: Optional[str] = None,
    origin: Optional[str] = None,
    host: Optional[str] = None,
    suppress_origin: bool = False,
) -> List[Tuple[str, str]]:
    """The extra request headers websocket-client sends: ``Host`` when
    ``host`` overrides it, ``Origin`` (``http(s)://host[:port]`` unless
    ``origin`` is given or ``suppress_origin``), the user's ``header`` and
    ``Cookie``."""
    pairs: List[Tuple[str, str]] = []
    user = header_pairs(header)
    names = {name.lower() for name, _ in user}
    if host:
        pairs.append(("Host", host))
    if not suppress_origin and "origin" not in names:
        if origin is not None:
            pairs.append(("Origin", origin))
        else:
            shown = url_host(hostname)
            if port not in (80, 443):
                shown = f"{shown}:{port}"
            pairs.append(("Origin", f"{'https' if is_secure else 'http'}://{shown}"))
    pairs += user
    if cookie:
        pairs.append(("Cookie", cookie))
    return pairs


def response_headers(pairs: Sequence[Tuple[str, str]]) -> Dict[str, str]:
    """The server's header pairs as websocket-client's dict: lower-case
    names, the last value of a repeated header, ``set-cookie`` values joined
    with ``"; "``."""
    headers: Dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key == "set-cookie" and headers.get(key):
            headers[key] = headers[key] + "; " + value.strip()
        else:
            headers[key] = value.strip()
    return headers
