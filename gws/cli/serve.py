"""``gws serve``: a WebSocket server from the command line.

``--echo`` (the default) sends every message back; ``--broadcast`` is a
chat room: every message goes to every other connected client;
``module:function`` serves with your own ``handler(request, read, write)``,
as :func:`gws.serve` does. The first line printed is the URL listened on
(``--port 0`` picks a free port). Ctrl-C or SIGTERM closes the open
connections with 1001 (going away) and stops.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import ssl
import sys
from typing import IO, Any, Callable, Dict, Optional, Set

import gevent
import gevent.ssl as gssl
from gevent.event import Event

from ..broadcast import broadcast
from ..io import Reader, Writer
from ..protocol import DEFAULT_MAX_SIZE
from ..server import Handler, Request, echo, serve
from ..url import url_host
from .args import RawHelp, UsageError, size
from .output import Printer, describe_close, format_payload, use_color

__all__ = ["add_parser", "run", "Room", "load_handler"]

STOP_TIMEOUT = 5.0
"""Seconds the open connections get to finish their close handshakes on stop."""

EXAMPLES = """\
examples:
  gws serve --port 8765                          echo server on ws://127.0.0.1:8765/
  gws serve --broadcast --port 8765 -v           chat room; try two 'gws connect's
  gws serve myapp:handler --host 0.0.0.0 --port 8765   your handler(request, read, write)
  gws serve --port 8443 --cert cert.pem --key key.pem  wss://
  gws serve --unix /tmp/ws.sock                  a unix socket

The first line printed is the URL listened on. Ctrl-C or SIGTERM closes the
connections with 1001 (going away) and stops.
"""


def add_parser(sub: Any) -> None:
    """Add the ``serve`` command to ``sub``."""
    p = sub.add_parser(
        "serve",
        help="run a WebSocket server: echo, chat room or your handler",
        description="Serve WebSocket connections on HOST:PORT (or a unix socket).",
        epilog=EXAMPLES,
        formatter_class=RawHelp,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "handler",
        nargs="?",
        metavar="MODULE:FUNCTION",
        help="serve with handler(request, read, write) from an importable module",
    )
    mode.add_argument("--echo", action="store_true", help="send every message back (the default)")
    mode.add_argument(
        "--broadcast",
        action="store_true",
        help="chat room: every message goes to every other connected client",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0: a free one)")
    p.add_argument("--unix", metavar="PATH", help="listen on this unix socket instead")
    p.add_argument("--cert", metavar="FILE", help="serve wss://: certificate chain (PEM)")
    p.add_argument("--key", metavar="FILE", help="private key of --cert, if not in that file")
    p.add_argument(
        "-s",
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this subprotocol when offered (repeatable, in order of preference)",
    )
    p.add_argument("--no-compression", action="store_true", help="do not accept permessage-deflate")
    p.add_argument(
        "--max-size",
        type=size,
        default=DEFAULT_MAX_SIZE,
        metavar="BYTES",
        help="largest message accepted (default: 16MiB); a larger one closes with 1009",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print connections and (--echo, --broadcast) messages",
    )
    p.add_argument("--no-color", action="store_true", help="no colour (also when NO_COLOR is set)")
    p.set_defaults(func=run)


def load_handler(spec: str) -> Handler:
    """``"package.module:function"`` -> the function. The current directory
    is importable, as with ``python -m``. Raises :class:`UsageError`."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"handler must be MODULE:FUNCTION, not {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UsageError(f"{module_name!r} has no {attr!r}")
    if not callable(obj):
        raise UsageError(f"{spec} is not callable")
    return obj  # type: ignore[no-any-return]


class Room:
    """A chat room: what one member sends goes to every other member, through
    :func:`gws.broadcast` (a member too slow to keep up is dropped, never
    stalls the others)."""

    def __init__(self, log: Optional[Callable[[str], None]] = None) -> None:
        self.members: Set[Writer] = set()
        self.log = log

    def __call__(self, request: Request, read: Reader, write: Writer) -> None:
        self.members.add(write)
        try:
            for msg in read:
                if self.log is not None:
                    self.log(f"< {_peer(request)} {format_payload(msg.payload)}")
                others = [member for member in self.members if member is not write]
                broadcast(others, msg.payload)  # str -> text, bytes -> binary
        finally:
            self.members.discard(write)


def _peer(request: Request) -> str:
    address = request.address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "unix")


