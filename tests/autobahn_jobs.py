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

``tests/conftest.py`` queues the jobs of the selected Autobahn tests when the
test loop begins (two run at once, at a lower priority than the tests; the
third starts when one ends) and runs those tests last; each test then only
waits for its job (:func:`verdict`) and grades the results strictly. A test run on
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

__all__ = [
    "INFORMATIONAL_BY_DESIGN",
    "KINDS",
    "TOTAL_CASES",
    "Job",
    "not_ok",
    "pump",
    "start",
    "verdict",
]

KINDS = ("client", "serve", "wsgi")
MAX_RUNNING = 2
"""Suites running at once. Three at once on a 2-core machine starved
kosoku's 0.5 s echo windows (case 6.22.18 failed once under a load average
of 12); two keep most of the overlap."""
NICE = 5
"""The jobs' niceness: the tests in the foreground, which wait on short
timers of their own, come first."""
JOB_TIMEOUT = 1500.0
"""Seconds a job may run, counted from its start."""

_HERE = Path(__file__).resolve().parent


def _lower_priority() -> None:
    os.nice(NICE)


class Job:
    """One suite running in a subprocess (its own session and process group)."""

    def __init__(self, kind: str, outdir: Path) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown Autobahn job {kind!r}")
        self.kind = kind
        self.outdir = outdir
        self.started = time.monotonic()
        outdir.mkdir(parents=True, exist_ok=True)
        self.log = open(outdir / "job.log", "w")  # noqa: SIM115 - closed in kill()/verdict()
        self.proc = subprocess.Popen(
            [sys.executable, str(_HERE / "autobahn_jobs.py"), kind, str(outdir)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=str(_HERE),
            start_new_session=True,
            preexec_fn=_lower_priority,
        )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def overdue(self) -> bool:
        return self.running and time.monotonic() - self.started > JOB_TIMEOUT

    def verdict(self) -> Dict[str, Any]:
        """The finished job's verdict; RuntimeError if it failed."""
        self.log.close()
        path = self.outdir / "verdict.json"
        if self.proc.returncode != 0 or not path.exists():
            raise RuntimeError(
                f"Autobahn {self.kind} job failed ({self.proc.returncode}):\n{self._log()}"
            )
        found: Dict[str, Any] = json.loads(path.read_text())
        return found

    def kill(self) -> None:
        """Kill the job and everything it started; idempotent."""
        if self.running:
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
_pending: List[str] = []
_root: Optional[Path] = None


def start(kinds: Iterable[str]) -> None:
    """Queue the jobs for ``kinds`` not queued yet; start what fits (:func:`pump`)."""
    for kind in kinds:
        if kind not in _jobs and kind not in _pending:
            _pending.append(kind)
    pump()


def pump() -> None:
    """Start queued jobs while fewer than ``MAX_RUNNING`` run (conftest.py
    calls this after every test)."""
    global _root
    running = sum(1 for job in _jobs.values() if job.running)
    while _pending and running < MAX_RUNNING:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="gws-autobahn-"))
        kind = _pending.pop(0)
        _jobs[kind] = Job(kind, _root / kind)
        running += 1


def verdict(kind: str) -> Dict[str, Any]:
    """Wait for the ``kind`` job (queued now if it was not) and return its
    verdict; RuntimeError if it fails or runs longer than ``JOB_TIMEOUT``."""
    start([kind])
    while True:
        pump()  # the others go on while this one is waited for
        job = _jobs.get(kind)
        if job is not None and not job.running:
            return job.verdict()
        if job is not None and job.overdue:
            job.kill()
            raise RuntimeError(
                f"Autobahn {kind} job did not finish within {JOB_TIMEOUT:.0f} s:\n{job._log()}"
            )
        time.sleep(1.0)  # between tests: nothing else in this process needs to run


def kill_all() -> None:
    """Kill every job still running and remove the jobs' folder (reports
    included: a failing test has already printed what it needs)."""
    _pending.clear()
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
