"""Memory per connection: what an open client connection holds stays bounded.

N client connections (``gws.connect``, one greenlet each, a heartbeat
scheduled) each exchange one message, then block in ``read()``, as a
long-lived client's connections spend their lives. tracemalloc counts the
Python allocations they then hold (bytes requested: deterministic, unlike
RSS), keeping those whose traceback passes through gws's own code: the
connection's objects, its gevent socket and watchers, the copy of its
greenlet's C stack saved while it waits in ``read()`` (what deeper call
chains cost), and zlib's state with permessage-deflate. The test's own
greenlets and closures do not count. The server is a subprocess
(``benchmarks/gws_server.py``), so none of its allocations do either.

The bounds are the figures measured when they were set (see
benchmarks/README.md, "What a connection holds") plus about 10 %: a change
that makes every connection hold one more lock, list or bound method fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from typing import Any, Callable, Iterator, List, Optional, Tuple

import gevent
import pytest
from gevent.event import Event
from helpers import settle

import gws

N = 100
HEARTBEAT = 60_000  # ms: scheduled, never due while the test runs
PAYLOAD = b"x" * 16
GWS_DIR = os.path.dirname(os.path.abspath(gws.__file__))
SERVER = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks", "gws_server.py"
)

# Bytes per connection, measured on CPython 3.11 when set: 7,100 without
# compression (8,150 before the connection was slimmed; 3,744 of it is the
# saved C stack), 78,600 with permessage-deflate (zlib: the inflater's 32 KiB
# window for the server's 15 bits, our 30 KiB compressor, 7 KiB of inflate
# state).
BOUND_PLAIN = 7_800
BOUND_DEFLATE = 81_000

pytestmark = pytest.mark.timeout(120)
# Object sizes and the C stack one call takes differ between versions (before
# 3.11 every Python call recursed in C); the bounds are CPython 3.11's.
measured_here = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11) or sys.implementation.name != "cpython",
    reason="per-connection bounds are measured on CPython 3.11",
)


@pytest.fixture(scope="module")
def server_ports() -> Iterator[dict]:
    """Ports of a gws echo server in a subprocess: ``plain`` and ``deflate``."""
    proc = subprocess.Popen([sys.executable, SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "benchmarks/gws_server.py did not start"
        yield json.loads(line)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _open_parked(
    url: str, n: int, compression: Optional[str]
) -> Tuple[List[Any], Callable[[], None]]:
    """``n`` connections, each blocked in read() after one echo; returns
    (the write functions, a function that wakes, closes and joins them all)."""
    writers: List[Any] = []
    errors: List[str] = []
    all_parked = Event()

    def worker() -> None:
        res, read, write = gws.connect(url, compression=compression, heartbeat=HEARTBEAT)
        if not res:
            errors.append(read)
            all_parked.set()
            return
        try:
            write(PAYLOAD)
            msg = read()
            assert msg is not None and msg.payload == PAYLOAD, read.error
            del msg
            writers.append(write)
            if len(writers) == n:
                all_parked.set()
            assert read() is not None, read.error  # blocked here while measured
        finally:
            write.close()

    greenlets = [gevent.spawn(worker) for _ in range(n)]
    assert all_parked.wait(30), f"{len(writers)} of {n} connections opened"
    assert not errors, errors[0]
    gevent.sleep(0.05)  # every worker is inside read() by now

    def finish() -> None:
        for write in writers:
            write(PAYLOAD)
        gevent.joinall(greenlets, timeout=30, raise_error=True)
        assert all(g.dead for g in greenlets)

    return writers, finish


def held_per_connection(url: str, compression: Optional[str]) -> float:
    """Traced bytes per connection held by gws, with N connections parked in read()."""
    _, finish = _open_parked(url, 5, compression)  # lazily made module state first
    finish()
    settle()
    tracemalloc.start(40)
    try:
        before = tracemalloc.take_snapshot()
        _, finish = _open_parked(url, N, compression)
        settle()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    finish()
    ours = [tracemalloc.Filter(True, os.path.join(GWS_DIR, "*"), all_frames=True)]
    stats = after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    return sum(s.size_diff for s in stats) / N


@measured_here
@pytest.mark.parametrize(
    "compression, bound",
    [(None, BOUND_PLAIN), ("deflate", BOUND_DEFLATE)],
    ids=["no-compression", "deflate"],
)
def test_an_open_connection_holds_bounded_memory(
    server_ports: dict, compression: Optional[str], bound: int
) -> None:
    port = server_ports["deflate" if compression else "plain"]
    held = held_per_connection(f"ws://127.0.0.1:{port}/", compression)
    print(
        f"\n{compression or 'no compression'}: {held:,.0f} bytes per connection (bound {bound:,})"
    )
    assert 1_000 < held <= bound, f"{held:,.0f} bytes held per connection, bound {bound:,}"


def test_closed_event_made_after_the_close_is_set(echo_server: int) -> None:
    """``Connection.closed`` first asked for once the transport closed is already set."""
    res, read, write = gws.connect(host="127.0.0.1", port=echo_server, compression=None)
    assert res, read
    conn = read.connection
    assert write.close() == (True, None)
    assert conn.closed.is_set() and conn.closed.wait(0)


def test_closed_event_asked_for_while_open_is_set_by_the_close(echo_server: int) -> None:
    res, read, write = gws.connect(host="127.0.0.1", port=echo_server, compression=None)
    assert res, read
    closed = read.connection.closed
    assert not closed.is_set()
    waiter = gevent.spawn(closed.wait, 5)
    gevent.sleep(0)
    assert write.close() == (True, None)
    assert waiter.get(timeout=5) is True
    assert read.connection.closed is closed
