"""Client SSL contexts for option ``tls``, each distinct one built once per process.

``tls=True`` trusts certifi's bundle, plus ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` when they are set (what a TLS-inspecting corporate proxy
with its own CA needs). ``{"ca": "system"}`` trusts the operating system's
store instead: on macOS and Windows through the ``truststore`` package when
it is installed; otherwise OpenSSL's default locations (which honour
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` too) and, on Windows, the system
certificate store. A user's own ``ssl.SSLContext``, a
``truststore.SSLContext`` included, is used as it is.

Loading certifi's bundle costs about 14 ms of CPU, during which no
greenlet runs, so contexts are cached by their settings (the environment
variables included: changing them gives a new context).
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import sys
from typing import Any, Mapping, Optional, Tuple

import gevent.ssl as gssl

from .errors import InvalidURL

__all__ = ["tls_context", "cached_context", "SYSTEM"]

log = logging.getLogger("gws")

SYSTEM = "system"
"""``tls={"ca": "system"}``: the operating system's trust store."""

_TLS_KEYS = frozenset(("ca", "cert", "key", "insecure", "server_name"))


def tls_context(tls: Any) -> Tuple[Optional[ssl.SSLContext], Optional[str]]:
    """The SSL context for option ``tls`` and any ``server_name`` override;
    ``(None, None)`` for no TLS. Raises :class:`~gws.InvalidURL` for a bad
    setting."""
    if tls is None or tls is False:
        return None, None
    if isinstance(tls, ssl.SSLContext):
        return tls, None
    if tls is True:
        tls = {}
    if not isinstance(tls, Mapping):
        raise InvalidURL("tls must be True, False, an ssl.SSLContext or a dict")
    unknown = set(tls) - _TLS_KEYS
    if unknown:
        raise InvalidURL(f"unknown tls option {sorted(unknown)[0]!r}")
    for name in ("ca", "cert", "key", "server_name"):
        value = tls.get(name)
        if value is not None and not isinstance(value, str):
            hint = {
                "ca": ' (a cafile path, PEM data or "system")',
                "cert": " (a certfile path)",
            }.get(name, "")
            raise InvalidURL(f"tls option {name} must be a str{hint}")
    insecure = bool(tls.get("insecure"))
    if insecure:
        log.warning("TLS certificate verification is disabled (tls insecure=True)")
    ca = tls.get("ca")
    env: Tuple[Optional[str], Optional[str]] = (None, None)
    if ca is None or ca == SYSTEM:
        env = (os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)
    ctx = cached_context(ca, tls.get("cert"), tls.get("key"), insecure, env)
    return ctx, tls.get("server_name")


def _system_context() -> Optional[ssl.SSLContext]:
    """A ``truststore.SSLContext`` on macOS and Windows when truststore is
    installed (the Keychain / CryptoAPI verify, revocation included), else
    None: elsewhere OpenSSL's default locations are the system store."""
    if sys.platform not in ("darwin", "win32"):
        return None
    try:
        import truststore  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    ctx: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return ctx


def _is_truststore(ctx: ssl.SSLContext) -> bool:
    return type(ctx).__module__.split(".")[0] == "truststore"


def default_context() -> ssl.SSLContext:
    """The context ``tls=True`` uses now (for an ``https://`` proxy too)."""
    ctx, _ = tls_context(True)
    assert ctx is not None
    return ctx


@functools.lru_cache(maxsize=32)
def cached_context(
    ca: Optional[str],
    cert: Optional[str],
    key: Optional[str],
    insecure: bool,
    env: Tuple[Optional[str], Optional[str]] = (None, None),
) -> ssl.SSLContext:
    """Build a client context (gevent's SSLContext: its wrap_socket makes
    cooperative sockets). ``env`` is (SSL_CERT_FILE, SSL_CERT_DIR) as read
    by the caller, part of the cache key."""
    ctx = _system_context() if ca == SYSTEM else None
    if ctx is None:
        ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca == SYSTEM:
        if not _is_truststore(ctx):
            # OpenSSL's default paths read SSL_CERT_FILE / SSL_CERT_DIR themselves;
            # on Windows load_default_certs() adds the system store.
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    elif ca is None:
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())
        cafile, capath = env
        if cafile or capath:
            try:
                ctx.load_verify_locations(cafile=cafile, capath=capath)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidURL(f"SSL_CERT_FILE / SSL_CERT_DIR cannot be loaded: {exc}") from None
    elif "-----BEGIN" in ca:
        ctx.load_verify_locations(cadata=ca)
    else:
        ctx.load_verify_locations(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
