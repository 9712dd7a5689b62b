"""gevent-websocket apps ported to gws by changing their import lines only.

The chat application below is gevent-websocket 0.10.1's ``examples/chat/chat.py``
and ``echo_app`` its README's pywsgi example, kept as written there (minus
``monkey.patch_all()``, ``print`` calls and ``serve_forever()``, which a test
cannot have); the only other changes are the two imports marked ``ported``:

    from geventwebsocket import WebSocketServer, WebSocketApplication, Resource
    from geventwebsocket.handler import WebSocketHandler

tests/test_wsgi.py serves both and talks to them with websocket-client.
"""

from __future__ import annotations  # noqa: I001 - the import lines stay as ported

import json

from flask import Flask
from gevent import pywsgi

from gws.wsgi import Resource, WebSocketApplication, WebSocketServer  # ported
from gws.wsgi import WebSocketHandler  # ported

flask_app = Flask(__name__)


@flask_app.route("/")
def index():
    return "chat index"


class ChatApplication(WebSocketApplication):
    def on_open(self):
        pass

    def on_message(self, message):
        if message is None:
            return

        message = json.loads(message)

        if message["msg_type"] == "message":
            self.broadcast(message)
        elif message["msg_type"] == "update_clients":
            self.send_client_list(message)

    def send_client_list(self, message):
        current_client = self.ws.handler.active_client
        current_client.nickname = message["nickname"]

        self.ws.send(
            json.dumps(
                {
                    "msg_type": "update_clients",
                    "clients": [
                        getattr(client, "nickname", "anonymous")
                        for client in self.ws.handler.server.clients.values()
                    ],
                }
            )
        )

    def broadcast(self, message):
        for client in self.ws.handler.server.clients.values():
            client.ws.send(
                json.dumps(
                    {
                        "msg_type": "message",
                        "nickname": message["nickname"],
                        "message": message["message"],
                    }
                )
            )

    def on_close(self, reason):
        pass


def chat_server(address):
    """The chat example's server (not started)."""
    return WebSocketServer(
        address,
        Resource([("^/chat", ChatApplication), ("^/.*", flask_app)]),
        debug=False,
    )


def echo_app(environ, start_response):
    ws = environ["wsgi.websocket"]
    message = ws.receive()
    ws.send(message)


def echo_server(address):
    """The README's pywsgi example (not started)."""
    return pywsgi.WSGIServer(address, echo_app, handler_class=WebSocketHandler)
