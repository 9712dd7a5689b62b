"""Benchmark clients: one client library, one workload, one JSON result line.

Run by ``benchmarks/run.py``, one subprocess per measurement::

    python benchmarks/clients.py --client gws --workload rtt --url ws://127.0.0.1:PORT/ --n 20000

Clients: ``gws``, ``floor`` (a raw gevent socket: hand-made handshake,
pre-built masked frames, raw echoes), ``websocket-client`` (wsaccel import
blocked), ``websocket-client+wsaccel``, ``websockets`` (sync client).

Workloads: ``rtt``, ``bulk``, ``text``, ``deflate`` (sequential echoes on one
connection) and ``fanout`` (``--c`` concurrent connections in one process).

The last line on stdout is a JSON object: the measurement, or
``{"skipped": reason}`` when a client cannot run the workload. Every loop is
bounded in count (``--max-n``) and time (``--max-time`` plus a process
watchdog that exits the process, see ``--watchdog``).
"""

from __future__ import annotations

import argparse
import base64
import faulthandler
import hashlib
import importlib.util
import inspect
import json
import os
import random
import resource
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

CLIENTS = ("gws", "floor", "websocket-client", "websocket-client+wsaccel", "websockets")
# Sequential echo workloads; "wss-" ones run the same exchange over TLS.
ECHO = ("rtt", "bulk", "text", "deflate", "deflate-bin", "wss-rtt", "wss-bulk")
# Opening handshake + close handshake, repeated (--c of them in flight at once).
HANDSHAKES = ("handshake", "handshake-wss")
WORKLOADS = (*ECHO, *HANDSHAKES, "fanout", "fanout-deflate")
DEFLATE = ("deflate", "deflate-bin", "fanout-deflate")

MIB = 1024 * 1024
SIZES = {
    "rtt": 16,
    "bulk": MIB,
    "text": 64 * 1024,
    "deflate": 64 * 1024,
    "deflate-bin": MIB,
    "fanout": 16,
    "fanout-deflate": 2048,
}
FANOUT_ROUND_TRIPS = 20
CONNECT_TIMEOUT = 10.0  # seconds, for TCP connect + opening handshake
CONNECT_CONCURRENCY = 200  # handshakes in flight at once in the fanout workload
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

RoundTrip = Callable[[Any], Any]
Opened = Tuple[RoundTrip, Callable[[], None], Dict[str, Any]]  # (round trip, close, info)


class Skip(Exception):
    """This client cannot run this workload (not installed, no support)."""


# -- payloads ------------------------------------------------------------------


def binary_payload(size: int) -> bytes:
    """Deterministic pseudo-random bytes."""
    return random.Random(size).randbytes(size)


def text_payload(size: int) -> str:
    """UTF-8 text of exactly ``size`` encoded bytes, about 1 in 8 characters non-ASCII."""
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "héllo", "wörld"]
    words += ["naïve", "café", "✓ok", "日本"]
    rng = random.Random(size)
    parts: List[str] = []
    total = 0
    while total < size - 16:
        word = rng.choice(words) + " "
        parts.append(word)
        total += len(word.encode("utf-8"))
    text = "".join(parts)
    return text + "x" * (size - len(text.encode("utf-8")))


def json_payload(size: int) -> str:
    """JSON-like ASCII text of exactly ``size`` bytes (compressible, like real APIs)."""
    rng = random.Random(size)
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    items: List[str] = []
    total = 2
    while True:
        record = json.dumps(
            {
                "id": rng.randrange(10**6),
                "user": rng.choice(names),
                "active": rng.random() < 0.5,
                "score": round(rng.random() * 1000, 3),
                "tags": rng.sample(["red", "green", "blue", "new", "hot", "sale"], 2),
                "ts": 1_700_000_000 + rng.randrange(10**6),
            },
            separators=(",", ":"),
        )
        if total + len(record) + 1 > size:
            break
        items.append(record)
        total += len(record) + 1
    text = "[" + ",".join(items) + "]"
    return text + " " * (size - len(text))


