"""Benchmark gws against websocket-client, websockets and a raw gevent floor.

One command::

    python benchmarks/run.py [--quick] [--rounds N] [--server node|gws] [--out DIR]
                             [--write-readme]

Starts an echo server (Node ``ws`` + ``bufferutil``, installed with npm into a
scratch folder on first use, or gws's own gevent server), runs every client
on every workload in its own subprocess (``benchmarks/clients.py``),
alternating the clients round-robin within each round, and writes
``results.json`` and ``results.md`` (medians over rounds, with ratios of
gws against each peer and the floor) into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import select
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from clients import raise_nofile  # benchmarks/clients.py, next to this script

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLIENTS_PY = BENCH / "clients.py"
README = BENCH / "README.md"
README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"

CLIENTS = ("gws", "floor", "websocket-client", "websocket-client+wsaccel", "websockets")
SEQUENTIAL = ("rtt", "bulk", "text", "deflate", "deflate-bin", "wss-rtt", "wss-bulk")
HANDSHAKES = ("handshake", "handshake-wss")
FANOUTS = ("fanout", "fanout-deflate")
WORKLOADS = (*SEQUENTIAL, *HANDSHAKES, *FANOUTS)
PINNED = ("rtt", "wss-rtt")
TLS_WORKLOADS = ("wss-rtt", "wss-bulk", "handshake-wss")
THREAD_MODE_PY = BENCH / "thread_mode.py"

# Clients that cannot run a workload at all: recorded without spawning anything.
STATIC_SKIPS = {
    ("deflate", "floor"): "no permessage-deflate in the floor",
    ("deflate", "websocket-client"): "websocket-client has no permessage-deflate",
    ("deflate", "websocket-client+wsaccel"): "websocket-client has no permessage-deflate",
    ("deflate-bin", "websocket-client"): "websocket-client has no permessage-deflate",
    ("deflate-bin", "websocket-client+wsaccel"): "websocket-client has no permessage-deflate",
    ("fanout-deflate", "websocket-client"): "websocket-client has no permessage-deflate",
    ("fanout-deflate", "websocket-client+wsaccel"): "websocket-client has no permessage-deflate",
}
# Python modules each client needs (checked before spawning: "not installed").
REQUIRES = {
    "gws": ("gevent",),
    "floor": ("gevent",),
    "websocket-client": ("websocket",),
    "websocket-client+wsaccel": ("websocket", "wsaccel"),
    "websockets": ("websockets",),
}

# A previous measurement (2-core VM, Node ws server), shown for context.
REFERENCE: Dict[Tuple[str, str], float] = {
    ("rtt", "floor"): 46_836,
    ("rtt", "websocket-client"): 42_012,
    ("rtt", "websockets"): 24_841,
    ("bulk", "floor"): 1_232,
    ("bulk", "websocket-client"): 229,
    ("bulk", "websocket-client+wsaccel"): 511,
    ("bulk", "websockets"): 1_012,
    ("text", "floor"): 434,
    ("text", "websocket-client"): 7.2,
    ("text", "websockets"): 227,
    ("fanout", "floor"): 10.8,
    ("fanout", "websocket-client"): 22.8,
    ("fanout", "websockets"): 70.2,
}

TITLES = {
    "rtt": "rtt: 16-byte binary round trips, sequential, one connection",
    "bulk": "bulk: 1 MiB binary echoes, one connection",
    "text": "text: 64 KiB UTF-8 text echoes (str in, str out), one connection",
    "deflate": "deflate: 64 KiB JSON-like text echoes with permessage-deflate",
    "deflate-bin": "deflate-bin: 1 MiB random (incompressible) bytes with permessage-deflate; "
    "the floor offers no compression",
    "wss-rtt": "wss-rtt: 16-byte binary round trips over TLS (trustme certificate)",
    "wss-bulk": "wss-bulk: 1 MiB binary echoes over TLS (trustme certificate)",
    "handshake": "handshake: ws:// open + close handshakes per second",
    "handshake-wss": "handshake-wss: wss:// open + close handshakes per second (TLS 1.3)",
    "fanout": "fanout: C concurrent connections in one process, 20 round trips each",
    "fanout-deflate": "fanout-deflate: C connections with permessage-deflate, one 2 KiB JSON "
    "message exchanged each",
}


@dataclass
class Config:
    """Sizes of one run (full or --quick)."""

    n: Dict[str, int]
    min_time: float
    max_time: float
    fanout: Dict[str, Sequence[int]]
    fanout_max_time: float
    heartbeat: int
    rounds: int
    warmup: bool
    handshakes: Sequence[int] = (1, 100)  # handshakes in flight (sequential, concurrent)
    fanout_deflate: Dict[str, Sequence[int]] = field(default_factory=dict)


FULL = Config(
    n={
        "rtt": 20_000,
        "bulk": 100,
        "text": 100,
        "deflate": 100,
        "deflate-bin": 50,
        "wss-rtt": 20_000,
        "wss-bulk": 100,
        "handshake": 1000,
        "handshake-wss": 500,
    },
    min_time=1.0,
    max_time=20.0,
    fanout={
        "gws": (1_000, 10_000),
        "floor": (1_000, 10_000),
        "websocket-client": (1_000,),
        "websockets": (1_000,),
    },
    fanout_max_time=120.0,
    heartbeat=5000,
    rounds=3,
    warmup=True,
    fanout_deflate={"gws": (1_000,), "floor": (1_000,), "websockets": (1_000,)},
)
QUICK = Config(
    n={
        "rtt": 200,
        "bulk": 4,
        "text": 8,
        "deflate": 8,
        "deflate-bin": 4,
        "wss-rtt": 200,
        "wss-bulk": 4,
        "handshake": 20,
        "handshake-wss": 10,
    },
    min_time=0.0,
    max_time=10.0,
    fanout={"gws": (50,), "floor": (50,), "websocket-client": (50,), "websockets": (50,)},
    fanout_max_time=20.0,
    heartbeat=100,
    rounds=1,
    warmup=False,
    handshakes=(1, 10),
    fanout_deflate={"gws": (20,), "floor": (20,), "websockets": (20,)},
)


@dataclass
class Job:
    """One measurement: a client on a workload (and C for fanout)."""

    workload: str
    client: str
    c: int = 0

    @property
    def key(self) -> str:
        return f"{self.workload}/{self.client}" + (f"/C={self.c}" if self.c else "")


@dataclass
class Server:
    """An echo server subprocess with a plain and a deflate listener."""

    kind: str
    proc: subprocess.Popen  # type: ignore[type-arg]
    plain: int
    deflate: int
    tls: Optional[int] = None
    info: Dict[str, Any] = field(default_factory=dict)

    def url(self, workload: str) -> str:
        if workload in TLS_WORKLOADS:
            return f"wss://127.0.0.1:{self.tls}/"
        port = (
            self.deflate if workload in ("deflate", "deflate-bin", "fanout-deflate") else self.plain
        )
        return f"ws://127.0.0.1:{port}/"

    def stop(self) -> None:
        """Terminate the server, bounded in time."""
        if self.proc.poll() is not None:
            return
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class SetupError(Exception):
    """The benchmark cannot start (no Node, npm failed, gws missing...)."""


# -- environment ------------------------------------------------------------------


def client_env() -> Dict[str, str]:
    """Environment for subprocesses: the work tree's gws comes first on sys.path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def dist_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def gws_version() -> Dict[str, Any]:
    """gws version and git commit of the work tree (read-only git calls)."""
    info: Dict[str, Any] = {"version": None, "commit": None, "dirty": None}
    sys.path.insert(0, str(REPO))
    try:
        import gws

        info["version"] = getattr(gws, "__version__", None)
        info["speedups"] = importlib.util.find_spec("gws._speedups") is not None
    except Exception as exc:  # noqa: BLE001 - reported, not fatal here
        info["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        sys.path.remove(str(REPO))
    git = shutil.which("git")
    if git and (REPO / ".git").exists():
        try:
            out = subprocess.run(
                [git, "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            info["commit"] = out.stdout.strip() or None
            out = subprocess.run(
                [git, "-C", str(REPO), "status", "--porcelain", "--", "gws"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            info["dirty"] = bool(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def machine_info() -> Dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or None
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": mem,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "loadavg_start": loadavg(),
    }


def loadavg() -> Optional[List[float]]:
    """1, 5 and 15 minute load averages (other work on the machine skews results)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> Dict[str, Any]:
    return {
        "python": platform.python_version(),
        "gevent": dist_version("gevent"),
        "greenlet": dist_version("greenlet"),
        "gws": gws_version(),
        "websocket-client": dist_version("websocket-client"),
        "wsaccel": dist_version("wsaccel"),
        "websockets": dist_version("websockets"),
    }


# -- servers -------------------------------------------------------------------------


def ensure_node_ws(scratch: Path) -> Path:
    """Install ws + bufferutil into ``scratch`` with npm unless present; return node_modules."""
    modules = scratch / "node_modules"
    if (modules / "ws" / "package.json").exists() and (
        modules / "bufferutil" / "package.json"
    ).exists():
        return modules
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        raise SetupError("--server node needs node and npm on PATH (or use --server gws)")
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"installing ws + bufferutil into {scratch} ...", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(scratch),
                "--no-audit",
                "--no-fund",
                "ws",
                "bufferutil",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        raise SetupError("npm install timed out after 300 s") from None
    if proc.returncode != 0 or not (modules / "ws" / "package.json").exists():
        raise SetupError(f"npm install failed:\n{proc.stderr[-2000:]}")
    return modules


def read_line(proc: subprocess.Popen, timeout: float) -> str:  # type: ignore[type-arg]
    """First stdout line of a starting server, within ``timeout`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    data = b""
    fd = proc.stdout.fileno()
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SetupError("server did not report its ports in time")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise SetupError(f"server exited with code {proc.wait(5)}")
            data += chunk
    return data.split(b"\n", 1)[0].decode()


@dataclass
class Certs:
    """A trustme CA and a server certificate for 127.0.0.1, as PEM files."""

    ca: Path
    cert: Path
    key: Path


def make_certs(out: Path) -> Optional[Certs]:
    """Write a throwaway CA and a 127.0.0.1 certificate into ``out`` (None without trustme)."""
    try:
        import trustme
    except ImportError:
        return None
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    certs = Certs(out / "bench-ca.pem", out / "bench-server.pem", out / "bench-server.key")
    ca.cert_pem.write_to_path(str(certs.ca))
    server.private_key_pem.write_to_path(str(certs.key))
    with certs.cert.open("wb") as fh:
        for blob in server.cert_chain_pems:
            fh.write(blob.bytes())
    return certs


def start_server(kind: str, scratch: Path, log_path: Path, certs: Optional[Certs] = None) -> Server:
    """Start the echo server subprocess on free 127.0.0.1 ports."""
    env = client_env()
    if certs is not None:
        env["GWS_BENCH_CERT"] = str(certs.cert)
        env["GWS_BENCH_KEY"] = str(certs.key)
    if kind == "node":
        modules = ensure_node_ws(scratch)
        env["NODE_PATH"] = str(modules)
        cmd = [shutil.which("node") or "node", str(BENCH / "echo_server.js")]
    else:
        if not installed("gevent"):
            raise SetupError("--server gws needs gevent")
        cmd = [sys.executable, str(BENCH / "gws_server.py")]
    log = log_path.open("ab")
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=str(BENCH)
    )
    log.close()
    try:
        info = json.loads(read_line(proc, 30.0))
    except (SetupError, ValueError) as exc:
        proc.kill()
        proc.wait(5)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise SetupError(f"{kind} echo server failed to start: {exc}\n{tail}") from None
    tls = info.pop("tls", None)
    return Server(
        kind,
        proc,
        int(info.pop("plain")),
        int(info.pop("deflate")),
        int(tls) if tls else None,
        info,
    )


def set_affinity(pid: int, cpus: Optional[Sequence[int]]) -> bool:
    """Pin every thread of ``pid`` to ``cpus`` (None: all CPUs). True on success."""
    allowed = sorted(os.sched_getaffinity(0)) if cpus is None else list(cpus)
    taskset = shutil.which("taskset")
    if taskset:
        spec = ",".join(str(c) for c in allowed)
        proc = subprocess.run(
            [taskset, "-a", "-p", "-c", spec, str(pid)], capture_output=True, timeout=10
        )
        return proc.returncode == 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), allowed)
    except OSError:
        return False
    return True


# -- running clients -----------------------------------------------------------------


def client_command(
    job: Job, url: str, cfg: Config, pin: bool, ca: Optional[Path] = None
) -> List[str]:
    cmd = [sys.executable, str(CLIENTS_PY), "--client", job.client, "--workload", job.workload]
    cmd += ["--url", url]
    if ca is not None:
        cmd += ["--ca", str(ca)]
    if job.workload in FANOUTS:
        cmd += ["--c", str(job.c), "--heartbeat", str(cfg.heartbeat)]
        cmd += ["--max-time", str(cfg.fanout_max_time)]
    elif job.workload in HANDSHAKES:
        cmd += ["--c", str(job.c), "--n", str(cfg.n[job.workload])]
        cmd += ["--min-time", str(cfg.min_time), "--max-time", str(cfg.max_time)]
    else:
        cmd += ["--n", str(cfg.n[job.workload]), "--min-time", str(cfg.min_time)]
        cmd += ["--max-time", str(cfg.max_time)]
    if pin:
        taskset = shutil.which("taskset")
        if taskset:
            cmd = [taskset, "-c", "0", *cmd]
    return cmd


def run_job(
    job: Job, server: Server, cfg: Config, pin: bool, rnd: int, ca: Optional[Path] = None
) -> Dict[str, Any]:
    """Run one client subprocess; return its result (or an error record)."""
    if job.workload in TLS_WORKLOADS and (server.tls is None or ca is None):
        base = {"workload": job.workload, "client": job.client, "round": rnd}
        return {**base, **({"c": job.c} if job.c else {}), "skipped": "no TLS (trustme missing)"}
    cmd = client_command(job, server.url(job.workload), cfg, pin, ca)
    max_time = cfg.fanout_max_time if job.workload in FANOUTS else cfg.max_time
    limit = max_time * 2 + 60
    base: Dict[str, Any] = {"workload": job.workload, "client": job.client, "round": rnd}
    if job.c:
        base["c"] = job.c
    preexec = None
    if pin and not shutil.which("taskset"):

        def preexec() -> None:
            os.sched_setaffinity(0, {0})

    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=limit, env=client_env(), preexec_fn=preexec
        )
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out after {limit:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        return {**base, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    result = json.loads(lines[-1])
    result.update(base)
    result["pinned"] = pin
    if proc.returncode != 0 and "error" not in result:
        result["error"] = f"exit {proc.returncode}"
    return result


def plan(cfg: Config, clients: Sequence[str], workloads: Sequence[str]) -> Dict[str, List[Job]]:
    """Jobs per workload, in a fixed base order (rotated per round)."""
    jobs: Dict[str, List[Job]] = {}
    for workload in workloads:
        if workload in FANOUTS:
            sizes = cfg.fanout if workload == "fanout" else cfg.fanout_deflate
            jobs[workload] = [
                Job(workload, client, c) for client in clients for c in sizes.get(client, ())
            ]
        elif workload in HANDSHAKES:
            jobs[workload] = [
                Job(workload, client, c) for c in cfg.handshakes for client in clients
            ]
        else:
            jobs[workload] = [Job(workload, client) for client in clients]
    return jobs


def static_skip(job: Job) -> Optional[str]:
    reason = STATIC_SKIPS.get((job.workload, job.client))
    if reason:
        return reason
    missing = [m for m in REQUIRES.get(job.client, ()) if not installed(m)]
    if missing:
        return "not installed (" + ", ".join(missing) + ")"
    return None


def warm_up(server: Server, cfg: Config) -> None:
    """Exercise the server's hot paths (JIT) before anything is measured."""
    warm = Config(
        n={**cfg.n, "rtt": 5000, "bulk": 50, "text": 200, "deflate": 200},
        min_time=0.0,
        max_time=20.0,
        fanout={},
        fanout_max_time=20.0,
        heartbeat=cfg.heartbeat,
        rounds=1,
        warmup=False,
    )
    for workload in ("rtt", "bulk", "text"):
        run_job(Job(workload, "floor"), server, warm, False, 0)
    for client in ("gws", "websockets"):
        if not static_skip(Job("deflate", client)):
            run_job(Job("deflate", client), server, warm, False, 0)


def run_all(
    args: argparse.Namespace,
    cfg: Config,
    server: Server,
    jobs: Dict[str, List[Job]],
    ca: Optional[Path] = None,
) -> List[Dict[str, Any]]:
    """All rounds; within a round each workload's clients are rotated round-robin."""
    results: List[Dict[str, Any]] = []
    can_pin = not args.no_pin and (os.cpu_count() or 1) > 1
    for rnd in range(1, cfg.rounds + 1):
        for workload, wjobs in jobs.items():
            shift = (rnd - 1) % max(1, len(wjobs))
            order = wjobs[shift:] + wjobs[:shift]
            pin = can_pin and workload in PINNED
            if pin:
                pin = set_affinity(server.proc.pid, [0])
            try:
                for job in order:
                    reason = static_skip(job)
                    if reason:
                        if rnd == 1:
                            rec = {"workload": workload, "client": job.client, "round": rnd}
                            if job.c:
                                rec["c"] = job.c
                            results.append({**rec, "skipped": reason})
                        continue
                    t0 = time.monotonic()
                    res = run_job(job, server, cfg, pin, rnd, ca)
                    results.append(res)
                    print(
                        f"[round {rnd}/{cfg.rounds}] {job.key:<40} {brief(res)}"
                        f"  ({time.monotonic() - t0:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                if pin:
                    set_affinity(server.proc.pid, None)
    return results


def brief(res: Dict[str, Any]) -> str:
    if "error" in res:
        return "ERROR " + str(res["error"])[:200]
    if "skipped" in res:
        return "skipped: " + str(res["skipped"])
    if res["workload"] in FANOUTS:
        return (
            f"wall {res['wall_s']:.2f} s, peak RSS {res['peak_rss_kib'] / 1024:.1f} MiB, "
            f"{res['rss_per_conn_kib']:.1f} KiB/conn"
        )
    return f"{res['rate']:,.1f} {res['unit']}, {res['cpu_per_op']:.2f} {res['cpu_unit']}"


def run_thread_mode(server: Server, cfg: Config, quick: bool) -> Dict[str, Any]:
    """Run ``benchmarks/thread_mode.py`` (gws thread mode vs greenlets vs threads).

    The script is called as ``thread_mode.py --url WS_URL --rounds N [--quick]``
    and may print JSON lines; the last one is kept, and a ``markdown`` field
    (or any non-JSON stdout) is shown in the results.
    """
    cmd = [sys.executable, str(THREAD_MODE_PY), "--url", server.url("rtt")]
    cmd += ["--rounds", str(cfg.rounds)] + (["--quick"] if quick else [])
    print("running benchmarks/thread_mode.py ...", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=900, env=client_env(), cwd=str(REPO)
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    out_lines = proc.stdout.splitlines()
    records = []
    for line in out_lines:
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    result: Dict[str, Any] = {"returncode": proc.returncode, "command": cmd[1:]}
    if records:
        result.update(records[-1] if isinstance(records[-1], dict) else {"data": records[-1]})
    text = "\n".join(line for line in out_lines if not line.startswith("{")).strip()
    if text and "markdown" not in result:
        result["markdown"] = text
    if proc.returncode != 0 and "error" not in result:
        result["error"] = f"exit {proc.returncode}: " + (proc.stderr or "")[-500:]
    return result


# -- summary -------------------------------------------------------------------------


def summarize(results: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Median over rounds per (workload, client, C)."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    order: List[str] = []
    for res in results:
        key = Job(res["workload"], res["client"], res.get("c", 0)).key
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(res)
    summary: Dict[str, Dict[str, Any]] = {}
    for key in order:
        runs = groups[key]
        first = runs[0]
        entry: Dict[str, Any] = {"workload": first["workload"], "client": first["client"]}
        if first.get("c"):
            entry["c"] = first["c"]
        ok = [r for r in runs if "error" not in r and "skipped" not in r]
        errors = [r["error"] for r in runs if "error" in r]
        skipped = [r["skipped"] for r in runs if "skipped" in r]
        if skipped and not ok:
            entry["status"] = "skipped"
            entry["reason"] = skipped[0]
        elif not ok:
            entry["status"] = "error"
            entry["reason"] = errors[0] if errors else "no result"
        else:
            entry["status"] = "ok"
            entry["rounds"] = len(ok)
            if errors:
                entry["errors"] = errors
            metrics = ["rate", "cpu_per_op", "wall_s", "cpu_s"]
            if first["workload"] in FANOUTS:
                metrics += ["peak_rss_kib", "baseline_rss_kib", "rss_per_conn_kib"]
                metrics += ["open_s", "round_trips_s", "close_s"]
            for m in metrics:
                values = [float(r[m]) for r in ok]
                entry[m] = statistics.median(values)
                entry[m + "_range"] = [min(values), max(values)]
            for m in ("unit", "cpu_unit", "model", "heartbeat_ms", "info", "pinned"):
                if m in ok[0]:
                    entry[m] = ok[0][m]
        summary[key] = entry
    return summary


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def value(summary: Dict[str, Dict[str, Any]], key: str, metric: str) -> Optional[float]:
    entry = summary.get(key)
    if not entry or entry.get("status") != "ok":
        return None
    return entry.get(metric)


def compute_ratios(summary: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Optional[float]]]:
    """gws ÷ each peer: throughput ratios (higher is better for gws) for the
    sequential workloads; wall-time and RSS-per-connection ratios (lower is
    better for gws) for fanout at the same C."""
    out: Dict[str, Dict[str, Optional[float]]] = {}
    for entry in summary.values():
        workload, client = entry["workload"], entry["client"]
        if client == "gws":
            continue
        if workload in FANOUTS:
            key = Job(workload, client, entry["c"]).key
            gkey = Job(workload, "gws", entry["c"]).key
            out[key] = {
                "wall": ratio(value(summary, gkey, "wall_s"), value(summary, key, "wall_s")),
                "rss_per_conn": ratio(
                    value(summary, gkey, "rss_per_conn_kib"),
                    value(summary, key, "rss_per_conn_kib"),
                ),
            }
        else:
            key = Job(workload, client, entry.get("c", 0)).key
            gkey = Job(workload, "gws", entry.get("c", 0)).key
            out[key] = {
                "rate": ratio(value(summary, gkey, "rate"), value(summary, key, "rate")),
                "cpu": ratio(value(summary, gkey, "cpu_per_op"), value(summary, key, "cpu_per_op")),
            }
    return out


def check_targets(
    summary: Dict[str, Dict[str, Any]], ratios: Dict[str, Dict[str, Optional[float]]], c_max: int
) -> List[Dict[str, Any]]:
    """The targets of issue 14 for gws, each with the measured figure and pass/fail.

    Ratios are gws ÷ peer: throughput ratios want to be high, CPU, wall and
    RSS ratios low.
    """

    def r(workload: str, peer: str, metric: str, c: int = 0) -> Optional[float]:
        return ratios.get(Job(workload, peer, c).key, {}).get(metric)

    fan_c = max((e["c"] for e in summary.values() if e["workload"] == "fanout-deflate"), default=0)
    rows: List[Tuple[str, Optional[float], float, str]] = [
        ("rtt: gws ≥ 0.95× floor, speed", r("rtt", "floor", "rate"), 0.95, ">="),
        ("rtt: gws CPU/round trip ≤ 1.05× floor", r("rtt", "floor", "cpu"), 1.05, "<="),
        ("bulk: gws ≥ 0.9× floor, speed", r("bulk", "floor", "rate"), 0.9, ">="),
        ("bulk: gws CPU/MiB ≤ 1.25× floor", r("bulk", "floor", "cpu"), 1.25, "<="),
        ("text: gws ≥ 0.95× floor, speed", r("text", "floor", "rate"), 0.95, ">="),
        ("text: gws CPU/MiB ≤ 1.2× floor", r("text", "floor", "cpu"), 1.2, "<="),
        ("deflate: gws ≥ 1.5× websockets, speed", r("deflate", "websockets", "rate"), 1.5, ">="),
        (
            "deflate: gws CPU/MiB ≤ 1/1.5 of websockets'",
            r("deflate", "websockets", "cpu"),
            1 / 1.5,
            "<=",
        ),
        (
            "deflate-bin: gws CPU/MiB ≤ 3× floor's (no compression at all)",
            r("deflate-bin", "floor", "cpu"),
            3.0,
            "<=",
        ),
        (
            f"fanout C={c_max:,}: gws RSS/conn ≤ 12 KiB",
            value(summary, Job("fanout", "gws", c_max).key, "rss_per_conn_kib"),
            12.0,
            "<=",
        ),
        (
            f"fanout C={c_max:,}: gws wall ≤ 1.2× floor",
            r("fanout", "floor", "wall", c_max),
            1.2,
            "<=",
        ),
        (
            f"fanout-deflate C={fan_c:,}: gws RSS/conn ≤ 64 KiB",
            value(summary, Job("fanout-deflate", "gws", fan_c).key, "rss_per_conn_kib"),
            64.0,
            "<=",
        ),
    ]
    for workload in HANDSHAKES:
        for c in sorted({e.get("c", 0) for e in summary.values() if e["workload"] == workload}):
            rows.append(
                (
                    f"{workload} C={c}: gws ≥ 1.5× websockets",
                    r(workload, "websockets", "rate", c),
                    1.5,
                    ">=",
                )
            )
    for workload in ("wss-rtt", "wss-bulk"):
        for peer in ("websockets", "websocket-client"):
            rows.append((f"{workload}: gws ≥ 1.0× {peer}", r(workload, peer, "rate"), 1.0, ">="))
    targets = []
    for name, measured, limit, op in rows:
        if measured is None:
            ok = None
        elif op == ">=":
            ok = measured >= limit
        else:
            ok = measured <= limit
        targets.append({"target": name, "measured": measured, "limit": limit, "op": op, "pass": ok})
    return targets


# -- markdown --------------------------------------------------------------------------


def fmt(x: Optional[float], digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def fmt_load(load: Optional[Sequence[float]]) -> str:
    return "unknown" if not load else " / ".join(f"{x:.2f}" for x in load)


def fmt_ratio(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.2f}×"


def fmt_spread(entry: Dict[str, Any], metric: str, digits: int) -> str:
    """``min–max`` over rounds, and the spread as a share of the median."""
    lo, hi = entry.get(metric + "_range", [None, None])
    med = entry.get(metric)
    if lo is None or hi is None or not med or entry.get("rounds", 1) < 2:
        return ""
    return f"{lo:,.{digits}f}–{hi:,.{digits}f} (±{(hi - lo) / 2 / med * 100:.0f}%)"


def status_cell(entry: Dict[str, Any]) -> str:
    reason = str(entry.get("reason", "")).replace("|", "/")[:120]
    return f"{entry['status']}: {reason}"


def markdown(report: Dict[str, Any]) -> str:
    """The results as markdown: header, one table per workload, targets."""
    meta = report["meta"]
    summary: Dict[str, Dict[str, Any]] = report["summary"]
    ratios: Dict[str, Dict[str, Optional[float]]] = report["ratios"]
    m, v, srv = meta["machine"], meta["versions"], meta["server"]
    g = v["gws"]
    gws_desc = f"gws {g.get('version')}"
    if g.get("commit"):
        gws_desc += f" (git {g['commit']}{', modified' if g.get('dirty') else ''})"
    if "speedups" in g:
        gws_desc += " with its C speedups" if g["speedups"] else " without C speedups"
    if srv["kind"] == "node":
        server_desc = (
            f"Node {srv.get('node')} `ws` {srv.get('ws')} + `bufferutil` "
            f"{srv.get('bufferutil') or 'missing'}"
        )
    else:
        server_desc = f"gws {srv.get('gws')} gevent server (`gws.serve(gws.echo)`)"
    lines = [
        f"Measured {meta['date']} with `{meta['command']}`: median of {meta['rounds']} "
        f"round(s), clients alternated round-robin in each round.",
        "",
        f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_gib']} GiB, Linux {m['kernel']}; "
        f"load average {fmt_load(m.get('loadavg_start'))} at the start, "
        f"{fmt_load(m.get('loadavg_end'))} at the end",
        f"- Server: {server_desc}, on 127.0.0.1, compression off except for `deflate`",
        f"- Python {v['python']}, gevent {v['gevent']}, greenlet {v['greenlet']}, {gws_desc}, "
        f"websocket-client {v['websocket-client'] or 'not installed'}, wsaccel "
        f"{v['wsaccel'] or 'not installed'}, websockets {v['websockets'] or 'not installed'}",
        "- `gws ÷ client`: gws's figure divided by that client's; above 1.00× gws is faster "
        "(throughput), below 1.00× gws uses less (CPU per operation, wall time, memory).",
        "",
    ]
    for workload in (*SEQUENTIAL, *HANDSHAKES):
        entries = [e for e in summary.values() if e["workload"] == workload]
        if not entries:
            continue
        title = TITLES[workload]
        if workload in PINNED and any(e.get("pinned") for e in entries):
            title += "; client and server pinned to CPU 0"
        if workload in HANDSHAKES:
            unit, cpu_unit, digits = "handshakes/s", "client CPU ms/handshake", 0
        elif workload in PINNED:
            unit, cpu_unit, digits = "round trips/s", "client CPU µs/round trip", 0
        else:
            unit, cpu_unit, digits = "MiB/s", "client CPU ms/MiB", 1
        lines += [f"### {title}", ""]
        if workload in HANDSHAKES:
            lines += [
                "C = handshakes in flight: gws and the floor run C greenlets, "
                "websocket-client and websockets C threads; each opens a connection, "
                "closes it (close handshake), repeats.",
                "",
            ]
        lines.append(
            f"| client | C | {unit} | spread over rounds | {cpu_unit} | gws ÷ client, speed "
            f"| gws ÷ client, CPU | previous ({unit}) |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for e in entries:
            ref = REFERENCE.get((workload, e["client"]))
            c_cell = fmt(e.get("c")) if e.get("c") else ""
            if e["status"] != "ok":
                lines.append(
                    f"| {e['client']} | {c_cell} | {status_cell(e)} | | | | | {fmt(ref, 1)} |"
                )
                continue
            r = ratios.get(Job(workload, e["client"], e.get("c", 0)).key, {})
            cpu_digits = 3 if workload in HANDSHAKES else 2
            lines.append(
                f"| {e['client']} | {c_cell} | {fmt(e['rate'], digits)} "
                f"| {fmt_spread(e, 'rate', digits)} | {fmt(e['cpu_per_op'], cpu_digits)} "
                f"| {'' if e['client'] == 'gws' else fmt_ratio(r.get('rate'))} "
                f"| {'' if e['client'] == 'gws' else fmt_ratio(r.get('cpu'))} "
                f"| {fmt(ref, digits) if ref else ''} |"
            )
        lines.append("")
    for fan_workload in FANOUTS:
        lines += fanout_markdown(report, fan_workload)
    thread_mode = report.get("thread_mode")
    if thread_mode:
        lines += ["### thread mode (benchmarks/thread_mode.py)", ""]
        if thread_mode.get("markdown"):
            lines += [str(thread_mode["markdown"]).rstrip(), ""]
        elif thread_mode.get("error"):
            lines += [f"error: {thread_mode['error']}", ""]
    lines += ["### Targets for gws", "", "| target | measured | met |", "|---|---:|:---:|"]
    for t in report["targets"]:
        unit = " KiB" if "KiB" in t["target"] else "×"
        measured = "–" if t["measured"] is None else f"{t['measured']:.2f}{unit}"
        met = {True: "yes", False: "**no**", None: "n/a"}[t["pass"]]
        lines.append(f"| {t['target']} | {measured} | {met} |")
    lines.append("")
    return "\n".join(lines)


def fanout_markdown(report: Dict[str, Any], workload: str) -> List[str]:
    """The table of one fanout workload (empty when it did not run)."""
    summary: Dict[str, Dict[str, Any]] = report["summary"]
    ratios: Dict[str, Dict[str, Optional[float]]] = report["ratios"]
    lines: List[str] = []
    fan = [e for e in summary.values() if e["workload"] == workload]
    if fan:
        hb = report["config"]["heartbeat_ms"]
        lines += [
            f"### {TITLES[workload]}",
            "",
            f"gws: greenlets, `heartbeat={hb}` ms; floor: greenlets and raw gevent sockets, no "
            f"heartbeat; websocket-client: one thread per connection, no heartbeat (not supported "
            f"by `create_connection`); websockets: one thread per connection plus the library's "
            f"own reader and keepalive threads, `ping_interval={hb / 1000:g}` s. At most "
            f"200 handshakes in flight; all connections are open before the round trips "
            f"start and stay open until all are done. Peak RSS is the client's VmHWM; RSS "
            f"per connection = (peak RSS − RSS before opening connections) ÷ C.",
            "",
            "| client | C | wall s | open / round trips / close s | peak RSS MiB | RSS/conn KiB "
            "| CPU ms/conn | gws ÷ client, wall | gws ÷ client, RSS/conn "
            "| previous RSS/conn KiB (C=1,000) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for e in fan:
            ref = REFERENCE.get((workload, e["client"])) if e.get("c") == 1000 else None
            if e["status"] != "ok":
                lines.append(
                    f"| {e['client']} | {fmt(e.get('c'))} | {status_cell(e)} "
                    f"| | | | | | | {fmt(ref, 1) if ref else ''} |"
                )
                continue
            r = ratios.get(Job(workload, e["client"], e["c"]).key, {})
            is_gws = e["client"] == "gws"
            lines.append(
                f"| {e['client']} | {fmt(e['c'])} | {fmt(e['wall_s'], 2)} "
                f"| {fmt(e.get('open_s'), 2)} / {fmt(e.get('round_trips_s'), 2)} / "
                f"{fmt(e.get('close_s'), 2)} "
                f"| {fmt(e['peak_rss_kib'] / 1024, 1)} | {fmt(e['rss_per_conn_kib'], 1)} "
                f"| {fmt(e['cpu_per_op'], 2)} | {'' if is_gws else fmt_ratio(r.get('wall'))} "
                f"| {'' if is_gws else fmt_ratio(r.get('rss_per_conn'))} "
                f"| {fmt(ref, 1) if ref else ''} |"
            )
        lines.append("")
    return lines


def write_readme(md: str) -> None:
    """Replace the "Latest results" section of benchmarks/README.md."""
    text = README.read_text(encoding="utf-8") if README.exists() else "# gws benchmarks\n"
    block = f"{README_START}\n{md.rstrip()}\n{README_END}"
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        tail = rest.split(README_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## Latest results\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 round (the test suite)")
    p.add_argument("--rounds", type=int, default=0, help="rounds (default 3; 1 with --quick)")
    p.add_argument(
        "--server",
        choices=("node", "gws"),
        default=None,
        help="echo server (default node; gws with --quick)",
    )
    p.add_argument("--out", type=Path, default=BENCH / "results", help="output directory")
    p.add_argument(
        "--scratch",
        type=Path,
        default=BENCH / ".scratch",
        help="where npm installs ws + bufferutil",
    )
    p.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    p.add_argument(
        "--fanout-c", default="", help="override C for gws and floor fanout, e.g. 1000,10000"
    )
    p.add_argument(
        "--heartbeat", type=int, default=0, help="fanout heartbeat interval, ms (default 5000)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin rtt to CPU 0")
    p.add_argument(
        "--no-thread-mode",
        action="store_true",
        help="skip benchmarks/thread_mode.py even when it exists",
    )
    p.add_argument(
        "--write-readme",
        action="store_true",
        help="also replace the Latest results section of benchmarks/README.md",
    )
    args = p.parse_args(argv)
    for name, allowed in (("clients", CLIENTS), ("workloads", WORKLOADS)):
        chosen = [x for x in getattr(args, name).split(",") if x]
        bad = [x for x in chosen if x not in allowed]
        if bad:
            p.error(f"unknown {name}: {', '.join(bad)}")
        setattr(args, name, chosen)
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    cfg = Config(**{**base.__dict__})
    if args.rounds > 0:
        cfg.rounds = args.rounds
    if args.heartbeat > 0:
        cfg.heartbeat = args.heartbeat
    if args.fanout_c:
        cs = tuple(int(x) for x in args.fanout_c.split(",") if x)
        cfg.fanout = {**cfg.fanout, "gws": cs, "floor": cs}
    server_kind = args.server or ("gws" if args.quick else "node")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile(0)  # to the hard limit: the servers inherit it
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.monotonic()
    meta: Dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command.strip(),
        "rounds": cfg.rounds,
        "quick": args.quick,
        "machine": machine_info(),
        "versions": versions(),
    }
    jobs = plan(cfg, args.clients, args.workloads)
    certs = make_certs(out) if any(w in TLS_WORKLOADS for w in args.workloads) else None
    thread_mode: Optional[Dict[str, Any]] = None
    try:
        server = start_server(server_kind, args.scratch, out / f"server-{server_kind}.log", certs)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        meta["server"] = {"kind": server_kind, **server.info}
        if cfg.warmup:
            print("warming up the server ...", file=sys.stderr, flush=True)
            warm_up(server, cfg)
        results = run_all(args, cfg, server, jobs, certs.ca if certs else None)
        if THREAD_MODE_PY.exists() and not args.no_thread_mode:
            thread_mode = run_thread_mode(server, cfg, args.quick)
    finally:
        server.stop()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["machine"]["loadavg_end"] = loadavg()
    summary = summarize(results)
    ratios = compute_ratios(summary)
    c_max = max(cfg.fanout.get("gws", (0,)) or (0,))
    report: Dict[str, Any] = {
        "meta": meta,
        "config": {
            "n": cfg.n,
            "min_time_s": cfg.min_time,
            "fanout": {k: list(v) for k, v in cfg.fanout.items()},
            "fanout_round_trips": 20,
            "heartbeat_ms": cfg.heartbeat,
        },
        "summary": summary,
        "ratios": ratios,
        "targets": check_targets(summary, ratios, c_max),
        "runs": results,
    }
    if thread_mode is not None:
        report["thread_mode"] = thread_mode
    md = markdown(report)
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(md, encoding="utf-8")
    if args.write_readme:
        write_readme(md)
    print(md)
    print(
        f"wrote {out / 'results.json'} and {out / 'results.md'} in {meta['elapsed_s']} s",
        file=sys.stderr,
    )
    failed = [r for r in results if "error" in r and r["client"] in ("gws", "floor")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
