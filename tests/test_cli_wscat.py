"""The command line against Node's wscat (npm ``wscat`` 6.1, in tests/node):
``gws connect`` against ``wscat -l`` as the server, and ``wscat -c`` as the
client of ``gws serve``.

wscat -l listens on every interface and on a port given in advance; every
wscat here runs with tests/node/loopback.cjs preloaded, which pins its
server to 127.0.0.1 and announces the port it got for ``-l 0`` on stderr
("LISTENING <port>"). Off a terminal wscat prints each message it receives
as a bare line (after a "> " prompt once it has sent a line) and sends each
line of its stdin, dropping lines that come before it is connected. Every process is bounded
by DEADLINE and stopped at teardown.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Iterator, List

import gevent
import pytest
from helpers import NODE_DIR, CliProcess, node_peer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIM = os.path.join(NODE_DIR, "loopback.cjs")


@pytest.fixture
def procs() -> Iterator[List[CliProcess]]:
    started: List[CliProcess] = []
    yield started
    for proc in started:
        proc.stop()


@pytest.fixture
def wscat(procs):
    """``wscat(*args)`` -> CliProcess running wscat with the loopback shim."""
    package = node_peer("wscat")
    env = dict(os.environ)
    env["NODE_OPTIONS"] = (env.get("NODE_OPTIONS", "") + f" --require {SHIM}").strip()
    env.pop("NO_COLOR", None)

    def start(*args: str) -> CliProcess:
        proc = CliProcess(["node", os.path.join(package, "bin", "wscat"), *args], env=env)
        procs.append(proc)
        return proc

    return start


@pytest.fixture
def wscat_server(wscat):
    """``wscat_server()`` -> (wscat -l process, its ws:// URL)."""

    def start():
        proc = wscat("-l", "0")
        port = int(proc.expect_err("LISTENING ").split()[1])
        return proc, f"ws://127.0.0.1:{port}/"

    return start


@pytest.fixture
def gws_cli(procs):
    """``gws_cli(*args)`` -> CliProcess running ``python -m gws *args``."""

    def start(*args: str) -> CliProcess:
        proc = CliProcess([sys.executable, "-m", "gws", *args], cwd=ROOT)
        procs.append(proc)
        return proc

    return start


@pytest.fixture
def gws_serve(gws_cli):
    """``gws_serve(*args)`` -> (gws serve process, the URL it prints)."""

    def start(*args: str):
        proc = gws_cli("serve", "--port", "0", *args)
        return proc, proc.expect("listening on ").split("listening on ", 1)[1]

    return start


# -- gws connect against wscat -l ------------------------------------------------------------


def test_connect_both_ways_with_wscat_listen(wscat_server, gws_cli):
    server, url = wscat_server()
    client = gws_cli("connect", url, "-w", "0")
    client.send("hello from gws\n")
    server.expect("hello from gws")
    server.send("hello from wscat\n")
    assert client.expect("< hello from wscat") == "< hello from wscat"
    client.close_stdin()  # stdin ends: close with 1000
    assert client.wait() == 0, client
    assert client.out == ["> hello from gws", "< hello from wscat"], client
    assert client.err[-1] == "closed: code 1000 (normal closure)", client


def test_connect_execute_and_wait_with_wscat_listen(wscat_server, gws_cli):
    server, url = wscat_server()
    client = gws_cli("connect", url, "-x", "one", "-x", "two", "-w", "0.2")
    server.expect("one")
    server.expect("two")
    assert client.wait() == 0, client
    assert client.out == ["> one", "> two"], client


def test_connect_subprotocol_negotiated_with_wscat_listen(wscat_server, gws_cli):
    server, url = wscat_server()
    client = gws_cli("connect", url, "-s", "chat", "-s", "other", "-v", "-x", "hi", "-w", "0")
    server.expect("hi")
    assert client.wait() == 0, client
    assert any(line.endswith("(subprotocol chat)") for line in client.err), client
    assert "Sec-WebSocket-Protocol: chat" in client.err, client


def test_connect_ping_and_show_ping_pong_with_wscat_listen(wscat_server, gws_cli):
    server, url = wscat_server()
    client = gws_cli("connect", url, "--ping", "100", "-P", "-w", "0")
    client.expect("> ping b''")
    client.expect("< pong b''")  # ws answers our heartbeat
    client.close_stdin()
    assert client.wait() == 0, client


def test_connect_verbose_traces_wscats_close_frame(wscat_server, gws_cli):
    server, url = wscat_server()
    client = gws_cli("connect", url, "-v", "-x", "traced", "-w", "0")
    server.expect("traced")
    assert client.wait() == 0, client
    err = "\n".join(client.err)
    assert "> frame opcode=1 (text) fin=1 rsv1=0 mask=1 len=6 'traced'" in err, client
    assert "> frame opcode=8 (close) fin=1 rsv1=0 mask=1 len=2 code=1000" in err, client
    assert "< frame opcode=8 (close) fin=1 rsv1=0 mask=0 len=2 code=1000" in err, client


def test_connect_max_size_closes_1009_with_wscat_listen(wscat_server, gws_cli):
    server, url = wscat_server()
    client = gws_cli("connect", url, "--max-size", "1000", "-w", "0")
    client.send("ready\n")
    server.expect("ready")  # connected
    server.send("x" * 2000 + "\n")
    assert client.wait() == 1, client
    assert "closed: code 1009 (message too big)" in client.err[-1], client
    assert client.out == ["> ready"], client


def test_connect_exit_1_when_wscat_dies(wscat_server, gws_cli):
    server, url = wscat_server()
    client = gws_cli("connect", url)
    client.send("still there?\n")
    server.expect("still there?")
    server.proc.kill()  # no close frame
    assert client.wait() == 1, client
    assert "code 1006 (abnormal closure" in client.err[-1], client


def test_connect_refused_exits_1(free_port, gws_cli):
    client = gws_cli("connect", f"ws://127.0.0.1:{free_port}/", "-x", "hi")
    assert client.wait() == 1, client
    assert client.err[0].startswith("error: ") and "refused" in client.err[0], client


# -- wscat -c against gws serve -------------------------------------------------------------


def test_wscat_connects_to_gws_serve_echo(gws_serve, wscat):
    server, url = gws_serve("--echo", "-v")
    client = wscat("-c", url)
    server.expect_err("connected ")  # wscat drops lines typed before it is connected
    client.send("echo me\n")
    client.expect("echo me")
    client.send("and me\n")
    client.expect("and me")
    client.close_stdin()
    assert client.wait() == 0, client


def test_wscat_execute_against_gws_serve(gws_serve, wscat):
    server, url = gws_serve()
    client = wscat("-c", url, "-x", "once", "-w", "0.2")
    client.expect("once")
    assert client.wait() == 0, client


def test_wscat_clients_chat_through_gws_serve_broadcast(gws_serve, wscat):
    server, url = gws_serve("--broadcast", "-v")
    alice = wscat("-c", url)
    server.expect_err("connected ")
    bob = wscat("-c", url)
    server.expect_err("connected ")
    bob.send("hi alice\n")
    alice.expect("hi alice")  # after wscat's "> " prompt, once it has sent a line
    alice.send("hi bob\n")
    bob.expect("hi bob")
    assert not any("hi alice" in line for line in bob.out), bob  # not sent back
    assert not any("hi bob" in line for line in alice.out), alice
    server.expect_err("< 127.0.0.1:")


def test_wscat_subprotocol_accepted_by_gws_serve(gws_serve, wscat):
    server, url = gws_serve("-s", "chat", "-v")
    client = wscat("-c", url, "-s", "chat", "-x", "hi", "-w", "0.2")
    client.expect("hi")
    assert server.expect_err("connected ").endswith(" / subprotocol chat")
    assert client.wait() == 0, client


def test_wscat_over_tls_to_gws_serve_cert_key(gws_serve, wscat, tls_cert, tls_ca_file, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    tls_cert.cert_chain_pems[0].write_to_path(cert)
    tls_cert.private_key_pem.write_to_path(key)
    server, url = gws_serve("--cert", cert, "--key", key)
    assert url.startswith("wss://")
    client = wscat("-c", url, "--ca", tls_ca_file, "-x", "secret", "-w", "0.2")
    client.expect("secret")
    assert client.wait() == 0, client


def test_gws_serve_sigterm_ends_wscat_sessions(gws_serve, wscat):
    server, url = gws_serve("-v")
    client = wscat("-c", url)
    server.expect_err("connected ")
    server.proc.send_signal(signal.SIGTERM)
    assert client.wait() == 0, client  # wscat exits once the server closes
    assert server.wait() == 0, server
    assert server.out[-1] == "stopped"
    assert "closed: code 1001 (going away), reason 'server shutting down'" in server.err[-1]


def test_every_wscat_here_listens_on_loopback_only(wscat_server):
    """The shim works: wscat -l 0 got a free port on 127.0.0.1."""
    import gevent.socket as gsocket

    server, url = wscat_server()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with gevent.Timeout(10):
        sock = gsocket.create_connection(("127.0.0.1", port))
        sock.close()
