"""Reconnection: ``for ws in gws.reconnecting(url, **options): ...``.

:func:`reconnecting` is an iterator of open connections (:class:`~gws.WebSocket`,
from :func:`gws.open` with the same options, ``thread=True`` included).
Each time the loop comes round, it looks at how the previous connection
ended: closed by the program (``ws.close()``) ends the loop; anything
:func:`should_retry` accepts (network errors, timeouts, a dropped
connection, the peer's 1001/1011/1012/1013/1014...) waits and reconnects;
anything else (a 4xx answer, a bad URL, a certificate that does not verify,
a peer saying the client itself is at fault) stops the loop by raising it.

Delays follow exponential backoff with full jitter: before retry ``n``
(counting from 1) gws sleeps ``uniform(0, min(backoff_max, backoff_initial *
backoff_factor ** (n - 1)))``. The count goes back to zero once a connection
has stayed up ``backoff_reset`` ms, and ``max_retries`` bounds it: one more
failure raises the last error. Each retry is logged at INFO with its delay.
"""

from __future__ import annotations

import logging
import random
import ssl
from time import monotonic
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import gevent
from gevent._hub_local import get_hub_if_exists
from gevent.monkey import get_original, is_module_patched

from .client import WebSocket
from .client import open as _open
from .errors import ConnectionClosed, HandshakeError, InvalidURL, OpenTimeout
from .url import split_url, url_host

__all__ = [
    "reconnecting",
    "Reconnecting",
    "should_retry",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_FACTOR",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BACKOFF_RESET",
]

log = logging.getLogger("gws")

DEFAULT_BACKOFF_INITIAL = 1000  # ms: the cap of the first delay
DEFAULT_BACKOFF_FACTOR = 2.0
DEFAULT_BACKOFF_MAX = 60000  # ms: no delay is longer
DEFAULT_BACKOFF_RESET = 30000  # ms a connection must stay up for the count to start over

# Close codes a peer sends when the client itself is at fault: retrying
# would send the same thing again.
_CLIENT_FAULT_CLOSES = frozenset((1002, 1003, 1007, 1008, 1009, 1010))
# Handshake statuses that may heal: timeout and rate limiting; 5xx below.
_RETRY_STATUSES = frozenset((408, 429))

_real_sleep = get_original("time", "sleep")


def should_retry(exc: BaseException) -> bool:
    """Whether the failure ``exc`` may heal by reconnecting (the default
    ``retry_on``; websockets' ``process_exception`` makes the same calls).

    Retried: network errors and timeouts, a connection dropped or closed by
    the peer (1000, 1001, 1005, 1006, 1011-1014, application codes), a
    handshake answered 5xx, 408 or 429 or not at all. Not retried: a bad URL
    or option, TLS certificate verification failures, any other HTTP status,
    and a peer closing with 1002/1003/1007/1008/1009/1010 (the client sent
    something the server will refuse again).
    """
    if isinstance(exc, ConnectionClosed):
        return exc.initiator != "peer" or exc.code not in _CLIENT_FAULT_CLOSES
    if isinstance(exc, HandshakeError):
        status = exc.status
        return status == 0 or status >= 500 or status in _RETRY_STATUSES
    if isinstance(exc, (InvalidURL, ssl.SSLCertVerificationError)):
        return False
    return isinstance(exc, (OSError, OpenTimeout, TimeoutError))


