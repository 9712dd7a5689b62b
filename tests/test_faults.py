"""Fault injection on real loopback sockets: peers that crash, stall, drip,
flood or break RFC 6455 on purpose.

Every peer here is a raw gevent server that does the opening handshake by
hand (``gws.handshake.accept_key``) and then misbehaves. Each test asserts the
error value, the close code (and, where one is due, the close frame the client
sends back, read and decoded by the raw server), and that no greenlet and no
file descriptor outlived the test.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, List, Tuple

import gevent
import pytest
from gevent.event import AsyncResult, Event
from helpers import (
    ClientFrames,
    Harness,
    accept_reply,
    close_code_of,
    handshake,
    peak_rss_bytes,
    quiet_close,
    read_request,
    rss_bytes,
    server_frame,
)

import gws
from gws.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


def connect(server, **options: Any):
    options.setdefault("timeout", 5000)
    return gws.connect(server.url, **options)


# -- the peer closes TCP at the wrong moment ------------------------------------------


@pytest.mark.parametrize(
    "cut", [1, 2, 4, 60], ids=["mid-header", "after-header", "mid-len", "mid-payload"]
)
def test_server_closes_tcp_mid_frame(h: Harness, cut: int) -> None:
    data = server_frame(OP_BINARY, b"x" * 300)  # 2 + 2 length bytes + payload

    def handler(sock, _addr):
        try:
            handshake(sock)
            sock.sendall(data[:cut])
        finally:
            quiet_close(sock)

    with h.no_leaks():
        res, read, write = connect(h.raw(handler))
        assert res, read
        assert read() is None
        assert read.close_code == 1006
        assert read.error == "connection closed without a close frame"
        assert read() is None
        assert write(b"more") == (False, "connection is closed")


@pytest.mark.parametrize(
    "partial",
    [b"", b"HTTP/1.1 101 Swi", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"],
    ids=["nothing", "mid-status-line", "mid-headers"],
)
def test_server_closes_tcp_mid_handshake(h: Harness, partial: bytes) -> None:
    def handler(sock, _addr):
        try:
            read_request(sock)
            if partial:
                sock.sendall(partial)
        finally:
            quiet_close(sock)

    with h.no_leaks():
        res, err, write = connect(h.raw(handler))
        assert res is None and write is None
        assert err == "connection closed during the opening handshake"
        with pytest.raises(gws.HandshakeError, match="closed during the opening handshake"):
            gws.open(h.servers[0].url, timeout=5000)


def test_server_closes_tcp_before_the_close_frame(h: Harness) -> None:
    def handler(sock, _addr):
        try:
            handshake(sock)
            sock.sendall(server_frame(OP_TEXT, b"last words"))
        finally:
            quiet_close(sock)

    with h.no_leaks():
        res, read, write = connect(h.raw(handler))
        assert res, read
        msg = read()
        assert msg is not None and msg.payload == "last words"
        assert read() is None
        assert read.close_code == 1006
        assert read.error == "connection closed without a close frame"


def test_server_drops_tcp_instead_of_answering_our_close(h: Harness) -> None:
    got: AsyncResult = AsyncResult()

    def handler(sock, _addr):
        try:
            _, rest = handshake(sock)
            got.set(close_code_of(ClientFrames(sock, rest).until_close()))
        finally:
            quiet_close(sock)

    with h.no_leaks():
        res, read, write = connect(h.raw(handler))
        assert res, read
        write.close(4001, "bye")
        assert got.get(timeout=5) == 4001
        assert read() is None
        assert read.close_code == 1006
        assert read.error == "connection closed without a close frame"


# -- the peer goes silent ------------------------------------------------------------


def test_half_open_connection_detected_by_heartbeat(h: Harness) -> None:
    release = Event()

    def handler(sock, _addr):
        try:
            handshake(sock)
            release.wait(10)  # neither reads nor writes, keeps the socket open
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), heartbeat=100)
            assert res, read
            started = time.monotonic()
            assert read() is None
            detected = time.monotonic() - started
        finally:
            release.set()
        print(f"half-open connection detected after {detected * 1000:.0f} ms (heartbeat 100 ms)")
        assert read.error == "heartbeat timeout"
        assert read.close_code == 1006
        assert detected < 1.0  # generous: 10 intervals
        assert write(b"x")[0] is False


def test_half_open_detected_without_a_reader(h: Harness) -> None:
    """Nobody is in read(): the heartbeat must still notice and close."""
    release = Event()

    def handler(sock, _addr):
        try:
            handshake(sock)
            release.wait(10)
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), heartbeat=100)
            assert res, read
            assert read.connection.closed.wait(timeout=1.0), "heartbeat never fired"
        finally:
            release.set()
        assert read() is None
        assert read.error == "heartbeat timeout"


def test_half_open_detected_while_a_writer_is_blocked(h: Harness) -> None:
    """The peer stops reading, so our writer blocks in sendall holding the
    write lock: the heartbeat must not queue behind it forever."""
    release = Event()

    def handler(sock, _addr):
        try:
            handshake(sock)
            release.wait(20)
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), heartbeat=100, compression=None)
            assert res, read
            results: List[Any] = []

            def writer() -> None:
                for _ in range(200):  # at most 200 MiB: far more than socket buffers hold
                    ok, err = write(bytes(MiB))
                    if not ok:
                        results.append(err)
                        return
                results.append("never blocked")

            g = gevent.spawn(writer)
            started = time.monotonic()
            assert read.connection.closed.wait(timeout=5.0), (
                "heartbeat stuck behind a blocked writer"
            )
            detected = time.monotonic() - started
            g.join(timeout=5)
            assert g.dead, "the writer is still blocked"
        finally:
            release.set()
        print(f"detected with a blocked writer after {detected * 1000:.0f} ms")
        assert read.error == "heartbeat timeout"
        assert read() is None
        assert results and results[0] != "never blocked"
        assert isinstance(results[0], str)


def test_server_never_answers_the_handshake(h: Harness) -> None:
    release = Event()

    def handler(sock, _addr):
        try:
            read_request(sock)
            release.wait(10)
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            started = time.monotonic()
            res, err, _ = connect(h.raw(handler), timeout=300)
            elapsed = time.monotonic() - started
            with pytest.raises(gws.OpenTimeout, match="timed out"):
                gws.open(h.servers[0].url, timeout=300)
        finally:
            release.set()
        assert res is None
        assert err == "timed out after 300 ms while connecting"
        assert elapsed < 5


def test_server_drips_one_byte_every_200ms(h: Harness) -> None:
    stop = Event()
    sent: List[int] = []

    def handler(sock, _addr):
        try:
            key, _, _ = read_request(sock)
            reply = accept_reply(key)
            for i in range(len(reply)):
                sock.sendall(reply[i : i + 1])
                sent.append(i)
                if stop.wait(0.2):
                    return
        except OSError:
            pass
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, err, _ = connect(h.raw(handler), timeout=1000)
        finally:
            stop.set()
        assert res is None
        assert err == "timed out after 1000 ms while connecting"
        assert 2 <= len(sent) < 20  # the server was still dripping when we gave up


# -- the peer floods the handshake ---------------------------------------------------------


FLOODS = {
    "1MiB-of-headers": b"HTTP/1.1 101 Switching Protocols\r\n"
    + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(1048)),
    "endless-header-line": b"HTTP/1.1 101 Switching Protocols\r\nX-Long: " + b"a" * MiB,
    "endless-status-line": b"HTTP/1.1 101 " + b"S" * MiB,
}


@pytest.mark.parametrize("name", sorted(FLOODS))
def test_handshake_flood_is_rejected_bounded(h: Harness, name: str) -> None:
    def handler(sock, _addr):
        try:
            read_request(sock)
            sock.sendall(FLOODS[name])
        except OSError:
            pass  # the client hung up on us, as it should
        finally:
            quiet_close(sock)

    with h.no_leaks():
        res, err, _ = connect(h.raw(handler))
        assert res is None
        assert err == "handshake headers larger than 65536 bytes"


def test_too_many_handshake_headers(h: Harness) -> None:
    def handler(sock, _addr):
        try:
            key, _, _ = read_request(sock)
            sock.sendall(accept_reply(key, extra="".join(f"X-{i}: y\r\n" for i in range(300))))
        finally:
            quiet_close(sock)

    with h.no_leaks():
        res, err, _ = connect(h.raw(handler))
        assert res is None
        assert err == "more than 256 handshake headers"


# -- frames that break RFC 6455 ------------------------------------------------------------


def _frame_bytes(b0: int, length: int, payload: bytes = b"") -> bytes:
    if length < 126:
        return bytes([b0, length]) + payload
    if length < 65536:
        return bytes([b0, 126]) + length.to_bytes(2, "big") + payload
    return bytes([b0, 127]) + length.to_bytes(8, "big") + payload


def _close(code: int, reason: bytes = b"") -> bytes:
    return server_frame(OP_CLOSE, code.to_bytes(2, "big") + reason)


BAD_FRAMES = {
    # name: (bytes the server sends, close code expected, error fragment)
    "length-2^63": (_frame_bytes(0x82, (1 << 63) | 5, b"hello"), 1002, "most significant bit"),
    "length-2^64-1": (_frame_bytes(0x82, (1 << 64) - 1), 1002, "most significant bit"),
    "declared-200MiB": (_frame_bytes(0x82, 200 * MiB, b"x" * 1000), 1009, "exceeds max_size"),
    "rsv1-without-extension": (_frame_bytes(0xC2, 2, b"hi"), 1002, "reserved bits"),
    "rsv2": (_frame_bytes(0xA2, 2, b"hi"), 1002, "reserved bits"),
    "rsv3": (_frame_bytes(0x92, 2, b"hi"), 1002, "reserved bits"),
    "reserved-opcode-3": (_frame_bytes(0x83, 0), 1002, "reserved opcode"),
    "reserved-opcode-11": (_frame_bytes(0x8B, 0), 1002, "reserved opcode"),
    "fragmented-ping": (_frame_bytes(0x09, 0), 1002, "fragmented control frame"),
    "ping-126-bytes": (_frame_bytes(0x89, 126, b"p" * 126), 1002, "longer than 125"),
    "masked-server-frame": (bytes([0x82, 0x82, 1, 2, 3, 4, 5, 6]), 1002, "masked"),
    "orphan-continuation": (server_frame(OP_CONTINUATION, b"x"), 1002, "continuation frame"),
    "text-not-utf8": (server_frame(OP_TEXT, b"ok \xff\xfe"), 1007, "not valid UTF-8"),
    "close-code-999": (_close(999), 1002, "invalid close code 999"),
    "close-code-1004": (_close(1004), 1002, "invalid close code 1004"),
    "close-code-1005": (_close(1005), 1002, "invalid close code 1005"),
    "close-code-1006": (_close(1006), 1002, "invalid close code 1006"),
    "close-code-5000": (_close(5000), 1002, "invalid close code 5000"),
    "close-one-byte": (server_frame(OP_CLOSE, b"\x03"), 1002, "one byte"),
    "close-reason-not-utf8": (_close(1000, b"\xc3\x28 bad"), 1007, "not valid UTF-8"),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_protocol_violation_closes_with_the_right_code(h: Harness, name: str) -> None:
    data, code, fragment = BAD_FRAMES[name]
    got: AsyncResult = AsyncResult()

    def handler(sock, _addr):
        try:
            _, rest = handshake(sock)
            sock.sendall(data)
            got.set(close_code_of(ClientFrames(sock, rest).until_close()))
        except Exception as exc:  # noqa: BLE001 - reported through got
            got.set(exc)
        finally:
            quiet_close(sock)

    peak_before = peak_rss_bytes()
    with h.no_leaks():
        res, read, write = connect(h.raw(handler))
        assert res, read
        assert read() is None
        assert read.close_code == code
        assert fragment in read.error
        if code == 1002:
            assert read.error.startswith("protocol error: ")
        assert got.get(timeout=5) == code, "wrong close code in the frame the client sent"
        assert read() is None
        assert write(b"x") == (False, "connection is closed")
    assert peak_rss_bytes() - peak_before < 100 * MiB


# -- decompression bombs -------------------------------------------------------------------


def _bomb_chunk() -> bytes:
    """Raw deflate data for 1 MiB of zeros, ending on a full flush: the
    compressor restarts from the same state, so copies concatenate into one
    valid stream (about 1 KiB per MiB inflated)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(bytes(MiB)) + comp.flush(zlib.Z_FULL_FLUSH)


