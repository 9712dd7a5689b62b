"""SocketTransport.write_frame: masked frames built in one piece (masking
copies the payload anyway), small unmasked ones joined, large unmasked ones
gathered with sendmsg() (no copy of the payload), TLS always joined; every
path byte-exact."""

from __future__ import annotations

import os

import gevent
import pytest
from gevent import socket as gsocket

from gws.frames import OP_BINARY, FrameDecoder, Message
from gws.transport import _GATHER_MIN, SocketTransport


def read_frames(sock: gsocket.socket, count: int, masked: bool = True) -> list:
    decoder = FrameDecoder(expect_masked=masked)
    frames = []
    while len(frames) < count:
        data = sock.recv(1 << 20)
        assert data, "peer closed early"
        decoder.feed(data)
        while True:
            frame = decoder.next_frame()
            if frame is None:
                break
            frames.append(frame)
    return frames


@pytest.mark.parametrize("size", [0, 125, _GATHER_MIN - 1, _GATHER_MIN, 3 * 1024 * 1024 + 5])
@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("text", [False, True], ids=["bytes", "str"])
def test_frames_of_every_size_arrive_byte_exact(size: int, mask: bool, text: bool) -> None:
    a, b = gsocket.socketpair()
    try:
        transport = SocketTransport(a)
        assert transport._sendmsg is not None and transport._recv_size == 256 * 1024
        payload = os.urandom(size)
        sent: object = payload
        if text:  # latin-1 and BMP characters, encoded as UTF-8 into the frame
            sent = payload.decode("latin-1") + "\u2713"
            payload = sent.encode("utf-8")  # type: ignore[attr-defined]
        with gevent.Timeout(20):
            # 3 MiB exceeds the socket buffers: send() or sendmsg() sends part,
            # sendall() the rest
            reader = gevent.spawn(read_frames, b, 2, mask)
            transport.write_frame(Message(opcode=OP_BINARY, mask=mask, payload=sent))  # type: ignore[arg-type]
            transport.write_frame(Message(opcode=OP_BINARY, mask=mask, payload=b"next"))
            first, second = reader.get()
        assert first.payload == payload and second.payload == b"next"
        assert not transport.torn
    finally:
        a.close()
        b.close()


def test_tls_sockets_join_the_frame_instead(tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    from gevent import ssl as gssl

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    # gevent's own SSLContext class: its wrap_socket() makes cooperative sockets.
    server_ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_ctx)
    client_ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    payload = os.urandom(2 * 1024 * 1024)
    try:
        with gevent.Timeout(20):

            def serve() -> list:
                conn, _ = listener.accept()
                tls = server_ctx.wrap_socket(conn, server_side=True)
                try:
                    # the receiving side through SocketTransport.recv too
                    receiver = SocketTransport(tls)
                    assert receiver._recv_size < 64 * 1024  # one TLS record at a time
                    decoder = FrameDecoder(expect_masked=True)
                    frame = None
                    while frame is None:
                        data = receiver.recv()
                        assert data, "peer closed early"
                        decoder.feed(data)
                        frame = decoder.next_frame()
                    return [frame]
                finally:
                    tls.close()

            server = gevent.spawn(serve)
            sock = gsocket.create_connection(listener.getsockname())
            tls = client_ctx.wrap_socket(sock, server_hostname="127.0.0.1")
            try:
                transport = SocketTransport(tls)
                assert transport._sendmsg is None
                transport.write_frame(Message(opcode=OP_BINARY, mask=True, payload=payload))
                (frame,) = server.get()
            finally:
                tls.close()
        assert frame.payload == payload
    finally:
        listener.close()


@pytest.mark.parametrize("size", [0, 125, 40_000, 3 * 1024 * 1024 + 5])
def test_socket_io_reads_frames_of_every_size_whole(size: int) -> None:
    """raw_read() receives a large frame's payload straight into its buffer
    (FrameDecoder.reserve) and returns every frame byte-exact, then None."""
    from gws.frames import encode_frame
    from gws.transport import socket_io

    a, b = gsocket.socketpair()
    try:
        raw_read, _ = socket_io(a, mask=True)
        payload = os.urandom(size)
        wire = encode_frame(OP_BINARY, payload, mask=False) + encode_frame(1, b"end", mask=False)

        def peer() -> None:
            for start in range(0, len(wire), 70_001):  # pieces across frame boundaries
                b.sendall(wire[start : start + 70_001])
                gevent.sleep(0)
            b.shutdown(2)

        with gevent.Timeout(20):
            writer = gevent.spawn(peer)
            first, second = raw_read(), raw_read()
            assert first is not None and first.payload == payload
            assert second is not None and second.payload == b"end"
            assert raw_read() is None
            writer.get()
    finally:
        a.close()
        b.close()
