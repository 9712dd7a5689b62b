"""The Autobahn TestSuite (all 517 cases of kosoku's fuzzing server) against gws.

Every case must be OK, for its behavior and for its close. Cases that the
suite itself grades INFORMATIONAL (they probe what RFC 6455 leaves open) are
listed in ``INFORMATIONAL_BY_DESIGN`` and may be graded so.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("kosoku", reason="kosoku (Autobahn runner) needs Python >= 3.10")

from autobahn_driver import INFORMATIONAL_BY_DESIGN, TOTAL_CASES, not_ok, run_suite  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_autobahn_case_is_ok(tmp_path: Path) -> None:
    started = time.monotonic()
    results, output = run_suite(tmp_path / "autobahn")
    wall = time.monotonic() - started
    assert len(results) == TOTAL_CASES, (
        f"expected {TOTAL_CASES} cases, got {len(results)}\n{output}"
    )
    failures = not_ok(results, INFORMATIONAL_BY_DESIGN)
    print(f"autobahn: {len(results)} cases in {wall:.1f} s, {len(failures)} not OK")
    assert not failures, "Autobahn cases not OK:\n" + "\n".join(failures)
