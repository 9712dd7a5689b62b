"""What a call through gws's hub thread costs: rtt (16-byte binary echo round
trips, sequential, one connection) in thread mode against greenlet mode and
against websocket-client from a plain thread, same server, same run.

    python benchmarks/thread_mode.py [--quick] [--rounds N] [--n N] [--json FILE] [--url URL]

Starts gws's own echo server (``benchmarks/gws_server.py``, compression off)
in a subprocess, or uses the one at ``--url`` (``run.py`` passes its Node
server), then measures, in an order rotated every round:

- ``greenlet``: gws in greenlet mode, from the main thread;
- ``thread``: gws ``thread=True``, called from a plain OS thread (the
  caller blocks on a real lock, the call runs on the hub thread);
- ``thread-coop``: gws ``thread=True``, called from a greenlet (the wait
  a monkey-patched program's threads take: the caller's hub is woken);
- ``websocket-client``: websocket-client from a plain OS thread.

Prints a table of median microseconds per round trip and the ratios to
greenlet mode; ``--json`` also writes them. No figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

BENCH = Path(__file__).resolve().parent
PAYLOAD = b"x" * 16
MODES = ("greenlet", "thread", "thread-coop", "websocket-client")


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "gws_server.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        raise SystemExit("echo server did not start")
    return proc, int(json.loads(proc.stdout.readline())["plain"])


def in_plain_thread(fn: Callable[[], float]) -> float:
    out: List[float] = []
    errors: List[BaseException] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=body)
    t.start()
    t.join(600)
    if errors:
        raise errors[0]
    return out[0]


def time_round_trips(send: Callable[[bytes], object], recv: Callable[[], object], n: int) -> float:
    """Microseconds per round trip over ``n`` echoes, after ``n // 10`` to warm up."""
    for _ in range(max(1, n // 10)):
        send(PAYLOAD)
        recv()
    start = time.perf_counter()
    for _ in range(n):
        send(PAYLOAD)
        recv()
    return (time.perf_counter() - start) / n * 1e6


def gws_rtt(url: str, n: int, thread: bool) -> float:
    import gws

    ws = gws.open(url, compression=None, thread=thread)
    try:
        return time_round_trips(ws.send, ws.recv, n)
    finally:
        ws.close()


def websocket_client_rtt(url: str, n: int) -> float:
    import websocket

    ws = websocket.create_connection(url)
    try:
        return time_round_trips(ws.send_binary, ws.recv, n)
    finally:
        ws.close()


def measure(mode: str, url: str, n: int) -> float:
    if mode == "greenlet":
        return gws_rtt(url, n, False)
    if mode == "thread":
        return in_plain_thread(lambda: gws_rtt(url, n, True))
    if mode == "thread-coop":
        import gevent

        return gevent.spawn(gws_rtt, url, n, True).get()
    return in_plain_thread(lambda: websocket_client_rtt(url, n))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 round trips, 1 round")
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (1 with --quick)")
    parser.add_argument("--n", type=int, default=None, help="round trips per measurement")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--url", default=None, help="an echo server to use (run.py passes its own) instead of ours"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    n = args.n or (200 if args.quick else 5000)
    proc: Optional[subprocess.Popen[str]] = None
    if args.url:
        url = args.url
    else:
        proc, port = start_server()
        url = f"ws://127.0.0.1:{port}/"
    samples: Dict[str, List[float]] = {m: [] for m in MODES}
    status: Dict[str, str] = {m: "ok" for m in MODES}
    try:
        for r in range(rounds):
            order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
            for mode in order:
                if status[mode] != "ok":
                    continue
                try:
                    samples[mode].append(measure(mode, url, n))
                except ImportError as exc:
                    status[mode] = f"skipped: {exc}"
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    medians = {m: statistics.median(v) for m, v in samples.items() if v}
    base = medians.get("greenlet")
    print(f"rtt, 16-byte binary echo, {n} round trips x {rounds} rounds (median us per trip)")
    print(f"{'mode':18} {'us/trip':>10} {'vs greenlet':>12}")
    for mode in MODES:
        if mode not in medians:
            print(f"{mode:18} {status[mode]}")
            continue
        ratio = f"{medians[mode] / base:.2f}x" if base else "-"
        print(f"{mode:18} {medians[mode]:10.1f} {ratio:>12}")
    if "thread" in medians and "websocket-client" in medians:
        ratio = medians["thread"] / medians["websocket-client"]
        print(f"thread mode / websocket-client: {ratio:.2f}x")
    # Ratios within each round (modes measured next to each other) resist
    # the machine's drift better than ratios of medians.
    paired = {
        f"{a}/{b}": statistics.median(x / y for x, y in zip(samples[a], samples[b]))
        for a, b in (
            ("thread", "greenlet"),
            ("thread-coop", "greenlet"),
            ("websocket-client", "greenlet"),
            ("thread", "websocket-client"),
        )
        if samples[a] and samples[b]
    }
    for key, value in paired.items():
        print(f"median of per-round ratios {key}: {value:.2f}x")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "quick": args.quick,
                    "n": n,
                    "rounds": rounds,
                    "cpus": os.cpu_count(),
                    "samples_us": samples,
                    "median_us": medians,
                    "paired_ratios": paired,
                    "status": status,
                },
                indent=2,
            )
        )
    return 0 if all(status[m] == "ok" for m in ("greenlet", "thread", "thread-coop")) else 1


if __name__ == "__main__":
    sys.exit(main())
