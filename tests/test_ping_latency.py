"""Pings that can be waited for (gws.Pong), ``ws.latency``, and close
descriptions that say who closed and why."""

from __future__ import annotations

import threading

import gevent
import pytest
from helpers import ClientFrames, handshake, quiet_close, server_frame
from test_thread_mode import run_threads
from ws_peer import Peer

import gws
from gws.frames import OP_PING, OP_PONG
from gws.threaded import hub_thread


def url(server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


# -- pings and latency ---------------------------------------------------------------------


def test_ping_wait_reads_for_its_pong_when_nobody_reads(make_server, no_leaks) -> None:
    server = make_server()
    with no_leaks(), gws.open(url(server)) as ws:
        assert ws.latency is None
        pong = ws.ping(wait=True, timeout=5000)
        assert pong.done() and pong.latency is not None and pong.latency > 0
        assert ws.latency == pong.latency
        again = ws.ping(b"mine")
        assert not again.done()
        assert again.wait(5000) == again.latency == ws.latency
        ws.send("still works")  # messages read while waiting are kept for recv()
        assert ws.recv().payload == "still works"


def test_ping_wait_while_another_greenlet_reads(make_server, no_leaks) -> None:
    def handler(request, read, write):
        read()  # answers pings meanwhile
        write("reply")
        read()

    server = make_server(handler)
    with no_leaks(), gws.open(url(server)) as ws:
        reader = gevent.spawn(ws.recv)
        gevent.sleep(0)  # the reader holds the read lock
        assert ws.connection.read_lock.locked()
        assert ws.ping().wait(5000) > 0
        ws.send("go")
        assert reader.get(timeout=5).payload == "reply"


def test_heartbeat_pings_set_latency(make_server, no_leaks) -> None:
    server = make_server()
    with no_leaks(), gws.open(url(server), heartbeat=50) as ws, gevent.Timeout(10):
        while ws.latency is None:
            with pytest.raises(gws.ReceiveTimeout):
                ws.recv(timeout=30)  # reading lets the heartbeat's pongs in
        assert ws.latency > 0


def _peer(make_server, answer):
    """A raw peer: handshake, then ``answer(sock, frames, ping)`` for each ping."""
    done = gevent.event.Event()

    def handler(sock, _addr):
        try:
            _, rest = handshake(sock)
            frames = ClientFrames(sock, rest)
            while True:
                f = frames.next()
                if f is None or f.opcode == gws.OP_CLOSE:
                    break
                if f.opcode == OP_PING and not answer(sock, f):
                    break
        finally:
            quiet_close(sock)
            done.set()

    return make_server.raw(handler)


def test_a_pong_answers_older_pings_too(make_server, no_leaks) -> None:
    seen = []

    def answer(sock, ping):
        seen.append(ping.payload)
        if len(seen) == 3:  # answers only the latest of three, as RFC 6455 allows
            sock.sendall(server_frame(OP_PONG, ping.payload))
        return True

    peer = _peer(make_server, answer)
    with no_leaks():
        ws = gws.open(url(peer))
        first, second = ws.ping(), ws.ping(b"two")
        third = ws.ping()
        assert third.wait(5000) > 0
        assert first.done() and second.done() and first.latency >= third.latency
        assert len({*seen}) == 3 and seen[1] == b"two"  # gws numbers pings without a payload
        ws.close()


def test_ping_wait_timeout_and_close_before_the_pong(make_server, no_leaks) -> None:
    silent_peer = _peer(make_server, lambda sock, ping: True)
    hanging_peer = _peer(make_server, lambda sock, ping: False)
    with no_leaks():
        silent = gws.open(url(silent_peer))
        with pytest.raises(gws.PongTimeout):
            silent.ping(wait=True, timeout=50)
        assert not silent.closed  # a missing pong does not close the connection
        silent.close()

        hangs_up = gws.open(url(hanging_peer))
        with pytest.raises(gws.ConnectionClosed) as info:
            hangs_up.ping(wait=True, timeout=5000)
        assert info.value.code == 1006 and info.value.initiator is None


def test_ping_latency_against_websockets() -> None:
    peer = Peer.start()
    try:
        with gws.open(peer.url) as ws:
            assert ws.ping(wait=True, timeout=5000).latency == ws.latency
    finally:
        peer.kill()


def test_ping_wait_in_thread_mode(echo_server, no_leaks) -> None:
    hub_thread()  # started once per process, before counting
    with no_leaks():
        ws = gws.open(f"ws://127.0.0.1:{echo_server}/", thread=True)
        pongs = run_threads(lambda: ws.ping(wait=True, timeout=5000), lambda: ws.ping())
        assert pongs[0].latency > 0
        assert run_threads(lambda: pongs[1].wait(5000))[0] == pongs[1].latency
        assert ws.latency is not None
        assert threading.active_count() >= 1
        ws.close()


# -- who closed and why ----------------------------------------------------------------------


def closing_server(make_server, code, reason=""):
    def handler(request, read, write):
        write.close(code, reason)

    return make_server(handler)


def test_peer_close_with_1001_says_so(make_server, no_leaks) -> None:
    with_reason = closing_server(make_server, 1001, "restarting")
    without = closing_server(make_server, 1001)
    with no_leaks():
        res, read, write = gws.connect(url(with_reason))
        assert res, read
        assert read() is None
        assert read.error == "peer closed with 1001 (going away): 'restarting'"
        assert read.close_code == 1001 and read.close_reason == "restarting"
        ws = gws.open(url(without))
        with pytest.raises(gws.ConnectionClosed) as info:
            ws.recv()
        assert info.value.initiator == "peer" and info.value.code == 1001
        assert str(info.value) == "connection closed by the peer: code 1001 (going away)"
        assert ws.close_description == "peer closed with 1001 (going away)"


def test_clean_closes_keep_error_none_but_describe_themselves(make_server, no_leaks) -> None:
    normal = closing_server(make_server, 1000)
    app = closing_server(make_server, 4001, "app")
    server = make_server()
    with no_leaks():
        ws = gws.open(url(normal))
        with pytest.raises(gws.ConnectionClosed):
            ws.recv()
        assert ws.read.error is None
        assert ws.close_description == "peer closed with 1000 (normal closure)"

        ws = gws.open(url(app))
        with pytest.raises(gws.ConnectionClosed):
            ws.recv()
        assert ws.read.error is None  # application codes are the application's business
        assert ws.close_description == "peer closed with 4001 (private use): 'app'"

        ws = gws.open(url(server))
        assert ws.close_description is None
        ws.close(1000, "bye")
        assert ws.read.error is None
        assert ws.connection.close_initiator == "local"
        assert ws.close_description == "closed with 1000 (normal closure)"


def test_failures_and_drops_describe_themselves(make_server, no_leaks) -> None:
    def bad_utf8(sock, _addr):
        try:
            handshake(sock)
            sock.sendall(server_frame(gws.OP_TEXT, b"\xff"))
            ClientFrames(sock).until_close()
        finally:
            quiet_close(sock)

    bad = make_server.raw(bad_utf8)
    silent_peer = _peer(make_server, lambda sock, ping: True)
    with no_leaks():
        ws = gws.open(url(bad))
        with pytest.raises(gws.ConnectionClosed):
            ws.recv()
        assert ws.close_description.startswith(
            "failed the connection with 1007 (invalid payload data): "
        ), ws.close_description
        assert "UTF-8" in ws.read.error

        silent = gws.open(url(silent_peer), heartbeat=50)
        with pytest.raises(gws.ConnectionClosed), gevent.Timeout(10):
            silent.recv()
        assert silent.close_description == (
            "connection dropped (1006, abnormal closure): heartbeat timeout"
        )
        assert silent.read.error == "heartbeat timeout"


def test_websockets_peer_close_with_1012_says_so() -> None:
    peer = Peer.start()
    try:
        res, read, write = gws.connect(peer.url + "close/1012")
        assert res, read
        assert read() is None
        assert read.error == "peer closed with 1012 (service restart): 'closing as asked'"
    finally:
        peer.kill()


def test_a_closed_connection_that_pinged_is_freed_by_reference_counting(echo_server) -> None:
    """The pong bookkeeping leaves no reference cycle behind once closed."""
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        ws = gws.open(port=echo_server)
        ws.ping(wait=True, timeout=5000)
        ws.ping()  # one left unanswered at the close
        ws.close()
        ref = weakref.ref(ws.connection)
        del ws
        assert ref() is None
    finally:
        gc.enable()