BOMBS = {
    # name: list of (chunks per fragment); total inflated size = sum MiB
    "20KiB-to-20MiB": [20],
    "1MiB-to-1GiB": [1100],
    "fragmented-1GiB": [275, 275, 275, 275],
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_deflate_bomb_refused_at_max_size(h: Harness, name: str) -> None:
    chunk = _bomb_chunk()
    parts = BOMBS[name]
    got: AsyncResult = AsyncResult()

    def handler(sock, _addr):
        try:
            _, rest = handshake(sock, extensions="permessage-deflate")
            for i, n in enumerate(parts):
                opcode = OP_BINARY if i == 0 else OP_CONTINUATION
                sock.sendall(server_frame(opcode, chunk * n, fin=i == len(parts) - 1, rsv1=i == 0))
            got.set(close_code_of(ClientFrames(sock, rest).until_close()))
        except Exception as exc:  # noqa: BLE001 - reported through got
            got.set(exc)
        finally:
            quiet_close(sock)

    peak_before = peak_rss_bytes()
    rss_before = rss_bytes()
    with h.no_leaks():
        res, read, write = connect(h.raw(handler))
        assert res, read
        assert res.extensions.get("permessage-deflate") is not None
        assert read() is None
        assert read.close_code == 1009
        assert read.error == "message exceeds max_size once decompressed"
        assert got.get(timeout=10) == 1009
    growth = peak_rss_bytes() - peak_before
    print(
        f"{name}: peak RSS grew by {growth / MiB:.1f} MiB,"
        f" RSS now {(rss_bytes() - rss_before) / MiB:+.1f} MiB"
    )
    assert growth < 100 * MiB


# -- using a connection after (or while) it closes --------------------------------------------


def test_write_read_close_after_close(h: Harness) -> None:
    with h.no_leaks():
        srv = h.ws()
        res, read, write = connect(srv)
        assert res, read
        assert write.close(1000, "done") == (True, None)
        assert read.error is None
        assert read.close_code == 1000
        assert read() is None
        assert read() is None
        assert list(read) == []
        assert write(b"late") == (False, "connection is closed")
        assert write("late") == (False, "connection is closed")
        assert write.ping() == (False, "connection is closed")
        assert write.close() == (False, "connection is already closed")
        assert write(None) == (False, "connection is already closed")


def test_pythonic_face_after_close(h: Harness) -> None:
    with h.no_leaks():
        srv = h.ws()
        ws = gws.open(srv.url, timeout=5000)
        with ws:
            ws.send("hi")
            assert ws.recv().payload == "hi"
        assert ws.closed
        ws.close()  # idempotent
        with pytest.raises(gws.ConnectionClosed) as info:
            ws.recv()
        assert info.value.code == 1000
        with pytest.raises(gws.ConnectionClosed):
            ws.send(b"late")


def test_close_wakes_a_greenlet_blocked_in_read(h: Harness) -> None:
    with h.no_leaks():
        srv = h.ws()
        res, read, write = connect(srv)
        assert res, read
        reader = gevent.spawn(read)
        gevent.sleep(0)  # let it block in read()
        assert read.connection.read_lock.locked()
        assert write.close() == (True, None)
        assert reader.get(timeout=5) is None
        assert read.close_code == 1000
        assert read.error is None


def test_close_with_unresponsive_peer_wakes_reader_and_is_bounded(h: Harness) -> None:
    release = Event()

    def handler(sock, _addr):
        try:
            handshake(sock)
            release.wait(10)  # never answers the close frame
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), close_timeout=300)
            assert res, read
            reader = gevent.spawn(read)
            gevent.sleep(0)
            assert read.connection.read_lock.locked()
            started = time.monotonic()
            write.close()
            elapsed = time.monotonic() - started
            assert reader.get(timeout=5) is None
        finally:
            release.set()
        assert read.error == "close handshake timed out"
        assert read.close_code == 1006
        assert elapsed < 5


