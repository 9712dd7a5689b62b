"""SOCKS4/4a/5/5h handshakes by python-socks, over a gevent socket gws connected.

python-socks' public sync ``Proxy.connect()`` opens its own stdlib socket
and resolves names with the stdlib ``socket.getaddrinfo``: without
monkey-patching, both block the gevent hub. So gws uses the layer beneath
it, the sync *connectors* (``python_socks._connectors``), which speak the
protocol over a stream object and ask a resolver object for names: here a
stream over the gevent socket and gevent's resolver, so every wait is
cooperative. Imported only when a ``socks*://`` proxy is used.
"""

from __future__ import annotations

import socket as _stdsocket
from typing import Tuple

import gevent.socket as gsocket
from python_socks import ProxyType
from python_socks._abc import SyncResolver, SyncSocketStream
from python_socks._connectors.factory_sync import create_connector
from python_socks._errors import IncompleteReadError
from python_socks._protocols.errors import ReplyError

__all__ = ["socks_handshake", "SocksRefused"]

_TYPES = {"socks4": ProxyType.SOCKS4, "socks5": ProxyType.SOCKS5}


class SocksRefused(Exception):
    """The SOCKS proxy refused or broke off the handshake (message from python-socks)."""


class _GeventStream(SyncSocketStream):
    """python-socks' stream interface over a gevent socket."""

    def __init__(self, sock: gsocket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def read(self, max_bytes: int = 65536) -> bytes:
        return self._sock.recv(max_bytes)

    def read_exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            packet = self._sock.recv(n - len(data))
            if not packet:
                raise IncompleteReadError("the proxy closed the connection")
            data += packet
        return bytes(data)

    def close(self) -> None:
        self._sock.close()


class _GeventResolver(SyncResolver):
    """Resolves names with gevent's resolver (socks4:// and socks5://
    resolve the destination on this side)."""

    def resolve(
        self, host: str, port: int = 0, family: _stdsocket.AddressFamily = _stdsocket.AF_UNSPEC
    ) -> Tuple[_stdsocket.AddressFamily, str]:
        infos = gsocket.getaddrinfo(host, port, family, gsocket.SOCK_STREAM)
        if not infos:
            raise OSError(f"cannot resolve {host}")
        infos.sort(key=lambda info: info[0])  # IPv4 first, as python-socks does
        fam, _, _, _, address = infos[0]
        return fam, str(address[0])


def socks_handshake(
    sock: gsocket.socket,
    version: str,
    remote_dns: bool,
    username: str | None,
    password: str | None,
    host: str,
    port: int,
) -> None:
    """Ask the SOCKS proxy at the other end of ``sock`` for a tunnel to
    ``host:port``. ``version`` is "socks4" or "socks5"; ``remote_dns`` sends
    the name for the proxy to resolve (socks4a, socks5h). Raises
    :class:`SocksRefused` when the proxy says no or hangs up."""
    connector = create_connector(
        proxy_type=_TYPES[version],
        username=username,
        password=password,
        rdns=remote_dns,
        resolver=_GeventResolver(),
    )
    try:
        connector.connect(stream=_GeventStream(sock), host=host, port=port)
    except (ReplyError, IncompleteReadError) as exc:
        raise SocksRefused(str(exc) or type(exc).__name__) from None