def base_workload(workload: str) -> str:
    """The exchange a workload runs: ``wss-rtt`` is ``rtt`` over TLS."""
    return workload[4:] if workload.startswith("wss-") else workload


def payload_for(workload: str, size: int) -> Any:
    workload = base_workload(workload)
    if workload == "text":
        return text_payload(size)
    if workload in ("deflate", "fanout-deflate"):
        return json_payload(size)
    return binary_payload(size)


# -- TLS: one client context per process, from the CA file run.py made --------

TLS_CA: Optional[str] = None  # set from --ca


_TLS_CONTEXTS: Dict[bool, Any] = {}


def tls_context(cooperative: bool = False) -> Any:
    """The process's client SSLContext trusting ``TLS_CA``, built on first use.

    ``cooperative``: gevent's SSLContext (its sockets wait on the hub), for the
    floor; otherwise the stdlib's, for the threaded peers.
    """
    ctx = _TLS_CONTEXTS.get(cooperative)
    if ctx is None:
        if not TLS_CA:
            raise Skip("wss workloads need --ca (run.py makes a trustme CA)")
        if cooperative:
            from gevent import ssl as gssl

            ctx = gssl.create_default_context(cafile=TLS_CA)
        else:
            import ssl

            ctx = ssl.create_default_context(cafile=TLS_CA)
        _TLS_CONTEXTS[cooperative] = ctx
    return ctx


# -- measurement helpers -------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _proc_status_kib(field: str) -> Optional[float]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_kib() -> float:
    """Resident set size now, KiB (VmRSS; ru_maxrss if /proc is absent)."""
    rss = _proc_status_kib("VmRSS:")
    return rss if rss is not None else float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_kib() -> float:
    """Peak resident set size of this process, KiB.

    VmHWM where /proc exists: Linux's ``ru_maxrss`` also counts the parent's
    RSS at fork time (the high-water mark survives exec), which would bury a
    small client under run.py's own footprint. Elsewhere ru_maxrss (KiB).
    """
    hwm = _proc_status_kib("VmHWM:")
    return hwm if hwm is not None else float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def raise_nofile(needed: int) -> Tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; Skip if still below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # an infinite hard limit may exceed fs.nr_open
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise Skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} descriptors needed")
    return soft, hard


# -- the floor: a raw gevent socket ----------------------------------------------


