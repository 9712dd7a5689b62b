"""The docs' own machinery: benchmark tables converted from markdown, README.

The site itself is built and its examples run by ``scripts/test``
(``sphinx-build -W -n -b html`` and ``-b doctest``); these tests pin the
pieces that build depends on, so a change to ``benchmarks/README.md`` or
``README.rst`` that would break it fails here with a clear message.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

docutils_core = pytest.importorskip("docutils.core", reason="docutils comes with sphinx")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import latest_results  # noqa: E402


def _rst_problems(text: str) -> list[str]:
    problems: list[str] = []

    class Stream:
        def write(self, s: str) -> None:
            problems.append(s)

    docutils_core.publish_doctree(
        text,
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": Stream()},
    )
    return problems


def test_markdown_tables_headings_and_code_become_rst() -> None:
    md = (
        "Measured with `run.py`.\n\n"
        "### rtt: round trips\n\n"
        "| client | rate | note |\n|---|---:|---|\n"
        "| gws | 25,999 | |\n| floor | 28,465 | **no** |\n"
    )
    rst = latest_results.markdown_to_rst(md)
    assert "Measured with ``run.py``." in rst
    assert "rtt: round trips\n~~~~~~~~~~~~~~~~\n" in rst
    assert ".. list-table::" in rst and "   * - gws\n     - 25,999\n     - \\ \n" in rst
    assert _rst_problems("Title\n=====\n\n" + rst) == []


def test_the_benchmarks_readme_converts_without_rst_warnings() -> None:
    rst = latest_results.latest_results(ROOT / "benchmarks" / "README.md")
    assert ".. list-table::" in rst, "benchmarks/README.md has no latest-results tables"
    assert _rst_problems("Title\n=====\n\n" + rst) == []


def test_a_readme_without_results_gives_a_note(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# nothing measured yet\n")
    assert "No benchmark results" in latest_results.latest_results(tmp_path / "README.md")
    assert "No benchmark results" in latest_results.latest_results(tmp_path / "missing.md")


def test_readme_is_valid_rst_and_links_the_docs_entry_point() -> None:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert _rst_problems(text) == []
    assert "<docs/index.rst>`_" in text
    for page in ("index.rst", "howto/heartbeats.rst", "explanation/benchmarks.rst"):
        assert (ROOT / "docs" / page).is_file(), page


def test_every_option_has_a_row_in_the_options_reference() -> None:
    import inspect

    import gws
    from gws.io import IO_OPTIONS

    page = (ROOT / "docs" / "reference" / "options.rst").read_text(encoding="utf-8")
    rows = set(re.findall(r"^   \* - ``(\w+)``", page, re.M))
    accept = inspect.signature(gws.accept).parameters
    serve = inspect.signature(gws.serve).parameters
    server_options = {
        n
        for n, p in [*accept.items(), *serve.items()]
        if p.kind is p.KEYWORD_ONLY or n in ("host", "port")
    } - {"address"}
    options = set(gws.CONNECT_OPTIONS) | set(IO_OPTIONS) | server_options
    missing = sorted(options - rows)
    assert not missing, f"options without a row in docs/reference/options.rst: {missing}"
