"""A websockets (sync) server run in a subprocess by the thread-mode and
reconnection tests: a peer that is not gws, which a test can kill and
restart on the same port.

    python ws_peer.py [--port P] [--ping-interval S] [--ping-timeout S]

Tests start it with :class:`Peer` (``Peer.start(...)``, ``kill()``,
``restart()`` on the same port); :class:`NodePeer` does the same with a
Node ``ws`` echo server (``tests/node/echo_peer.js``).

Prints one line ``PORT <n>`` once listening, then serves until killed.
Paths: ``/`` echoes every message; ``/close/<code>`` accepts then closes
with ``<code>``; ``/status/<code>`` answers plain HTTP ``<code>``.
"""

from __future__ import annotations

import argparse
import http
import importlib.util
import os
import select
import subprocess
import sys
from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:
    from websockets.sync.server import ServerConnection

# websockets 17.4 needs Python >= 3.11: the subprocess imports it; tests on
# older Pythons skip the websockets peer (Peer.start) and keep the rest.
HAVE_WEBSOCKETS = importlib.util.find_spec("websockets") is not None


def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else "/"
    if path.startswith("/close/"):
        ws.close(int(path.split("/")[2]), "closing as asked")
        return
    for message in ws:
        ws.send(message)


def process_request(ws: ServerConnection, request):  # noqa: ANN001, ANN201
    if request.path.startswith("/status/"):
        status = int(request.path.split("/")[2])
        return ws.respond(http.HTTPStatus(status), f"status {status}\n")
    return None


class Peer:
    """This script in a subprocess, bounded in time, killed in teardown."""

    def __init__(self, args: List[str], port: int = 0) -> None:
        self.args = args
        self.port = port
        self.proc: Optional[subprocess.Popen[str]] = None

    @classmethod
    def start(
        cls, ping_interval: Optional[float] = None, ping_timeout: Optional[float] = None
    ) -> Peer:
        args: List[str] = []
        if ping_interval is not None:
            args += ["--ping-interval", str(ping_interval)]
        if ping_timeout is not None:
            args += ["--ping-timeout", str(ping_timeout)]
        if cls is Peer and not HAVE_WEBSOCKETS:
            import pytest

            pytest.skip("the websockets peer needs websockets (Python >= 3.11)")
        peer = cls(args)
        peer.restart()
        return peer

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def command(self) -> List[str]:
        return [sys.executable, os.path.abspath(__file__), "--port", str(self.port), *self.args]

    def restart(self, timeout: float = 20.0) -> None:
        """Start (again, on the same port once it has one) and wait until listening."""
        self.kill()
        proc = self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.kill()
            raise RuntimeError(f"peer did not start: {line!r}")
        self.port = int(line.split()[1])

    def kill(self) -> None:
        proc = self.proc
        if proc is not None:
            self.proc = None
            proc.kill()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


class NodePeer(Peer):
    """A Node ``ws`` echo server (tests/node/echo_peer.js) instead."""

    def command(self) -> List[str]:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "echo_peer.js")
        return ["node", script, str(self.port)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=None)
    parser.add_argument("--ping-timeout", type=float, default=None)
    args = parser.parse_args()
    from websockets.sync.server import serve

    with serve(
        handler,
        "127.0.0.1",
        args.port,
        process_request=process_request,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        compression=None,
    ) as server:
        print("PORT", server.socket.getsockname()[1], flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
