"""The Autobahn TestSuite as a client (kosoku's fuzzing client, all 517 cases)
against ``gws.serve`` running ``gws.echo`` with permessage-deflate.

Strict: every case must be OK, for its behavior and for its close. Only the
cases the suite itself grades INFORMATIONAL by design (they probe what RFC
6455 leaves open) may be graded so. Server and kosoku run in a background
job of their own (``autobahn_jobs``, kind ``serve``), started by conftest.py
when the test loop begins; this test waits for it and grades it.
"""

from __future__ import annotations

import pytest

pytest.importorskip("kosoku", reason="kosoku (Autobahn runner) needs Python >= 3.10")

from autobahn_jobs import TOTAL_CASES, not_ok, verdict  # noqa: E402

AUTOBAHN_JOB = "serve"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_autobahn_case_is_ok_against_gws_serve() -> None:
    found = verdict(AUTOBAHN_JOB)
    results = found["results"]
    assert len(results) == TOTAL_CASES, f"expected {TOTAL_CASES} cases, got {len(results)}"
    deflate = [r for r in results if r.split(".")[0] in ("12", "13")]
    assert len(deflate) == 216  # the permessage-deflate groups ran, and passed below
    failures = not_ok(results)
    print(f"autobahn (gws as the server): {len(results)} cases in {found['wall']:.1f} s")
    assert not failures, "Autobahn cases not OK:\n" + "\n".join(failures)
