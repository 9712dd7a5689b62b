"""Thread mode (gws/threaded.py): connections that any OS thread may call.

The in-process gws servers run on this thread's hub, so the test waits for
its OS threads cooperatively (:func:`run_threads`). Subprocess tests cover a
fresh interpreter with and without ``gevent.monkey.patch_all()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List

import gevent
import pytest
from gevent.event import Event
from ws_peer import Peer

import gws
from gws.threaded import QUEUE_SIZE, ThreadWebSocket, hub_thread

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "thread_mode_helper.py")


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def run_threads(*fns: Callable[[], Any], timeout: float = 20.0) -> List[Any]:
    """Run each fn in a plain OS thread; wait for all of them without
    blocking this thread's hub; return their results, raise their errors."""
    hub = gevent.get_hub()
    done = Event()
    results: List[Any] = [None] * len(fns)
    errors: List[BaseException] = []
    left = [len(fns)]
    lock = threading.Lock()

    def body(i: int, fn: Callable[[], Any]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        with lock:
            left[0] -= 1
            if not left[0]:
                hub.loop.run_callback_threadsafe(done.set)

    threads = [threading.Thread(target=body, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    assert done.wait(timeout), "threads did not finish in time"
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def leak_free(make_server):
    """no_leaks, plus: no OS thread left behind (the hub thread started first)."""
    hub_thread()

    def check():
        threads = os_threads()
        ctx = make_server.no_leaks(stop=False)

        class _Both:
            def __enter__(self):
                ctx.__enter__()

            def __exit__(self, *exc):
                ctx.__exit__(*exc)
                if exc[0] is None:
                    # <=: a thread an earlier test left (a pool worker) may end meanwhile
                    assert os_threads() <= threads, "an OS thread was left running"

        return _Both()

    return check


def test_threads_send_recv_ping_and_close_concurrently(echo_server, leak_free) -> None:
    with leak_free():
        ws = gws.open(f"ws://127.0.0.1:{echo_server}/", thread=True, heartbeat=2000)
        assert isinstance(ws, ThreadWebSocket)
        got: List[str] = []

        def sender(i: int) -> Callable[[], None]:
            def send() -> None:
                for j in range(50):
                    ws.send(f"{i}:{j}")

            return send

        def receiver() -> None:
            for _ in range(200):
                got.append(ws.recv(timeout=10000).payload)

        def pinger() -> None:
            for _ in range(20):
                ws.ping(b"p")

        run_threads(*(sender(i) for i in range(4)), receiver, pinger)
        assert sorted(got) == sorted(f"{i}:{j}" for i in range(4) for j in range(50))
        for i in range(4):  # each thread's messages arrive in the order it sent them
            mine = [int(m.split(":")[1]) for m in got if m.startswith(f"{i}:")]
            assert mine == sorted(mine)
        run_threads(lambda: ws.close(4001, "from a thread"))
        assert ws.closed and ws.close_code == 4001 and ws.read.error is None


def test_close_from_one_thread_wakes_another_blocked_in_recv(echo_server, leak_free) -> None:
    with leak_free():
        ws = gws.open(f"ws://127.0.0.1:{echo_server}/", thread=True)
        blocked = threading.Event()
        caught: List[BaseException] = []

        def reader() -> None:
            blocked.set()
            try:
                ws.recv()
            except gws.ConnectionClosed as exc:
                caught.append(exc)

        def closer() -> None:
            assert blocked.wait(10)
            time.sleep(0.05)  # let the reader's call reach the hub thread (either order passes)
            ws.close()

        run_threads(reader, closer)
        assert len(caught) == 1 and caught[0].code == 1000


def test_seed_face_in_thread_mode(echo_server, leak_free) -> None:
    with leak_free():
        res, read, write = gws.connect({"port": echo_server, "thread": True})
        assert res and res.code == 101, read

        def writer() -> None:
            assert write("from a thread") == (True, None)
            assert write.ping() == (True, None)

        run_threads(writer)
        msg = read(5000)
        assert msg is not None and msg.payload == "from a thread"
        assert read(20) is None and read.timed_out and not read.closed
        assert run_threads(lambda: write.close(4002, "bye")) == [(True, None)]
        assert read() is None and read.closed
        assert (read.close_code, read.error) == (4002, None)
        assert write("late")[0] is False


def test_thread_mode_errors_are_values_or_exceptions(free_port, leak_free) -> None:
    with leak_free():
        res, err, _ = gws.connect(port=free_port, thread=True)
        assert res is None and err == "connection refused"
        res, err, _ = gws.connect(port=free_port, thread="yes")
        assert res is None and "thread must be True or False" in err
        with pytest.raises(ConnectionRefusedError):
            gws.open(f"ws://127.0.0.1:{free_port}/", thread=True)
        with pytest.raises(gws.InvalidURL):
            gws.open("http://127.0.0.1/", thread=True)


def test_recv_timeout_and_interrupted_recv_lose_nothing(echo_server, leak_free) -> None:
    with leak_free(), gws.open(f"ws://127.0.0.1:{echo_server}/", thread=True) as ws:
        with pytest.raises(gws.ReceiveTimeout):
            ws.recv(timeout=30)
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
            ws.recv()  # cancelled on the hub thread when the caller gives up
        for i in range(3):
            ws.send(f"after {i}")
        assert [ws.recv(timeout=5000).payload for _ in range(3)] == [
            "after 0",
            "after 1",
            "after 2",
        ]


def test_reader_pauses_when_nobody_receives(make_server, leak_free) -> None:
    def flood(request, read, write):
        for i in range(QUEUE_SIZE * 4):
            write(str(i))
        read()

    server = make_server(flood)
    with leak_free():
        ws = gws.open(f"ws://127.0.0.1:{server.port}/", thread=True)
        inbox = ws._inbox
        # The reader greenlet pauses once QUEUE_SIZE messages wait.
        with gevent.Timeout(10):
            while not inbox._paused:
                gevent.sleep(0.01)  # polls another thread's state: no event to wait on here
        assert len(inbox.messages) == QUEUE_SIZE
        got = [ws.recv(timeout=5000).payload for _ in range(QUEUE_SIZE * 4)]
        assert got == [str(i) for i in range(QUEUE_SIZE * 4)]
        ws.close()


def test_connection_lives_on_the_one_shared_hub_thread(echo_server, leak_free) -> None:
    with leak_free():
        a = gws.open(f"ws://127.0.0.1:{echo_server}/", thread=True)
        b = gws.open(f"ws://127.0.0.1:{echo_server}/", thread=True)
        hub = hub_thread()
        assert a.connection._thread == b.connection._thread == hub.ident
        assert hub.ident != threading.get_ident()
        with pytest.raises(gws.WrongThread):  # the raw Connection is the hub thread's
            a.connection.send("direct")
        a.close()
        b.close()


def test_sleeping_thread_keeps_connection_alive_against_a_ping_timeout() -> None:
    """A websockets server pings every 0.5 s and drops a client that has not
    answered within 2 s. This thread sleeps in time.sleep for 5 s: the
    thread-mode connection survives (the hub thread answered), the greenlet
    mode one opened alongside does not (nobody ran this thread's hub). The
    2 s leave a loaded machine time to answer (0.3 s failed once at a load
    average of 12)."""
    peer = Peer.start(ping_interval=0.5, ping_timeout=2.0)
    try:
        threaded = gws.open(peer.url, thread=True)
        plain = gws.open(peer.url)
        time.sleep(5.0)
        threaded.send("still here")
        assert threaded.recv(timeout=5000).payload == "still here"
        with pytest.raises(gws.ConnectionClosed) as info, gevent.Timeout(10):
            plain.recv()
        assert info.value.code == 1011  # websockets: keepalive ping timeout
        threaded.close()
        assert threaded.close_code == 1000
    finally:
        peer.kill()


@pytest.mark.parametrize("mode", ["patched", "unpatched"])
def test_thread_mode_in_a_subprocess(mode: str) -> None:
    proc = subprocess.run(
        [sys.executable, HELPER, mode], capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip().endswith(f"OK {mode}"), proc.stdout + proc.stderr


FORK_CHECK = """
import os, sys
from gws.threaded import hub_thread
parent = hub_thread()
assert parent.call(lambda: os.getpid()) == os.getpid()
pid = os.fork()
if pid == 0:  # the child: its answer is its exit status
    hub = hub_thread()
    os._exit(0 if hub is not parent and hub.call(lambda: 42) == 42 else 1)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_gets_a_hub_thread_of_its_own() -> None:
    """fork() copies no thread: thread mode in the child must start its own
    hub thread rather than wait forever on the parent's. (A fresh
    interpreter: a fork of this gevent-running process would share its loop.)"""
    proc = subprocess.run(
        [sys.executable, "-c", FORK_CHECK], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "child 0", proc.stdout + proc.stderr


def test_thread_mode_says_who_closed(make_server, leak_free) -> None:
    def handler(request, read, write):
        write.close(1001, "restarting")

    server = make_server(handler)
    with leak_free():
        res, read, write = gws.connect(port=server.port, thread=True)
        assert res, read
        assert run_threads(read) == [None]
        assert read.error == "peer closed with 1001 (going away): 'restarting'"
        ws = gws.open(port=server.port, thread=True)
        with pytest.raises(gws.ConnectionClosed) as info:
            ws.recv()
        assert info.value.initiator == "peer" and info.value.code == 1001
        assert ws.close_description == "peer closed with 1001 (going away): 'restarting'"


def test_messages_read_ahead_are_received_without_the_hub_thread(echo_server, leak_free) -> None:
    """recv() takes what the reader already queued directly: it still works
    while the hub thread is stuck in a blocking C call."""
    with leak_free():
        ws = gws.open(f"ws://127.0.0.1:{echo_server}/", thread=True)
        for i in range(3):
            ws.send(str(i))
        with gevent.Timeout(10):
            while len(ws._inbox.messages) < 3:
                gevent.sleep(0.01)  # polls another thread's state: no event to wait on here
        gate = threading.Lock()
        gate.acquire()
        hub = hub_thread()
        blocker = threading.Thread(target=hub.call, args=(gate.acquire,))
        blocker.start()  # the hub thread now blocks in gate.acquire()
        try:
            got = run_threads(lambda: [ws.recv(timeout=5000).payload for _ in range(3)])
        finally:
            gate.release()
            blocker.join(10)
        assert got == [["0", "1", "2"]]
        ws.close()
