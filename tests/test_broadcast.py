"""gws.broadcast against a real gws server and real clients on 127.0.0.1.

The point of broadcast(): a client that never reads (its socket buffers
fill up) must not stall the others, who keep receiving every message in
order, and it is dropped once ``max_queue`` messages wait for it.
"""

from __future__ import annotations

import socket

import gevent
import gevent.socket as gsocket
import pytest
from gevent.queue import Queue
from helpers import read_head

import gws
from gws.broadcast import DEFAULT_MAX_QUEUE, queued

pytestmark = pytest.mark.usefixtures("deadline")

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def hold(request, read, write):
    """Handler: keep the connection open until the client closes it."""
    for _ in read:
        pass


def wait_connections(server, count: int):
    """The server's open connections once there are ``count`` (bounded)."""
    for _ in range(1000):
        conns = server.server.connections
        if len(conns) >= count:
            return conns
        gevent.sleep(0.005)
    raise AssertionError(f"{len(server.server.connections)} connections, expected {count}")


def reader(read, inbox: Queue, name: str) -> None:
    for msg in read:
        inbox.put((name, msg.payload))
    inbox.put((name, None))


def test_broadcast_reaches_every_open_connection(make_server, no_leaks):
    with no_leaks():
        server = make_server(hold)
        clients = [gws.connect(port=server.port) for _ in range(4)]
        conns = wait_connections(server, 4)
        inbox: Queue = Queue()
        readers = [gevent.spawn(reader, read, inbox, i) for i, (_, read, _) in enumerate(clients)]

        assert gws.broadcast(conns, "text") == 4
        assert gws.broadcast(conns, b"\x00binary") == 4
        assert gws.broadcast(conns, gws.Message(opcode=gws.OP_TEXT, payload="message")) == 4
        assert gws.broadcast(conns, {"payload": b"dict"}) == 4
        got = {i: [] for i in range(4)}
        for _ in range(16):
            name, payload = inbox.get(timeout=5)
            got[name].append(payload)
        assert all(v == ["text", b"\x00binary", "message", b"dict"] for v in got.values()), got

        # a closed connection is skipped
        clients[0][2].close()
        assert inbox.get(timeout=5) == (0, None)
        readers[0].join(5)
        assert readers[0].dead
        assert gws.broadcast(conns, "three left") == 3
        for _ in range(3):
            name, payload = inbox.get(timeout=5)
            assert name != 0 and payload == "three left"
        for _, _, write in clients[1:]:
            write.close()
        gevent.joinall(readers, timeout=5)
        assert server.wait_idle(5)
        server.stop()


def test_broadcast_takes_readers_writers_and_websockets(make_server):
    server = make_server(gws.echo)
    with gws.open(port=server.port) as a, gws.open(port=server.port) as b:
        res, read, write = gws.connect(port=server.port)
        # client side: each echoes back what it was sent
        assert gws.broadcast([a, b.connection, write], "to the server") == 3
        assert a.recv().payload == "to the server"
        assert b.recv().payload == "to the server"
        assert read().payload == "to the server"
        assert gws.broadcast([read], b"reader too") == 1
        assert read().payload == b"reader too"
        write.close()


def test_broadcast_compresses_per_connection(make_server):
    server = make_server(hold)
    plain = gws.connect(port=server.port, compression=None)
    deflated = gws.connect(port=server.port)
    conns = wait_connections(server, 2)
    assert sorted(c.protocol.deflate is not None for c in conns) == [False, True]
    text = "compress me " * 100
    assert gws.broadcast(conns, text) == 2
    assert gws.broadcast(conns, text) == 2
    for _, read, write in (plain, deflated):
        assert read().payload == text and read().payload == text
        write.close()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (None, TypeError),
        (["frag", "ments"], TypeError),
        (object(), TypeError),
        ({"opcode": gws.OP_CLOSE, "payload": b"\x03\xe8"}, ValueError),
        ({"fin": False, "payload": b"first"}, ValueError),
        ({"opcode": gws.OP_CONTINUATION, "payload": b"more"}, ValueError),
        ({"opcode": 3}, ValueError),
        ({"opcode": gws.OP_PING, "payload": b"x" * 126}, ValueError),
    ],
)
def test_broadcast_refuses_a_bad_message_before_queueing(make_server, message, error):
    server = make_server(hold)
    res, read, write = gws.connect(port=server.port)
    conns = wait_connections(server, 1)
    with pytest.raises(error):
        gws.broadcast(conns, message)
    assert queued(conns[0]) == 0
    assert gws.broadcast(conns, "still fine") == 1
    assert read().payload == "still fine"
    write.close()


