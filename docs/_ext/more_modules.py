"""Document every gws module that no page lists by hand.

Other pages document the public names (``reference/api.rst``) and the core
layers (``reference/internals.rst``, by hand, in reading order). Any other
module of the package, including ones added later, is listed here at build
time (``docs/_build/more_modules.rst``, included by ``internals.rst``), so
that ``:mod:`` references to it resolve and its docstrings are checked. A
module's members that ``gws`` itself exports are left out: the API reference
has them under their public names.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import List

import gws

SKIP = {"gws.__main__"}


def _by_hand(srcdir: Path) -> set[str]:
    names: set[str] = set()
    for page in srcdir.rglob("*.rst"):
        if "_build" in page.parts:
            continue
        text = page.read_text(encoding="utf-8")
        names.update(re.findall(r"^\.\. (?:auto|py:)module:: (gws[\w.]*)\s*$", text, re.M))
    return names


def _elsewhere(module: object, name: str, exported: set[int]) -> bool:
    """Whether ``name`` is documented elsewhere: exported by gws, or a class
    or function re-exported from the module that defines it."""
    obj = getattr(module, name, None)
    if id(obj) in exported:
        return True
    home = getattr(obj, "__module__", None)
    return callable(obj) and isinstance(home, str) and home != getattr(module, "__name__", None)


def modules_rst(srcdir: Path) -> str:
    done = _by_hand(srcdir)
    exported = {id(getattr(gws, name)) for name in gws.__all__} | {id(gws.open)}
    out: List[str] = []
    for info in sorted(pkgutil.walk_packages(gws.__path__, "gws."), key=lambda i: i.name):
        name = info.name
        if name in done or name in SKIP or any(p.startswith("_") for p in name.split(".")[1:]):
            continue
        module = importlib.import_module(name)
        public = getattr(module, "__all__", None) or [
            n for n in vars(module) if not n.startswith("_")
        ]
        skip = sorted(n for n in public if _elsewhere(module, n, exported))
        out.append(f".. automodule:: {name}")
        if name.count(".") == 1 and getattr(gws, name[4:], module) is not module:
            # gws exports a function of the module's name (gws.broadcast):
            # its target is the function's, so the module is not indexed.
            out.append("   :no-index:")
        if skip:
            out.append(f"   :exclude-members: {', '.join(skip)}")
        out.append("")
    return "\n".join(out) + "\n" if out else "(none)\n"


def write(app) -> None:  # type: ignore[no-untyped-def]
    srcdir = Path(app.srcdir)
    target = srcdir / "_build" / "more_modules.rst"
    target.parent.mkdir(parents=True, exist_ok=True)
    rst = modules_rst(srcdir)
    if not target.exists() or target.read_text(encoding="utf-8") != rst:
        target.write_text(rst, encoding="utf-8")


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("builder-inited", write)
    return {"parallel_read_safe": True}
