"""Adaptive permessage-deflate against other implementations' inflaters.

gws sends small messages and messages deflate would not shrink uncompressed
(RSV1 clear) and starts a fresh compressor after such a miss; these tests
prove real peers (websockets, Node ``ws``) decode every message of a mixed
stream in both directions, with context takeover on.
"""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import threading
from typing import Any, Iterator, List, Tuple

import gevent
import pytest
from gevent import subprocess as gsubprocess
from helpers import NODE_DIR, node_peer

import gws
from gws.frames import OP_BINARY, OP_CONTINUATION, OP_TEXT

# websockets 17.4 needs Python >= 3.11; the quick subset runs on 3.9 and 3.10 too
needs_websockets = pytest.mark.skipif(
    importlib.util.find_spec("websockets") is None, reason="websockets 17.4 needs Python >= 3.11"
)

PEER_JS = f"{NODE_DIR}/deflate_peer.js"
COUNT = 160


def mixed_stream(seed: int) -> List[Tuple[int, List[bytes]]]:
    """(opcode, fragments) for a stream that makes encode() take every branch:
    compressible text, random bytes (misses, then skips), small messages,
    fragmented messages."""
    rng = random.Random(seed)
    stream: List[Tuple[int, List[bytes]]] = []
    for i in range(COUNT):
        kind = i % 5
        if kind == 0:
            words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(200))
            stream.append((OP_TEXT, [words.encode()]))
        elif kind == 1:
            stream.append((OP_BINARY, [rng.randbytes(rng.randrange(64, 20000))]))
        elif kind == 2:
            stream.append((OP_BINARY, [rng.randbytes(rng.randrange(0, 70))]))
        elif kind == 3:
            stream.append((OP_BINARY, [b"repeat " * 40, rng.randbytes(500), b"x" * 300]))
        else:
            stream.append((OP_BINARY, [rng.randbytes(3000) + b"tail " * 200]))
    return stream


def send_message(write: Any, opcode: int, parts: List[bytes]) -> None:
    for j, part in enumerate(parts):
        ok, err = write(
            gws.Message(
                fin=j == len(parts) - 1, opcode=opcode if j == 0 else OP_CONTINUATION, payload=part
            )
        )
        assert ok, err


def expect(opcode: int, parts: List[bytes]) -> Any:
    data = b"".join(parts)
    return data.decode() if opcode == OP_TEXT else data


def run_gws_client(url: str) -> None:
    res, read, write = gws.connect(url, compression="deflate", timeout=10000)
    assert res, read
    assert "permessage-deflate" in res.extensions
    try:
        for i, (opcode, parts) in enumerate(mixed_stream(1)):
            send_message(write, opcode, parts)
            msg = read()
            assert msg is not None, read.error
            assert msg.payload == expect(opcode, parts), f"echo {i} differs"
    finally:
        write.close(1000, "")


@pytest.fixture
def websockets_server() -> Iterator[str]:
    from websockets.sync.server import serve

    def echo(ws: Any) -> None:
        for msg in ws:
            ws.send(msg)

    server = serve(echo, "127.0.0.1", 0, compression="deflate", max_size=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture
def node_server() -> Iterator[str]:
    node_peer("ws")
    proc = subprocess.Popen(
        ["node", PEER_JS, "server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=NODE_DIR,
        env={"NODE_PATH": f"{NODE_DIR}/node_modules", "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        with gevent.Timeout(20):
            line = gevent.get_hub().threadpool.apply(proc.stdout.readline)
        yield f"ws://127.0.0.1:{json.loads(line)['port']}/"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.timeout(60)
@needs_websockets
def test_websockets_server_decodes_every_message_gws_sends(websockets_server: str) -> None:
    with gevent.Timeout(40):
        run_gws_client(websockets_server)


@pytest.mark.timeout(60)
def test_node_ws_server_decodes_every_message_gws_sends(node_server: str) -> None:
    # Node compresses even the smallest echo (threshold 0): gws inflates them all.
    with gevent.Timeout(40):
        run_gws_client(node_server)


@pytest.fixture
def gws_server() -> Iterator[str]:
    server = gws.serve(gws.echo, "127.0.0.1", 0, compression="deflate")
    try:
        yield f"ws://127.0.0.1:{server.server_port}/"
    finally:
        server.stop(timeout=2)


@pytest.mark.timeout(60)
@needs_websockets
def test_websockets_client_decodes_every_message_a_gws_server_sends(gws_server: str) -> None:
    def client() -> List[int]:
        from websockets.sync.client import connect

        bad = []
        with connect(gws_server, compression="deflate", max_size=None, open_timeout=10) as ws:
            assert ws.protocol.extensions, "permessage-deflate not negotiated"
            for i, (opcode, parts) in enumerate(mixed_stream(2)):
                data = expect(opcode, parts)
                ws.send(data)
                if ws.recv(timeout=10) != data:
                    bad.append(i)
        return bad

    with gevent.Timeout(40):
        assert gevent.get_hub().threadpool.apply(client) == []


@pytest.mark.timeout(60)
def test_node_ws_client_decodes_every_message_a_gws_server_sends(gws_server: str) -> None:
    node_peer("ws")
    proc = gsubprocess.Popen(
        ["node", PEER_JS, "client", gws_server, str(COUNT)],
        stdout=gsubprocess.PIPE,
        stderr=gsubprocess.PIPE,
        cwd=NODE_DIR,
        env={"NODE_PATH": f"{NODE_DIR}/node_modules", "PATH": "/usr/bin:/bin"},
    )
    try:
        with gevent.Timeout(40):
            out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["ok"] == COUNT and "permessage-deflate" in result["extensions"]