def _logging_echo(log: Callable[[str], None]) -> Handler:
    def handler(request: Request, read: Reader, write: Writer) -> None:
        for msg in read:
            log(f"< {_peer(request)} {format_payload(msg.payload)}")
            ok, _ = write(msg.payload)
            if not ok:
                break

    return handler


def _handler(args: argparse.Namespace, log: Optional[Callable[[str], None]]) -> Handler:
    """The handler ``args`` ask for (MODULE:FUNCTION, --broadcast, echo);
    with ``log`` (-v), it and every connect and disconnect are logged."""
    inner: Handler
    if args.handler:
        inner = load_handler(args.handler)
    elif args.broadcast:
        inner = Room(log)
    elif log is not None:
        inner = _logging_echo(log)
    else:
        inner = echo
    if log is None:
        return inner

    def handler(request: Request, read: Reader, write: Writer) -> None:
        peer = _peer(request)
        extra = f" subprotocol {request.subprotocol}" if request.subprotocol else ""
        log(f"connected {peer} {request.path}{extra}")
        try:
            inner(request, read, write)
        finally:
            if not read.closed:
                write(None)  # as serve() would once the handler returns
            log(
                f"disconnected {peer} "
                + describe_close(read.close_code, read.close_reason, read.error)
            )

    return handler


def _server_context(cert: str, key: Optional[str]) -> ssl.SSLContext:
    ctx = gssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def run(
    args: argparse.Namespace, stdout: Optional[IO[str]] = None, stderr: Optional[IO[str]] = None
) -> int:
    """Run ``gws serve`` with parsed ``args`` until Ctrl-C or SIGTERM (the
    streams default to ``sys.stdout`` and ``sys.stderr`` when called)."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    printer = Printer(
        stdout,
        stderr,
        color=use_color(stdout, disabled=args.no_color),
        err_color=use_color(stderr, disabled=args.no_color),
    )
    log: Optional[Callable[[str], None]] = printer.status if args.verbose else None
    try:
        if args.key and not args.cert:
            raise UsageError("--key needs --cert")
        handler = _handler(args, log)
        context = _server_context(args.cert, args.key) if args.cert else None
    except UsageError as exc:
        stderr.write(f"gws serve: error: {exc}\n")
        return 2
    except (OSError, ssl.SSLError) as exc:
        stderr.write(f"gws serve: error: cannot load --cert/--key: {exc}\n")
        return 2
    host = f"unix:{args.unix}" if args.unix else args.host
    options: Dict[str, Any] = {"max_size": args.max_size}
    if args.subprotocol:
        options["subprotocols"] = list(args.subprotocol)
    if args.no_compression:
        options["compression"] = None
    try:
        server = serve(handler, host, args.port, ssl_context=context, start=False, **options)
        server.start()
    except OSError as exc:
        stderr.write(f"gws serve: error: cannot listen on {host}:{args.port}: {exc}\n")
        return 1
    stopping = Event()
    watcher = gevent.signal_handler(signal.SIGTERM, stopping.set)
    try:
        scheme = "wss" if context is not None else "ws"
        if args.unix:
            where = f"{scheme}+unix:{args.unix}"
        else:
            where = f"{scheme}://{url_host(args.host)}:{server.server_port}/"
        stdout.write(f"listening on {where}\n")
        stdout.flush()
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        watcher.cancel()
        server.stop(timeout=STOP_TIMEOUT)  # closes open connections with 1001
    stdout.write("stopped\n")
    stdout.flush()
    return 0
