"""The Autobahn TestSuite (all 517 cases of kosoku's fuzzing server) against gws.

Every case must be OK, for its behavior and for its close. Cases that the
suite itself grades INFORMATIONAL (they probe what RFC 6455 leaves open) are
listed in ``autobahn_jobs.INFORMATIONAL_BY_DESIGN`` and may be graded so.

The suite runs as a background job (``autobahn_jobs``, started by
conftest.py when the test loop begins), so it overlaps the other tests;
this test waits for it and grades it.
"""

from __future__ import annotations

import pytest

pytest.importorskip("kosoku", reason="kosoku (Autobahn runner) needs Python >= 3.10")

from autobahn_jobs import TOTAL_CASES, not_ok, verdict  # noqa: E402

AUTOBAHN_JOB = "client"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_autobahn_case_is_ok() -> None:
    found = verdict(AUTOBAHN_JOB)
    results = found["results"]
    assert len(results) == TOTAL_CASES, (
        f"expected {TOTAL_CASES} cases, got {len(results)}\n{found['output']}"
    )
    failures = not_ok(results)
    print(f"autobahn: {len(results)} cases in {found['wall']:.1f} s, {len(failures)} not OK")
    assert not failures, "Autobahn cases not OK:\n" + "\n".join(failures)
