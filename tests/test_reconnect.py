"""gws.reconnecting: real servers stopped and restarted mid-test (a gws
server in this process, a websockets server in a subprocess), backoff
checked through a seeded random source and a sleep that records instead of
sleeping (no timing is asserted)."""

from __future__ import annotations

import logging
import random
import ssl
from typing import Callable, List, Optional

import gevent
import pytest
from helpers import node_peer
from ws_peer import NodePeer, Peer

import gws
from gws.reconnect import should_retry


class Sleeps:
    """The ``sleep`` hook: records each delay, runs ``on_sleep(n)`` (e.g. to
    restart a server) instead of sleeping."""

    def __init__(self, on_sleep: Optional[Callable[[int], None]] = None) -> None:
        self.delays: List[float] = []
        self.on_sleep = on_sleep

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.delays))


def expected_delays(seed: int, n: int, initial: float, factor: float, cap: float) -> List[float]:
    rng = random.Random(seed)
    return [rng.uniform(0, min(cap, initial * factor**i)) / 1000 for i in range(n)]


@pytest.fixture
def peer():
    p = Peer.start()
    try:
        yield p
    finally:
        p.kill()


def test_backoff_is_exponential_with_full_jitter_and_bounded(free_port, caplog) -> None:
    sleeps = Sleeps()
    loop = gws.reconnecting(
        f"ws://user:secret@127.0.0.1:{free_port}/feed?token=hidden",
        max_retries=7,
        backoff_initial=100,
        backoff_factor=2,
        backoff_max=1000,
        rng=random.Random(42),
        sleep=sleeps,
        timeout=2000,
    )
    with caplog.at_level(logging.INFO, logger="gws"), pytest.raises(ConnectionRefusedError):
        next(loop)
    assert sleeps.delays == expected_delays(42, 7, 100, 2, 1000)
    assert loop.retries == 8  # the 8th failure is one too many: raised
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    retries = [line for line in lines if line.startswith("reconnecting to ")]
    assert len(retries) == 7
    first = f"reconnecting to ws://127.0.0.1:{free_port}/feed in {sleeps.delays[0]:.3f} s (retry 1)"
    assert retries[0].startswith(first), retries[0]
    assert any(line.startswith("giving up on ") for line in lines)
    assert not any("secret" in line or "hidden" in line for line in lines)
    with pytest.raises(StopIteration):
        next(loop)  # a loop that raised is over


def test_in_process_server_stopped_and_restarted_on_the_same_port(make_server, no_leaks) -> None:
    server = make_server()
    port = server.port
    servers = [server]

    def restart(n: int) -> None:
        if n == 3:  # two refused attempts first
            servers.append(make_server(port=port))

    sleeps = Sleeps(restart)
    got = []
    with no_leaks(), gevent.Timeout(20):
        for ws in gws.reconnecting(f"ws://127.0.0.1:{port}/", sleep=sleeps, rng=random.Random(1)):
            ws.send(f"hello {len(got)}")
            got.append(ws.recv().payload)
            if len(got) == 1:
                servers[0].stop()  # it closes its connections with 1001; the port is refused
                with pytest.raises(gws.ConnectionClosed):
                    ws.recv()
                assert ws.close_code == 1001 and ws.connection.close_initiator == "peer"
            else:
                ws.close()  # the program's own close ends the loop
    assert got == ["hello 0", "hello 1"]
    assert len(sleeps.delays) == 3  # after the close, then after each refused attempt
    assert sleeps.delays == expected_delays(1, 3, 1000, 2, 60000)


def test_subprocess_server_killed_and_restarted(peer, caplog) -> None:
    sleeps = Sleeps(lambda n: peer.restart() if n == 1 else None)
    got = []
    with caplog.at_level(logging.INFO, logger="gws"), gevent.Timeout(30):
        loop = gws.reconnecting(peer.url, sleep=sleeps, heartbeat=5000)
        for ws in loop:
            ws.send("ping")
            got.append(ws.recv().payload)
            if len(got) == 1:
                peer.kill()
                with pytest.raises(gws.ConnectionClosed) as info:
                    ws.recv()
                assert info.value.code == 1006
            else:
                break
        loop.close()
    assert got == ["ping", "ping"] and len(sleeps.delays) == 1
    assert ws.closed and ws.close_code == 1000
    assert any("(retry 1): connection closed: code 1006" in r.getMessage() for r in caplog.records)


def test_node_ws_server_killed_and_restarted() -> None:
    node_peer("ws")
    peer = NodePeer.start()
    try:
        sleeps = Sleeps(lambda n: peer.restart() if n == 2 else None)
        got = []
        with gevent.Timeout(30):
            for ws in gws.reconnecting(peer.url, sleep=sleeps, rng=random.Random(5)):
                ws.send(f"n{len(got)}")
                got.append(ws.recv().payload)
                if len(got) == 1:
                    peer.kill()  # no close frame: 1006, then one refused attempt
                    with pytest.raises(gws.ConnectionClosed):
                        ws.recv()
                    assert ws.close_code == 1006
                else:
                    ws.close()
        assert got == ["n0", "n1"]
        assert sleeps.delays == expected_delays(5, 2, 1000, 2, 60000)
    finally:
        peer.kill()


@pytest.mark.parametrize("code", [1011, 1012, 1013, 1014, 1001, 1000])
def test_peer_closes_that_may_heal_are_retried(peer, code) -> None:
    sleeps = Sleeps()
    seen = []
    loop = gws.reconnecting(peer.url + f"close/{code}", max_retries=2, sleep=sleeps)
    with pytest.raises(gws.ConnectionClosed) as info, gevent.Timeout(20):
        for ws in loop:
            assert list(ws) == []
            seen.append(ws.close_code)
    assert seen == [code] * 3 and info.value.code == code and len(sleeps.delays) == 2


