"""The command line, end to end: ``python -m gws ...`` in a subprocess.

Servers run in this process, so every subprocess is waited on with
``gevent.subprocess``: the hub keeps serving while the command runs.
Each subprocess is bounded by TIMEOUT; nothing asserts on timing.
``gws connect`` flags are checked against what an in-process server sees,
``gws serve`` by connecting to it from here; tests against Node's wscat
are in test_cli_wscat.py, the formatting alone in test_cli_output.py.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any, Dict, Iterator, List, Optional

import gevent.queue
import gevent.subprocess
import pytest
from helpers import CliProcess, handshake, read_request, steers_proxy

import gws

TIMEOUT = 30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_gws(*args: str, input: bytes = b"", env: Optional[Dict[str, str]] = None) -> Any:
    """``python -m gws *args`` with ``input`` on stdin; text stdout/stderr."""
    proc = gevent.subprocess.run(
        [sys.executable, "-m", "gws", *args],
        input=input,
        stdout=gevent.subprocess.PIPE,
        stderr=gevent.subprocess.PIPE,
        timeout=TIMEOUT,
        cwd=ROOT,
        env=env,
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


# -- gws connect: flags against an in-process server ---------------------------------------


def echo_n_then_close(n: int, code: int = 1000, reason: str = ""):
    """A handler: echo ``n`` messages, then close with ``code``."""

    def handler(request, read, write):
        for _ in range(n):
            msg = read()
            if msg is None:
                return
            write(msg.payload)
        write.close(code, reason)

    return handler


def recorder(n: int = 1, code: int = 1000):
    """(handler, seen): the handler records (request, messages) after ``n``
    messages, echoes each, then closes with ``code``."""
    seen: gevent.queue.Queue = gevent.queue.Queue()

    def handler(request, read, write):
        messages = []
        for _ in range(n):
            msg = read()
            if msg is None:
                break
            messages.append(msg)
            write(gws.Message(opcode=msg.opcode, payload=msg.payload))
        seen.put((request, messages))
        write.close(code, "")
        read()

    return handler, seen


def got(seen: Any) -> Any:
    return seen.get(timeout=TIMEOUT)


def test_connect_execute_sends_each_message_and_stdin_is_not_read(serve):
    handler, seen = recorder(2)
    url = serve(handler)
    proc = run_gws("connect", url, "-x", "one", "-x", "two", "-w", "inf", input=b"stdin\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [x for x in lines if x.startswith(">")] == ["> one", "> two"], lines
    assert [x for x in lines if x.startswith("<")] == ["< one", "< two"], lines
    _, messages = got(seen)
    assert [m.payload for m in messages] == ["one", "two"]
    assert "closed: code 1000 (normal closure)" in proc.stderr


def test_connect_wait_bounds_the_time_after_execute(serve):
    received = []

    def silent(request, read, write):
        for msg in read:
            received.append(msg.payload)

    url = serve(silent)
    proc = run_gws("connect", url, "-x", "a", "-w", "0.2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["> a"]
    assert received == ["a"]


def test_connect_headers_and_origin_reach_the_server(serve):
    handler, seen = recorder()
    url = serve(handler)
    proc = run_gws(
        "connect", url, "-H", "X-Token: abc", "--header", "X-Two:2",
        "-o", "https://app.example", "-x", "hi", "-w", "inf",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    request, _ = got(seen)
    assert request.header("X-Token") == "abc"
    assert request.header("X-Two") == "2"
    assert request.header("Origin") == "https://app.example"


def test_connect_subprotocols_are_offered_in_order_and_one_negotiated(make_server):
    handler, seen = recorder()
    server = make_server(handler, subprotocols=["chat"])
    proc = run_gws("connect", server.url, "-s", "superchat", "--subprotocol", "chat",
                   "-v", "-x", "hi", "-w", "inf")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    request, _ = got(seen)
    assert request.header("Sec-WebSocket-Protocol") == "superchat, chat"
    assert request.subprotocol == "chat"
    assert "(subprotocol chat, permessage-deflate)" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "opcode", "payload"),
    [((), 1, "héllo"), (("--text",), 1, "héllo"), (("--binary",), 2, "héllo".encode())],
)
def test_connect_text_and_binary_choose_the_opcode_of_stdin_lines(serve, flags, opcode, payload):
    handler, seen = recorder()
    url = serve(handler)
    proc = run_gws("connect", url, *flags, "-w", "inf", input="héllo\n".encode())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _, messages = got(seen)
    assert [(m.opcode, m.payload) for m in messages] == [(opcode, payload)]


@pytest.mark.parametrize("compress", [True, False])
def test_connect_no_compression_offers_no_extension(serve, compress):
    handler, seen = recorder()
    url = serve(handler)
    flags = () if compress else ("--no-compression",)
    # long and repetitive: gws leaves short or incompressible messages uncompressed
    message = "hello " * 100
    proc = run_gws("connect", url, *flags, "-v", "-x", message, "-w", "inf")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    request, messages = got(seen)
    assert [m.payload for m in messages] == [message]
    offered = request.header("Sec-WebSocket-Extensions")
    if compress:
        assert offered is not None and "permessage-deflate" in offered
        assert "rsv1=1" in proc.stderr  # compressed frames, traced as sent
    else:
        assert offered is None and request.extensions is None
        assert "rsv1=1" not in proc.stderr


@pytest.mark.parametrize("fragmented", [False, True])
def test_connect_max_size_closes_1009(serve, fragmented):
    codes = gevent.queue.Queue()

    def big(request, read, write):
        write(["x" * 600, "x" * 600] if fragmented else "x" * 1200)
        read()
        codes.put(read.close_code)

    url = serve(big)
    proc = run_gws("connect", url, "--max-size", "1000", "-w", "inf")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "code 1009 (message too big)" in proc.stderr, proc.stderr
    assert codes.get(timeout=TIMEOUT) == 1009
    assert proc.stdout == ""


def test_connect_max_size_accepts_a_message_at_the_limit(serve):
    url = serve(echo_n_then_close(1))
    proc = run_gws("connect", url, "--max-size", "1KiB", "-r", "-w", "inf", input=b"y" * 1024)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "y" * 1024 + "\n"


def test_connect_timeout_on_a_silent_server_exits_1(make_server):
    server = make_server.raw(make_server.hold_open)  # accepts TCP, never answers
    url = f"ws://127.0.0.1:{server.port}/"
    proc = run_gws("connect", url, "--timeout", "300", "-x", "hi")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "timed out" in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_connect_show_ping_pong_prints_the_servers_ping_and_our_pong(serve):
    def pinger(request, read, write):
        read()  # the client's "go"
        write.ping(b"hb")
        write("done")
        write.close(1000)

    url = serve(pinger)
    proc = run_gws("connect", url, "-P", "-x", "go", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "< ping b'hb'" in lines and "> pong b'hb'" in lines, lines
    assert "< done" in lines
    assert lines.index("< ping b'hb'") < lines.index("< done")


def test_connect_without_show_ping_pong_prints_no_ping(serve):
    def pinger(request, read, write):
        read()
        write.ping(b"hb")
        write("done")
        write.close(1000)

    url = serve(pinger)
    proc = run_gws("connect", url, "-x", "go", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["> go", "< done"]


def test_connect_ping_sends_heartbeat_pings(make_server):
    pings = gevent.queue.Queue()

    def watch(request, read, write):  # fragments=True: sees every frame
        for frame in read:
            if frame.opcode == gws.OP_PING:
                pings.put(frame.payload)
                write("saw a ping")
                write.close(1000)

    server = make_server(watch, fragments=True)
    proc = run_gws("connect", server.url, "--ping", "100", "-P", "-w", "inf")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert pings.get(timeout=TIMEOUT) == b""
    lines = proc.stdout.splitlines()
    assert "> ping b''" in lines and "< saw a ping" in lines, lines


def test_connect_ping_fails_a_connection_whose_peer_went_silent(make_server):
    def mute(sock, address):
        handshake(sock)
        make_server.hold_open(sock, address)  # never reads: no pong

    server = make_server.raw(mute)
    url = f"ws://127.0.0.1:{server.port}/"
    proc = run_gws("connect", url, "--ping", "200", "-w", "inf")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "heartbeat timeout" in proc.stderr, proc.stderr
    assert "1006" in proc.stderr


def test_connect_verbose_traces_handshake_and_frames(serve):
    url = serve(echo_n_then_close(1, 1000, "bye"))
    message = "hello " * 100  # long enough for gws to compress it
    proc = run_gws("connect", url, "-v", "-x", message, "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "--- response: HTTP/1.1 101 Switching Protocols" in err
    assert "Sec-WebSocket-Accept: " in err
    assert "> frame opcode=1 (text) fin=1 rsv1=1 mask=1 len=" in err, err
    assert "< frame opcode=1 (text) fin=1 rsv1=1 mask=0 len=" in err, err
    assert "< frame opcode=8 (close) fin=1 rsv1=0 mask=0 len=5 code=1000 (normal closure) " \
        "reason='bye'" in err, err  # fmt: skip
    assert "> frame opcode=8 (close) fin=1 rsv1=0 mask=1 len=2 code=1000" in err, err
    assert proc.stdout.splitlines() == [f"> {message}", f"< {message}"]


def test_connect_without_verbose_traces_nothing(serve):
    url = serve(echo_n_then_close(1))
    proc = run_gws("connect", url, "-x", "hi", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert "frame" not in proc.stderr and "response" not in proc.stderr
    assert proc.stderr.splitlines() == ["closed: code 1000 (normal closure)"]


def test_connect_timings_prefix_each_line_with_elapsed_seconds(serve):
    import re

    url = serve(echo_n_then_close(1))
    proc = run_gws("connect", url, "--timings", "-x", "hi", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all(re.fullmatch(r"\d+\.\d{3}: [<>] hi", x) for x in lines), lines


def binary_reply(request, read, write):
    read()
    write(b"\x00\xffA")
    write.close(1000)


def test_connect_binary_messages_are_escaped_or_hex(serve):
    url = serve(binary_reply)
    proc = run_gws("connect", url, "-x", "go", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert "< b'\\x00\\xffA'" in proc.stdout.splitlines()
    proc = run_gws("connect", url, "--hex", "-x", "go", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert "< 00 ff 41" in proc.stdout.splitlines()


def test_connect_raw_prints_payloads_only(serve):
    url = serve(echo_n_then_close(2))
    proc = run_gws("connect", url, "-r", "-x", "one", "-x", "two", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["one", "two"]


def test_connect_is_uncoloured_when_piped_even_without_no_color(serve):
    url = serve(echo_n_then_close(1))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = run_gws("connect", url, "-x", "hi", "-w", "inf", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "\033[" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(("code", "exit_code"), [(1000, 0), (1001, 0), (1011, 1), (4000, 1)])
def test_connect_exit_status_follows_the_close_code(serve, code, exit_code):
    url = serve(echo_n_then_close(1, code, "why"))
    proc = run_gws("connect", url, "-x", "hi", "-w", "inf")
    assert proc.returncode == exit_code, proc.stderr
    from gws.cli.output import close_meaning

    assert f"closed: code {code} ({close_meaning(code)}), reason 'why'" in proc.stderr


def test_connect_exit_1_when_the_server_drops_the_connection(make_server):
    def drop(sock, address):
        handshake(sock)
        sock.close()

    server = make_server.raw(drop)
    proc = run_gws("connect", f"ws://127.0.0.1:{server.port}/", "-w", "inf")
    assert proc.returncode == 1, proc.stderr
    assert "code 1006 (abnormal closure" in proc.stderr, proc.stderr


def test_connect_exit_1_when_the_server_rejects_the_upgrade(make_server):
    def reject(sock, address):
        read_request(sock)
        sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        sock.close()

    server = make_server.raw(reject)
    proc = run_gws("connect", f"ws://127.0.0.1:{server.port}/", "-x", "hi")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "403" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("connect",), "url"),
        (("connect", "ws://127.0.0.1:1/", "--bogus"), "--bogus"),
        (("connect", "http://127.0.0.1:1/"), "bad URL"),
        (("connect", "ws://127.0.0.1:1/", "--ca", "ca.pem"), "wss://"),
        (("connect", "wss://127.0.0.1:1/", "--key", "k.pem"), "--key needs --cert"),
        (("connect", "ws://127.0.0.1:1/", "--max-size", "lots"), "--max-size"),
        (("connect", "ws://127.0.0.1:1/", "--timeout", "0"), "--timeout"),
        (("connect", "ws://127.0.0.1:1/", "-H", "no colon"), "Name: value"),
        (("connect", "ws://127.0.0.1:1/", "--binary", "--text"), "not allowed"),
        (("nonsense",), "invalid choice"),
        ((), "required"),
    ],
)
def test_usage_errors_exit_2(args, complaint):
    proc = run_gws(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert complaint in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_connect_url_without_scheme_means_ws(serve):
    url = serve(echo_n_then_close(1))
    proc = run_gws("connect", url[len("ws://") :], "-r", "-x", "hi", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"


def test_connect_stops_when_the_server_closes_while_stdin_stays_open(serve):
    url = serve(echo_n_then_close(1))
    proc = CliProcess([sys.executable, "-m", "gws", "connect", url], cwd=ROOT)
    try:
        proc.send("only\n")  # stdin is never closed
        assert proc.wait(TIMEOUT) == 0, proc
        assert proc.out == ["> only", "< only"], proc
    finally:
        proc.stop()


def test_connect_over_a_unix_socket(make_server, tmp_path):
    path = str(tmp_path / "ws.sock")
    make_server(echo_n_then_close(1), host="unix:" + path)
    proc = run_gws("connect", "--unix", path, "ws://localhost/", "-r", "-x", "hi", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"


# -- gws connect: TLS ----------------------------------------------------------------------


def test_connect_ca_trusts_the_servers_certificate(make_server, tls_server_context, tls_ca_file):
    server = make_server(echo_n_then_close(1), ssl_context=tls_server_context)
    proc = run_gws("connect", server.url, "--ca", tls_ca_file, "-r", "-x", "hi", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"


def test_connect_without_ca_rejects_an_unknown_certificate(make_server, tls_server_context):
    server = make_server(echo_n_then_close(1), ssl_context=tls_server_context)
    proc = run_gws("connect", server.url, "-x", "hi")
    assert proc.returncode == 1, proc.stderr
    assert "certificate verification failed" in proc.stderr, proc.stderr


@pytest.mark.parametrize("flag", ["--insecure", "-n"])
def test_connect_insecure_skips_verification(make_server, tls_server_context, flag):
    server = make_server(echo_n_then_close(1), ssl_context=tls_server_context)
    proc = run_gws("connect", server.url, flag, "-r", "-x", "hi", "-w", "inf")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"
    assert "verification is disabled" in proc.stderr


@pytest.fixture
def mutual_tls(tls_ca, tls_cert, tmp_path):
    """(server context that requires a client certificate from tls_ca,
    cert file, key file, CA file)."""
    import ssl

    import gevent.ssl as gssl

    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_cert.configure_cert(ctx)
    tls_ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    client = tls_ca.issue_cert("client.example")
    cert, key, ca = (str(tmp_path / n) for n in ("client.pem", "client.key", "ca.pem"))
    client.cert_chain_pems[0].write_to_path(cert)
    client.private_key_pem.write_to_path(key)
    tls_ca.cert_pem.write_to_path(ca)
    return ctx, cert, key, ca


def test_connect_cert_and_key_present_a_client_certificate(make_server, mutual_tls):
    ctx, cert, key, ca = mutual_tls
    server = make_server(echo_n_then_close(1), ssl_context=ctx)
    base = ("connect", server.url, "--ca", ca, "-r", "-x", "hi", "-w", "inf")
    proc = run_gws(*base, "--cert", cert, "--key", key)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"
    proc = run_gws(*base)  # no client certificate: the server refuses
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""


# -- gws connect on a terminal (a pty) -----------------------------------------------------


def _controlling_terminal() -> None:
    """In the child: a new session whose controlling terminal is stdin (the
    pty), so Ctrl-C typed there sends it SIGINT."""
    import fcntl
    import termios

    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """``python -m gws *args`` on a pseudo-terminal: ``type()`` keys,
    ``expect()`` output; the whole transcript is in ``screen``."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None) -> None:
        import pty

        import gevent.os

        master, slave = pty.openpty()
        self.master = master
        full_env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        full_env.update(TERM="xterm", **(env or {}))
        self.proc = gevent.subprocess.Popen(
            [sys.executable, "-m", "gws", *args],
            stdin=slave, stdout=slave, stderr=slave, env=full_env, cwd=ROOT,
            preexec_fn=_controlling_terminal,
        )  # fmt: skip
        os.close(slave)
        gevent.os.make_nonblocking(master)
        self.screen = b""

    def type(self, keys: bytes) -> None:
        import gevent.os

        gevent.os.nb_write(self.master, keys)

    def expect(self, text: bytes, count: int = 1, after: bytes = b"") -> None:
        """Wait until ``text`` is on screen ``count`` times (after the last
        ``after`` so far, if given)."""
        import gevent.os

        start = self.screen.rfind(after) + len(after) if after else 0
        with gevent.Timeout(TIMEOUT, AssertionError(f"no {text!r} in {self.screen!r}")):
            while self.screen[start:].count(text) < count:
                try:
                    chunk = gevent.os.nb_read(self.master, 4096)
                except OSError:  # EIO: the process is gone and its output read
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"no {text!r} in {self.screen!r}")
                self.screen += chunk

    def eof(self) -> int:
        """Type Ctrl-D and return the exit status. A Ctrl-D that lands in
        the instant between two readline calls (the terminal then in its
        cooked mode) is lost, as it would be for a person; no event tells
        that instant apart, so this retries, a bounded number of times."""
        for _ in range(10):
            self.type(b"\x04")
            try:
                return int(self.proc.wait(timeout=3))
            except gevent.subprocess.TimeoutExpired:
                continue
        raise AssertionError(f"Ctrl-D did not end the session: {self.screen!r}")

    def wait(self) -> int:
        code = self.proc.wait(timeout=TIMEOUT)
        try:
            self.expect(b"\0")  # read what is left
        except AssertionError:
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        os.close(self.master)


