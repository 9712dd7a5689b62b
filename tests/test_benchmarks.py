"""The benchmark command runs end to end on a tiny N (no timing is asserted).

``benchmarks/run.py --quick --server gws`` needs no Node and no network: it
starts gws's own echo server on loopback and runs every workload once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = (
    "rtt",
    "bulk",
    "text",
    "deflate",
    "deflate-bin",
    "wss-rtt",
    "wss-bulk",
    "handshake",
    "handshake-wss",
    "fanout",
    "fanout-deflate",
)


@pytest.mark.timeout(300)
def test_quick_benchmark_runs_and_reports_every_gws_workload(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--server", "gws"]
        + ["--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["meta"]["quick"] is True
    summary = data["summary"]
    gws_rows = {key.split("/")[0] for key, row in summary.items() if row["client"] == "gws"}
    assert set(WORKLOADS) <= gws_rows, sorted(summary)
    for key, row in summary.items():
        if row["client"] in ("gws", "floor") and row["workload"] != "deflate":
            assert row["status"] == "ok", (key, row)
    for workload in ("handshake", "handshake-wss"):
        cs = {row["c"] for row in summary.values() if row["workload"] == workload}
        assert cs == {1, 10}, (workload, cs)  # sequential and concurrent (quick: 10)
    assert summary["wss-rtt/gws"]["info"]["speedups"] in (True, False)
    # run.py hands thread_mode.py its own server (it once passed an --url the
    # script did not take, and the table showed only the usage error)
    assert "error" not in data["thread_mode"], data["thread_mode"]
    assert data["thread_mode"]["returncode"] == 0
    table = (tmp_path / "results.md").read_text()
    assert "| gws |" in table and "Targets for gws" in table
    assert "wss-bulk" in table and "handshakes/s" in table


@pytest.mark.timeout(200)
def test_fanout_multiprocess_recipe_spreads_connections_over_processes_and_ports() -> None:
    # --nofile 540 plans for a tiny descriptor limit, so even 60 connections
    # need two client processes and two SO_REUSEPORT workers; --ports-n 2 as
    # a 50,000-connection run would use for loopback's ephemeral ports.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fanout_multiprocess.py"), "--c", "60"]
        + ["--nofile", "540", "--ports-n", "2", "--heartbeat", "200", "--hold", "0.6"]
        + ["--max-time", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["opened"] == 60 and result["errors"] == 0, result
    assert result["layout"]["clients"] == 2 and result["layout"]["workers"] == 2
    assert len(result["layout"]["ports"]) == 2
    assert result["server_accepted"] == 60
    assert "connections/s" in proc.stderr


@pytest.mark.timeout(300)
def test_quick_thread_mode_benchmark_reports_every_mode(tmp_path: Path) -> None:
    out = tmp_path / "thread_mode.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "thread_mode.py"), "--quick", "--n", "50"]
        + ["--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["quick"] is True
    assert set(data["median_us"]) == {"greenlet", "thread", "thread-coop", "websocket-client"}
    assert all(value > 0 for value in data["median_us"].values())
    assert "vs greenlet" in proc.stdout and "thread mode / websocket-client" in proc.stdout