def test_broadcast_bad_arguments(make_server):
    server = make_server(hold)
    res, read, write = gws.connect(port=server.port)
    conns = wait_connections(server, 1)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_queue"):
            gws.broadcast(conns, "x", max_queue=bad)
    with pytest.raises(TypeError, match="cannot broadcast to"):
        gws.broadcast([object()], "x")
    with pytest.raises(TypeError):
        queued("not a connection")
    assert gws.broadcast([], "nobody") == 0
    write.close()


def test_broadcast_from_another_thread_is_refused(make_server):
    server = make_server(hold)
    res, read, write = gws.connect(port=server.port)
    conns = wait_connections(server, 1)
    with pytest.raises(gws.WrongThread):
        gevent.get_hub().threadpool.spawn(gws.broadcast, conns, "x").get(timeout=10)
    write.close()


def never_reading_client(port: int) -> gsocket.socket:
    """A raw client with a tiny receive buffer that completes the opening
    handshake and then never reads: the server's writes to it soon block."""
    sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    sock.connect(("127.0.0.1", port))
    sock.sendall(UPGRADE)
    head, _ = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock


def _send_buffer_max() -> int:
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def test_a_client_that_never_reads_does_not_stall_the_others(make_server, caplog):
    server = make_server(hold, compression=None)
    fast = [gws.connect(port=server.port, compression=None) for _ in range(3)]
    assert all(res for res, _, _ in fast)
    wait_connections(server, 3)
    slow_sock = never_reading_client(server.port)
    try:
        conns = wait_connections(server, 4)
        slow = conns[-1]
        inbox: Queue = Queue()
        readers = [gevent.spawn(reader, read, inbox, i) for i, (_, read, _) in enumerate(fast)]

        size, max_queue = 64 * 1024, 8
        # More than the server's socket send buffer can hold, plus the queue.
        rounds = min(2 * _send_buffer_max() // size + 4 * max_queue + 50, 1000)
        counts, deepest = [], 0
        for i in range(rounds):
            payload = i.to_bytes(4, "big") + b"x" * (size - 4)
            counts.append(gws.broadcast(conns, payload, max_queue=max_queue))
            deepest = max(deepest, queued(slow))
            # every fast client gets message i now, whatever the slow one does
            for _ in range(len(fast)):
                name, got = inbox.get(timeout=10)
                assert got is not None and got[:4] == i.to_bytes(4, "big"), (name, i)
        assert slow.state is gws.State.CLOSED
        assert "too slow for broadcast" in slow.error
        assert deepest <= max_queue
        dropped_at = counts.index(3)
        print(f"slow client dropped at message {dropped_at} of {rounds}")
        assert counts[:dropped_at] == [4] * dropped_at and set(counts[dropped_at:]) == {3}
        assert any("client too slow" in r.getMessage() for r in caplog.records)
        assert inbox.empty()
        for _, _, write in fast:
            write.close()
        gevent.joinall(readers, timeout=5)
    finally:
        slow_sock.close()
    assert server.wait_idle(5)


def test_default_queue_tolerates_a_short_stall(make_server):
    """A client that stops reading for a while (less than the queue and its
    socket buffers hold) loses nothing and is not dropped."""
    server = make_server(hold, compression=None)
    res, read, write = gws.connect(port=server.port, compression=None)
    conns = wait_connections(server, 1)
    for i in range(DEFAULT_MAX_QUEUE):
        assert gws.broadcast(conns, f"m{i}") == 1
    assert [read().payload for _ in range(DEFAULT_MAX_QUEUE)] == [
        f"m{i}" for i in range(DEFAULT_MAX_QUEUE)
    ]
    assert queued(conns[0]) == 0
    write.close()
