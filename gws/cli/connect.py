"""``gws connect URL``: talk to a WebSocket server from the terminal.

Lines typed (or piped in, or given with ``-x``) go out as messages; what
the server sends is printed as it arrives. The connection runs with
``fragments=True``, so every frame, ping and pong included, is seen here
as it arrives (for ``-v`` and ``-P``); messages are reassembled with gws's
own :class:`~gws.protocol.Assembler` over the negotiated deflate context,
so reassembly, UTF-8 checks and ``--max-size`` are the library's. Frames
sent are traced by wrapping this one connection's ``raw_write``, and only
with ``-v`` or ``-P``: nothing is added to gws's hot path.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import IO, Any, Dict, Iterable, List, Optional, Tuple, Union

import gevent
from gevent import Greenlet

from ..client import Response, connect
from ..connection import Connection
from ..errors import ProtocolError, WebSocketError
from ..frames import OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Message
from ..io import Reader, Writer
from ..protocol import DEFAULT_MAX_SIZE, OPEN, Assembler
from ..url import parse_url
from .args import RawHelp, UsageError, duration, header, seconds, size
from .console import Console, piped_lines
from .output import Printer, describe_close, use_color

__all__ = ["add_parser", "run", "connect_target", "exit_status", "DEFAULT_WAIT"]

DEFAULT_WAIT = 1.0
"""Seconds to keep printing replies after stdin ends or after ``-x``."""

CLEAN_CODES = (1000, 1001, 1005)
"""Close codes that count as a clean end (exit status 0)."""

EXAMPLES = """\
examples:
  gws connect ws://127.0.0.1:8765/                 interactive (readline, history)
  echo hello | gws connect ws://127.0.0.1:8765/    send stdin lines, print replies
  gws connect wss://example.org/feed -x '{"subscribe": "ticks"}' -w 10
  gws connect wss://internal:8443/ --ca corp-ca.pem -H 'Authorization: Bearer T'
  gws connect ws://127.0.0.1:8765/ -v -P --ping 5000   trace frames, pings, pongs