@pytest.fixture
def terminal():
    terms: List[Terminal] = []

    def start(*args: str, env: Optional[Dict[str, str]] = None) -> Terminal:
        term = Terminal(*args, env=env)
        terms.append(term)
        return term

    yield start
    for term in terms:
        term.close()


def recording_echo():
    """(handler, seen): echoes every message and puts each payload on ``seen``."""
    seen = gevent.queue.Queue()

    def handler(request, read, write):
        for msg in read:
            seen.put(msg.payload)
            write(msg.payload)

    return handler, seen


def test_connect_on_a_terminal_prompts_colours_recalls_history_and_ctrl_d_closes(serve, terminal):
    handler, seen = recording_echo()
    term = terminal("connect", serve(handler))
    term.expect(b"Ctrl-D or Ctrl-C to close")
    term.expect(b"> ")
    term.type(b"hello\r")
    term.expect(b"\033[36m< hello\033[0m")  # received, coloured on a terminal
    assert seen.get(timeout=TIMEOUT) == "hello"
    term.expect(b"> ", after=b"< hello")
    term.type(b"\033[A\r")  # up arrow: readline history recalls "hello"
    assert seen.get(timeout=TIMEOUT) == "hello"
    term.expect(b"< hello", count=2)
    assert term.eof() == 0, term.screen
    term.wait()
    assert b"closed: code 1000 (normal closure)" in term.screen


