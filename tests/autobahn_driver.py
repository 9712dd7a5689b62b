"""Drive the Autobahn TestSuite (kosoku) in both directions.

* Client side: :func:`run_suite` runs kosoku's fuzzing *server* and drives
  it with a gws echo client (``tests/test_autobahn.py``).
* Server side: :func:`run_client_suite` runs kosoku's fuzzing *client*
  against any WebSocket echo server URL (``tests/test_autobahn_server.py``
  for ``gws.serve``; the pywsgi handler's test too).

``benchmarks/autobahn_report.py`` prints either as a table.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import gws

AGENT = "gws"
TOTAL_CASES = 517
# Cases the suite itself grades INFORMATIONAL (they probe what RFC 6455 leaves open).
INFORMATIONAL_BY_DESIGN = frozenset(("7.1.6", "7.13.1", "7.13.2"))

# Offers matching each 13.x group's client offer, (requestNoContextTakeover,
# requestMaxWindowBits) in Autobahn's terms = server_no_context_takeover and
# server_max_window_bits; client_* parameters let the server's accept apply.
_BOTH = {"client_no_context_takeover": True, "client_max_window_bits": True}
OFFERS_13: Dict[int, Any] = {
    1: "deflate",
    2: {"server_no_context_takeover": True, **_BOTH},
    3: {"server_max_window_bits": 9, "client_max_window_bits": True},
    4: {"server_max_window_bits": 15, "client_max_window_bits": True},
    5: {"server_no_context_takeover": True, "server_max_window_bits": 9, **_BOTH},
    6: {"server_no_context_takeover": True, "server_max_window_bits": 15, **_BOTH},
    7: {"server_no_context_takeover": True, "server_max_window_bits": 9, **_BOTH},
}


def offer_for(case_id: str) -> Any:
    """The compression option a case needs (default offer outside 13.x)."""
    parts = case_id.split(".")
    if parts[0] == "13":
        return OFFERS_13[int(parts[1])]
    return "deflate"


def case_ids(include: Optional[List[str]] = None) -> List[str]:
    """Every case id kosoku serves, in its serving order (sorted numerically).

    kosoku has no /getCaseInfo, so the ids come from its own case index.
    """
    import fnmatch
    import re

    import kosoku
    from kosoku._caseindex import build_index, initialize_shims

    initialize_shims()
    folder = Path(kosoku.__file__).parent / "cases"
    static = sorted(p.stem for p in folder.glob("case*.py") if re.fullmatch(r"case[0-9_]+", p.stem))
    generators = [
        ("case6_x_x", "Case6_X_X"),
        ("case7_7_X", "Case7_7_X"),
        ("case7_9_X", "Case7_9_X"),
        ("case9_7_X", "Case9_7_X"),
        ("case9_7_X", "Case9_8_X"),
        ("case12_x_x", "Case12_X_X"),
        ("case12_x_x", "Case13_X_X"),
    ]
    cases, _ = build_index(static, generators)
    ids = list(cases)
    if include:
        ids = [i for i in ids if any(fnmatch.fnmatchcase(i, pat) for pat in include)]
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(port: int, path: str) -> Any:
    res, read, write = gws.connect(f"ws://127.0.0.1:{port}{path}", timeout=10000)
    if not res:
        raise RuntimeError(f"{path}: {read}")
    msg = read()
    write(None)
    if msg is None:
        raise RuntimeError(f"{path}: no reply ({read.error})")
    return json.loads(msg.payload)


def run_case(port: int, index: int, case_id: str) -> None:
    """Echo every message of one case until the server closes."""
    res, read, write = gws.connect(
        f"ws://127.0.0.1:{port}/runCase?case={index}&agent={AGENT}",
        compression=offer_for(case_id),
        timeout=10000,
    )
    if not res:
        return
    for msg in read:
        ok, _ = write(gws.Message(opcode=msg.opcode, payload=msg.payload))
        if not ok:
            break


def start_server(outdir: Path, include: Optional[List[str]] = None) -> Tuple[subprocess.Popen, int]:
    port = free_port()
    exe = Path(sys.executable).with_name("kosoku")
    cmd = [
        str(exe) if exe.exists() else "kosoku",
        "-m",
        "fuzzingserver",
        f"127.0.0.1:{port}",
        "-o",
        str(outdir),
    ]
    for pattern in include or []:
        cmd += ["-i", pattern]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if proc.poll() is not None:
            raise RuntimeError("kosoku exited: " + (proc.stdout.read() if proc.stdout else ""))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("kosoku fuzzing server did not start within 30 s")


def _run_case_args(args: Tuple[int, int, str]) -> None:
    run_case(*args)


def run_suite(
    outdir: Path, include: Optional[List[str]] = None, timeout: float = 1200, workers: int = 2
) -> Tuple[Dict[str, Any], str]:
    """Run every case; return (index.json agent results, server output)."""
    proc, port = start_server(outdir, include)
    try:
        ids = case_ids(include)
        count = int(_get_json(port, "/getCaseCount"))
        if count != len(ids):
            raise RuntimeError(f"kosoku serves {count} cases but its index lists {len(ids)}")
        heavy = []
        for index, case_id in enumerate(ids, 1):
            if case_id.split(".")[0] in ("12", "13") and workers > 1:
                heavy.append((port, index, case_id))
            else:
                run_case(port, index, case_id)
        if heavy:
            # The compression groups are CPU-bound on both sides: spread them
            # over worker processes so the client and kosoku use both cores.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                list(pool.map(_run_case_args, heavy, chunksize=1))
        res, read, write = gws.connect(f"ws://127.0.0.1:{port}/updateReports?agent={AGENT}")
        if res:
            for _ in read:
                pass
        output, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    index_path = outdir / "index.json"
    if not index_path.exists():
        raise RuntimeError("no index.json written; kosoku said:\n" + output)
    data = json.loads(index_path.read_text())
    return data.get(AGENT, data), output


# -- server side: kosoku's fuzzing client against a server URL ---------------------------------

# Runs in a kosoku subprocess: kosoku's fuzzing client is asyncio (with a Rust
# core); in a process of its own it neither shares the GIL nor the loop with
# the server under test, which may be a gevent server in the caller's process.
_FUZZINGCLIENT = r"""
import asyncio, json, sys
from kosoku import FailureError, run_fuzzingclient
from kosoku._report import write_reports