@pytest.mark.parametrize("code", [1008, 1003, 1002])
def test_peer_closes_blaming_the_client_stop_the_loop(peer, code) -> None:
    sleeps = Sleeps()
    loop = gws.reconnecting(peer.url + f"close/{code}", sleep=sleeps)
    with pytest.raises(gws.ConnectionClosed) as info, gevent.Timeout(20):
        for ws in loop:
            assert list(ws) == []
    assert info.value.code == code and info.value.initiator == "peer" and sleeps.delays == []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_statuses_that_may_heal_are_retried(peer, status) -> None:
    sleeps = Sleeps()
    with pytest.raises(gws.HandshakeError) as info, gevent.Timeout(20):
        next(gws.reconnecting(peer.url + f"status/{status}", max_retries=2, sleep=sleeps))
    assert info.value.status == status and len(sleeps.delays) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_other_4xx_stop_at_once(peer, status) -> None:
    sleeps = Sleeps()
    with pytest.raises(gws.HandshakeError) as info, gevent.Timeout(20):
        next(gws.reconnecting(peer.url + f"status/{status}", sleep=sleeps))
    assert info.value.status == status and sleeps.delays == []


def test_bad_url_and_options_stop_at_once() -> None:
    sleeps = Sleeps()
    with pytest.raises(gws.InvalidURL):
        next(gws.reconnecting("http://127.0.0.1/", sleep=sleeps))
    with pytest.raises(gws.InvalidURL):
        next(gws.reconnecting("ws://127.0.0.1/", no_such_option=1, sleep=sleeps))
    assert sleeps.delays == []
    with pytest.raises(gws.InvalidURL):
        gws.reconnecting("ws://127.0.0.1/", backoff_factor=0.5)
    with pytest.raises(gws.InvalidURL):
        gws.reconnecting("ws://127.0.0.1/", max_retries=-1)


def test_tls_verification_failure_stops_at_once(make_server, tls_server_context) -> None:
    server = make_server(ssl_context=tls_server_context)
    sleeps = Sleeps()
    with pytest.raises(ssl.SSLCertVerificationError), gevent.Timeout(20):
        next(gws.reconnecting(f"wss://127.0.0.1:{server.port}/", sleep=sleeps))
    assert sleeps.delays == []


def test_backoff_resets_once_a_connection_stayed_up(peer) -> None:
    """A connection that stays up backoff_reset ms starts the count over:
    every delay is then a first retry's, and max_retries is never reached."""
    sleeps = Sleeps()
    opened = 0
    loop = gws.reconnecting(
        peer.url + "close/1012",
        backoff_reset=1e-9,
        max_retries=1,
        rng=random.Random(3),
        sleep=sleeps,
    )
    with gevent.Timeout(20):
        for ws in loop:
            opened += 1
            assert list(ws) == []
            if opened == 5:
                break
    loop.close()
    rng = random.Random(3)
    assert sleeps.delays == [rng.uniform(0, 1000) / 1000 for _ in range(4)]
    assert loop.retries == 1
    # The same server without the reset: the second short-lived connection is one too many.
    control = gws.reconnecting(peer.url + "close/1012", max_retries=1, sleep=Sleeps())
    with pytest.raises(gws.ConnectionClosed), gevent.Timeout(20):
        for ws in control:
            list(ws)


def test_thread_mode_reconnects_from_a_plain_thread(peer) -> None:
    from test_thread_mode import run_threads

    sleeps = Sleeps(lambda n: peer.restart())

    def body() -> List[str]:
        got = []
        for ws in gws.reconnecting(peer.url, thread=True, sleep=sleeps):
            ws.send(str(len(got)))
            got.append(ws.recv(timeout=5000).payload)
            if len(got) == 2:
                ws.close()
            else:
                peer.kill()
        return got

    assert run_threads(body) == [["0", "1"]]
    assert len(sleeps.delays) == 1


def test_should_retry_policy() -> None:
    assert should_retry(ConnectionRefusedError())
    assert should_retry(gws.OpenTimeout("slow"))
    assert should_retry(gws.HandshakeError("bad gateway", 502))
    assert should_retry(gws.HandshakeError("no status line", 0))
    assert not should_retry(gws.HandshakeError("moved", 301))
    assert not should_retry(gws.HandshakeError("forbidden", 403))
    assert not should_retry(gws.InvalidURL("bad"))
    assert should_retry(gws.ConnectionClosed(1006, "", "heartbeat timeout"))
    assert should_retry(
        gws.ConnectionClosed(1008, "", None, "local")
    )  # we failed it: the peer's bug
    assert not should_retry(gws.ConnectionClosed(1008, "", None, "peer"))
    assert not should_retry(ValueError("not a network error"))


def test_a_connection_left_open_is_replaced_at_once_and_close_ends_the_loop(
    echo_server, no_leaks
) -> None:
    sleeps = Sleeps()
    opened = []
    with no_leaks(), gevent.Timeout(20):
        with gws.reconnecting(f"ws://127.0.0.1:{echo_server}/", sleep=sleeps) as loop:
            for ws in loop:
                opened.append(ws)
                ws.send("x")
                assert ws.recv().payload == "x"
                if len(opened) == 3:
                    break  # leaving the with block closes this one
        assert all(ws.closed for ws in opened) and sleeps.delays == []
        assert [ws.close_code for ws in opened] == [1000, 1000, 1000]
        with pytest.raises(StopIteration):
            next(loop)
