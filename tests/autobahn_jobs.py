"""The three Autobahn suites as background jobs, so they overlap the rest of
the test run instead of adding their 15 minutes to it.

Each suite runs in a subprocess of its own (``python tests/autobahn_jobs.py
KIND OUTDIR``), server and client included, and writes ``verdict.json``
there: ``{"results": {case_id: {...}}, "wall": seconds, "output": text}``.

* ``client``: kosoku's fuzzing server against a gws echo client
  (``autobahn_driver.run_suite``).
* ``serve``: kosoku's fuzzing client against ``gws.serve(gws.echo)`` with
  permessage-deflate (``autobahn_driver.run_client_suite``).
* ``wsgi``: kosoku's fuzzing client against ``gevent.pywsgi.WSGIServer``
  with ``gws.wsgi.WebSocketHandler`` running an echo WSGI app.

``tests/conftest.py`` starts the jobs of the selected Autobahn tests when the
test loop begins and runs those tests last; each test then only waits for
its job (:func:`verdict`) and grades the results strictly. A test run on
its own (``pytest tests/test_autobahn.py``) works the same way. Jobs still
running when the session ends (``-x``, Ctrl-C) are killed with their
process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import autobahn_driver
from autobahn_driver import INFORMATIONAL_BY_DESIGN, TOTAL_CASES

__all__ = ["INFORMATIONAL_BY_DESIGN", "KINDS", "TOTAL_CASES", "Job", "not_ok", "start", "verdict"]

KINDS = ("client", "serve", "wsgi")

_HERE = Path(__file__).resolve().parent


class Job:
    """One suite running in a subprocess (its own session and process group)."""

    def __init__(self, kind: str, outdir: Path) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown Autobahn job {kind!r}")
        self.kind = kind
        self.outdir = outdir
        self.started = time.monotonic()
        outdir.mkdir(parents=True, exist_ok=True)
        self.log = open(outdir / "job.log", "w")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            [sys.executable, str(_HERE / "autobahn_jobs.py"), kind, str(outdir)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=str(_HERE),
            start_new_session=True,
        )

    def wait(self, timeout: float) -> Dict[str, Any]:
        """The job's verdict; RuntimeError if it fails or outlives ``timeout`` (s)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(
                f"Autobahn {self.kind} job did not finish within {timeout:.0f} s:\n{self._log()}"
            ) from None
        finally:
            self.log.close()
        path = self.outdir / "verdict.json"
        if self.proc.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"Autobahn {self.kind} job failed ({self.proc.returncode}):\n{self._log()}"
            )
        verdict: Dict[str, Any] = json.loads(path.read_text())
        return verdict

    def kill(self) -> None:
        """Kill the job and everything it started; idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def _log(self) -> str:
        try:
            return (self.outdir / "job.log").read_text()[-20000:]
        except OSError:
            return ""


_jobs: Dict[str, Job] = {}
_root: Optional[Path] = None


def start(kinds: Iterable[str]) -> None:
    """Start the jobs for ``kinds`` not started yet."""
    global _root
    for kind in kinds:
        if kind in _jobs:
            continue
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="gws-autobahn-"))
        _jobs[kind] = Job(kind, _root / kind)


def verdict(kind: str, timeout: float = 1700) -> Dict[str, Any]:
    """Wait for the ``kind`` job (started now if it was not) and return its verdict."""
    start([kind])
    job = _jobs[kind]
    remaining = timeout - (time.monotonic() - job.started)
    return job.wait(max(remaining, 1.0))


def kill_all() -> None:
    """Kill every job still running and remove the jobs' folder (reports
    included: a failing test has already printed what it needs)."""
    for job in _jobs.values():
        job.kill()
    if _root is not None:
        shutil.rmtree(_root, ignore_errors=True)


def not_ok(results: Dict[str, Any]) -> List[str]:
    """One line per case not OK, allowing INFORMATIONAL for ``INFORMATIONAL_BY_DESIGN``."""
    return autobahn_driver.not_ok(results, INFORMATIONAL_BY_DESIGN)


# -- inside the job's subprocess -----------------------------------------------------------------


def _echo_app(environ: Any, start_response: Any) -> Any:
    """Echo every message with its opcode, as kosoku's fuzzing client expects."""
    import gws

    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket expected\n"]
    for msg in ws.read:
        ok, _ = ws.write(gws.Message(opcode=msg.opcode, payload=msg.payload))
        if not ok:
            break
    return []


def _run(kind: str, outdir: Path) -> Dict[str, Any]:
    import gws

    output = ""
    if kind == "client":
        results, output = autobahn_driver.run_suite(outdir / "reports")
    elif kind == "serve":
        server = gws.serve(gws.echo, "127.0.0.1", 0, headers=[("Server", "gws.serve")])
        try:
            results = autobahn_driver.run_client_suite(
                f"ws://127.0.0.1:{server.server_port}/", "gws.serve", outdir / "reports"
            )
        finally:
            server.stop(timeout=5)
    else:
        from helpers import WSGIServerHandle

        handle = WSGIServerHandle(_echo_app)
        try:
            results = autobahn_driver.run_client_suite(
                handle.url("/"), agent="gws.wsgi", outdir=outdir / "reports"
            )
        finally:
            handle.stop()
    return {"results": results, "output": output}


def main(argv: list) -> int:
    kind, outdir = argv[0], Path(argv[1])
    started = time.monotonic()
    verdict = _run(kind, outdir)
    verdict["wall"] = time.monotonic() - started
    tmp = outdir / "verdict.json.tmp"
    tmp.write_text(json.dumps(verdict))
    tmp.replace(outdir / "verdict.json")
    print(f"autobahn {kind}: {len(verdict['results'])} cases in {verdict['wall']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
