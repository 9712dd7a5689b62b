"""A real browser: headless Chromium loads a page from the Flask app served by
gevent.pywsgi with gws.wsgi.WebSocketHandler; the page's JavaScript opens a
WebSocket back to the app, exchanges a text and a binary message with
permessage-deflate negotiated, closes with 4321, and reports in
``window.gwsResult``. tests/node/browser.js drives it with playwright-core
(``executablePath`` Debian's ``/usr/bin/chromium``) as a subprocess, while
this process's hub serves.

Skipped, with the reason, only when node, playwright-core or the chromium
binary is missing (``.ci/run`` installs Debian's ``chromium`` when absent).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Iterator

import flask_app
import gevent
import pytest
from helpers import NODE_MODULES, WSGIServerHandle, run_node

CHROMIUM = os.environ.get("GWS_CHROMIUM", "/usr/bin/chromium")


def require_browser() -> None:
    if not shutil.which("node"):
        pytest.skip("node is not installed: the browser test drives Chromium from Node")
    if not os.path.isdir(os.path.join(NODE_MODULES, "playwright-core")):
        pytest.skip("playwright-core not installed (npm install --prefix tests/node)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package chromium; .ci/run installs it)")


@pytest.fixture
def server() -> Iterator[WSGIServerHandle]:
    flask_app.SEEN.clear()
    handle = WSGIServerHandle(flask_app.app)
    try:
        with gevent.Timeout(150):
            yield handle
    finally:
        handle.stop()


def test_chromium_exchanges_text_and_binary_with_compression(server):
    require_browser()
    proc = run_node("browser.js", server.url("/page", "http"), CHROMIUM, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    result: Any = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    # what the page saw
    assert result["events"] == ["open"], result
    assert result["extensions"].startswith("permessage-deflate"), result
    assert result["text_ok"] is True and result["binary_ok"] is True, result
    assert result["close_code"] == 4321  # gws echoes the code (RFC 6455 5.5.1), not the reason
    assert result["was_clean"] is True
    # what the server negotiated, as the view saw it (sent to the page first, and kept here)
    assert result["server"]["compressed"] is True
    assert server.wait_idle(10)
    seen = [s for s in flask_app.SEEN if s.get("path") == "/info"]
    assert len(seen) == 1
    assert seen[0]["compressed"] is True
    assert seen[0]["extensions"].startswith("permessage-deflate")
    assert "Chrome" in (seen[0]["user_agent"] or "")
    assert seen[0]["origin"] == f"http://127.0.0.1:{server.port}"
    assert (seen[0]["close_code"], seen[0]["close_reason"]) == (4321, "done")
    print(f"browser: {result['browser']} ({CHROMIUM})")