url, outdir, cases, exclude, concurrency = json.loads(sys.argv[1])
try:
    results = asyncio.run(run_fuzzingclient(url, cases or None, exclude or None, concurrency))
except FailureError as failure:
    results = failure.results
write_reports(results, outdir)
summary = {
    r.case_id: {
        "behavior": r.behavior.value,
        "behaviorClose": r.behavior_close.value,
        "remoteCloseCode": r.remote_close_code,
        "duration": r.duration,
        "agent": r.agent,
        "result": r.result,
        "resultClose": r.result_close,
    }
    for r in results
}
with open(outdir + "/results.json", "w") as f:
    json.dump(summary, f, indent=1, sort_keys=True)
print(f"{len(summary)} cases")
"""


def run_client_suite(
    url: str,
    agent: str = AGENT,
    outdir: Optional[Path] = None,
    include: Optional[List[str]] = None,
    exclude: Optional[List[str]] = None,
    parallelism: int = 2,
    timeout: float = 1500,
) -> Dict[str, Any]:
    """Run kosoku's fuzzing client against the echo server at ``url``.

    ``url`` is any WebSocket URL (``ws://127.0.0.1:PORT/``) of a server that
    echoes every message with its opcode (kosoku needs nothing else of it).
    Returns ``{case_id: {"behavior", "behaviorClose", "remoteCloseCode",
    "duration", "agent", "result", "resultClose"}}`` for every case run
    (all 517 unless ``include``/``exclude`` globs such as ``"9.*"`` narrow
    it); ``agent`` names the server in the returned results (kosoku itself
    takes the name from the server's ``Server`` header). Reports (JSON and
    HTML per case, ``index.json``) go to ``outdir`` (a temporary directory
    when None). The wait is gevent-cooperative, so the server may run in
    the caller's own hub; ``timeout`` (s) bounds the run, after which kosoku
    is killed and RuntimeError raised.

    kosoku 0.1.0 has no spec file (``--spec`` says "not implemented yet"):
    its fuzzing client takes the URL, case globs, excludes and a
    parallelism, which is what this passes to ``run_fuzzingclient``.
    """
    import tempfile

    import gevent.subprocess as gsubprocess

    tmp = None
    if outdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="kosoku-")
        outdir = Path(tmp.name)
    outdir.mkdir(parents=True, exist_ok=True)
    args = json.dumps([url, str(outdir), include or [], exclude or [], parallelism])
    proc = gsubprocess.Popen(
        [sys.executable, "-c", _FUZZINGCLIENT, args],
        stdout=gsubprocess.PIPE,
        stderr=gsubprocess.STDOUT,
        text=True,
    )
    try:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except gsubprocess.TimeoutExpired:
            raise RuntimeError(
                f"kosoku's fuzzing client did not finish within {timeout} s"
            ) from None
        path = outdir / "results.json"
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(f"kosoku's fuzzing client failed ({proc.returncode}):\n{output}")
        results: Dict[str, Any] = json.loads(path.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if tmp is not None:
            tmp.cleanup()
    for result in results.values():
        result["agent"] = agent
    return results


def not_ok(results: Dict[str, Any], informational: Any = ()) -> List[str]:
    """One line per case whose behavior or close is not OK (INFORMATIONAL
    is allowed for the case ids in ``informational``), in case order."""
    lines = []
    for case_id in sorted(results, key=lambda c: [int(p) for p in c.split(".")]):
        result = results[case_id]
        allowed = {"OK", "INFORMATIONAL"} if case_id in informational else {"OK"}
        behavior, close = result.get("behavior"), result.get("behaviorClose")
        if behavior not in allowed or close not in allowed:
            lines.append(
                f"case {case_id}: behavior {behavior}, close {close}"
                f" ({result.get('result', '')} / {result.get('resultClose', '')})"
            )
    return lines


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/autobahn")
    t0 = time.monotonic()
    results, text = run_suite(out, sys.argv[2:] or None)
    bad = {
        k: v
        for k, v in results.items()
        if v.get("behavior") != "OK" or v.get("behaviorClose") != "OK"
    }
    print(f"{len(results)} cases in {time.monotonic() - t0:.1f} s; not OK: {len(bad)}")
    for k, v in sorted(bad.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        print(k, v.get("behavior"), v.get("behaviorClose"))