exit status: 0 after a clean close (codes 1000, 1001, 1005), 1 when the
connection fails or ends any other way, 2 for a usage error. How the
connection ended (close code and its meaning) is printed on stderr.
"""


def add_parser(sub: Any, name: str = "connect", raw_default: bool = False) -> None:
    """Add the ``connect`` command (or its alias ``client``) to ``sub``."""
    if name == "connect":
        helptext = "connect to a WebSocket server: send lines, print messages"
        description = (
            "Connect to URL; send each line typed (a terminal: readline editing and "
            "history), piped in, or given with -x as a message, and print every message "
            "received, '<' marking received and '>' sent."
        )
    else:
        helptext = "old name of connect; prints bare payloads (connect --raw)"
        description = "The old name of 'gws connect', with --raw on: payloads only, no markers."
    p = sub.add_parser(
        name, help=helptext, description=description, epilog=EXAMPLES, formatter_class=RawHelp
    )
    p.add_argument("url", help="ws:// or wss:// URL (ws:// is assumed without a scheme)")
    g = p.add_argument_group("handshake")
    g.add_argument(
        "-H",
        "--header",
        action="append",
        type=header,
        default=[],
        metavar="'NAME: VALUE'",
        help="add an HTTP header to the upgrade request (repeatable)",
    )
    g.add_argument(
        "-s",
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="offer a subprotocol (repeatable, in order of preference)",
    )
    g.add_argument("-o", "--origin", help="send this Origin header")
    g.add_argument(
        "--proxy",
        metavar="URL",
        help="connect through this proxy: http://[user:pass@]host:port, https://, socks5://, "
        "socks5h://, socks4:// (default: the https_proxy / http_proxy / all_proxy environment, "
        "as urllib reads it)",
    )
    g.add_argument(
        "--unix", metavar="PATH", help="connect over this unix socket; URL gives the path"
    )
    g.add_argument(
        "--timeout",
        type=duration("ms"),
        default=10000.0,
        metavar="MS",
        help="limit for connect + TLS + handshake (default: 10000; 2s and 500ms work too)",
    )
    g.add_argument(
        "--no-compression",
        action="store_true",
        help="do not offer permessage-deflate (offered by default)",
    )
    t = p.add_argument_group("TLS (wss:// URLs)")
    t.add_argument("--ca", metavar="FILE", help="trust the CA certificates in this PEM file")
    t.add_argument("--cert", metavar="FILE", help="client certificate (PEM)")
    t.add_argument("--key", metavar="FILE", help="private key of --cert, if not in that file")
    t.add_argument(
        "-n",
        "--insecure",
        action="store_true",
        help="do not verify the server's certificate (testing only)",
    )
    s = p.add_argument_group("sending")
    s.add_argument(
        "-x",
        "--execute",
        action="append",
        default=[],
        metavar="MSG",
        help="send MSG after connecting (repeatable), wait (-w), then close; stdin is not read",
    )
    s.add_argument(
        "-w",
        "--wait",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="after stdin ends or after -x, keep printing replies for this long "
        f"(or until the server closes) before closing (default: {DEFAULT_WAIT:g}), "
        "0 when typing on a terminal; inf waits until the server closes",
    )
    kind = s.add_mutually_exclusive_group()
    kind.add_argument(
        "--text", dest="binary", action="store_false", help="send lines as text (default)"
    )
    kind.add_argument(
        "--binary",
        dest="binary",
        action="store_true",
        help="send lines as binary messages (their UTF-8 bytes)",
    )
    s.add_argument(
        "--ping",
        type=duration("ms"),
        metavar="MS",
        help="heartbeat: ping every MS; no frame from the server within MS fails the connection",
    )
    s.add_argument(
        "--max-size",
        type=size,
        default=DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help="largest message accepted (default: 16MiB); a larger one closes with 1009",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "-P",
        "--show-ping-pong",
        action="store_true",
        help="print pings and pongs, received and sent",
    )
    o.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="trace the handshake and every frame (opcode, flags, length, close code) on stderr",
    )
    o.add_argument(
        "--timings", action="store_true", help="start each line with the seconds since connecting"
    )
    o.add_argument(
        "-r",
        "--raw",
        action="store_true",
        default=raw_default,
        help="print received payloads only: no markers, no sent lines, no colour",
    )
    o.add_argument("--hex", action="store_true", help="print binary payloads as hex")
    o.add_argument("--no-color", action="store_true", help="no colour (also when NO_COLOR is set)")
    p.set_defaults(func=run, binary=False)


def connect_target(args: argparse.Namespace) -> Tuple[Union[str, Dict[str, Any]], Dict[str, Any]]:
    """What to pass to :func:`gws.connect` for ``args``: ``(url_or_options,
    options)``. Raises :class:`UsageError` for a bad URL or flag mix."""
    url = args.url
    if "://" not in url:
        url = "ws://" + url
    parsed, err = parse_url(url)
    if parsed is None:
        raise UsageError(f"bad URL {args.url!r}: {err}")
    headers: List[Tuple[str, str]] = list(args.header)
    options: Dict[str, Any] = {
        "timeout": args.timeout,
        "max_size": args.max_size,
        "fragments": True,
    }
    if headers:
        options["headers"] = headers
    if args.origin:
        options["origin"] = args.origin
    if args.subprotocol:
        options["subprotocol"] = list(args.subprotocol)
    if args.no_compression:
        options["compression"] = None
    if args.ping is not None:
        options["heartbeat"] = args.ping
    if args.proxy:
        options["proxy"] = args.proxy
    tls_flags = {"ca": args.ca, "cert": args.cert, "key": args.key}
    tls: Dict[str, Any] = {k: v for k, v in tls_flags.items() if v}
    if args.insecure:
        tls["insecure"] = True
    if tls:
        if not parsed.tls:
            raise UsageError("--ca, --cert, --key and --insecure need a wss:// URL")
        options["tls"] = tls
    if args.key and not args.cert:
        raise UsageError("--key needs --cert")
    if args.unix:
        target: Dict[str, Any] = {
            "path": args.unix,
            "pathname": parsed.pathname,
            "tls": options.pop("tls", parsed.tls),
        }
        return target, options
    return url, options


def exit_status(read: Reader) -> int:
    """0 after a clean close with a normal code (1000, 1001, 1005), else 1.
    ``read.error`` is not the test: it describes a peer's 1001 too."""
    if read.exception is None and read.close_code in CLEAN_CODES:
        return 0
    return 1