def test_connect_on_a_terminal_ctrl_c_closes_cleanly(serve, terminal):
    term = terminal("connect", serve())
    term.expect(b"> ")
    term.type(b"\x03")  # Ctrl-C: SIGINT
    assert term.wait() == 0, term.screen
    assert b"closed: code 1000 (normal closure)" in term.screen


def test_connect_on_a_terminal_ends_when_the_server_closes(serve, terminal):
    term = terminal("connect", serve(echo_n_then_close(1, 1001, "restart")))
    term.expect(b"> ")
    term.type(b"bye\r")
    assert term.wait() == 0, term.screen  # no Ctrl-D needed
    assert b"< bye" in term.screen
    assert b"closed: code 1001 (going away), reason 'restart'" in term.screen


@pytest.mark.parametrize(("env", "flags"), [({"NO_COLOR": "1"}, ()), ({}, ("--no-color",))])
def test_connect_on_a_terminal_no_color(serve, terminal, env, flags):
    term = terminal("connect", serve(), *flags, env=env)
    term.expect(b"> ")
    term.type(b"plain\r")
    term.expect(b"< plain")
    assert term.eof() == 0, term.screen
    term.wait()
    assert b"\033[36m" not in term.screen and b"\033[33m" not in term.screen, term.screen


# -- gws serve -----------------------------------------------------------------------------