def build_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One masked, final client frame (built once, sent many times)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    rep = (key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(rep, "little")
    return header + key + masked.to_bytes(n, "little")


class FloorConnection:
    """A WebSocket client at the lowest cost Python and gevent allow."""

    def __init__(self, url: str, bufsize: int) -> None:
        from gevent import socket as gsocket

        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        self.sock = gsocket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.scheme == "wss":
            self.sock = tls_context(cooperative=True).wrap_socket(self.sock, server_hostname=host)
        self.buf = bytearray(max(bufsize, 256))
        self.view = memoryview(self.buf)
        self.start = 0
        self.end = 0
        key = base64.b64encode(os.urandom(16))
        request = (
            b"GET " + (parts.path or "/").encode() + b" HTTP/1.1\r\n"
            b"Host: " + f"{host}:{port}".encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk or len(head) > 65536:
                raise ConnectionError("bad handshake response")
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            raise ConnectionError(f"handshake refused: {head[:80]!r}")
        self.buf[: len(rest)] = rest
        self.end = len(rest)
        self.sock.settimeout(None)  # the measured loop pays no timer per wait

    def recv_frame(self) -> Tuple[int, memoryview]:
        """(opcode, payload view) of the next frame; the view is valid until the next call."""
        buf = self.buf
        recv_into = self.sock.recv_into
        while True:
            start = self.start
            have = self.end - start
            if have >= 2:
                length = buf[start + 1] & 0x7F
                hlen = 2
                if length == 126:
                    hlen = 4
                    length = int.from_bytes(buf[start + 2 : start + 4], "big") if have > 3 else -1
                elif length == 127:
                    hlen = 10
                    length = int.from_bytes(buf[start + 2 : start + 10], "big") if have > 9 else -1
                if length >= 0 and have >= hlen + length:
                    opcode = buf[start] & 0x0F
                    stop = start + hlen + length
                    if stop == self.end:
                        self.start = self.end = 0
                    else:
                        self.start = stop
                    return opcode, self.view[start + hlen : stop]
                if length > len(buf) - hlen:
                    raise ValueError(f"frame of {length} bytes exceeds the floor's buffer")
            if self.end == len(buf) or (start and self.end + 65536 > len(buf)):
                buf[:have] = buf[start : self.end]
                self.start, self.end = 0, have
            n = recv_into(self.view[self.end :])
            if not n:
                raise ConnectionError("connection closed by the server")
            self.end += n

    def close(self) -> None:
        """Close handshake: send close 1000, wait for the echo and EOF (bounded)."""
        import gevent

        try:
            with gevent.Timeout(CONNECT_TIMEOUT, False):
                self.sock.sendall(build_frame(0x8, (1000).to_bytes(2, "big"), os.urandom(4)))
                while True:
                    opcode, _ = self.recv_frame()
                    if opcode == 0x8:
                        break
                while self.sock.recv(4096):
                    pass
        except (OSError, ConnectionError):
            pass
        self.sock.close()


# -- one connection per client: (round trip function, close function, info) -----


def open_floor(url: str, workload: str, payload: Any) -> Opened:
    # deflate workloads: the floor offers no extension, so nothing is compressed
    # either way -- the least CPU a client can spend on those bytes.
    text = isinstance(payload, str)
    data = payload.encode("utf-8") if text else payload
    conn = FloorConnection(url, len(data) + 16)
    send = conn.sock.send
    sendall = conn.sock.sendall
    recv_frame = conn.recv_frame
    frame = build_frame(0x1 if text else 0x2, data, os.urandom(4))
    size = len(frame)
    rest = memoryview(frame)

    def send_frame() -> None:
        # One send() usually takes the whole frame; gevent's sendall() would
        # also pay a getsockopt() syscall and a few Python calls every time.
        sent = send(frame)
        if sent != size:
            sendall(rest[sent:])

    if text:

        def rt(_msg: Any) -> Any:
            send_frame()
            return str(recv_frame()[1], "utf-8")

    else:

        def rt(_msg: Any) -> Any:
            send_frame()
            return recv_frame()[1]

    return rt, conn.close, {"prebuilt_frames": True}


def open_gws(url: str, workload: str, payload: Any, heartbeat: Optional[int] = None) -> Opened:
    try:
        import gws
    except ImportError as exc:
        raise Skip(f"gws not importable: {exc}") from None
    options: Dict[str, Any] = {"compression": "deflate" if workload in DEFLATE else None}
    options["timeout"] = int(CONNECT_TIMEOUT * 1000)
    if heartbeat:
        options["heartbeat"] = heartbeat
    if url.startswith("wss:"):
        options["tls"] = {"ca": TLS_CA}  # gws builds this context once per process
    res, read, write = gws.connect(url, **options)
    if not res:
        raise ConnectionError(f"gws.connect failed: {read}")
    if workload in DEFLATE and not res.extensions:
        raise RuntimeError("permessage-deflate was not negotiated")

    def rt(msg: Any) -> Any:
        write(msg)
        got = read()
        if got is None:
            raise ConnectionError(f"gws read() returned None: {read.error}")
        return got.payload

    def close() -> None:
        write.close(1000, "")

    speedups = importlib.util.find_spec("gws._speedups") is not None
    return rt, close, {"extensions": list(res.extensions), "speedups": speedups}


def import_websocket_client(with_wsaccel: bool) -> Any:
    """Import websocket-client with wsaccel allowed or blocked; check which took effect."""
    if not with_wsaccel:
        for name in ("wsaccel", "wsaccel.xormask", "wsaccel.utf8validator"):
            sys.modules[name] = None  # type: ignore[assignment]
    else:
        try:
            import wsaccel  # noqa: F401
        except ImportError:
            raise Skip("wsaccel not installed") from None
    try:
        import websocket
        import websocket._abnf as abnf
    except ImportError:
        raise Skip("websocket-client not installed") from None
    uses = hasattr(abnf, "XorMaskerSimple")
    if uses != with_wsaccel:
        raise RuntimeError(f"wsaccel in use: {uses}, wanted {with_wsaccel}")
    return websocket


def open_websocket_client(url: str, workload: str, payload: Any, wsaccel: bool) -> Opened:
    websocket = import_websocket_client(wsaccel)
    if workload in DEFLATE:
        raise Skip("websocket-client has no permessage-deflate support")
    # timeout bounds connect + handshake; the measured loop then uses the
    # library's default blocking socket (a timeout would add a poll() per call).
    kwargs: Dict[str, Any] = {"timeout": CONNECT_TIMEOUT}
    if url.startswith("wss:"):
        kwargs["sslopt"] = {"context": tls_context()}
    ws = websocket.create_connection(url, **kwargs)
    ws.settimeout(None)
    send = ws.send if isinstance(payload, str) else ws.send_binary
    recv = ws.recv

    def rt(msg: Any) -> Any:
        send(msg)
        return recv()

    return rt, ws.close, {"wsaccel": wsaccel}


def open_websockets(
    url: str, workload: str, payload: Any, heartbeat: Optional[int] = None
) -> Opened:
    try:
        from websockets.sync.client import connect
    except ImportError:
        raise Skip("websockets not installed") from None
    kwargs: Dict[str, Any] = {"open_timeout": CONNECT_TIMEOUT, "max_size": 16 * MIB}
    if workload not in DEFLATE:
        kwargs["compression"] = None  # deflate: the library default ("deflate")
    if url.startswith("wss:"):
        kwargs["ssl"] = tls_context()
    if heartbeat:
        kwargs["ping_interval"] = heartbeat / 1000.0
    if "legacy" in inspect.signature(connect).parameters:
        kwargs["legacy"] = True  # websockets >= 16: return the connection directly
    ws = connect(url, **kwargs)
    send = ws.send
    recv = ws.recv

    def rt(msg: Any) -> Any:
        send(msg)
        return recv()

    return rt, ws.close, {"extensions": [type(e).__name__ for e in ws.protocol.extensions]}


def open_client(
    client: str, url: str, workload: str, payload: Any, heartbeat: Optional[int] = None
) -> Opened:
    """Open one connection of ``client``; returns (round trip, close, info)."""
    if client == "gws":
        return open_gws(url, workload, payload, heartbeat)
    if client == "floor":
        return open_floor(url, workload, payload)
    if client == "websocket-client":
        return open_websocket_client(url, workload, payload, wsaccel=False)
    if client == "websocket-client+wsaccel":
        return open_websocket_client(url, workload, payload, wsaccel=True)
    if client == "websockets":
        return open_websockets(url, workload, payload, heartbeat)
    raise ValueError(f"unknown client {client!r}")


def check_import(client: str) -> None:
    """Skip early when the client library is missing (before any timing)."""
    if client in ("websocket-client", "websocket-client+wsaccel"):
        import_websocket_client(client.endswith("+wsaccel"))
    elif client == "websockets":
        try:
            import websockets.sync.client  # noqa: F401
        except ImportError:
            raise Skip("websockets not installed") from None
    elif client == "gws":
        try:
            import gws  # noqa: F401
        except ImportError as exc:
            raise Skip(f"gws not importable: {exc}") from None


def same(got: Any, sent: Any) -> bool:
    if isinstance(got, memoryview):
        return got == sent
    return bool(got == sent)


# -- sequential workloads ---------------------------------------------------------


def run_sequential(args: argparse.Namespace) -> Dict[str, Any]:
    """Echo one message ``n`` times (at least ``min_time`` s) on one connection."""
    size = args.size or SIZES[base_workload(args.workload)]
    payload = payload_for(args.workload, size)
    nbytes = len(payload.encode("utf-8")) if isinstance(payload, str) else len(payload)
    rt, close, info = open_client(args.client, args.url, args.workload, payload)
    try:
        rtt = base_workload(args.workload) == "rtt"
        warm = max(1, min(args.n // 10, 2000 if rtt else 20))
        for _ in range(warm):
            got = rt(payload)
        if not same(got, payload):
            raise RuntimeError("echo differs from what was sent")
        batch = max(1, min(args.n, max(1, args.n // 20)))
        done = 0
        t0 = time.perf_counter()
        c0 = cpu_seconds()
        deadline = t0 + args.max_time
        while True:
            for _ in range(batch):
                got = rt(payload)
            done += batch
            now = time.perf_counter()
            if done >= args.n and now - t0 >= args.min_time:
                break
            if done >= args.max_n or now >= deadline:
                break
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
        if len(got) != len(payload):
            raise RuntimeError("echo has the wrong length")
    finally:
        close()
    result: Dict[str, Any] = {"n": done, "bytes": nbytes, "wall_s": wall, "cpu_s": cpu}
    result["info"] = info
    if rtt:
        result["rate"] = done / wall
        result["unit"] = "round trips/s"
        result["cpu_per_op"] = cpu / done * 1e6
        result["cpu_unit"] = "µs/round trip"
    else:
        mib = done * nbytes / MIB
        result["rate"] = mib / wall
        result["unit"] = "MiB/s"
        result["cpu_per_op"] = cpu * 1000 / mib
        result["cpu_unit"] = "ms/MiB"
    return result


# -- handshakes -------------------------------------------------------------------


def run_handshakes(args: argparse.Namespace) -> Dict[str, Any]:
    """Open + close connections, ``--c`` at a time, until ``n`` (and ``min_time`` s).

    gws and the floor run their workers as greenlets, the peers as threads
    (what their users do); each worker opens, closes (close handshake), repeats.
    """
    check_import(args.client)
    workers = max(1, args.c)
    counts = {"done": 0, "started": 0}
    errors: List[str] = []
    t0 = time.perf_counter()
    deadline = t0 + args.max_time

    def more() -> bool:
        now = time.perf_counter()
        if counts["started"] >= args.max_n or now >= deadline:
            return False
        return counts["started"] < args.n or now - t0 < args.min_time

    def one() -> None:
        rt, close, _ = open_client(args.client, args.url, "handshake", b"")
        close()

    # a first connection outside the clock: imports, TLS context, resolver
    one()
    if args.client in ("gws", "floor"):
        import gevent

        def worker() -> None:
            while more():
                counts["started"] += 1
                try:
                    one()
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(repr(exc))
                    return
                counts["done"] += 1

        t0 = time.perf_counter()
        deadline = t0 + args.max_time
        c0 = cpu_seconds()
        greenlets = [gevent.spawn(worker) for _ in range(workers)]
        gevent.joinall(greenlets, timeout=args.max_time + CONNECT_TIMEOUT)
        gevent.killall([g for g in greenlets if not g.dead])
    else:
        import threading

        lock = threading.Lock()

        def tworker() -> None:
            while True:
                with lock:
                    if not more():
                        return
                    counts["started"] += 1
                try:
                    one()
                except Exception as exc:  # noqa: BLE001
                    with lock:
                        errors.append(repr(exc))
                    return
                with lock:
                    counts["done"] += 1

        t0 = time.perf_counter()
        deadline = t0 + args.max_time
        c0 = cpu_seconds()
        threads = [threading.Thread(target=tworker, daemon=True) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline + CONNECT_TIMEOUT - time.perf_counter()))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    if errors:
        raise RuntimeError(f"{len(errors)} handshakes failed, first: {errors[0]}")
    done = counts["done"]
    return {
        "n": done,
        "c": workers,
        "wall_s": wall,
        "cpu_s": cpu,
        "rate": done / wall,
        "unit": "handshakes/s",
        "cpu_per_op": cpu / max(1, done) * 1e3,
        "cpu_unit": "CPU ms/handshake",
        "model": "greenlets" if args.client in ("gws", "floor") else "threads",
    }


# -- fanout -----------------------------------------------------------------------


def fanout_round_trips(workload: str) -> int:
    """Round trips per connection: 20, or 1 for fanout-deflate (state after one message)."""
    return 1 if workload == "fanout-deflate" else FANOUT_ROUND_TRIPS


class Fanout:
    """What C fanout workers share: the connect gate, the count of workers
    past each phase ("opened", "finished") and the event that opens the
    next one, the time the last worker got there, and the errors (each
    change under ``lock``)."""

    def __init__(
        self,
        args: argparse.Namespace,
        payload: bytes,
        heartbeat: Optional[int],
        gate: Any,
        lock: Any,
        event: Callable[[], Any],
    ) -> None:
        self.args = args
        self.payload = payload
        self.heartbeat = heartbeat
        self.gate = gate
        self.lock = lock
        self.counts = {"opened": 0, "finished": 0}
        self.events = {"opened": event(), "finished": event()}
        self.marks: Dict[str, float] = {}
        self.errors: List[str] = []

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def arrive(self, phase: str) -> None:
        with self.lock:
            self.counts[phase] += 1
            if self.counts[phase] == self.args.c:
                self.marks[phase] = time.perf_counter()
                self.events[phase].set()

    def worker(self) -> None:
        """One connection: open, wait for all, round trips, wait for all, close."""
        args, payload = self.args, self.payload
        conn = None
        try:
            with self.gate:
                conn = open_client(args.client, args.url, args.workload, payload, self.heartbeat)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            self.error(f"open: {exc!r}")
        self.arrive("opened")
        if conn is None:
            self.arrive("finished")
            return
        rt, close, _ = conn
        try:
            self.events["opened"].wait(args.max_time)
            for _ in range(fanout_round_trips(args.workload)):
                if len(rt(payload)) != len(payload):
                    raise RuntimeError("echo has the wrong length")
        except Exception as exc:  # noqa: BLE001
            self.error(f"round trip: {exc!r}")
        self.arrive("finished")
        self.events["finished"].wait(args.max_time)
        try:
            close()
        except Exception as exc:  # noqa: BLE001
            self.error(f"close: {exc!r}")

    def result(self, t0: float, wall: float, cpu: float, alive: int, model: str) -> Dict[str, Any]:
        """Wall and CPU seconds, errors, and the seconds spent opening, doing
        round trips and closing; ``alive`` workers had not finished in time."""
        if alive:
            self.errors.append(f"{alive} connections still running after {self.args.max_time} s")
        opened = self.marks.get("opened", t0 + wall) - t0
        finished = self.marks.get("finished", t0 + wall) - t0
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "errors": self.errors,
            "model": model,
            "open_s": opened,
            "round_trips_s": finished - opened,
            "close_s": wall - finished,
        }


def run_fanout_gevent(args: argparse.Namespace, payload: bytes) -> Dict[str, Any]:
    """C greenlets, one connection each: open all, 20 round trips each, close all."""
    import contextlib

    import gevent
    from gevent.event import Event
    from gevent.lock import BoundedSemaphore

    heartbeat = args.heartbeat if args.client == "gws" else None
    gate = BoundedSemaphore(CONNECT_CONCURRENCY)
    # Greenlets switch only where they wait: the counts need no lock.
    fan = Fanout(args, payload, heartbeat, gate, contextlib.nullcontext(), Event)
    t0 = time.perf_counter()
    c0 = cpu_seconds()
    greenlets = [gevent.spawn(fan.worker) for _ in range(args.c)]
    gevent.joinall(greenlets, timeout=args.max_time)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    alive = [g for g in greenlets if not g.dead]
    gevent.killall(alive, block=False)
    return fan.result(t0, wall, cpu, len(alive), "greenlets")


def run_fanout_threads(args: argparse.Namespace, payload: bytes) -> Dict[str, Any]:
    """C threads, one connection each, same phases as the gevent version."""
    import threading

    heartbeat = args.heartbeat if args.client == "websockets" else None
    gate = threading.BoundedSemaphore(CONNECT_CONCURRENCY)
    fan = Fanout(args, payload, heartbeat, gate, threading.Lock(), threading.Event)
    t0 = time.perf_counter()
    c0 = cpu_seconds()
    threads = [threading.Thread(target=fan.worker, daemon=True) for _ in range(args.c)]
    for t in threads:
        t.start()
    deadline = t0 + args.max_time
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    alive = sum(1 for t in threads if t.is_alive())
    return fan.result(t0, wall, cpu, alive, "threads")


def run_fanout(args: argparse.Namespace) -> Dict[str, Any]:
    """Many connections in one process: wall time, peak RSS, RSS per connection."""
    c = args.c
    soft, hard = raise_nofile(c + 64)
    payload = payload_for(args.workload, SIZES[args.workload])
    check_import(args.client)
    if args.client in ("gws", "floor"):
        import gevent  # noqa: F401 - imported before the baseline, like the libraries

        runner = run_fanout_gevent
    else:
        import threading  # noqa: F401

        runner = run_fanout_threads
    baseline = current_rss_kib()
    result = runner(args, payload)
    peak = peak_rss_kib()
    errors = result.pop("errors")
    if errors:
        raise RuntimeError(f"{len(errors)} errors, first: {errors[0]}")
    result.update(
        c=c,
        n=c * fanout_round_trips(args.workload),
        baseline_rss_kib=baseline,
        peak_rss_kib=peak,
        ru_maxrss_kib=float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        rss_per_conn_kib=(peak - baseline) / c,
        rate=result["wall_s"],
        unit="s wall",
        cpu_per_op=result["cpu_s"] / c * 1e3,
        cpu_unit="CPU ms/connection",
        heartbeat_ms=args.heartbeat if args.client in ("gws", "websockets") else None,
        nofile=[soft, hard],
    )
    return result


# -- main ---------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--client", required=True, choices=CLIENTS)
    p.add_argument("--workload", required=True, choices=WORKLOADS)
    p.add_argument("--url", required=True, help="ws:// or wss:// URL of an echo server")
    p.add_argument("--ca", default=None, help="CA file that signed the wss server's certificate")
    p.add_argument("--n", type=int, default=1000, help="minimum messages (sequential workloads)")
    p.add_argument("--min-time", type=float, default=0.0, help="keep going until this many seconds")
    p.add_argument("--max-n", type=int, default=0, help="hard cap on messages (default 50 x n)")
    p.add_argument("--max-time", type=float, default=60.0, help="time cap of the measured loop, s")
    p.add_argument("--size", type=int, default=0, help="payload bytes (default per workload)")
    p.add_argument("--c", type=int, default=1000, help="connections (fanout; handshakes in flight)")
    p.add_argument("--heartbeat", type=int, default=1000, help="heartbeat interval, ms (fanout)")
    p.add_argument("--watchdog", type=float, default=0.0, help="exit the process after this many s")
    args = p.parse_args(argv)
    if args.max_n <= 0:
        args.max_n = max(args.n * 50, args.n)
    if args.watchdog <= 0:
        args.watchdog = args.max_time * 2 + 30
    return args


def main(argv: Optional[List[str]] = None) -> int:
    global TLS_CA
    args = parse_args(argv)
    TLS_CA = args.ca
    faulthandler.dump_traceback_later(args.watchdog, exit=True)
    base = {"client": args.client, "workload": args.workload}
    try:
        if args.workload in ("fanout", "fanout-deflate"):
            result = run_fanout(args)
        elif args.workload in HANDSHAKES:
            result = run_handshakes(args)
        else:
            check_import(args.client)
            result = run_sequential(args)
    except Skip as exc:
        print(json.dumps({**base, "skipped": str(exc)}), flush=True)
        return 0
    except Exception as exc:  # noqa: BLE001 - reported to run.py as a value
        print(json.dumps({**base, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    print(json.dumps({**base, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
