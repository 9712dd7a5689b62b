"""Instruction counts per operation under ``valgrind --tool=callgrind``.

Wall-clock and CPU time move with whatever else the machine runs; the
number of instructions a client executes per round trip does not (to well
under 1 %). This measures each client on small fixed workloads::

    python benchmarks/callgrind_workloads.py                       # gws and floor, all workloads
    python benchmarks/callgrind_workloads.py --clients gws --workloads rtt --keep /tmp/cg

Each (client, workload) runs twice under callgrind, with N and 2N echoes on
one connection after a warm-up; (I(2N) - I(N)) / N is the cost of one echo,
without interpreter start-up, imports or the handshake. Only the client
process is instrumented; the echo server (Node ``ws`` when ``node`` and the
benchmark's scratch install exist, else gws's own server) runs natively.
``--keep DIR`` keeps the 2N profile of each run for ``callgrind_annotate``.

The ``run`` subcommand is what valgrind executes: one client, one workload,
N echoes (``benchmarks/clients.py`` opens the connection).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

# Echoes per run (the 2N run does twice as many) and the payload behind each.
N = {"rtt": 400, "bulk": 4, "text": 20, "deflate": 10, "deflate-bin": 4}
UNIT = {"rtt": "round trip", "bulk": "MiB", "text": "64 KiB", "deflate": "64 KiB"}
UNIT["deflate-bin"] = "MiB"
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def run(args: argparse.Namespace) -> int:
    """Inside valgrind: open one connection, warm up, do ``--n`` echoes, close."""
    import clients

    size = clients.SIZES[args.workload]
    payload = clients.payload_for(args.workload, size)
    rt, close, _ = clients.open_client(args.client, args.url, args.workload, payload)
    try:
        for _ in range(3):
            got = rt(payload)
        if not clients.same(got, payload):
            raise RuntimeError("echo differs")
        for _ in range(args.n):
            rt(payload)
    finally:
        close()
    return 0


def collect(client: str, workload: str, url: str, n: int, out: Optional[Path]) -> int:
    """Instructions of one ``run`` under callgrind."""
    target = str(out) if out else os.devnull
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={target}",
        sys.executable,
        str(Path(__file__).resolve()),
        "run",
        "--client",
        client,
        "--workload",
        workload,
        "--url",
        url,
        "--n",
        str(n),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(BENCH.parent))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    match = COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"{client}/{workload} failed: {proc.stderr[-1500:]}")
    return int(match.group(1))


def start_server() -> subprocess.Popen:  # type: ignore[type-arg]
    import run as bench_run

    scratch = BENCH / ".scratch"
    kind = "node" if shutil.which("node") and (scratch / "node_modules" / "ws").exists() else "gws"
    log = Path(tempfile.gettempdir()) / "gws-callgrind-server.log"
    server = bench_run.start_server(kind, scratch, log)
    server.info["kind"] = kind
    return server  # type: ignore[return-value]


def measure(args: argparse.Namespace) -> int:
    if not shutil.which("valgrind"):
        print("valgrind not found", file=sys.stderr)
        return 2
    server = start_server()
    results: Dict[str, Dict[str, float]] = {}
    keep: Optional[Path] = args.keep
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    try:
        for workload in args.workloads:
            url = server.url(workload)  # type: ignore[attr-defined]
            n = N[workload] * args.scale
            for client in args.clients:
                if workload.startswith("deflate") and client != "gws" and client != "websockets":
                    continue
                out = keep / f"callgrind.{client}.{workload}" if keep else None
                small = collect(client, workload, url, n, None)
                large = collect(client, workload, url, 2 * n, out)
                per = (large - small) / n
                results.setdefault(workload, {})[client] = per
                print(
                    f"{workload:<12} {client:<18} {per:>14,.0f} instructions/{UNIT[workload]}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        server.stop()  # type: ignore[attr-defined]
    lines: List[str] = []
    for workload, per in results.items():
        floor = per.get("floor")
        for client, value in per.items():
            ratio = f"{value / floor:.3f}x floor" if floor and client != "floor" else ""
            lines.append(f"{workload:<12} {client:<18} {value:>14,.0f}  {ratio}")
    print("\n".join(lines))
    print(json.dumps({"server": server.info.get("kind"), "per_op": results}))  # type: ignore[attr-defined]
    return 0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="one run (what valgrind executes)")
    r.add_argument("--client", required=True)
    r.add_argument("--workload", required=True)
    r.add_argument("--url", required=True)
    r.add_argument("--n", type=int, required=True)
    p.add_argument("--clients", default="gws,floor")
    p.add_argument("--workloads", default="rtt,bulk,text,deflate,deflate-bin")
    p.add_argument("--scale", type=int, default=1, help="multiply every N")
    p.add_argument("--keep", type=Path, default=None, help="keep the 2N profiles here")
    args = p.parse_args(argv)
    if args.cmd != "run":
        args.clients = [c for c in args.clients.split(",") if c]
        args.workloads = [w for w in args.workloads.split(",") if w]
        unknown = [w for w in args.workloads if w not in N]
        if unknown:
            p.error(f"unknown workloads: {unknown}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run(args) if args.cmd == "run" else measure(args)


if __name__ == "__main__":
    sys.exit(main())
