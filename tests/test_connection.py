"""gws.connection: the gevent shell over the protocol, against real sockets.

What these pin: interruptions (a ``gevent.Timeout``, a kill, a
KeyboardInterrupt) anywhere in read, write, connect and close leave the
connection usable or closed with its socket closed, never with half a frame
followed by another; per-call receive timeouts; fragmented sends that other
greenlets' messages never split; use from a foreign thread; and the review
defects of round 1 (each test names the one it pins).
"""

from __future__ import annotations

import threading
from typing import Any, List, Optional

import gevent
import gevent.socket as gsocket
import greenlet
import pytest
from gevent.event import Event
from helpers import (
    ClientFrames,
    accept_reply,
    close_code_of,
    handshake,
    quiet_close,
    read_request,
    server_frame,
)

import gws
from gws.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Message
from gws.protocol import State

pytestmark = pytest.mark.usefixtures("deadline")


def wait_until(predicate: Any, rounds: int = 500) -> None:
    """Yield to the hub until ``predicate()`` holds (bounded: 500 x 10 ms)."""
    for _ in range(rounds):
        if predicate():
            return
        gevent.sleep(0.01)
    raise AssertionError("condition not reached")


class Peer:
    """A hand-written server: handshake, then record every client frame
    until the client's close (answered) or EOF. ``script(sock)`` runs first."""

    def __init__(self, make_server: Any, script: Any = None, *, answer_close: bool = True) -> None:
        self.frames: List[Message] = []
        self.leftover = 0  # bytes of an unfinished frame at EOF
        self.done = Event()
        self.script = script
        self.answer_close = answer_close
        self.release = Event()
        self.server = make_server.raw(self._handle)
        self.url = f"ws://127.0.0.1:{self.server.port}/"

    def _handle(self, sock: Any, _addr: Any) -> None:
        try:
            _, rest = handshake(sock)
            if self.script is not None:
                self.script(sock)
            frames = ClientFrames(sock, rest)
            while True:
                f = frames.next()
                if f is None:
                    self.leftover = frames.decoder.buffered
                    return
                self.frames.append(f)
                if f.opcode == OP_CLOSE:
                    if self.answer_close:
                        sock.sendall(server_frame(OP_CLOSE, f.payload[:2]))
                    else:
                        self.release.wait(10)
                    return
        finally:
            quiet_close(sock)
            self.done.set()

    def data(self) -> List[tuple]:
        return [(f.opcode, f.fin, f.payload) for f in self.frames if f.opcode != OP_CLOSE]


# -- receive timeouts -------------------------------------------------------------------


