"""Many connections across processes: C WebSocket clients with heartbeats on one machine.

A recipe as much as a benchmark: what a gws deployment on one box looks like
before it needs more machines. ::

    python benchmarks/fanout_multiprocess.py --c 50000            # ~2 minutes on 2 cores
    python benchmarks/fanout_multiprocess.py --c 5000 --hold 3    # while developing

Limits it works around, both per process or per address:

- RLIMIT_NOFILE (here a hard limit of 20,000 descriptors per process): the
  clients are split over ``ceil(C / per_process)`` processes, and the server
  is several worker processes sharing the listening ports with
  ``SO_REUSEPORT`` (the kernel spreads new connections over the workers).
- loopback's ephemeral ports (``net.ipv4.ip_local_port_range``, ~28,000): a
  source port is unique per destination address and port, so the server
  listens on several 127.0.0.1 ports, enough for C ÷ ports to fit the range.

Each client process opens its share with ``gws.connect(url, heartbeat=HB)``
(at most 200 handshakes in flight per process), then every connection stays
open ``--hold`` seconds doing nothing but heartbeats (gws's heartbeat greenlet
pings and reads the pongs itself), then does one round trip, and closes. The
run fails if any connection fails to open, misses a pong, or echoes wrongly.

Reported (one JSON line on stdout, a table on stderr): connect rate, RSS per
connection on the client and on the server side, client and server CPU while
opening and while idle with heartbeats, errors. Servers listen on 127.0.0.1
only. Every wait is bounded by ``--max-time``; children are killed on exit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

# benchmarks/clients.py, next to this script (sys.path[0] when it runs)
from clients import cpu_seconds, current_rss_kib, peak_rss_kib
from clients import raise_nofile as raise_nofile_to

HERE = os.path.abspath(__file__)
REPO = os.path.dirname(os.path.dirname(HERE))
PORT_SHARE = 20_000  # connections per server port, well inside the ephemeral range
CONCURRENCY = 200  # handshakes in flight per client process
PAYLOAD = b"x" * 16


# -- small helpers shared by every role -----------------------------------------------


def raise_nofile() -> int:
    """Raise the soft descriptor limit to the hard one; return the soft limit."""
    return raise_nofile_to(0)[0]


def emit(record: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def stdin_lines() -> Any:
    """Commands from the parent, read cooperatively (gevent's FileObjectPosix)."""
    from gevent.fileobject import FileObjectPosix

    return FileObjectPosix(sys.stdin.fileno(), "rb", close=False)


def usage(extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    out = {
        "rss_kib": current_rss_kib(),
        "hwm_kib": peak_rss_kib(),
        "cpu_s": cpu_seconds(),
    }
    out.update(extra or {})
    return out


# -- server worker: gws.accept + gws.echo on SO_REUSEPORT listeners ---------------------


def reuseport_listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def run_server(args: argparse.Namespace) -> int:
    """One worker: accept on every port (shared with the other workers) and echo."""
    import gevent
    from gevent import socket as gsocket
    from gevent.server import StreamServer

    import gws

    raise_nofile()
    count = {"open": 0, "accepted": 0}

    def handle(sock: gsocket.socket, address: Any) -> None:
        sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        try:
            request, read, write = gws.accept(sock, address=address, compression=None)
        except (OSError, gws.WebSocketError, ValueError):
            sock.close()
            return
        count["open"] += 1
        count["accepted"] += 1
        try:
            gws.echo(request, read, write)
        finally:
            count["open"] -= 1
            read.connection.abort()

    servers = []
    for port in args.ports:
        listener = gsocket.socket(fileno=reuseport_listener(port).detach())
        listener.listen(4096)
        servers.append(StreamServer(listener, handle))
    for server in servers:
        server.start()
    emit({"role": "server", "ready": True, "pid": os.getpid()})
    for line in stdin_lines():
        if line.strip() == b"stats":
            emit(usage(dict(count)))
    for server in servers:
        server.stop(timeout=1)
    gevent.sleep(0)
    return 0


# -- client process: its share of the connections ---------------------------------------


def run_client(args: argparse.Namespace) -> int:
    import gevent
    from gevent.lock import BoundedSemaphore

    import gws

    raise_nofile()
    base = usage()
    gate = BoundedSemaphore(CONCURRENCY)
    conns: List[Any] = []
    errors: List[str] = []
    urls = [f"ws://127.0.0.1:{port}/" for port in args.ports]

    def open_one(i: int) -> None:
        with gate:
            res, read, write = gws.connect(
                urls[(i + args.index) % len(urls)],
                compression=None,
                heartbeat=args.heartbeat,
                timeout=30000,
            )
        if not res:
            errors.append(f"open: {read}")
        else:
            conns.append((read, write))

    t0 = time.perf_counter()
    c0 = cpu_seconds()
    greenlets = [gevent.spawn(open_one, i) for i in range(args.c)]
    gevent.joinall(greenlets, timeout=args.max_time)
    open_s = time.perf_counter() - t0
    emit(
        usage(
            {
                "role": "client",
                "phase": "opened",
                "opened": len(conns),
                "errors": errors[:5],
                "n_errors": len(errors) + sum(1 for g in greenlets if not g.dead),
                "open_s": open_s,
                "open_cpu_s": cpu_seconds() - c0,
                "base_rss_kib": base["rss_kib"],
            }
        )
    )
    commands = stdin_lines()
    for line in commands:
        cmd = line.strip()
        if cmd == b"stats":
            emit(usage({"role": "client", "phase": "stats"}))
        elif cmd == b"check":
            bad: List[str] = []

            def round_trip(read: Any, write: Any, bad: List[str] = bad) -> None:
                ok, err = write(PAYLOAD)
                msg = read() if ok else None
                if msg is None or msg.payload != PAYLOAD:
                    bad.append(f"round trip: {err or read.error}")

            t1 = time.perf_counter()
            gate2 = [gevent.spawn(round_trip, r, w) for r, w in conns]
            gevent.joinall(gate2, timeout=args.max_time)
            emit(
                usage(
                    {
                        "role": "client",
                        "phase": "checked",
                        "n_errors": len(bad) + sum(1 for g in gate2 if not g.dead),
                        "errors": bad[:5],
                        "check_s": time.perf_counter() - t1,
                    }
                )
            )
        elif cmd == b"close":
            t1 = time.perf_counter()
            closers = [gevent.spawn(w.close, 1000, "") for _, w in conns]
            gevent.joinall(closers, timeout=args.max_time)
            emit(usage({"role": "client", "phase": "closed", "close_s": time.perf_counter() - t1}))
            break
    return 0


# -- the parent: plan, start, coordinate, report ---------------------------------------


class Child:
    """A role subprocess spoken to by JSON lines, every read bounded in time."""

    def __init__(self, argv: List[str]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, HERE, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.buf = b""

    def send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"child {self.proc.pid} said nothing in {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise ConnectionError(f"child {self.proc.pid} exited ({self.proc.wait(5)})")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def ask(children: List[Child], command: str, timeout: float) -> List[Dict[str, Any]]:
    """Send ``command`` to every child (so they work on it at once), then
    read each one's reply, in order."""
    for child in children:
        child.send(command)
    return [child.recv(timeout) for child in children]


def plan(c: int, nofile: int) -> Dict[str, int]:
    """Processes and ports for C connections under a per-process descriptor limit."""
    per_process = max(1, nofile - 500)  # room for listeners, pipes, imports
    clients = max(1, math.ceil(c / per_process))
    # SO_REUSEPORT spreads by hash, not evenly: leave each worker 25 % headroom.
    workers = max(1, math.ceil(c * 1.25 / per_process))
    ports = max(1, math.ceil(c / PORT_SHARE))
    return {"clients": clients, "workers": workers, "ports": ports}


def sum_field(records: List[Dict[str, Any]], key: str) -> float:
    return float(sum(r.get(key, 0) for r in records))


def run_parent(args: argparse.Namespace) -> int:
    nofile = raise_nofile()
    layout = plan(args.c, min(nofile, args.nofile or nofile))
    if args.clients:
        layout["clients"] = args.clients
    if args.workers:
        layout["workers"] = args.workers
    if args.ports_n:
        layout["ports"] = args.ports_n
    # Reserve the ports: bound (not listening) SO_REUSEPORT sockets, kept until
    # the workers listen on the same ports.
    holders = [reuseport_listener(0) for _ in range(layout["ports"])]
    ports = [h.getsockname()[1] for h in holders]
    port_arg = ",".join(str(p) for p in ports)
    hb = args.heartbeat
    timeout = args.max_time
    children: List[Child] = []
    result: Dict[str, Any] = {
        "c": args.c,
        "heartbeat_ms": hb,
        "hold_s": args.hold,
        "layout": {**layout, "ports": ports},
        "nofile": nofile,
        "nproc": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
    }
    try:
        servers = [
            Child(["--role", "server", "--ports", port_arg]) for _ in range(layout["workers"])
        ]
        children += servers
        for s in servers:
            s.recv(60)
        for h in holders:
            h.close()
        server_base = ask(servers, "stats", 30)
        shares = [args.c // layout["clients"]] * layout["clients"]
        for i in range(args.c % layout["clients"]):
            shares[i] += 1
        t0 = time.perf_counter()
        clients = [
            Child(
                ["--role", "client", "--ports", port_arg, "--c", str(n), "--index", str(i)]
                + ["--heartbeat", str(hb), "--max-time", str(timeout)]
            )
            for i, n in enumerate(shares)
        ]
        children += clients
        opened = [c.recv(timeout + 60) for c in clients]
        open_wall = time.perf_counter() - t0
        errors = sum_field(opened, "n_errors")
        server_open = ask(servers, "stats", 30)
        # Idle with heartbeats only: measure CPU over the hold.
        before = ask(clients, "stats", 30)
        t_hold = time.perf_counter()
        time.sleep(args.hold)
        after = ask(clients, "stats", 30)
        server_hold = ask(servers, "stats", 30)
        hold_wall = time.perf_counter() - t_hold
        checked = ask(clients, "check", timeout + 60)
        errors += sum_field(checked, "n_errors")
        closed = ask(clients, "close", timeout + 60)
        total_open = sum_field(opened, "opened")
        client_rss = sum_field(after, "rss_kib") - sum_field(opened, "base_rss_kib")
        server_rss = sum_field(server_hold, "rss_kib") - sum_field(server_base, "rss_kib")
        result.update(
            opened=int(total_open),
            errors=int(errors),
            first_errors=[e for r in opened + checked for e in r.get("errors", [])][:5],
            server_accepted=int(sum_field(server_open, "accepted")),
            per_worker_open=[int(r.get("open", 0)) for r in server_open],
            open_wall_s=open_wall,
            connect_rate=total_open / open_wall if open_wall else None,
            client_open_cpu_ms_per_conn=sum_field(opened, "open_cpu_s") / max(1, total_open) * 1e3,
            server_open_cpu_ms_per_conn=(
                (sum_field(server_open, "cpu_s") - sum_field(server_base, "cpu_s"))
                / max(1, total_open)
                * 1e3
            ),
            client_rss_per_conn_kib=client_rss / max(1, total_open),
            server_rss_per_conn_kib=server_rss / max(1, total_open),
            client_rss_mib=sum_field(after, "rss_kib") / 1024,
            server_rss_mib=sum_field(server_hold, "rss_kib") / 1024,
            idle_client_cpu_pct=(sum_field(after, "cpu_s") - sum_field(before, "cpu_s"))
            / hold_wall
            * 100,
            idle_server_cpu_pct=(sum_field(server_hold, "cpu_s") - sum_field(server_open, "cpu_s"))
            / hold_wall
            * 100,
            check_s=max(r.get("check_s", 0) for r in checked),
            close_s=max(r.get("close_s", 0) for r in closed),
            loadavg_end=list(os.getloadavg()),
        )
    finally:
        for child in children:
            child.stop()
        for h in holders:
            h.close()
    emit(result)
    print(report(result), file=sys.stderr)
    return 0 if result.get("errors") == 0 and result.get("opened") == args.c else 1


def report(r: Dict[str, Any]) -> str:
    lay = r["layout"]
    return "\n".join(
        [
            f"C={r['c']:,} connections, heartbeat {r['heartbeat_ms']} ms, held {r['hold_s']} s: "
            f"{r['opened']:,} opened, {r['errors']} errors",
            f"  layout: {lay['clients']} client processes, {lay['workers']} server workers "
            f"(SO_REUSEPORT), {len(lay['ports'])} ports; RLIMIT_NOFILE {r['nofile']}",
            f"  connect: {r['open_wall_s']:.1f} s, {r['connect_rate']:,.0f} connections/s; "
            f"CPU {r['client_open_cpu_ms_per_conn']:.2f} ms/conn client, "
            f"{r['server_open_cpu_ms_per_conn']:.2f} ms/conn server",
            f"  RSS: client {r['client_rss_per_conn_kib']:.1f} KiB/conn "
            f"({r['client_rss_mib']:.0f} MiB total), server {r['server_rss_per_conn_kib']:.1f} "
            f"KiB/conn ({r['server_rss_mib']:.0f} MiB total)",
            f"  idle with heartbeats: client {r['idle_client_cpu_pct']:.0f} % CPU, server "
            f"{r['idle_server_cpu_pct']:.0f} % CPU (100 % = one core)",
            f"  final round trip on every connection {r['check_s']:.1f} s, "
            f"close {r['close_s']:.1f} s; load average {r['loadavg_start'][0]:.1f} -> "
            f"{r['loadavg_end'][0]:.1f}",
        ]
    )


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=("parent", "server", "client"), default="parent")
    p.add_argument("--c", type=int, default=50_000, help="connections (in total, or this client's)")
    p.add_argument("--heartbeat", type=int, default=10_000, help="heartbeat interval, ms")
    p.add_argument("--hold", type=float, default=0.0, help="idle seconds (default 2.5 heartbeats)")
    p.add_argument("--max-time", type=float, default=300.0, help="bound on each phase, s")
    p.add_argument("--clients", type=int, default=0, help="client processes (default: planned)")
    p.add_argument("--workers", type=int, default=0, help="server workers (default: planned)")
    p.add_argument("--ports-n", type=int, default=0, help="server ports (default: planned)")
    p.add_argument("--nofile", type=int, default=0, help="plan for this descriptor limit")
    p.add_argument("--ports", default="", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.ports = [int(x) for x in args.ports.split(",") if x]
    if args.hold <= 0:
        args.hold = 2.5 * args.heartbeat / 1000
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.role == "server":
        return run_server(args)
    if args.role == "client":
        return run_client(args)
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
