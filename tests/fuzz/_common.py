"""Shared bits of the atheris harnesses (not a test module: pytest never imports it)."""

from __future__ import annotations

import os
import sys

# Run from a checkout without installing gws.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
