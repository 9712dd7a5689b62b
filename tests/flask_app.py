"""A Flask app with plain HTTP routes and WebSocket views, as users write them.

Served in-process by ``gevent.pywsgi`` with ``gws.wsgi.WebSocketHandler``
(tests/test_wsgi.py, tests/test_browser.py) and by real gunicorn with
``gws.gunicorn.GeventWebSocketWorker`` (tests/test_gunicorn.py, which runs
``gunicorn flask_app:sockets`` with this folder as its working directory).

* ``app``: the Flask app. Its WebSocket views find the connection in
  ``request.environ["wsgi.websocket"]``, the gevent-websocket / Flask-Sockets
  way, and are marked ``websocket=True`` (Werkzeug 2+ answers an upgrade
  request for a route without it with 400, whatever the server): ``/echo``,
  ``/info`` (first sends what was negotiated, as JSON),
  ``/close/<code>`` (the server closes with that code), ``/boom`` (raises after
  the first message: the client sees 1011), ``/record`` (remembers how the
  client closed, for ``/closes``). HTTP: ``/``, ``/json``, ``/page`` (the
  browser test's page), ``/closes``.
* ``sockets``: a ``gws.wsgi.WebSocketApp`` around ``app`` with routes that
  use per-route options: ``/ws/chat`` (subprotocols, origins allow-list),
  ``/ws/private`` (HTTP Basic auth), ``/ws/small`` (``max_size=16``).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

from flask import Flask, jsonify, request

import gws.wsgi
from gws.hooks import basic_auth

app = Flask(__name__)

#: What each WebSocket view saw, newest last (read by in-process tests and ``/closes``).
SEEN: List[Dict[str, Any]] = []


def _websocket() -> gws.wsgi.WebSocket:
    ws = request.environ.get("wsgi.websocket")
    if ws is None:
        raise LookupError("not a WebSocket request")
    return ws


def _negotiated(ws: gws.wsgi.WebSocket) -> Dict[str, Any]:
    return {
        "path": ws.path,
        "compressed": ws.compressed,
        "extensions": ws.extensions,
        "subprotocol": ws.protocol,
        "origin": ws.origin,
        "user_agent": ws.environ.get("HTTP_USER_AGENT"),
    }


@app.route("/")
def index() -> str:
    return "hello from flask"


@app.route("/json")
def as_json() -> Any:
    return jsonify(ok=True, server=request.environ.get("SERVER_SOFTWARE", ""))


@app.route("/closes")
def closes() -> Any:
    return jsonify(SEEN)


@app.route("/echo", websocket=True)
def echo() -> Any:
    ws = request.environ.get("wsgi.websocket")
    if ws is None:
        return "WebSocket expected here\n", 400
    SEEN.append(_negotiated(ws))
    while True:
        message = ws.receive()
        if message is None:
            break
        ws.send(message)
    return ""


@app.route("/info", websocket=True)
def info() -> str:
    ws = _websocket()
    seen = _negotiated(ws)
    SEEN.append(seen)
    ws.send(json.dumps(seen))
    for message in ws:  # gws's own face: Message objects, opcode kept
        ws.write(gws.Message(opcode=message.opcode, payload=message.payload))
    seen["close_code"], seen["close_reason"] = ws.close_code, ws.close_reason
    return ""


@app.route("/close/<int:code>", websocket=True)
def close_with(code: int) -> str:
    ws = _websocket()
    ws.receive()
    ws.close(code, b"bye")
    return ""


@app.route("/boom", websocket=True)
def boom() -> str:
    ws = _websocket()
    ws.receive()
    raise RuntimeError("the view failed after the upgrade")


@app.route("/record", websocket=True)
def record() -> str:
    ws = _websocket()
    while ws.receive() is not None:
        pass
    SEEN.append({"path": ws.path, "close_code": ws.close_code, "close_reason": ws.close_reason})
    return ""


@app.route("/page")
def page() -> Any:
    return PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}


sockets = gws.wsgi.WebSocketApp(app)


@sockets.route(
    "/ws/chat", subprotocols=["chat.v2", "chat.v1"], origins=["http://allowed.test", None]
)
def chat(ws: gws.wsgi.WebSocket) -> None:
    ws.send(f"subprotocol={ws.protocol}")
    while True:
        message = ws.receive()
        if message is None:
            break
        ws.send(message)


@sockets.route("/ws/private", process_request=basic_auth({"alice": "s3cret"}, realm="tests"))
def private(ws: gws.wsgi.WebSocket) -> None:
    ws.send("welcome alice")


@sockets.route("/ws/small", max_size=16)
def small(ws: gws.wsgi.WebSocket) -> None:
    while ws.receive() is not None:
        pass
    SEEN.append({"path": ws.path, "close_code": ws.close_code})


# The browser test's page: opens a WebSocket back to /info, checks the echo
# of a text and a binary message, and reports in window.gwsResult.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>gws browser test</title></head>
<body><pre id="log"></pre>
<script>
(function () {
  const result = {events: []};
  const url = "ws://" + location.host + "/info";
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const text = "h\\u00e9llo from the browser \\u2603 ".repeat(20);
  const binary = new Uint8Array(300);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 7) & 255;
  let step = 0;
  ws.onopen = function () { result.events.push("open"); result.extensions = ws.extensions; };
  ws.onmessage = function (ev) {
    if (step === 0) {
      result.server = JSON.parse(ev.data);
      ws.send(text);
    } else if (step === 1) {
      result.text_ok = ev.data === text;
      ws.send(binary);
    } else if (step === 2) {
      const got = new Uint8Array(ev.data);
      result.binary_ok = got.length === binary.length && got.every((v, i) => v === binary[i]);
      ws.close(4321, "done");
    }
    step += 1;
  };
  ws.onerror = function () { result.events.push("error"); };
  ws.onclose = function (ev) {
    result.close_code = ev.code;
    result.close_reason = ev.reason;
    result.was_clean = ev.wasClean;
    document.getElementById("log").textContent = JSON.stringify(result);
    window.gwsResult = result;
  };
})();
</script></body></html>
"""
