"""nox sessions: gws on every supported Python, lint, types, docs, benchmarks.

    nox -l                               # list the sessions
    nox -s tests-3.12                    # the whole suite on one version
    nox -s quick                         # the quick subset on every version
    nox -s lint typecheck docs bench-quick

Interpreters are found on PATH (``python3.9`` ... ``python3.13``) and, where
PATH has none that runs (or only a pyenv shim for a version that is not
active), in pyenv's versions folder (``$PYENV_ROOT``, default ``~/.pyenv``).
A version found nowhere is an error, never a silent skip
(``error_on_missing_interpreters``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from typing import List, Optional

import nox

PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
"""Every Python gws supports (python_requires >= 3.9); setup.cfg's classifiers list the same."""

nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["quick", "lint", "typecheck", "docs"]

QUICK_IGNORES = [
    # Long or needing more than the interpreter: run by the full suite only.
    "--ignore=tests/test_autobahn.py",
    "--ignore=tests/test_autobahn_server.py",
    "--ignore=tests/test_autobahn_wsgi.py",
    "--ignore=tests/test_browser.py",
    # Node and gunicorn peers in subprocesses: interpreter-independent, and
    # the slowest files left; the full run covers them.
    "--ignore=tests/test_cli_wscat.py",
    "--ignore=tests/test_gunicorn.py",
    # The CLI in a subprocess per test: a third of the quick subset's time
    # (about 190 of 510 s on 3.12); the full run covers it, and
    # tests/test_cli_output.py (in-process) stays in.
    "--ignore=tests/test_cli.py",
    "--ignore=tests/test_load.py",
    "--ignore=tests/test_no_loss.py",
    "--ignore=tests/test_benchmarks.py",
    "--ignore=tests/test_fuzz.py",
    "--ignore=tests/test_faults.py",
    "--ignore=tests/test_packaging.py",
]
"""The quick subset leaves out the Autobahn suite, the load, soak and
benchmark tests, the property-based and fault-injection suites (CPU-heavy,
and pure Python logic the full run covers), packaging (its own
sessions), and every test marked ``slow`` (browser tests among them). New
test files are in it unless they are added here."""


def _runs(path: str) -> bool:
    try:
        subprocess.run([path, "-c", "import sys"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _pyenv_python(version: str) -> Optional[str]:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for prefix in sorted(glob.glob(os.path.join(root, "versions", version + ".*")), reverse=True):
        candidate = os.path.join(prefix, "bin", "python" + version)
        tail = os.path.basename(prefix)[len(version) + 1 :]
        if tail.isdigit() and _runs(candidate):
            return candidate
    return None


def _find_interpreters() -> None:
    """Put a working ``pythonX.Y`` for each supported version first on PATH."""
    extra: List[str] = []
    for version in PYTHONS:
        found = shutil.which("python" + version)
        if found and _runs(found):
            continue
        pyenv = _pyenv_python(version)
        if pyenv:
            extra.append(os.path.dirname(pyenv))
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


_find_interpreters()


def _install(session: nox.Session) -> None:
    # Editable, so the C speedup is built in place for this interpreter and the
    # tests (which import gws from the work tree) use it.
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-c",
        "import gws.frames as f, sys; "
        "print('gws on', sys.version.split()[0], 'speedups:', f.apply_mask is not f.py_apply_mask)",
    )


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite (Autobahn, load and packaging tests included)."""
    _install(session)
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHONS)
def quick(session: nox.Session) -> None:
    """The quick subset: no Autobahn, no load or soak test, no browser, nothing slow."""
    _install(session)
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        *QUICK_IGNORES,
        *session.posargs,
    )
    # The CLI's own tests are the full run's (QUICK_IGNORES); its entry point
    # still runs on every version: README's demo, a loopback echo and a close.
    session.run("python", "-m", "gws", "demo")


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff on the library, the tests, the benchmarks and this file."""
    session.install("ruff")
    session.run("ruff", "check", "gws", "tests", "benchmarks", "noxfile.py", "docs")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict on gws (the settings are in pyproject.toml)."""
    session.install("-e", ".[test]")
    session.run("mypy", "gws")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors, then run every example in them."""
    session.install("-e", ".[test]")  # docs and the peers some modules import
    for builder in ("html", "doctest"):
        session.run(
            "sphinx-build", "-E", "-W", "-n", "-q", "-b", builder, "docs", f"docs/_build/{builder}"
        )


@nox.session(name="bench-quick", python="3.11")
def bench_quick(session: nox.Session) -> None:
    """The benchmarks on tiny sizes against gws's own server (no Node needed)."""
    session.install("-e", ".")
    out = session.create_tmp()
    session.run(
        "python", "benchmarks/run.py", "--quick", "--server", "gws", "--out", out, *session.posargs
    )


if __name__ == "__main__":
    # ``python noxfile.py --other-pythons``: the supported versions other than
    # this interpreter's, for ``nox -s quick -p ...`` in scripts/test.
    import sys

    if sys.argv[1:] != ["--other-pythons"]:
        raise SystemExit("usage: python noxfile.py --other-pythons")
    this = f"{sys.version_info[0]}.{sys.version_info[1]}"
    print(" ".join(v for v in PYTHONS if v != this))
