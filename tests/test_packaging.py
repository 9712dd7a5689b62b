"""The distributions: ``python -m build`` makes an sdist and a wheel that work.

The wheel is built from the sdist (``build``'s default), so a file missing
from the sdist (the C source, the stubs) fails here. The wheel is then
installed in a fresh virtualenv, outside the work tree, and ``python -m gws
demo`` and the ``gws`` script run from it; ``twine check`` reads the
metadata and the README as PyPI would. Slow: it builds and installs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13"]


def _run(args: List[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    sdists = sorted(out.glob("*.tar.gz"))
    wheels = sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return {"dir": out, "sdist": sdists[0], "wheel": wheels[0]}


def _has_compiler() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return any(
        os.access(os.path.join(d, cc), os.X_OK)
        for d in os.environ.get("PATH", "").split(os.pathsep)
    )


def test_sdist_holds_the_sources_the_build_needs(dist: Dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    modules = {f"gws/{p.name}" for p in (ROOT / "gws").glob("*.py")}
    needed = {
        "gws/_speedups.c",
        "gws/_speedups.pyi",
        "gws/py.typed",
        "README.rst",
        "setup.cfg",
        "setup.py",
        "pyproject.toml",
    }
    assert needed | modules <= names, sorted(needed | modules - names)


def test_wheel_holds_every_module_the_stubs_and_py_typed(dist: Dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = set(whl.namelist())
    modules = {f"gws/{p.name}" for p in (ROOT / "gws").glob("*.py")}
    assert modules | {"gws/py.typed", "gws/_speedups.pyi"} <= names
    compiled = [n for n in names if re.match(r"gws/_speedups\..*(so|pyd)$", n)]
    if _has_compiler():
        assert compiled, "a C compiler is present but the wheel has no gws._speedups"
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)


def test_metadata_names_every_supported_python_and_the_project_urls(
    dist: Dict[str, Path],
) -> None:
    with zipfile.ZipFile(dist["wheel"]) as whl:
        meta_name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        meta = whl.read(meta_name).decode()
    for version in SUPPORTED:
        assert f"Classifier: Programming Language :: Python :: {version}\n" in meta
    assert "Classifier: Typing :: Typed\n" in meta
    assert "Requires-Python: >=3.9\n" in meta
    assert re.search(r"^Project-URL: Documentation, \S+", meta, re.M), meta[:2000]
    assert re.search(r"^Project-URL: Source, \S+", meta, re.M)
    # The nox sessions test exactly the versions the classifiers claim.
    noxfile = (ROOT / "noxfile.py").read_text()
    assert f"PYTHONS = {SUPPORTED!r}".replace("'", '"') in noxfile


def test_twine_check_passes(dist: Dict[str, Path]) -> None:
    proc = _run(
        [
            sys.executable,
            "-m",
            "twine",
            "check",
            "--strict",
            str(dist["sdist"]),
            str(dist["wheel"]),
        ],
        cwd=dist["dir"],
    )
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_installed_wheel_runs_the_demo_outside_the_work_tree(
    dist: Dict[str, Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(dist["wheel"])], cwd=tmp_path)
    where = _run(
        [
            str(python),
            "-c",
            "import gws, gws.frames as f; print(gws.__file__);"
            " print(f.apply_mask is not f.py_apply_mask)",
        ],
        cwd=tmp_path,
    ).stdout.split()
    assert Path(where[0]).resolve().is_relative_to(venv.resolve()), where
    if _has_compiler():
        assert where[1] == "True", "the installed gws does not use its C speedups"
    for command in (
        [str(python), "-m", "gws", "demo", "from", "the", "wheel"],
        [str(venv / "bin" / "gws"), "demo"],
    ):
        proc = _run(command, cwd=tmp_path, timeout=120)
        assert "Host responded with Hello There!" in proc.stdout, proc.stdout
        assert "Connection closed! (code 1000, error None)" in proc.stdout, proc.stdout
    assert (
        "Host responded with wheel"
        in _run([str(python), "-m", "gws", "demo", "wheel"], cwd=tmp_path, timeout=120).stdout
    )