def half_frame_server(make_server: Any, payload: bytes) -> tuple:
    """A peer that sends half a text frame, then the rest once ``go`` is set."""
    half_sent, go = Event(), Event()
    wire = server_frame(OP_TEXT, payload)

    def script(sock: Any) -> None:
        sock.sendall(wire[: len(wire) // 2])
        half_sent.set()
        go.wait(10)
        sock.sendall(wire[len(wire) // 2 :])

    return Peer(make_server, script), half_sent, go


def test_recv_timeout_mid_frame_loses_nothing(make_server, no_leaks):
    peer, half_sent, go = half_frame_server(make_server, b"x" * 1000)
    with no_leaks():
        ws = gws.open(peer.url, compression=None)
        assert half_sent.wait(5)
        with pytest.raises(gws.ReceiveTimeout) as info:
            ws.recv(timeout=100)
        assert isinstance(info.value, TimeoutError)
        assert not ws.closed and ws.connection.protocol.decoder.buffered > 0
        go.set()
        assert ws.recv(timeout=5000).payload == "x" * 1000
        ws.close()
        assert ws.close_code == 1000 and ws.read.error is None


def test_seed_read_timeout_returns_none_and_stays_open(make_server, no_leaks):
    peer, half_sent, go = half_frame_server(make_server, "€".encode() * 300)
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        assert res, read
        assert half_sent.wait(5)
        assert read(timeout=50) is None
        assert read.timed_out and not read.closed and read.error is None
        go.set()
        msg = read(timeout=5000)
        assert msg is not None and msg.payload == "€" * 300 and not read.timed_out
        assert write(None) == (True, None)
        assert read() is None and read.closed and read.error is None


@pytest.mark.parametrize(
    "interruption", [gevent.Timeout, gevent.GreenletExit, KeyboardInterrupt], ids=str
)
def test_interrupted_read_mid_frame_keeps_the_message(make_server, no_leaks, interruption):
    peer, half_sent, go = half_frame_server(make_server, b"y" * 5000)
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        assert half_sent.wait(5)
        exc = None if interruption is gevent.Timeout else interruption
        with pytest.raises(interruption), gevent.Timeout(0.1, exc):
            read()
        assert read.connection.state is State.OPEN
        go.set()
        assert read().payload == "y" * 5000
        write(None)
        assert read() is None and read.error is None


def test_killed_reader_greenlet_loses_nothing(make_server, no_leaks):
    peer, half_sent, go = half_frame_server(make_server, b"z" * 3000)
    with no_leaks():
        ws = gws.open(peer.url, compression=None)
        assert half_sent.wait(5)
        reader = gevent.spawn(ws.recv)
        wait_until(lambda: ws.connection.protocol.decoder.buffered > 0)
        reader.kill()
        assert not ws.connection.read_lock.locked()
        go.set()
        assert ws.recv().payload == "z" * 3000
        ws.close()


def staged_frame_server(make_server: Any, wire: bytes, cuts: List[int]) -> tuple:
    """A peer that sends ``wire`` in stages ending at ``cuts``, the next one
    each time ``go`` is set."""
    go = Event()

    def script(sock: Any) -> None:
        start = 0
        for cut in cuts + [len(wire)]:
            sock.sendall(wire[start:cut])
            start = cut
            if cut != len(wire):
                assert go.wait(10)
                go.clear()

    return Peer(make_server, script), go


@pytest.mark.parametrize(
    "interruption", [gevent.Timeout, gevent.GreenletExit, KeyboardInterrupt], ids=str
)
@pytest.mark.parametrize("cut", ["header", "header+1", "half"])
@pytest.mark.parametrize("size", [200_000, 1 << 20])
def test_interrupted_read_of_a_large_frame_keeps_the_message(
    make_server, no_leaks, size, cut, interruption
):
    """Large frames are received straight into their own buffer
    (FrameDecoder.reserve): interruptions mid-payload keep what came."""
    text = ("ab€🙂" * size)[: size // 4]
    wire = server_frame(OP_TEXT, text.encode())
    first = {"header": 10, "header+1": 11, "half": len(wire) // 2}[cut]
    stages = [first, len(wire) - 1000]
    peer, go = staged_frame_server(make_server, wire, stages)
    exc = None if interruption is gevent.Timeout else interruption
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        decoder = read.connection.protocol.decoder
        for expected in stages:
            for _ in range(200):  # interrupted reads until the stage is in
                with pytest.raises(interruption), gevent.Timeout(0.02, exc):
                    read()
                assert read.connection.state is State.OPEN
                if decoder.buffered >= expected:
                    break
            assert decoder.buffered == expected
            view = decoder.reserve()  # the frame has a buffer of its own
            assert view is not None and len(view) == len(wire) - expected
            view.release()
            go.set()
        msg = read()
        assert msg is not None and msg.payload == text
        assert decoder.buffered == 0 and decoder.reserve() is None
        write(None)
        assert read() is None and read.error is None


def test_large_text_frame_with_invalid_utf8_fails_before_it_completes(make_server, no_leaks):
    wire = server_frame(OP_TEXT, b"ok" * 50_000 + b"\xff" + b"z" * 200_000)
    peer = Peer(make_server, lambda sock: sock.sendall(wire[:150_000]))  # never the rest
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        assert read() is None
        assert read.close_code == 1007 and "UTF-8" in (read.error or "")
        assert peer.done.wait(5)
        assert [(f.opcode, f.payload[:2]) for f in peer.frames] == [(OP_CLOSE, b"\x03\xef")]


# -- interrupted writes -------------------------------------------------------------------


def stalled_peer(make_server: Any) -> tuple:
    go = Event()
    return Peer(make_server, lambda sock: go.wait(10)), go


def stalled_writer(peer: Peer) -> tuple:
    """A client whose peer stops reading, and a greenlet stuck mid-frame in
    sendall (the write lock held, part of a 16 MiB frame sent)."""
    ws = gws.open(peer.url, compression=None, close_timeout=2000)
    ws.response.socket.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_SNDBUF, 65536)
    big = b"B" * (16 * 1024 * 1024)
    writer = gevent.spawn(ws.send, big)
    wait_until(lambda: ws.connection.transport.torn)
    return ws, writer, big


def test_interrupted_while_waiting_for_the_write_lock_sends_nothing(make_server, no_leaks):
    peer, go = stalled_peer(make_server)
    with no_leaks():
        ws, writer, big = stalled_writer(peer)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.1):
            ws.send(b"never")
        assert ws.connection.state is State.OPEN
        go.set()
        writer.get(timeout=10)
        ws.send(b"after")
        ws.close()
        assert peer.done.wait(10)
        assert peer.data() == [(OP_BINARY, True, big), (OP_BINARY, True, b"after")]


@pytest.mark.parametrize("how", ["kill", "timeout", "keyboard"])
def test_write_interrupted_mid_frame_closes_the_socket(make_server, no_leaks, how):
    peer, go = stalled_peer(make_server)
    with no_leaks():
        if how == "kill":  # another greenlet's write, killed
            ws, writer, big = stalled_writer(peer)
            writer.kill()
        else:  # this greenlet's own write, interrupted inside sendall
            ws = gws.open(peer.url, compression=None, close_timeout=2000)
            ws.response.socket.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_SNDBUF, 65536)
            exc = gevent.Timeout() if how == "timeout" else KeyboardInterrupt()
            me = greenlet.getcurrent()

            def interrupt() -> None:
                wait_until(lambda: ws.connection.transport.torn)
                gevent.get_hub().loop.run_callback(me.throw, exc)

            interrupter = gevent.spawn(interrupt)
            with pytest.raises(type(exc)):
                ws.send(b"B" * (16 * 1024 * 1024))
            interrupter.join(1)
        assert ws.connection.closed.is_set(), "socket left open after a torn frame"
        assert ws.response.socket.fileno() == -1
        assert ws.closed and ws.close_code == 1006
        assert "interrupted" in ws.read.error
        with pytest.raises(gws.ConnectionClosed):
            ws.send(b"more")
        go.set()
        assert peer.done.wait(10)
        # the peer decoded nothing invalid: no frame, then the torn one cut by EOF
        assert peer.frames == [] and peer.leftover > 0


def block_sends(conn: Any) -> Any:
    """Make the transport's send() wait 10 s before sending; returns the original."""
    original = conn.transport._send

    def blocked_send(data: bytes) -> int:
        gevent.sleep(10)
        return original(data)

    conn.transport._send = blocked_send
    return original


def test_compressed_write_interrupted_before_any_byte_drops_the_connection(make_server, no_leaks):
    """With permessage-deflate the compressor's context has moved on even when
    nothing was sent: resending would desynchronise the peer, so the
    interruption closes the connection."""
    server = make_server(gws.echo)
    with no_leaks():
        ws = gws.open(server.url)
        assert ws.response.extensions
        conn = ws.connection
        block_sends(conn)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
            ws.send("compressed")
        assert not conn.transport.torn and ws.closed and ws.close_code == 1006


@pytest.mark.parametrize("payload", [b"plain", "plain \u2713 text"], ids=["bytes", "str"])
def test_plain_write_interrupted_before_any_byte_keeps_the_connection(
    make_server, no_leaks, payload
):
    """The one-step send of a whole uncompressed message: interrupted before
    any byte went out, the connection stays usable and the message can be
    sent again."""
    server = make_server(gws.echo)
    with no_leaks():
        ws = gws.open(server.url, compression=None)
        conn = ws.connection
        original = block_sends(conn)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
            ws.send(payload)
        conn.transport._send = original
        assert not conn.transport.torn and conn.state is State.OPEN
        ws.send(payload)
        assert ws.recv(timeout=5000).payload == payload
        ws.close()


def test_str_with_a_lone_surrogate_is_refused_and_sends_nothing(make_server, no_leaks):
    peer = Peer(make_server)
    with no_leaks():
        ws = gws.open(peer.url, compression=None)
        with pytest.raises(UnicodeEncodeError):
            ws.send("bad \ud800")
        ok, error = ws.write("also bad \udfff")
        assert not ok and "surrogates not allowed" in error
        ws.send("good \u2713")
        ws.close()
        assert peer.done.wait(10)
        assert peer.data() == [(OP_TEXT, True, "good \u2713".encode())]


# -- connect --------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize(
    "interruption", [gevent.Timeout, gevent.GreenletExit, KeyboardInterrupt], ids=str
)
def test_interrupted_connect_leaks_nothing(make_server, no_leaks, tls, interruption):
    def silent(sock: Any, _addr: Any) -> None:
        make_server.hold_open(sock, _addr)

    server = make_server.raw(silent)
    with no_leaks():
        url = f"{'wss' if tls else 'ws'}://127.0.0.1:{server.port}/"
        exc = None if interruption is gevent.Timeout else interruption
        with pytest.raises(interruption), gevent.Timeout(0.1, exc):
            gws.connect(url, timeout=10000)
        make_server.released.set()  # let the silent handler return


# -- close ----------------------------------------------------------------------------------


def test_interrupted_close_still_closes_within_close_timeout(make_server, no_leaks):
    peer = Peer(make_server, answer_close=False)
    with no_leaks():
        ws = gws.open(peer.url, close_timeout=300)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
            ws.close()
        conn = ws.connection
        assert conn.state is State.CLOSING and not conn.closed.is_set()
        assert conn.closed.wait(5), "socket not closed after close_timeout"
        assert ws.read.error == "close handshake timed out" and ws.close_code == 1006
        peer.release.set()


def test_close_again_after_an_interrupted_close_resumes_the_wait(make_server, no_leaks):
    peer = Peer(make_server, answer_close=False)
    with no_leaks():
        res, read, write = gws.connect(peer.url, close_timeout=300)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
            write.close(1001, "bye")
        assert not read.connection.closed.is_set()
        assert write.close() == (True, None)  # not a no-op: waits for the close
        assert read.connection.closed.is_set() and read.closed
        assert read.error == "close handshake timed out"
        assert close_code_of(peer.frames[-1]) == 1001
        assert write.close() == (False, "connection is already closed")
        peer.release.set()


def test_close_is_not_held_up_by_the_heartbeat_pump(make_server, no_leaks):
    """Review defect: close() waited the whole close_timeout when the
    heartbeat's pump held the read lock; now it waits for the lock and reads."""
    replied = Event()
    pump_done = Event()

    def handler(sock: Any, _addr: Any) -> None:
        try:
            _, rest = handshake(sock)
            close = ClientFrames(sock, rest).until_close()
            pump_done.wait(10)
            sock.sendall(server_frame(OP_CLOSE, close.payload[:2]))
            replied.set()
        finally:
            quiet_close(sock)

    server = make_server.raw(handler)
    with no_leaks():
        ws = gws.open(f"ws://127.0.0.1:{server.port}/", close_timeout=60000)
        conn = ws.connection
        pump = gevent.spawn(conn.pump, 0.2)
        wait_until(conn.read_lock.locked)
        closer = gevent.spawn(ws.close)
        pump.join(5)
        pump_done.set()
        closer.join(5)
        assert closer.dead, "close() still waiting after the pump gave up the read lock"
        assert replied.is_set() and ws.close_code == 1000 and ws.read.error is None


def test_heartbeat_step_spawned_while_open_never_pings_after_the_close_frame():
    """Review defect: a heartbeat step spawned while OPEN could ping after
    the close frame."""
    written: List[Optional[Message]] = []
    never = Event()

    def raw_read() -> Optional[Message]:
        never.wait(5)
        return None

    read, write = gws.wrap_io(raw_read, written.append, {"heartbeat": 60000, "close_timeout": 100})
    heartbeat = read.connection.heartbeat
    heartbeat._next = 0.0  # a ping is due
    heartbeat._spawn_step()  # what the timer does: the step is spawned while OPEN
    assert write.close() == (True, None)  # the step runs while close() waits
    gevent.sleep(0)
    frames = [f for f in written if f is not None]
    assert frames and frames[-1].opcode == OP_CLOSE, frames
    assert not read.connection.heartbeat_active
    never.set()


def test_killed_heartbeat_step_keeps_the_heartbeat_going():
    written: List[Optional[Message]] = []
    two_pings = Event()

    def raw_write(f: Optional[Message]) -> None:
        written.append(f)
        if sum(1 for w in written if w is not None and w.opcode == OP_PING) >= 2:
            two_pings.set()

    def raw_read() -> Optional[Message]:
        two_pings.wait(5)
        return None

    read, write = gws.wrap_io(raw_read, raw_write, {"heartbeat": 20, "heartbeat_timeout": 60000})
    heartbeat = read.connection.heartbeat
    wait_until(lambda: heartbeat._step is not None, rounds=300)
    heartbeat._step.kill()
    assert two_pings.wait(5), "the heartbeat stopped after its step was killed"
    read.connection.abort()


# -- frames from a custom raw_read ------------------------------------------------------


def test_str_fragments_from_a_custom_raw_read_are_reassembled():
    """Review defect: fragment frames with str payloads from a custom raw_read
    raised TypeError."""
    frames = iter(
        [
            Message(fin=False, opcode=OP_TEXT, payload="Hel"),
            Message(fin=True, opcode=OP_CONTINUATION, payload="lo €"),
            None,
        ]
    )
    read, write = gws.wrap_io(lambda: next(frames), lambda f: None, {"mask": True})
    msg = read()
    assert msg is not None and msg.payload == "Hello €" and msg.opcode == OP_TEXT
    assert read() is None and read.close_code == 1006


# -- fragmented sends ---------------------------------------------------------------------


def test_iterable_is_one_message_a_fragment_per_item(make_server, no_leaks):
    peer = Peer(make_server)
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        assert write(["a", "b", "c"]) == (True, None)
        ws = gws.WebSocket(res, read, write)
        ws.send(iter([b"x", bytearray(b"y")]))
        ws.send([])  # nothing to send
        ws.close()
        assert peer.done.wait(10)
        assert peer.data() == [
            (OP_TEXT, False, b"a"),
            (OP_CONTINUATION, False, b"b"),
            (OP_CONTINUATION, True, b"c"),
            (OP_BINARY, False, b"x"),
            (OP_CONTINUATION, True, b"y"),
        ]


def test_mixed_items_before_any_fragment_is_an_error_value(make_server, no_leaks):
    peer = Peer(make_server)
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        ok, err = write(["a", b"b"])
        assert ok is False and "all str or all bytes" in err
        assert write("still open") == (True, None)
        write(None)
        assert peer.done.wait(10)
        assert peer.data() == [(OP_TEXT, True, b"still open")]


def test_mixed_items_after_a_fragment_fail_the_connection_with_1011(make_server, no_leaks):
    peer = Peer(make_server)
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        ok, err = write(["a", "b", b"c"])
        assert ok is False and "all str or all bytes" in err
        assert peer.done.wait(10)
        # an item is sent once the next one is in hand (the last goes with fin)
        assert peer.data() == [(OP_TEXT, False, b"a")]
        assert close_code_of(peer.frames[-1]) == 1011
        assert read() is None and read.close_code == 1011


def test_other_greenlets_messages_never_land_between_fragments(make_server, no_leaks):
    peer = Peer(make_server)
    with no_leaks():
        res, read, write = gws.connect(peer.url)  # compressed too
        others: List[gevent.Greenlet] = []

        def pieces():
            yield "p1"
            yield "p2"  # p1 is on the wire once p2 is in hand
            for i in range(3):  # other writers start, and wait for the message
                others.append(gevent.spawn(write, f"other{i}"))
            gevent.sleep(0)
            assert not any(g.ready() for g in others)
            assert write.ping(b"between") == (True, None)  # control frames may
            yield "p3"

        assert write(pieces()) == (True, None)
        gevent.joinall(others, timeout=5)
        assert all(g.value == (True, None) for g in others)
        write(None)
        assert peer.done.wait(10)
        kinds = [(f.opcode, f.fin) for f in peer.frames]
        assert kinds[:4] == [
            (OP_TEXT, False),
            (OP_PING, True),
            (OP_CONTINUATION, False),
            (OP_CONTINUATION, True),
        ]
        assert kinds[4:7] == [(OP_TEXT, True)] * 3
        assert kinds[7] == (OP_CLOSE, True)


def test_hand_written_fragments_hold_other_messages_back(make_server, no_leaks):
    peer = Peer(make_server)
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        assert write({"opcode": OP_TEXT, "fin": False, "payload": "h1"}) == (True, None)
        other = gevent.spawn(write, "whole")
        gevent.sleep(0)
        assert not other.ready()
        ok, err = write("mine")  # the same greenlet: a clear error, not a deadlock
        assert ok is False and "still open" in err
        ok, err = write({"opcode": OP_BINARY, "fin": False, "payload": b"x"})
        assert ok is False and "fragments are open" in err
        assert write({"opcode": OP_CONTINUATION, "payload": "h2"}) == (True, None)
        assert other.get(timeout=5) == (True, None)
        ok, err = write({"opcode": OP_CONTINUATION, "payload": "stray"})
        assert ok is False and "continuation" in err
        write(None)
        assert peer.done.wait(10)
        assert peer.data() == [
            (OP_TEXT, False, b"h1"),
            (OP_CONTINUATION, True, b"h2"),
            (OP_TEXT, True, b"whole"),
        ]


def test_killed_fragmented_send_closes_the_connection(make_server, no_leaks):
    peer = Peer(make_server)
    with no_leaks():
        res, read, write = gws.connect(peer.url, compression=None)
        first_sent = Event()

        def pieces():
            yield "one"
            first_sent.set()
            yield "two"  # never sent: the send is killed while this waits
            Event().wait(10)
            yield "three"

        sender = gevent.spawn(write, pieces())
        assert first_sent.wait(5)
        sender.kill()
        assert read.connection.closed.is_set() and read.closed
        assert "interrupted" in read.error
        assert write("late")[0] is False
        assert peer.done.wait(10)
        assert peer.data() == [(OP_TEXT, False, b"one")]


# -- threads ------------------------------------------------------------------------------


def test_use_from_another_os_thread_is_a_clear_gws_error(echo_server, no_leaks):
    with no_leaks():
        ws = gws.open(f"ws://127.0.0.1:{echo_server}/")
        seen: dict = {}

        def other_thread() -> None:
            for name, call in [
                ("send", lambda: ws.send("x")),
                ("recv", ws.recv),
                ("close", ws.connection.close),
                ("ping", ws.ping),
            ]:
                try:
                    call()
                except gws.WrongThread as exc:
                    seen[name] = exc
                except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                    seen[name] = exc
            seen["write"] = ws.write("x")
            seen["read"] = ws.read()
            seen["read.error"] = ws.read.error

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(10)
        for name in ("send", "recv", "close", "ping"):
            assert isinstance(seen[name], gws.WrongThread), (name, seen[name])
            assert isinstance(seen[name], gws.WebSocketError)
            assert "thread" in str(seen[name])
        ok, err = seen["write"]
        assert ok is False and "thread" in err
        assert seen["read"] is None and "thread" in seen["read.error"]
        # the owning thread is unaffected
        assert ws.read.error is None
        ws.send("still mine")
        assert ws.recv().payload == "still mine"
        ws.close()


def test_a_pong_owed_for_bytes_that_came_with_the_handshake_goes_out_first(make_server, no_leaks):
    """Found by Autobahn 5.7 under load: frames that arrived in the same TCP
    read as the 101 (a fragment, a ping, the last fragment) were parsed when
    the connection was made, and the pong waited until after the echo."""
    frames_seen: List[Message] = []

    def handler(sock: Any, _addr: Any) -> None:
        try:
            key, _headers, rest = read_request(sock)
            sock.sendall(
                accept_reply(key)
                + server_frame(OP_TEXT, b"frag1", fin=False)
                + server_frame(OP_PING, b"ping payload")
                + server_frame(OP_CONTINUATION, b"frag2")
            )
            frames = ClientFrames(sock, rest)
            for _ in range(2):
                frames_seen.append(frames.next())
            sock.sendall(server_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
            frames.until_close()
        finally:
            quiet_close(sock)

    server = make_server.raw(handler)
    with no_leaks():
        res, read, write = gws.connect(f"ws://127.0.0.1:{server.port}/", compression=None)
        msg = read()
        assert msg is not None and msg.payload == "frag1frag2"
        write(msg.payload)
        assert read() is None and read.close_code == 1000
        assert [(f.opcode, f.payload) for f in frames_seen] == [
            (OP_PONG, b"ping payload"),
            (OP_TEXT, b"frag1frag2"),
        ]
