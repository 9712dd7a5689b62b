"""Hypothesis settings profiles for gws's test suite.

``tests/conftest.py`` calls :func:`register` before any test module is
imported, so every ``settings(...)`` object the tests build inherits the
loaded profile for what it does not set itself (``derandomize``,
``database``, ``print_blob``).

- ``ci`` (the default): derandomized, no example database. The same examples
  run on every machine and every run, so ``pytest`` on a fresh clone either
  passes or fails the same way each time.
- ``dev``: Hypothesis' own defaults - random examples, failures saved in
  ``.hypothesis/`` and replayed first on the next run.
- ``fuzz``: ``dev`` with at least :data:`FUZZ_EXAMPLES` examples per test
  (``GWS_FUZZ_EXAMPLES`` overrides it); ``scripts/fuzz`` selects it.

Choose one with ``HYPOTHESIS_PROFILE=dev`` (or ``fuzz``) in the environment;
pytest's ``--hypothesis-profile=NAME`` option also works.
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILE_ENV = "HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"
FUZZ_EXAMPLES = 2000


def register() -> str:
    """Register the ``ci``, ``dev`` and ``fuzz`` profiles and load the one
    ``$HYPOTHESIS_PROFILE`` names (``ci`` when unset). Returns its name."""
    # Parent both on Hypothesis' built-in defaults, not on whatever profile is
    # loaded now: register() may run twice, or after another profile loaded.
    base = settings.get_profile("default")
    settings.register_profile(
        "ci", base, derandomize=True, database=None, deadline=None, print_blob=True
    )
    settings.register_profile("dev", base)
    examples = int(os.environ.get("GWS_FUZZ_EXAMPLES") or FUZZ_EXAMPLES)
    settings.register_profile("fuzz", settings.get_profile("dev"), max_examples=examples)
    name = os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    settings.load_profile(name)
    return name


def at_least(n: int) -> int:
    """``max_examples`` for a test that wants ``n``: ``n``, or the loaded
    profile's own ``max_examples`` when that is larger (the ``fuzz`` profile)."""
    return max(n, settings.default.max_examples)
