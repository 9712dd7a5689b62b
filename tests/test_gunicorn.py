"""gws.gunicorn.GeventWebSocketWorker under real gunicorn, in a subprocess.

``gunicorn -k gws.gunicorn.GeventWebSocketWorker flask_app:app`` serves
tests/flask_app.py; websocket-client, websockets, Node ws and urllib talk to
it. The listening socket is made here (127.0.0.1, port 0) and handed to
gunicorn as ``fd://N``, so no port is guessed and no log is parsed for it;
connections wait in its backlog until the worker is up. Each gunicorn is
stopped (SIGTERM, then SIGKILL) at the end of the module.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest
from helpers import check_node_wsgi_client

pytest.importorskip("gunicorn")
websocket = pytest.importorskip("websocket")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
BOOT_TIMEOUT = 60.0


class Gunicorn:
    """One gunicorn master with one gws worker, serving ``app`` (module:name)."""

    def __init__(self, app: str, log_path: str) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        fd = self.listener.fileno()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-k",
                "gws.gunicorn.GeventWebSocketWorker",
                "--bind",
                f"fd://{fd}",
                "--workers",
                "1",
                "--chdir",
                TESTS_DIR,
                "--access-logfile",
                "-",
                "--error-logfile",
                "-",
                "--graceful-timeout",
                "3",
                "--timeout",
                "120",
                app,
            ],
            pass_fds=[fd],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=TESTS_DIR,
        )

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> None:
        """Block until the worker answers HTTP (bounded by BOOT_TIMEOUT)."""
        try:
            with urllib.request.urlopen(self.url("/", "http"), timeout=BOOT_TIMEOUT) as resp:
                assert resp.status == 200, self.output()
        except OSError as exc:
            raise AssertionError(f"gunicorn did not answer ({exc}):\n{self.output()}") from exc

    def output(self) -> str:
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.listener.close()
        self.log.close()


@pytest.fixture(scope="module")
def gunicorn_app(tmp_path_factory) -> Iterator[Gunicorn]:
    server = Gunicorn("flask_app:app", str(tmp_path_factory.mktemp("gunicorn") / "app.log"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def gunicorn_sockets(tmp_path_factory) -> Iterator[Gunicorn]:
    server = Gunicorn("flask_app:sockets", str(tmp_path_factory.mktemp("gunicorn") / "ws.log"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def http_get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_routes_answer_under_gunicorn(gunicorn_app):
    assert http_get(gunicorn_app.url("/", "http")) == (200, b"hello from flask")
    status, body = http_get(gunicorn_app.url("/json", "http"))
    assert status == 200 and json.loads(body)["ok"] is True
    assert http_get(gunicorn_app.url("/missing", "http"))[0] == 404


def test_websocket_client_echo_under_gunicorn(gunicorn_app):
    ws = websocket.create_connection(gunicorn_app.url("/echo"), timeout=30)
    try:
        ws.send("through gunicorn ☃")
        assert ws.recv() == "through gunicorn ☃"
        ws.send_binary(b"\x00\x01\x02" * 100)
        assert ws.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\x00\x01\x02" * 100)
    finally:
        ws.close()


def test_websockets_client_compression_and_close_codes_under_gunicorn(gunicorn_app):
    sync_client = pytest.importorskip("websockets.sync.client")
    exceptions = pytest.importorskip("websockets.exceptions")
    with sync_client.connect(gunicorn_app.url("/info"), open_timeout=30) as ws:
        info = json.loads(ws.recv(timeout=30))
        ws.send("gunicorn " * 100)
        assert ws.recv(timeout=30) == "gunicorn " * 100
        ws.send(b"\xff" * 1000)
        assert ws.recv(timeout=30) == b"\xff" * 1000
    assert info["compressed"] is True
    assert info["extensions"].startswith("permessage-deflate")

    with sync_client.connect(gunicorn_app.url("/close/4011"), open_timeout=30) as ws:
        ws.send("go")
        with pytest.raises(exceptions.ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4011, "bye")

    with sync_client.connect(gunicorn_app.url("/boom"), open_timeout=30) as ws:
        ws.send("go")
        with pytest.raises(exceptions.ConnectionClosedError) as failed:
            ws.recv(timeout=30)
    assert failed.value.rcvd.code == 1011


def test_node_ws_client_under_gunicorn(gunicorn_app):
    check_node_wsgi_client(gunicorn_app.url("/info"))


def test_gunicorn_access_log_records_the_upgrade(gunicorn_app):
    ws = websocket.create_connection(gunicorn_app.url("/echo?from=log-test"), timeout=30)
    ws.close()
    deadline = time.monotonic() + 30
    line = None
    while line is None and time.monotonic() < deadline:
        lines = [ln for ln in gunicorn_app.output().splitlines() if "log-test" in ln]
        line = lines[0] if lines else None
        if line is None:
            time.sleep(0.05)  # the worker writes its access log after the connection ends
    assert line is not None, gunicorn_app.output()
    assert '"GET /echo?from=log-test HTTP/1.1" 101' in line


def test_route_hooks_under_gunicorn(gunicorn_sockets):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(gunicorn_sockets.url("/ws/private"), timeout=30)
    assert refused.value.status_code == 401
    good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    ws = websocket.create_connection(
        gunicorn_sockets.url("/ws/private"), timeout=30, header=[f"Authorization: {good}"]
    )
    try:
        assert ws.recv() == "welcome alice"
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as unrouted:
        websocket.create_connection(gunicorn_sockets.url("/ws/nowhere"), timeout=30)
    assert unrouted.value.status_code == 404


def test_gunicorn_graceful_stop_closes_websockets_with_1001(tmp_path):
    sync_client = pytest.importorskip("websockets.sync.client")
    exceptions = pytest.importorskip("websockets.exceptions")
    server = Gunicorn("flask_app:app", str(tmp_path / "stop.log"))
    try:
        server.wait_ready()
        with sync_client.connect(server.url("/echo"), open_timeout=30) as ws:
            ws.send("before the stop")
            assert ws.recv(timeout=30) == "before the stop"
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(exceptions.ConnectionClosedOK) as closed:
                ws.recv(timeout=30)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "going away")
        assert server.proc.wait(timeout=30) == 0, server.output()
    finally:
        server.stop()


def test_django_app_under_gunicorn(tmp_path):
    pytest.importorskip("django")
    server = Gunicorn("django_app:application", str(tmp_path / "django.log"))
    try:
        server.wait_ready()
        assert http_get(server.url("/", "http")) == (200, b"hello from django")
        ws = websocket.create_connection(server.url("/echo"), timeout=30)
        try:
            ws.send("django under gunicorn")
            assert ws.recv() == "django under gunicorn"
        finally:
            ws.close()
    finally:
        server.stop()
