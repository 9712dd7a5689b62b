"""What one open client connection holds: Python allocations by component.

Opens ``--c`` gws client connections (greenlets, ``heartbeat=`` as in the
fanout workload) against an echo server, does one round trip on each, and
leaves every greenlet parked on an event, as ``clients.py --workload
fanout`` does between its phases. tracemalloc snapshots taken before and
after give the bytes and block counts each connection still holds, grouped
by the source line that allocated them; ``gc`` gives the objects per
connection by type. ``--client floor`` measures the raw gevent socket the
benchmarks compare against (see clients.py).

    python benchmarks/gws_server.py            # prints its ports
    python benchmarks/connection_memory.py --url ws://127.0.0.1:PORT/ --c 2000

Without ``--url`` a gws server is started in a subprocess. tracemalloc sees
what Python's allocators hand out; greenlet C-stack copies are included,
libev's own watcher structs, Python's frame stacks (mmap) and kernel socket
buffers are not: the RSS line shows the process's whole growth.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from typing import Any, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return 0.0


def start_server() -> Tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "gws_server.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ports = json.loads(proc.stdout.readline())
    return proc, f"ws://127.0.0.1:{ports['plain']}/"


def type_counts() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def release(opened: List[Any], payload: bytes, park: Any) -> None:
    """Wake every parked worker: one more echo each, or the event."""
    for send in opened:
        send(payload)
    park.set()


def main(argv: Any = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None)
    p.add_argument("--client", default="gws", choices=("gws", "floor"))
    p.add_argument("--c", type=int, default=1000)
    p.add_argument("--heartbeat", type=int, default=5000, help="ms; 0: none")
    p.add_argument("--top", type=int, default=30)
    p.add_argument(
        "--park",
        default="read",
        choices=("read", "event"),
        help="where each greenlet waits while measured: blocked in read() (default) or on an Event",
    )
    p.add_argument("--frames", type=int, default=1, help="traceback depth to group by")
    p.add_argument("--json", action="store_true", help="print one JSON line only")
    p.add_argument(
        "--rss", action="store_true", help="no tracemalloc: RSS growth per connection only"
    )
    args = p.parse_args(argv)

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = None
    url = args.url
    if url is None:
        server, url = start_server()

    import gevent
    from gevent.event import Event
    from gevent.lock import BoundedSemaphore

    sys.path.insert(0, HERE)
    import clients  # the benchmark's own openers

    payload = b"x" * 16
    heartbeat = args.heartbeat or None
    gate = BoundedSemaphore(200)
    park = Event()
    opened: List[Any] = []

    def open_one() -> Tuple[Any, Any, Any]:
        """(send, receive, close) on one new connection."""
        if args.client == "gws":
            import gws

            options: Dict[str, Any] = {"compression": None, "timeout": 10000}
            if heartbeat:
                options["heartbeat"] = heartbeat
            res, read, write = gws.connect(url, **options)
            if not res:
                raise ConnectionError(read)
            return write, lambda: read().payload, write.close
        floor = clients.FloorConnection(url, 64)
        frame = clients.build_frame(0x2, payload, os.urandom(4))
        return (lambda _: floor.sock.sendall(frame)), (lambda: floor.recv_frame()[1]), floor.close

    def worker() -> None:
        with gate:
            send, receive, close = open_one()
        send(payload)
        if len(receive()) != len(payload):
            raise RuntimeError("bad echo")
        opened.append(send)
        if args.park == "read":
            receive()  # parked in read() until the main greenlet sends once more
        else:
            park.wait()
        close()

    # Warm up: one connection's worth of lazily created module state.
    warm = [gevent.spawn(worker) for _ in range(20)]
    while len(opened) < 20:
        gevent.sleep(0.01)
    release(opened, payload, park)
    gevent.joinall(warm)
    park.clear()
    opened.clear()
    gc.collect()

    trace = not args.rss
    if trace:
        tracemalloc.start(args.frames)
        types0 = type_counts()
        snap0 = tracemalloc.take_snapshot()
    rss0 = rss_kib()
    greenlets = [gevent.spawn(worker) for _ in range(args.c)]
    while len(opened) < args.c:
        gevent.sleep(0.01)
        dead = [g for g in greenlets if g.dead and g.exception is not None]
        if dead:
            raise RuntimeError(f"worker failed: {dead[0].exception!r}")
    gevent.sleep(0.1)
    gc.collect()
    rss1 = rss_kib()
    if trace:
        snap1 = tracemalloc.take_snapshot()
        types1 = type_counts()
        tracemalloc.stop()
    release(opened, payload, park)
    gevent.joinall(greenlets, timeout=30)
    if server is not None:
        server.terminate()
        server.wait()

    c = args.c
    result: Dict[str, Any] = {
        "client": args.client,
        "c": c,
        "heartbeat_ms": heartbeat,
        "park": args.park,
        "rss_kib_per_conn": (rss1 - rss0) / c,
    }
    if not trace:
        print(json.dumps(result) if args.json else f"{args.client}: C={c}: {result}")
        return 0
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = snap1.filter_traces(filters).compare_to(snap0.filter_traces(filters), "traceback")
    total = sum(s.size_diff for s in stats)
    blocks = sum(s.count_diff for s in stats)
    objects = {
        name: (types1[name] - types0.get(name, 0)) / c
        for name in types1
        if (types1[name] - types0.get(name, 0)) / c >= 0.5
    }
    result.update(
        traced_bytes_per_conn=total / c,
        traced_blocks_per_conn=blocks / c,
        gc_objects_per_conn=dict(sorted(objects.items(), key=lambda kv: -kv[1])),
    )
    del result["rss_kib_per_conn"]  # tracemalloc's own tables inflate it
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.client}: C={c}, heartbeat={heartbeat} ms, parked in {args.park}: "
        f"{total / c:,.0f} traced bytes/conn in {blocks / c:.1f} blocks"
    )
    print("\nbytes/conn  blocks/conn  where")
    for s in sorted(stats, key=lambda s: -s.size_diff)[: args.top]:
        if abs(s.size_diff) / c < 8:
            continue
        where = " <- ".join(f"{os.path.relpath(f.filename)}:{f.lineno}" for f in s.traceback)
        print(f"{s.size_diff / c:10.1f}  {s.count_diff / c:11.2f}  {where}")
    print("\ngc-tracked objects per connection:")
    for name, n in result["gc_objects_per_conn"].items():
        print(f"  {n:6.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
