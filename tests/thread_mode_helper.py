"""Run by test_thread_mode.py in a subprocess: thread mode in a fresh
interpreter, with and without ``gevent.monkey.patch_all()``.

    python thread_mode_helper.py patched     # patch_all() first
    python thread_mode_helper.py unpatched   # a plain threaded program

Prints "OK <mode>" and exits 0 when every check passed; any failure raises.
Exiting with the hub thread still running shows that it is a daemon.
"""

from __future__ import annotations

import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "patched"

if MODE == "patched":
    from gevent import monkey

    monkey.patch_all()

import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

import gws  # noqa: E402


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def patched() -> None:
    """Threads are greenlets here: a thread-mode call must wait cooperatively,
    letting the server and every other "thread" in this hub run."""
    server = gws.serve(gws.echo, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.server_port}/"
    before = os_threads()
    ws = gws.open(url, thread=True, heartbeat=2000)  # generous: a loaded machine is slow
    assert os_threads() == before + 1, "thread mode starts exactly one OS thread"
    ticks = []

    def ticker() -> None:
        for _ in range(20):
            ticks.append(1)
            time.sleep(0.01)  # patched: gevent.sleep

    def worker(i: int) -> None:
        for j in range(20):
            ws.send(f"{i}:{j}")

    got = []

    def receiver() -> None:
        for _ in range(60):
            got.append(ws.recv(timeout=10000).payload)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=receiver), threading.Thread(target=ticker)]
    with gevent.Timeout(30):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(got) == sorted(f"{i}:{j}" for i in range(3) for j in range(20)), got
    assert len(ticks) == 20
    ws.close()
    assert ws.close_code == 1000
    server.stop(timeout=1)
    assert os_threads() == before + 1


def unpatched() -> None:
    """A plain threaded program: the server lives in a thread of its own."""
    started = threading.Event()
    stop = threading.Event()
    ports = []

    def serve() -> None:
        server = gws.serve(gws.echo, "127.0.0.1", 0)
        ports.append(server.server_port)
        started.set()
        while not stop.is_set():
            gevent.sleep(0.02)
        server.stop(timeout=1)

    server_thread = threading.Thread(target=serve)
    server_thread.start()
    assert started.wait(10)
    url = f"ws://127.0.0.1:{ports[0]}/"
    before = os_threads()
    ws = gws.open(url, thread=True)
    res, read, write = gws.connect(url, thread=True)
    assert res, read
    assert os_threads() == before + 1, "one hub thread, shared"
    results = []

    def worker(i: int) -> None:
        ws.send(f"t{i}")
        results.append(ws.recv(timeout=5000).payload)
        assert write(f"w{i}") == (True, None)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == [f"t{i}" for i in range(5)], results
    assert sorted(read(5000).payload for _ in range(5)) == [f"w{i}" for i in range(5)]

    # Ctrl-C while this (main, hub-less) thread waits in recv(): the wait is
    # interrupted, and the connection loses nothing.
    alarm = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    alarm.start()
    try:
        ws.recv(timeout=10000)
        raise AssertionError("recv() returned though nothing was sent")
    except KeyboardInterrupt:
        pass
    alarm.join(5)
    ws.send("after Ctrl-C")
    assert ws.recv(timeout=5000).payload == "after Ctrl-C"
    ws.close()
    assert write.close() == (True, None)
    stop.set()
    server_thread.join(10)


def main() -> int:
    if MODE == "patched":
        patched()
    elif MODE == "unpatched":
        unpatched()
    else:
        raise SystemExit(f"unknown mode {MODE!r}")
    print(f"OK {MODE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
