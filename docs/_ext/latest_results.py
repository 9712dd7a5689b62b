"""Bring benchmarks/README.md's "Latest results" into the docs.

``benchmarks/run.py --write-readme`` rewrites the markdown between the
``latest-results`` markers; this turns that block into reStructuredText at
build time (``docs/_build/latest_results.rst``, included by
``explanation/benchmarks.rst``), so the docs always show the latest run.
It understands the markdown that ``run.py`` writes: ``###`` headings,
paragraphs, ``-`` bullets and pipe tables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

START = "<!-- latest-results:start -->"
END = "<!-- latest-results:end -->"


def _inline(text: str) -> str:
    """Markdown inline code and bold to reStructuredText."""
    text = re.sub(r"`([^`]+)`", r"``\1``", text)
    return text.replace("\\|", "|")


def _table(rows: List[str]) -> List[str]:
    cells = [[_inline(c.strip()) for c in row.strip().strip("|").split("|")] for row in rows]
    header, body = cells[0], [r for r in cells[2:]]
    width = len(header)
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *body]:
        row = (row + [""] * width)[:width]
        out.append("   * - " + (row[0] or "\\ "))
        out.extend("     - " + (cell or "\\ ") for cell in row[1:])
    return [*out, ""]


def markdown_to_rst(markdown: str) -> str:
    lines = markdown.splitlines()
    out: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            out.extend(_table(rows))
            continue
        heading = re.match(r"^#{2,4}\s+(.*)$", line)
        if heading:
            title = _inline(heading.group(1))
            out.extend([title, "~" * len(title), ""])
        else:
            out.append(_inline(line))
        i += 1
    return "\n".join(out) + "\n"


def latest_results(readme: Path) -> str:
    """The RST of README's latest-results block (a note if it has none)."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if START not in text or END not in text:
        return "No benchmark results are recorded in ``benchmarks/README.md``.\n"
    block = text.split(START, 1)[1].split(END, 1)[0]
    return markdown_to_rst(block.strip())


def write(app) -> None:  # type: ignore[no-untyped-def]
    root = Path(app.srcdir).parent
    target = Path(app.srcdir) / "_build" / "latest_results.rst"
    target.parent.mkdir(parents=True, exist_ok=True)
    rst = latest_results(root / "benchmarks" / "README.md")
    if not target.exists() or target.read_text(encoding="utf-8") != rst:
        target.write_text(rst, encoding="utf-8")


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("builder-inited", write)
    return {"parallel_read_safe": True}
