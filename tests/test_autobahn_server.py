"""The Autobahn TestSuite as a client (kosoku's fuzzing client, all 517 cases)
against ``gws.serve`` running ``gws.echo`` with permessage-deflate.

Strict: every case must be OK, for its behavior and for its close. Only the
cases the suite itself grades INFORMATIONAL by design (they probe what RFC
6455 leaves open) may be graded so. The server runs in this process's hub;
kosoku runs in a subprocess (see ``autobahn_driver.run_client_suite``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("kosoku", reason="kosoku (Autobahn runner) needs Python >= 3.10")

from autobahn_driver import (  # noqa: E402
    INFORMATIONAL_BY_DESIGN,
    TOTAL_CASES,
    not_ok,
    run_client_suite,
)

import gws  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_autobahn_case_is_ok_against_gws_serve(tmp_path: Path) -> None:
    server = gws.serve(gws.echo, "127.0.0.1", 0, headers=[("Server", "gws.serve")])
    try:
        started = time.monotonic()
        results = run_client_suite(
            f"ws://127.0.0.1:{server.server_port}/", "gws.serve", tmp_path / "autobahn-server"
        )
        wall = time.monotonic() - started
    finally:
        server.stop(timeout=5)
    assert len(results) == TOTAL_CASES, f"expected {TOTAL_CASES} cases, got {len(results)}"
    deflate = [r for r in results if r.split(".")[0] in ("12", "13")]
    assert len(deflate) == 216  # the permessage-deflate groups ran, and passed below
    failures = not_ok(results, INFORMATIONAL_BY_DESIGN)
    print(f"autobahn (gws as the server): {len(results)} cases in {wall:.1f} s")
    assert not failures, "Autobahn cases not OK:\n" + "\n".join(failures)