def start_blocked_writer(read, write) -> Tuple[gevent.Greenlet, List[str]]:
    """Start a greenlet writing 1 MiB messages to a peer that reads none,
    and wait (bounded) until it is stuck in sendall holding the write lock.
    Returns the greenlet and the list that gets the error of its last write."""
    errors: List[str] = []

    def writer() -> None:
        for _ in range(200):  # at most 200 MiB: far more than socket buffers hold
            ok, err = write(bytes(MiB))
            if not ok:
                errors.append(err)
                return

    g = gevent.spawn(writer)
    for _ in range(100):
        gevent.sleep(0.01)
        if read.connection.write_lock.locked():
            break
    assert read.connection.write_lock.locked()
    return g, errors


def test_close_while_a_writer_is_blocked_is_bounded(h: Harness) -> None:
    """The peer stops reading; a writer blocks in sendall holding the write
    lock. close() must still return within its deadline and free the writer."""
    release = Event()

    def handler(sock, _addr):
        try:
            handshake(sock)
            release.wait(20)
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), close_timeout=300, compression=None)
            assert res, read
            g, errors = start_blocked_writer(read, write)
            started = time.monotonic()
            with gevent.Timeout(5, AssertionError("close() hung behind a blocked writer")):
                write.close()
            elapsed = time.monotonic() - started
            g.join(timeout=5)
            assert g.dead, "the writer is still blocked"
        finally:
            release.set()
        assert elapsed < 5
        assert read() is None
        assert read.close_code == 1006
        assert errors and isinstance(errors[0], str)


