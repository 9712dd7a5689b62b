"""The Autobahn TestSuite, server side: all 517 cases of kosoku's fuzzing
client against ``gevent.pywsgi.WSGIServer`` with ``gws.wsgi.WebSocketHandler``
running an echo WSGI app.

Every case must be OK, for its behavior and for its close; the cases the
suite itself grades INFORMATIONAL (``INFORMATIONAL_BY_DESIGN``) may be
graded so. The server runs in this process's hub while kosoku runs as a
subprocess (``autobahn_driver.run_client_suite``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import WSGIServerHandle

import gws

pytest.importorskip("kosoku", reason="kosoku (Autobahn runner) needs Python >= 3.10")

from autobahn_driver import (  # noqa: E402
    INFORMATIONAL_BY_DESIGN,
    TOTAL_CASES,
    not_ok,
    run_client_suite,
)


def echo_app(environ: Any, start_response: Any) -> Any:
    """Echo every message with its opcode, as kosoku's fuzzing client expects."""
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket expected\n"]
    for msg in ws.read:
        ok, _ = ws.write(gws.Message(opcode=msg.opcode, payload=msg.payload))
        if not ok:
            break
    return []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_autobahn_case_is_ok_against_the_pywsgi_handler(tmp_path: Path) -> None:
    server = WSGIServerHandle(echo_app)
    started = time.monotonic()
    try:
        results = run_client_suite(
            server.url("/"), agent="gws.wsgi", outdir=tmp_path / "autobahn-wsgi"
        )
    finally:
        server.stop()
    wall = time.monotonic() - started
    assert len(results) == TOTAL_CASES, f"expected {TOTAL_CASES} cases, got {len(results)}"
    failures = not_ok(results, INFORMATIONAL_BY_DESIGN)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        from autobahn_report import table

        print(f"\nautobahn (server, gws.wsgi under pywsgi): {wall:.1f} s\n{table(results)}")
    except ImportError:
        print(f"autobahn (server, gws.wsgi): {len(results)} cases in {wall:.1f} s")
    assert not failures, "Autobahn cases not OK:\n" + "\n".join(failures)
