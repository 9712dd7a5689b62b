"""Sphinx configuration for gws's documentation.

Build with ``sphinx-build -E -W -n -b html docs docs/_build/html``; run every
``.. testcode::`` example with ``sphinx-build -E -W -n -b doctest docs
docs/_build/doctest``. Both run in ``scripts/test``.
"""

from __future__ import annotations

import os
import sys

# Document the gws of this work tree even when it is not installed.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sphinx.util import logging as sphinx_logging  # noqa: E402

import gws  # noqa: E402

logger = sphinx_logging.getLogger("gws.docs")

project = "gws"
author = "gws contributors"
copyright = "2026, gws contributors"  # noqa: A001 - Sphinx's name
release = gws.__version__
version = ".".join(release.split(".")[:2])

sys.path.insert(0, os.path.join(HERE, "_ext"))

extensions = [
    "latest_results",
    "more_modules",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
]
# No napoleon: gws's docstrings are reStructuredText prose, not Google or
# NumPy sections.
# No intersphinx: the build machines have no internet. References to the
# standard library, gevent and typing therefore cannot resolve; they are the
# only ones ignored below, so every reference to gws itself must resolve.

html_theme = "furo"
html_title = f"gws {release}"
html_static_path = ["_static"]

exclude_patterns = ["_build"]
root_doc = "index"

# Nitpicky: a reference that does not resolve is a warning (an error with -W).
nitpicky = True
nitpick_ignore_regex = [
    # Outside gws, and not resolvable without intersphinx.
    (
        r"py:.*",
        r"(ssl|gssl|gsocket|socket|gevent|greenlet|typing|collections|enum|argparse|logging|zlib|threading|gunicorn)(\..*)?",
    ),
    (r"py:.*", r"(builtins\.)?(Any|Optional|Union|Callable|Iterable|Iterator|Mapping)"),
    (r"py:.*", r"(builtins\.)?(str|bytes|bytearray|memoryview|int|float|bool|dict|list|tuple)"),
    (r"py:.*", r"(builtins\.)?(object|type|None|Exception|BaseException|NoneType)"),
    (r"py:.*", r"(builtins\.)?(ValueError|TimeoutError|RuntimeError|ConnectionError|OSError)"),
    (r"py:.*", r"(builtins\.)?(NamedTuple|IntEnum|Sequence|List|Tuple|Dict|Type)"),
    # Private helpers named in public signatures are not documented.
    (r"py:class", r"gws\.(\w+\.)*_\w+"),
]

autodoc_member_order = "groupwise"
autodoc_typehints = "signature"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}

# Examples in ``.. testcode::`` blocks, and ``>>>`` examples in docstrings,
# run with gws imported (its public names too, as docstrings use them bare).
doctest_global_setup = """
import gws
from gws import *
"""

# Inherited docstrings come from gevent and the standard library, written for
# their own sites; gws documents what it adds.
autodoc_inherit_docstrings = False


def _resolve_gws_name(app, env, node, contnode):  # type: ignore[no-untyped-def]
    """Resolve a reference to a gws object by the name users see.

    Docstrings and signatures name objects where they are defined
    (``gws.errors.ProtocolError``) or bare (``ConnectionClosed``), while the
    reference documents them where users import them (``gws.ProtocolError``).
    A reference that names exactly one documented gws object by its last
    component resolves to it; anything else stays unresolved (a warning).
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    short = target.rsplit(".", 1)[-1]
    if not short or (not target.startswith("gws.") and "." in target):
        return None
    domain = env.get_domain("py")
    found = sorted(
        name
        for name in domain.objects
        if name.startswith("gws.") and name.rsplit(".", 1)[-1] == short
    )
    preferred = [name for name in found if name == "gws." + short]
    choices = preferred or found
    if len(choices) != 1 and len({name.rsplit(".", 2)[0] for name in choices}) != 1:
        return None
    if not choices:
        return None
    for reftype in (node.get("reftype"), "obj"):
        resolved = domain.resolve_xref(
            env, node.get("refdoc"), app.builder, reftype, choices[0], node, contnode
        )
        if resolved is not None:
            return resolved
    return None


def _check_public_names(app, env):  # type: ignore[no-untyped-def]
    """Warn (an error under -W) for a public name documented nowhere."""
    documented = set(env.get_domain("py").objects)
    for name in [*gws.__all__, "open"]:
        if f"gws.{name}" not in documented:
            logger.warning("gws.%s is public (gws.__all__) but not documented", name)


def _drop_object_base(app, name, obj, options, bases):  # type: ignore[no-untyped-def]
    """No "Bases: object" line: only real base classes are worth a mention."""
    bases[:] = [base for base in bases if base is not object]


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-bases", _drop_object_base)
    app.connect("missing-reference", _resolve_gws_name)
    app.connect("env-check-consistency", _check_public_names)