@pytest.fixture
def gws_serve():
    """``gws_serve(*args)`` -> (CliProcess, URL it prints); stopped at teardown."""
    procs: List[CliProcess] = []

    def start(*args: str, env: Optional[Dict[str, str]] = None, cwd: str = ROOT):
        argv = [sys.executable, "-m", "gws", "serve", *args]
        proc = CliProcess(argv, env=env, cwd=cwd)
        procs.append(proc)
        line = proc.expect("listening on ")
        return proc, line.split("listening on ", 1)[1]

    yield start
    for proc in procs:
        proc.stop()


def test_serve_echoes_and_sigterm_closes_connections_with_1001(gws_serve):
    proc, url = gws_serve("--port", "0")
    assert url.startswith("ws://127.0.0.1:")
    with gevent.Timeout(TIMEOUT):
        ws = gws.open(url)
        ws.send("hi")
        assert ws.recv().payload == "hi"
        ws.send(b"\x00bin")
        assert ws.recv().payload == b"\x00bin"
        proc.proc.terminate()  # SIGTERM
        with pytest.raises(gws.ConnectionClosed) as info:
            ws.recv()
    assert info.value.code == 1001
    assert proc.wait() == 0, proc
    assert proc.out[-1] == "stopped"


def test_serve_ctrl_c_stops_cleanly(gws_serve):
    import signal

    proc, url = gws_serve("--echo", "--port", "0")
    proc.proc.send_signal(signal.SIGINT)
    assert proc.wait() == 0, proc
    assert "stopped" in proc.out


