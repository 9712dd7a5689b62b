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
WORKLOADS = ("rtt", "bulk", "text", "deflate", "fanout")


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
    table = (tmp_path / "results.md").read_text()
    assert "| gws |" in table and "Targets for gws" in table


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
