"""The Autobahn TestSuite, server side: all 517 cases of kosoku's fuzzing
client against ``gevent.pywsgi.WSGIServer`` with ``gws.wsgi.WebSocketHandler``
running an echo WSGI app (``autobahn_jobs._echo_app``).

Every case must be OK, for its behavior and for its close; the cases the
suite itself grades INFORMATIONAL (``INFORMATIONAL_BY_DESIGN``) may be
graded so. Server and kosoku run in a background job of their own
(``autobahn_jobs``, kind ``wsgi``), started by conftest.py when the test
loop begins; this test waits for it and grades it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("kosoku", reason="kosoku (Autobahn runner) needs Python >= 3.10")

from autobahn_jobs import TOTAL_CASES, not_ok, verdict  # noqa: E402

AUTOBAHN_JOB = "wsgi"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_autobahn_case_is_ok_against_the_pywsgi_handler() -> None:
    found = verdict(AUTOBAHN_JOB)
    results = found["results"]
    assert len(results) == TOTAL_CASES, f"expected {TOTAL_CASES} cases, got {len(results)}"
    failures = not_ok(results)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        from autobahn_report import table

        wall = found["wall"]
        print(f"\nautobahn (server, gws.wsgi under pywsgi): {wall:.1f} s\n{table(results)}")
    except ImportError:
        print(f"autobahn (server, gws.wsgi): {len(results)} cases in {found['wall']:.1f} s")
    assert not failures, "Autobahn cases not OK:\n" + "\n".join(failures)
