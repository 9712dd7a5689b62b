"""websocket-client's ``WebSocketApp``: callbacks and ``run_forever``, on gws.

The callbacks come in websocket-client 1.9's order with its arguments:
``on_open(app)`` (``on_reconnect(app)`` after a reconnection, when set),
``on_data(app, data, opcode, fin)`` then ``on_message(app, data)`` per
message, ``on_ping(app, data)``, ``on_pong(app, data)``, ``on_error(app,
exception)`` and finally ``on_close(app, status_code, reason)``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List, Optional, Tuple, Union

import gevent
from gevent._hub_local import get_hub_if_exists
from gevent.monkey import get_original, is_module_patched

from ._wsclient_abnf import (
    ABNF,
    WebSocketConnectionClosedException,
    WebSocketException,
    log,
)
from ._wsclient_core import WebSocket, _unsupported, getdefaulttimeout

__all__ = ["WebSocketApp", "set_reconnect"]

_reconnect: List[int] = [0]
_real_sleep = get_original("time", "sleep")


def set_reconnect(reconnectInterval: int) -> None:  # noqa: N803 - websocket-client's name
    """Default ``reconnect`` (seconds) of :meth:`WebSocketApp.run_forever`."""
    _reconnect[0] = reconnectInterval


Callback = Optional[Callable[..., Any]]


def _sleep(seconds: float) -> None:
    """Wait between reconnection attempts: cooperatively in a thread that
    runs a gevent hub (or a monkey-patched program), else with the real
    ``time.sleep``, which creates no hub in a plain thread."""
    if get_hub_if_exists() is not None or is_module_patched("time"):
        gevent.sleep(seconds)
    else:
        _real_sleep(seconds)


class WebSocketApp:
    """websocket-client's callback interface, backed by gws.

    ``run_forever()`` blocks while the connection is open (in gevent: other
    greenlets run meanwhile). Differences, all fixes: ``ping_interval``
    becomes gws's heartbeat, so a peer that goes silent is noticed within
    ``ping_timeout`` (or ``ping_interval`` when ``ping_timeout`` is None:
    websocket-client then waits forever on a dead peer); permessage-deflate
    is offered. With ``on_cont_message`` frames arrive one by one, as in
    websocket-client (the first through ``on_message``, the rest through
    ``on_cont_message``), uncompressed. A custom ``dispatcher`` is not
    supported. The connection runs in gws's
    thread mode (see :class:`WebSocket`): ``send``/``close`` may come from
    any thread while ``run_forever`` runs in another, and the callbacks run
    in the thread that called ``run_forever``.
    """

    def __init__(
        self,
        url: str,
        header: Any = None,
        on_open: Callback = None,
        on_reconnect: Callback = None,
        on_message: Callback = None,
        on_error: Callback = None,
        on_close: Callback = None,
        on_ping: Callback = None,
        on_pong: Callback = None,
        on_cont_message: Callback = None,
        keep_running: bool = True,
        get_mask_key: Callback = None,
        cookie: Optional[str] = None,
        subprotocols: Optional[List[str]] = None,
        on_data: Callback = None,
        socket: Any = None,
    ) -> None:
        self.url = url
        self.header = header if header is not None else []
        self.cookie = cookie
        self.on_open = on_open
        self.on_reconnect = on_reconnect
        self.on_message = on_message
        self.on_data = on_data
        self.on_error = on_error
        self.on_close = on_close
        self.on_ping = on_ping
        self.on_pong = on_pong
        self.on_cont_message = on_cont_message
        self.keep_running = False
        self.get_mask_key = get_mask_key
        self.sock: Optional[WebSocket] = None
        self.last_ping_tm = 0.0
        self.last_pong_tm = 0.0
        self.ping_interval = 0.0
        self.ping_timeout: Optional[float] = None
        self.ping_payload = ""
        self.subprotocols = subprotocols
        self.prepared_socket = socket
        self.has_errored = False
        self.has_done_teardown = False
        self.has_done_teardown_lock = threading.Lock()
        self.last_close_frame: Optional[ABNF] = None

    # -- sending -------------------------------------------------------------------------

    def send(self, data: Union[bytes, str], opcode: int = ABNF.OPCODE_TEXT) -> None:
        """Send a message (text by default)."""
        if not self.sock or self.sock.send(data, opcode) == 0:
            raise WebSocketConnectionClosedException("Connection is already closed.")

    def send_text(self, text_data: str) -> None:
        self.send(text_data, ABNF.OPCODE_TEXT)

    def send_bytes(self, data: Union[bytes, bytearray]) -> None:
        self.send(bytes(data), ABNF.OPCODE_BINARY)

    def close(self, **kwargs: Any) -> None:
        """Close the connection (``status``, ``reason``, ``timeout`` as
        :meth:`WebSocket.close`) and end ``run_forever``."""
        self.keep_running = False
        sock = self.sock
        if sock:
            sock.close(**kwargs)
            if sock.close_frame is not None:
                self.last_close_frame = sock.close_frame
            self.sock = None

    def ready(self) -> bool:
        return bool(self.sock and self.sock.connected)

    # -- the loop ------------------------------------------------------------------------

    def run_forever(
        self,
        sockopt: Optional[list] = None,  # type: ignore[type-arg]
        sslopt: Optional[dict] = None,  # type: ignore[type-arg]
        ping_interval: float = 0,
        ping_timeout: Optional[float] = None,
        ping_payload: str = "",
        http_proxy_host: Optional[str] = None,
        http_proxy_port: Union[int, str, None] = None,
        http_no_proxy: Optional[list] = None,  # type: ignore[type-arg]
        http_proxy_auth: Optional[tuple] = None,  # type: ignore[type-arg]
        http_proxy_timeout: Optional[float] = None,
        skip_utf8_validation: bool = False,
        host: Optional[str] = None,
        origin: Optional[str] = None,
        dispatcher: Any = None,
        suppress_origin: bool = False,
        suppress_host: bool = False,
        proxy_type: Optional[str] = None,
        reconnect: Optional[int] = None,
        gws_options: Optional[dict] = None,  # type: ignore[type-arg]
    ) -> bool:
        """Connect and dispatch callbacks until the connection ends (or, with
        ``reconnect`` seconds, until :meth:`close`). Returns True if it ended
        by an error (a KeyboardInterrupt included, which it catches, as
        websocket-client does), False after a clean close.

        ``ping_interval``/``ping_timeout`` (seconds) run gws's heartbeat:
        a ping every ``ping_interval`` carrying ``ping_payload``, and the
        connection fails with WebSocketTimeoutException("ping/pong timed out")
        when nothing arrives within ``ping_timeout`` of a ping (default:
        ``ping_interval``). ``reconnect``: seconds to wait before each new
        attempt after the connection drops (a fixed delay, as
        websocket-client; ``gws.reconnecting`` has backoff). ``gws_options``:
        gws options for the connection (ms units).
        """
        if reconnect is None:
            reconnect = _reconnect[0]
        if ping_timeout is not None and ping_timeout <= 0:
            raise WebSocketException("Ensure ping_timeout > 0")
        if ping_interval is not None and ping_interval < 0:
            raise WebSocketException("Ensure ping_interval >= 0")
        if ping_timeout and ping_interval and ping_interval <= ping_timeout:
            raise WebSocketException("Ensure ping_interval > ping_timeout")
        if dispatcher is not None:
            raise _unsupported("dispatcher", "gws runs every connection on gevent's loop")
        if self.get_mask_key is not None:
            raise _unsupported("get_mask_key", "gws draws every mask key from os.urandom")
        if self.sock:
            raise WebSocketException("socket is already opened")

        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.ping_payload = ping_payload
        self.has_done_teardown = False
        self.has_errored = False
        self.keep_running = True
        ping: Optional[Tuple[float, Optional[float], bytes]] = None
        if ping_interval:
            ping = (ping_interval, ping_timeout, ping_payload.encode("utf-8"))
        connect_options = {
            "cookie": self.cookie,
            "http_proxy_host": http_proxy_host,
            "http_proxy_port": http_proxy_port,
            "http_no_proxy": http_no_proxy,
            "http_proxy_auth": http_proxy_auth,
            "http_proxy_timeout": http_proxy_timeout,
            "subprotocols": self.subprotocols,
            "host": host,
            "origin": origin,
            "suppress_origin": suppress_origin,
            "suppress_host": suppress_host,
            "proxy_type": proxy_type,
            "socket": self.prepared_socket,
            "gws_options": gws_options,
        }

        def teardown(close_frame: Optional[ABNF] = None) -> None:
            with self.has_done_teardown_lock:
                if self.has_done_teardown:
                    return
                self.has_done_teardown = True
            closing = not self.keep_running  # close() was called (maybe from another thread)
            self.keep_running = False
            current = self.sock
            if current:
                self.sock = None
                current.close()
            effective = close_frame or self.last_close_frame
            if effective is None and closing and current is not None:
                effective = current.close_frame  # that close() has not stored it yet
            code, reason = self._get_close_args(effective)
            self._callback(self.on_close, code, reason)

        def connect_once(reconnecting: bool) -> None:
            if reconnecting and self.sock:
                self.sock.shutdown()
            self.last_close_frame = None
            try:
                sock = self.sock = WebSocket(
                    sockopt=sockopt,
                    sslopt=sslopt,
                    fire_cont_frame=self.on_cont_message is not None,
                    skip_utf8_validation=skip_utf8_validation,
                    enable_multithread=True,
                )
                sock.settimeout(getdefaulttimeout())
                header = self.header() if callable(self.header) else self.header
                sock._connect(self.url, dict(connect_options, header=header), ping)
                if self.sock is not sock:  # close() came from another thread meanwhile
                    sock.close()
                    return
                log.info("Websocket connected")
                if reconnecting and self.on_reconnect:
                    self._callback(self.on_reconnect)
                else:
                    self._callback(self.on_open)
                while self.keep_running:
                    if not read():
                        break
            except (KeyboardInterrupt, SystemExit, Exception) as exc:
                handle_disconnect(exc, reconnecting)

        def read() -> bool:
            sock = self.sock
            if sock is None:
                return False
            try:
                op_code, frame = sock.recv_data_frame(True)
            except Exception:
                if not self.keep_running:  # close() was called meanwhile
                    teardown()
                    return False
                raise
            if not self.keep_running:  # close() was called meanwhile
                teardown()
                return False
            if op_code == ABNF.OPCODE_CLOSE:
                return closed(frame)
            if op_code == ABNF.OPCODE_PING:
                self._callback(self.on_ping, frame.data)
            elif op_code == ABNF.OPCODE_PONG:
                self.last_pong_tm = time.time()
                self._callback(self.on_pong, frame.data)
            elif op_code == ABNF.OPCODE_CONT and self.on_cont_message:
                self._callback(self.on_data, frame.data, frame.opcode, frame.fin)
                self._callback(self.on_cont_message, frame.data, frame.fin)
            else:
                data: Union[str, bytes] = frame.data
                if op_code == ABNF.OPCODE_TEXT and not skip_utf8_validation:
                    data = frame.data.decode("utf-8")  # type: ignore[union-attr]
                self._callback(self.on_data, data, frame.opcode, True)
                self._callback(self.on_message, data)
            return True

        def closed(frame: ABNF) -> bool:
            code, reason = self._parse_close_frame(frame)
            if code is None:
                message = "Connection closed"
            elif code == 1000:
                message = "Connection closed normally (code 1000)"
            else:
                message = f"Connection closed (code {code})"
            if reason:
                message = f"{message}: {reason}"
            converted = WebSocketConnectionClosedException(message)
            converted.status_code = code  # type: ignore[attr-defined]
            converted.reason = reason  # type: ignore[attr-defined]
            return handle_disconnect(converted, bool(reconnect), close_frame=frame)

        def handle_disconnect(
            exc: BaseException, reconnecting: bool, close_frame: Optional[ABNF] = None
        ) -> bool:
            if close_frame is None:
                self.has_errored = True
            if not reconnecting:
                self._callback(self.on_error, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                teardown(close_frame)
                raise exc
            if reconnect:
                log.info(f"{exc} - reconnect")
            else:
                log.error(f"{exc} - goodbye")
                teardown(close_frame)
            return self.has_errored

        try:
            connect_once(False)
            if reconnect:
                while self.keep_running:
                    log.info(f"reconnect() - retrying in {reconnect} seconds")
                    _sleep(reconnect)
                    if not self.keep_running:
                        break
                    connect_once(True)
        except (KeyboardInterrupt, Exception) as exc:
            log.info(f"tearing down on exception {exc}")
            teardown()
        finally:
            teardown()
        return self.has_errored

    # -- helpers -------------------------------------------------------------------------

    def _get_close_args(self, close_frame: Optional[ABNF]) -> List[Any]:
        if not close_frame:
            return [None, None]
        code, reason = self._parse_close_frame(close_frame)
        if not self.on_close:
            return [None, None]
        return [code, reason]

    def _parse_close_frame(
        self, close_frame: Optional[ABNF]
    ) -> Tuple[Optional[int], Optional[str]]:
        if not close_frame or not close_frame.data:
            return None, None
        data = close_frame.data
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(raw) < 2:
            return None, None
        code = 256 * raw[0] + raw[1]
        rest = raw[2:]
        reason = rest.decode("utf-8", errors="replace") if rest else None
        return code, reason

    def _callback(self, callback: Callback, *args: Any) -> None:
        if callback:
            try:
                callback(self, *args)
            except Exception as exc:
                log.error(f"error from callback {callback}: {exc}")
                if self.on_error and callback is not self.on_error:
                    self.on_error(self, exc)
