"""The command line, end to end: ``python -m gws ...`` in a subprocess.

Servers run in this process, so every subprocess is waited on with
``gevent.subprocess``: the hub keeps serving while the command runs.
Each subprocess is bounded by TIMEOUT; nothing asserts on timing.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any, Iterator, List

import gevent.subprocess
import pytest

import gws

TIMEOUT = 30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_gws(*args: str, input: bytes = b"") -> Any:
    """``python -m gws *args`` with ``input`` on stdin; text stdout/stderr."""
    proc = gevent.subprocess.run(
        [sys.executable, "-m", "gws", *args],
        input=input,
        stdout=gevent.subprocess.PIPE,
        stderr=gevent.subprocess.PIPE,
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(handler)`` -> ws:// URL of an in-process server; stopped at teardown."""
    servers: List[Any] = []

    def start(handler: Any = gws.echo) -> str:
        server = gws.serve(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"ws://127.0.0.1:{server.server_port}/"

    try:
        yield start
    finally:
        for server in servers:
            server.stop(timeout=1)


def test_python_m_gws_demo():
    proc = run_gws("demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Hello There!" in proc.stdout
    assert "Connection closed!" in proc.stdout


def test_client_prints_the_echoes_of_piped_stdin(serve):
    url = serve()
    proc = run_gws("client", url, input=b"a\nb\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["a", "b"], proc.stdout + proc.stderr


def test_client_last_line_without_newline(serve):
    url = serve()
    proc = run_gws("client", url, input=b"first\nlast")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["first", "last"], proc.stdout + proc.stderr


def test_client_binary_replies_are_shown_as_bytes(serve):
    def to_binary(request, read, write):
        for msg in read:
            write(msg.payload.encode("utf-8"))

    url = serve(to_binary)
    proc = run_gws("client", url, input=b"hi\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["b'hi'"], proc.stdout + proc.stderr


def test_client_wait_is_bounded_when_the_server_never_replies(serve):
    received = []

    def silent(request, read, write):
        for msg in read:
            received.append(msg.payload)

    url = serve(silent)
    proc = run_gws("client", "-w", "0.2", url, input=b"a\nb\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert received == ["a", "b"]


def test_client_stops_waiting_when_the_server_closes(serve):
    def reply_once_and_close(request, read, write):
        msg = read()
        write("got " + msg.payload)
        write(None)

    url = serve(reply_once_and_close)
    proc = run_gws("client", "--wait", str(TIMEOUT * 10), url, input=b"x\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["got x"], proc.stdout + proc.stderr


def test_client_connection_refused_exits_1_with_the_error_on_stderr():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    proc = run_gws("client", f"ws://127.0.0.1:{port}/", input=b"a\n")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert "error" in proc.stderr and "refused" in proc.stderr, proc.stderr


def test_client_rejects_a_negative_wait():
    proc = run_gws("client", "--wait", "-1", "ws://127.0.0.1:1/")
    assert proc.returncode == 2
    assert "--wait" in proc.stderr


def test_client_help_documents_wait():
    proc = run_gws("client", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps the help text
    assert "--wait SECONDS" in text and "(default: 1)" in text, proc.stdout
