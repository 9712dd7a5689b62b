"""Argument types shared by the ``gws`` commands: durations, sizes, headers.

Each raises :class:`argparse.ArgumentTypeError` with a message that names
what was expected, so argparse exits with status 2 and says why.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable, Tuple

__all__ = ["UsageError", "duration", "seconds", "size", "header", "RawHelp"]


class UsageError(Exception):
    """The command line is wrong in a way argparse cannot see (exit 2)."""


class RawHelp(argparse.RawDescriptionHelpFormatter):
    """Help with the examples in the epilog kept as written."""


_UNITS = {"ms": 1.0, "s": 1000.0}


def _to_ms(text: str, default_unit: str) -> float:
    value = text.strip().lower()
    unit = default_unit
    for suffix in ("ms", "s"):
        if value.endswith(suffix):
            unit, value = suffix, value[: -len(suffix)]
            break
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 500ms or 2s, not {text!r}"
        ) from None
    if not number >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a duration >= 0, not {text!r}")
    return number * _UNITS[unit]


def duration(default_unit: str) -> Callable[[str], float]:
    """A duration in milliseconds; a bare number is in ``default_unit``
    (``"ms"`` or ``"s"``), ``500ms`` and ``2s`` say their unit."""

    def parse(text: str) -> float:
        ms = _to_ms(text, default_unit)
        if ms == 0 or math.isinf(ms):
            raise argparse.ArgumentTypeError(f"must be a positive, finite duration, not {text!r}")
        return ms

    parse.__name__ = "duration"  # argparse names the type in its errors
    return parse


def seconds(text: str) -> float:
    """A wait in seconds, >= 0; ``inf`` waits until the peer closes."""
    return _to_ms(text, "s") / 1000.0


def size(text: str) -> int:
    """A size in bytes: ``65536``, ``64KiB``, ``16MiB``."""
    value = text.strip()
    factor = 1
    for suffix, mult in (("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024**3)):
        if value.lower().endswith(suffix.lower()):
            factor, value = mult, value[: -len(suffix)]
            break
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size in bytes such as 65536 or 16MiB, not {text!r}"
        ) from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be a size >= 0, not {text!r}")
    return number * factor


def header(text: str) -> Tuple[str, str]:
    """``"Name: value"`` -> ``("Name", "value")``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', not {text!r}")
    return name.strip(), value.strip()