def test_protocol_error_while_a_writer_is_blocked_is_bounded(h: Harness) -> None:
    """A bad frame arrives while our writer is stuck on a peer that stopped
    reading: failing the connection must not wait for the write lock forever."""
    release = Event()
    writer_stuck = Event()

    def handler(sock, _addr):
        try:
            handshake(sock)
            if writer_stuck.wait(10):
                sock.sendall(_frame_bytes(0xC2, 2, b"hi"))  # rsv1 without an extension
            release.wait(20)
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), close_timeout=300, compression=None)
            assert res, read
            g, errors = start_blocked_writer(read, write)
            writer_stuck.set()
            with gevent.Timeout(5, AssertionError("read() hung failing the connection")):
                assert read() is None
            g.join(timeout=5)
            assert g.dead, "the writer is still blocked"
        finally:
            writer_stuck.set()
            release.set()
        assert read.close_code == 1002
        assert read.error.startswith("protocol error: reserved bits")
        assert errors and isinstance(errors[0], str)


def test_heartbeat_answering_a_ping_behind_a_blocked_writer(h: Harness) -> None:
    """The peer pings us but stops reading: the heartbeat reads that ping for
    an idle reader and must not then wait forever to send the pong."""
    pinged = Event()
    writer_stuck = Event()
    release = Event()

    def handler(sock, _addr):
        try:
            _, rest = handshake(sock)
            frames = ClientFrames(sock, rest)
            f = frames.next()
            if f is not None and f.opcode == OP_PING:
                pinged.set()
                if writer_stuck.wait(10):
                    sock.sendall(server_frame(OP_PING, b"are you there"))
            release.wait(20)
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), heartbeat=300, compression=None)
            assert res, read
            assert pinged.wait(5), "no heartbeat ping"
            g, errors = start_blocked_writer(read, write)
            writer_stuck.set()
            assert read.connection.closed.wait(timeout=5.0), "heartbeat stuck sending a pong"
            g.join(timeout=5)
            assert g.dead, "the writer is still blocked"
        finally:
            writer_stuck.set()
            release.set()
        assert read.error == "heartbeat timeout"
        assert read() is None
        assert errors and isinstance(errors[0], str)