def test_serve_broadcast_sends_each_message_to_every_other_client(gws_serve):
    proc, url = gws_serve("--broadcast", "--port", "0", "-v")
    with gevent.Timeout(TIMEOUT):
        a, b, c = gws.open(url), gws.open(url), gws.open(url)
        for _ in range(3):
            proc.expect_err("connected ")
        a.send("from a")
        assert b.recv().payload == "from a"
        assert c.recv().payload == "from a"
        b.send(b"from b")  # binary stays binary
        assert a.recv().payload == b"from b"  # a got nothing of its own before this
        assert c.recv().payload == b"from b"
        for ws in (a, b, c):
            ws.close()
    proc.expect_err("< 127.0.0.1:")


def test_serve_module_function_handler(gws_serve, tmp_path):
    (tmp_path / "myapp.py").write_text(
        "def handler(request, read, write):\n"
        "    for msg in read:\n"
        "        write(request.path + ' ' + msg.payload.upper())\n"
    )
    proc, url = gws_serve("myapp:handler", "--port", "0", cwd=str(tmp_path))
    with gevent.Timeout(TIMEOUT), gws.open(url + "room") as ws:
        ws.send("shout")
        assert ws.recv().payload == "/room SHOUT"


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("nomodule_here:handler", "cannot import"),
        ("os:nothing_here", "has no"),
        ("os", "MODULE:FUNCTION"),
    ],
)
def test_serve_bad_handler_is_a_usage_error(spec, complaint):
    proc = run_gws("serve", spec, "--port", "0")
    assert proc.returncode == 2, proc.stderr
    assert complaint in proc.stderr


