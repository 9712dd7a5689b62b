"""A gunicorn worker serving WebSockets next to a WSGI app's HTTP routes.

``gunicorn -k gws.gunicorn.GeventWebSocketWorker app:app`` runs gunicorn's
gevent pywsgi worker with :class:`gws.wsgi.WebSocketHandler`, so the app
finds ``environ["wsgi.websocket"]`` on upgrade requests, exactly as under
``gevent.pywsgi`` (gevent-websocket's worker of the same name, ported).

WebSocket options go with the app (``gws.wsgi.WebSocketApp(app, **options)``
and its routes), or with a worker subclass::

    class Worker(GeventWebSocketWorker):
        wsgi_handler = GeventWebSocketWorker.wsgi_handler.configure(heartbeat=20000)

and ``gunicorn -k mymodule.Worker``. Importing this module needs gunicorn.
"""

from __future__ import annotations

from typing import Type

from gunicorn.workers.ggevent import (  # type: ignore[import-untyped]
    GeventPyWSGIWorker,
    PyWSGIHandler,
    PyWSGIServer,
)

from .wsgi import WebSocketHandler, close_websockets

__all__ = ["GeventWebSocketWorker", "GunicornWebSocketHandler", "GunicornWebSocketServer"]


class GunicornWebSocketHandler(WebSocketHandler, PyWSGIHandler):  # type: ignore[misc]
    """:class:`gws.wsgi.WebSocketHandler` with gunicorn's access log and
    environ keys (``gunicorn.sock``, ``RAW_URI``)."""


class GunicornWebSocketServer(PyWSGIServer):  # type: ignore[misc]
    """gunicorn's pywsgi server; when the worker stops accepting (SIGTERM,
    a reload, ``--max-requests``), every open WebSocket is closed with 1001
    (going away), so the apps return within gunicorn's graceful timeout."""

    def close(self) -> None:
        super().close()
        close_websockets(self)


class GeventWebSocketWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    """gunicorn's ``GeventPyWSGIWorker`` with the gws WebSocket handler."""

    server_class = GunicornWebSocketServer
    wsgi_handler: Type[WebSocketHandler] = GunicornWebSocketHandler