def test_server_answers_close_but_keeps_tcp_open(h: Harness) -> None:
    """RFC 6455 7.1.1: the server should close TCP first. One that answers the
    close frame but never closes must not leave our socket open or close()
    hanging: after close_timeout we drop the connection ourselves."""
    release = Event()

    def handler(sock, _addr):
        try:
            _, rest = handshake(sock)
            f = ClientFrames(sock, rest).until_close()
            sock.sendall(server_frame(OP_CLOSE, f.payload if f is not None else b""))
            release.wait(10)  # but never closes TCP
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler), close_timeout=300)
            assert res, read
            started = time.monotonic()
            with gevent.Timeout(5, AssertionError("close() hung")):
                write.close(1000, "bye")
            elapsed = time.monotonic() - started
            assert read.connection.closed.is_set(), "socket left open"
            assert res.socket.fileno() == -1, "socket left open"
        finally:
            release.set()
        assert elapsed < 5
        assert read.close_code == 1000
        assert read.error is None
        assert read() is None


def test_user_timeout_around_read_still_closes_the_socket(h: Harness) -> None:
    """The server's close frame arrives inside read(), which then waits for
    the TCP close; a user's gevent.Timeout firing then must not leak the socket."""
    release = Event()

    def handler(sock, _addr):
        try:
            _, rest = handshake(sock)
            sock.sendall(server_frame(OP_CLOSE, (1001).to_bytes(2, "big")))
            ClientFrames(sock, rest).until_close()
            release.wait(10)  # never closes TCP
        finally:
            quiet_close(sock)

    with h.no_leaks():
        try:
            res, read, write = connect(h.raw(handler))  # close_timeout 5 s
            assert res, read
            with pytest.raises(gevent.Timeout), gevent.Timeout(0.3):
                read()
            assert read.connection.closed.is_set(), "socket left open"
            assert res.socket.fileno() == -1, "socket left open"
        finally:
            release.set()
        assert read.close_code == 1001
        assert read() is None