def test_serve_tls_with_cert_and_key(gws_serve, tls_cert, tls_ca_file, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    tls_cert.cert_chain_pems[0].write_to_path(cert)
    tls_cert.private_key_pem.write_to_path(key)
    proc, url = gws_serve("--port", "0", "--cert", cert, "--key", key)
    assert url.startswith("wss://127.0.0.1:")
    with gevent.Timeout(TIMEOUT), gws.open(url, tls={"ca": tls_ca_file}) as ws:
        ws.send("secure")
        assert ws.recv().payload == "secure"


def test_serve_bad_cert_is_a_usage_error(tmp_path):
    missing = str(tmp_path / "missing.pem")
    proc = run_gws("serve", "--port", "0", "--cert", missing)
    assert proc.returncode == 2, proc.stderr
    assert "--cert" in proc.stderr


def test_serve_unix_socket(gws_serve, tmp_path):
    path = str(tmp_path / "serve.sock")
    proc, where = gws_serve("--unix", path)
    assert where == "ws+unix:" + path
    with gevent.Timeout(TIMEOUT):
        res, read, write = gws.connect({"path": path})
        assert res, read
        write("over unix")
        assert read().payload == "over unix"
        write(None)
    proc.stop()
    assert not os.path.exists(path)  # removed on stop


def test_serve_verbose_prints_connections_and_messages(gws_serve):
    proc, url = gws_serve("--port", "0", "-v", "-s", "chat")
    with gevent.Timeout(TIMEOUT):
        ws = gws.open(url + "path", subprotocol=["chat"])
        assert ws.subprotocol == "chat"
        ws.send("logged")
        assert ws.recv().payload == "logged"
        ws.close()
    line = proc.expect_err("connected ")
    assert line.startswith("connected 127.0.0.1:") and line.endswith(" /path subprotocol chat")
    assert proc.expect_err("< 127.0.0.1:").endswith(" logged")
    assert proc.expect_err("disconnected ").endswith("closed: code 1000 (normal closure)")


def test_serve_without_verbose_prints_only_where_it_listens(gws_serve):
    proc, url = gws_serve("--port", "0")
    with gevent.Timeout(TIMEOUT), gws.open(url) as ws:
        ws.send("quiet")
        assert ws.recv().payload == "quiet"
    proc.stop()
    assert proc.out == [f"listening on {url}", "stopped"] and proc.err == [], proc


def test_serve_cannot_listen_exits_1(gws_serve):
    proc, url = gws_serve("--port", "0")
    port = url.rsplit(":", 1)[1].strip("/")
    second = run_gws("serve", "--port", port)
    assert second.returncode == 1, second.stderr
    assert "cannot listen" in second.stderr


def test_gws_connect_to_gws_serve(gws_serve):
    _, url = gws_serve("--port", "0")
    proc = run_gws("connect", url, "-x", "round trip", "-w", "0.5")  # echo never closes
    assert proc.returncode == 0, proc.stderr
    assert "< round trip" in proc.stdout.splitlines()


# -- version and help ----------------------------------------------------------------------


def test_version():
    proc = run_gws("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"gws {gws.__version__} (Python ")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ((), "gws connect ws://127.0.0.1:8765/"),
        (("connect",), "--show-ping-pong"),
        (("serve",), "--broadcast"),
        (("client",), "--raw"),
        (("demo",), "gws demo"),
        (("echo-server",), "gws echo-server --port 8765"),
    ],
)
def test_help_everywhere_with_examples(args, shown):
    proc = run_gws(*args, "-h")
    assert proc.returncode == 0, proc.stderr
    assert "example" in proc.stdout and shown in proc.stdout, proc.stdout


# -- gws connect --proxy (a real pproxy) ---------------------------------------------------


def env_without_proxies() -> Dict[str, str]:
    """This environment without the variables that steer gws's proxy choice."""
    return {k: v for k, v in os.environ.items() if not steers_proxy(k)}


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_connect_proxy_goes_through_the_proxy_with_its_credentials(serve, pproxy, scheme):
    proxy = pproxy(scheme, auth="alice:s3cr3t")
    url = serve(echo_n_then_close(1))
    env = env_without_proxies()
    args = ("connect", url, "-r", "-x", "via proxy", "-w", "inf")
    good = run_gws(*args, "--proxy", proxy.url(scheme, "alice:s3cr3t"), env=env)
    assert good.returncode == 0, good.stderr
    assert good.stdout == "via proxy\n"
    bad = run_gws(*args, "--proxy", proxy.url(scheme, "alice:wrong"), env=env)
    assert bad.returncode == 1, bad.stderr  # so the first run did go through the proxy
    assert bad.stderr.startswith("error: ") and "proxy" in bad.stderr, bad.stderr
    assert "wrong" not in bad.stderr and "s3cr3t" not in good.stderr + bad.stderr


def test_connect_proxy_that_is_down_exits_1(serve, free_port):
    url = serve(echo_n_then_close(1))
    proc = run_gws("connect", url, "--proxy", f"http://127.0.0.1:{free_port}", "-x", "hi",
                   env=env_without_proxies())  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "proxy" in proc.stderr and "refused" in proc.stderr, proc.stderr


def test_connect_closes_cleanly_when_its_stdout_pipe_is_closed(serve):
    codes = gevent.queue.Queue()

    def flood(request, read, write):
        for i in range(100000):  # far more than a pipe holds
            ok, _ = write(f"line {i}")
            if not ok:
                break
        read()
        codes.put(read.close_code)

    url = serve(flood)
    proc = gevent.subprocess.Popen(
        [sys.executable, "-m", "gws", "connect", url, "-r", "-w", "inf"],
        stdin=gevent.subprocess.PIPE, stdout=gevent.subprocess.PIPE,
        stderr=gevent.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout.readline() == b"line 0\n"
        proc.stdout.close()  # like `| head -1`
        proc.stdin.close()
        with gevent.Timeout(TIMEOUT):
            err = proc.stderr.read()
        assert proc.wait(timeout=TIMEOUT) == 0, err
        assert b"Traceback" not in err and b"closed: code 1000" in err, err
        assert codes.get(timeout=TIMEOUT) == 1000
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
