"""gws with and without gevent.monkey.patch_all(), each in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monkey_helper.py")


@pytest.mark.parametrize("mode", ["patched", "unpatched"])
def test_gws_in_a_subprocess(mode):
    proc = subprocess.run(
        [sys.executable, HELPER, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip().endswith(f"OK {mode}"), proc.stdout + proc.stderr


def test_import_gws_does_not_patch():
    code = (
        "import socket, gevent.monkey, gws\n"
        "assert not gevent.monkey.is_module_patched('socket')\n"
        "assert not gevent.monkey.is_module_patched('ssl')\n"
        "assert not gevent.monkey.is_module_patched('threading')\n"
        "assert socket.socket.__module__ == 'socket'\n"
        "print('clean')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "clean"