def _positive(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= minimum:
        raise InvalidURL(f"option {name} must be a number greater than {minimum:g}")
    return float(value)


def _shown(url_or_options: Any) -> str:
    """Where we connect, for log lines: never with credentials."""
    if isinstance(url_or_options, str):
        try:
            url = split_url(url_or_options)
        except ValueError:
            return "(invalid URL)"
        path = url.pathname.split("?", 1)[0]
        return f"{'wss' if url.tls else 'ws'}://{url_host(url.host)}:{url.port}{path}"
    if isinstance(url_or_options, Mapping):
        opts = url_or_options
        if opts.get("path") is not None and opts.get("host") is None:
            return f"unix:{opts['path']}"
        return f"{opts.get('host', '127.0.0.1')}:{opts.get('port', 'default port')}"
    return "the server"


def _default_sleep(seconds: float) -> None:
    # gevent's sleep where a hub runs (greenlets go on meanwhile); a plain
    # thread using thread mode has none and sleeps as threads do.
    if get_hub_if_exists() is None and not is_module_patched("time"):
        _real_sleep(seconds)
    else:
        gevent.sleep(seconds)


class Reconnecting:
    """The iterator :func:`reconnecting` returns.

    ``ws``: the connection handed out last (None before the first).
    ``retries``: failures since the last connection that stayed up.
    ``close()``: close the current connection and end the loop.
    """

    def __init__(
        self,
        url_or_options: Union[str, Mapping[str, Any], None],
        options: Mapping[str, Any],
        *,
        backoff_initial: float,
        backoff_factor: float,
        backoff_max: float,
        backoff_reset: float,
        max_retries: Optional[int],
        retry_on: Callable[[BaseException], bool],
        rng: Any,
        sleep: Optional[Callable[[float], Any]],
    ) -> None:
        self._target = url_or_options
        self._options = dict(options)
        self.backoff_initial = _positive("backoff_initial", backoff_initial)
        self.backoff_factor = _positive("backoff_factor", backoff_factor, 1.0 - 1e-9)
        self.backoff_max = _positive("backoff_max", backoff_max)
        self.backoff_reset = _positive("backoff_reset", backoff_reset)
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
        ):
            raise InvalidURL("option max_retries must be None or an int >= 0")
        self.max_retries = max_retries
        self.retry_on = retry_on
        self._rng = random.Random() if rng is None else rng
        self._sleep: Callable[[float], Any] = _default_sleep if sleep is None else sleep
        self.ws: Optional[WebSocket] = None
        self.retries = 0
        self._opened = 0.0
        self._done = False
        self._shown = _shown(url_or_options)

    def __iter__(self) -> Iterator[WebSocket]:
        return self

    def __next__(self) -> WebSocket:
        if self._done:
            raise StopIteration
        ws = self.ws
        if ws is not None:
            self.ws = None
            if not ws.closed:
                ws.close()  # left open by the loop body: replaced at once
            elif ws.connection.close_initiator == "local" and not ws.connection.protocol.failed:
                self._done = True  # closed by the program
                raise StopIteration
            else:
                if (monotonic() - self._opened) * 1000.0 >= self.backoff_reset:
                    self.retries = 0
                self._failed(ws._closed_error())
        while True:
            try:
                ws = _open(self._target, **self._options)
            except Exception as exc:  # noqa: BLE001 - retry_on decides
                self._failed(exc)
                continue
            self.ws = ws
            self._opened = monotonic()
            return ws

    def _failed(self, exc: BaseException) -> None:
        """Count a failure, then sleep before the next attempt or raise ``exc``."""
        if not self.retry_on(exc):
            self._done = True
            log.info("not reconnecting to %s: %s", self._shown, exc)
            raise exc
        self.retries += 1
        if self.max_retries is not None and self.retries > self.max_retries:
            self._done = True
            log.info("giving up on %s after %d retries: %s", self._shown, self.max_retries, exc)
            raise exc
        delay = self.delay(self.retries)
        log.info(
            "reconnecting to %s in %.3f s (retry %d): %s", self._shown, delay, self.retries, exc
        )
        self._sleep(delay)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry ``retry`` (from 1): full jitter."""
        cap = min(self.backoff_max, self.backoff_initial * self.backoff_factor ** (retry - 1))
        return float(self._rng.uniform(0.0, cap)) / 1000.0

    def close(self) -> None:
        """End the loop, closing the current connection (with 1000)."""
        self._done = True
        ws = self.ws
        if ws is not None:
            ws.close()

    def __enter__(self) -> Reconnecting:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<gws.Reconnecting {self._shown} retries={self.retries}>"


def reconnecting(
    url_or_options: Union[str, Mapping[str, Any], None] = None,
    /,
    *,
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
    backoff_max: float = DEFAULT_BACKOFF_MAX,
    backoff_reset: float = DEFAULT_BACKOFF_RESET,
    max_retries: Optional[int] = None,
    retry_on: Callable[[BaseException], bool] = should_retry,
    rng: Any = None,
    sleep: Optional[Callable[[float], Any]] = None,
    **options: Any,
) -> Reconnecting:
    """Connections to one server, reconnecting when one fails::

        for ws in gws.reconnecting("wss://example.org/feed", heartbeat=20000):
            for msg in ws:
                handle(msg)

    ``options`` go to :func:`gws.open` (``thread=True`` too). Backoff
    options are in ms: ``backoff_initial`` (1000, the first delay's cap),
    ``backoff_factor`` (2), ``backoff_max`` (60000), ``backoff_reset``
    (30000: how long a connection must stay up for the retry count to
    start over); ``max_retries`` (None: no bound). ``retry_on(exc)`` decides
    which failures to retry (default :func:`should_retry`). ``rng`` (with
    ``uniform(a, b)``, e.g. a seeded ``random.Random``) and ``sleep(seconds)``
    replace the jitter's source and the sleep, for tests.
    """
    return Reconnecting(
        url_or_options,
        options,
        backoff_initial=backoff_initial,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_reset=backoff_reset,
        max_retries=max_retries,
        retry_on=retry_on,
        rng=rng,
        sleep=sleep,
    )