def run(
    args: argparse.Namespace,
    stdin: Optional[IO[str]] = None,
    stdout: Optional[IO[str]] = None,
    stderr: Optional[IO[str]] = None,
) -> int:
    """Run ``gws connect`` with parsed ``args``; return the exit status.
    The streams default to ``sys.stdin``, ``sys.stdout`` and ``sys.stderr``
    as they are when called."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        target, options = connect_target(args)
    except UsageError as exc:
        stderr.write(f"gws connect: error: {exc}\n")
        return 2
    interactive = not args.execute and stdin.isatty()
    color = use_color(stdout, disabled=args.no_color)
    printer = Printer(
        stdout,
        stderr,
        color=color,
        err_color=use_color(stderr, disabled=args.no_color),
        raw=args.raw,
        hex=args.hex,
        timings=args.timings,
    )
    try:
        result = connect(target, **options)
    except KeyboardInterrupt:
        return 130
    if not result[0]:
        printer.error(str(result[1]))
        return 1
    res, read, write = result
    conn = read.connection
    if args.verbose or interactive:
        _show_handshake(res, args, printer, interactive)
    if args.verbose or args.show_ping_pong:
        _trace_sent(conn, printer, frames=args.verbose, controls=args.show_ping_pong)
    assembler = Assembler(args.max_size, conn.protocol.deflate)
    reader = gevent.spawn(_receive, read, printer, assembler, args)
    console = Console(stdin, stdout) if interactive else None
    lines: Iterable[str]
    if args.execute:
        lines = args.execute
    elif console is not None:
        printer.before, printer.after = console.clear, console.redraw
        lines = console.lines()
    else:
        lines = piped_lines(stdin)
    wait = args.wait if args.wait is not None else (0.0 if interactive else DEFAULT_WAIT)
    status = 0
    try:
        with console if console is not None else contextlib.nullcontext():
            status = _converse(reader, lines, write, printer, args.binary, not interactive, wait)
    finally:
        printer.before = printer.after = None
        try:
            if not read.closed:
                write(None)  # close handshake, bounded by the close timeout
            reader.join(timeout=1)
        except KeyboardInterrupt:
            conn.abort()
        reader.kill()
    printer.status(describe_close(read.close_code, read.close_reason, read.error))
    return status or exit_status(read)


def _show_handshake(
    res: Response, args: argparse.Namespace, printer: Printer, interactive: bool
) -> None:
    """The ``connected`` line, and with ``-v`` the server's response head."""
    shown = f"connected to {args.url}"
    extras = [f"subprotocol {res.subprotocol}"] if res.subprotocol else []
    extras.extend(sorted(res.extensions))
    if extras:
        shown += " (" + ", ".join(extras) + ")"
    if interactive:
        shown += "; Ctrl-D or Ctrl-C to close"
    printer.status(shown)
    if args.verbose:
        printer.status(f"--- response: HTTP/{res.version:g} {res.code} {res.reason}")
        for name, value in res.headers:
            printer.status(f"{name}: {value}")
        printer.status("---")


def _converse(
    reader: Greenlet,  # type: ignore[type-arg]
    lines: Iterable[str],
    write: Writer,
    printer: Printer,
    binary: bool,
    show: bool,
    wait: float,
) -> int:
    """Send ``lines`` while ``reader`` prints what comes, until the lines
    end (then wait up to ``wait`` s for the server), the server closes, or
    Ctrl-C. 1 if a send failed, else 0."""
    sender = gevent.spawn(_send_all, lines, write, printer, binary, show)
    try:
        waitables: List[Any] = [reader, sender]
        gevent.wait(waitables, count=1)
        if reader.dead:
            return 0
        status: int = sender.get()
        reader.join(timeout=None if wait == float("inf") else wait)
        return status
    except KeyboardInterrupt:
        return 0
    finally:
        sender.kill()


def _send_all(
    lines: Iterable[str], write: Writer, printer: Printer, binary: bool, show: bool
) -> int:
    """Send each line as a message; 1 if a write failed, else 0."""
    opcode = OP_BINARY if binary else OP_TEXT
    for line in lines:
        data = line.encode("utf-8")
        ok, err = write(Message(True, False, False, False, opcode, False, data))
        if not ok:
            printer.error(f"send failed: {err}")
            return 1
        if show:
            printer.sent(data if binary else line)
        if printer.out_closed:
            break
    return 0


def _receive(
    read: Reader, printer: Printer, assembler: Assembler, args: argparse.Namespace
) -> None:
    """Print every frame (-v), ping and pong (-P) and message until the close."""
    conn = read.connection
    trace = args.verbose
    show_controls = args.show_ping_pong
    for frame in read:
        if trace:
            printer.frame("<", frame)
        opcode = frame.opcode
        if opcode >= OP_CLOSE:
            if show_controls and opcode in (OP_PING, OP_PONG):
                printer.control("<", opcode, frame.payload)  # type: ignore[arg-type]
            continue
        try:
            message = assembler.feed(frame)
        except ProtocolError as exc:  # MessageTooBig (1009), bad UTF-8 (1007), ...
            conn.fail(exc.code, str(exc))
            continue
        if message is not None:
            printer.received(message.payload)
            if printer.out_closed and conn.state is OPEN:  # | head has had enough
                try:
                    conn.close(1000, "")
                except WebSocketError:
                    pass


def _trace_sent(conn: Connection, printer: Printer, *, frames: bool, controls: bool) -> None:
    """Show each frame this connection writes (pongs, heartbeat pings and
    close frames included) by wrapping its ``raw_write``."""
    raw_write = conn.raw_write

    def traced(frame: Optional[Message]) -> None:
        if frame is not None:
            if frames:
                printer.frame(">", frame)
            if controls and frame.opcode in (OP_PING, OP_PONG):
                printer.control(">", frame.opcode, frame.payload)  # type: ignore[arg-type]
        raw_write(frame)

    conn.raw_write = traced
