"""The ``gws`` command line: ``demo``, ``echo-server`` and ``client``.

``python -m gws demo`` starts an echo server on a free loopback port in this
process and runs coro-websocket's echo example against it through
``gws.connect``. ``python -m gws client URL`` sends each stdin line as a
text message and prints what comes back; after stdin ends it waits for the
replies up to ``--wait`` seconds (default 1), then closes.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import gevent
from gevent.fileobject import FileObject

import gws

DEFAULT_WAIT = 1.0
"""Seconds ``client`` waits for replies after stdin ends."""


def demo(args: argparse.Namespace) -> int:
    server = gws.serve(gws.echo, "127.0.0.1", 0)
    port = server.server_port
    print(f"echo server listening on ws://127.0.0.1:{port}/")
    try:
        result = gws.connect({"host": "127.0.0.1", "port": port, "heartbeat": 5000})
        if not result[0]:  # narrows the whole tuple, which unpacked names would not
            print("Error establishing connection!\n" + result[1])
            return 1
        res, read, write = result
        print(f"connected: HTTP {res.code} {res.reason}, extensions {sorted(res.extensions)}")
        messages = ["Hello There!", *args.message]
        for text in messages:
            ok, err = write({"payload": text})
            if not ok:
                print("write failed: " + str(err))
                return 1
            print("sent:", text)
        received = 0
        for msg in read:
            payload = msg.payload
            shown = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            print("Host responded with", shown)
            received += 1
            if received == len(messages):
                write(None)  # close handshake; read() then returns None
        print(f"Connection closed! (code {read.close_code}, error {read.error})")
        return 0 if received == len(messages) and read.error is None else 1
    finally:
        server.stop(timeout=1)


def echo_server(args: argparse.Namespace) -> int:
    server = gws.serve(gws.echo, args.host, args.port, start=False)
    server.start()
    print(f"echo server listening on ws://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def client(args: argparse.Namespace) -> int:
    """Send each stdin line as a text message and print every message received.

    After stdin ends, keep printing replies for up to ``args.wait`` seconds
    (or until the server closes), then close with 1000.
    """
    result = gws.connect(args.url, heartbeat=args.heartbeat)
    if not result[0]:
        print("error: " + str(result[1]), file=sys.stderr, flush=True)
        return 1
    _, read, write = result

    def printer() -> None:
        for msg in read:
            payload = msg.payload
            print(payload if isinstance(payload, str) else repr(payload), flush=True)

    reader = gevent.spawn(printer)
    status = 0
    try:
        # gevent's FileObject wraps a file object too, not only a path or fd
        # as types-gevent's stub says.
        stdin = FileObject(sys.stdin, "r")  # type: ignore[arg-type]
        for line in stdin:
            ok, err = write(line[:-1] if line.endswith("\n") else line)
            if not ok:
                print("error: " + str(err), file=sys.stderr, flush=True)
                status = 1
                break
        # stdin is done: the replies may still be on their way (wsdump --eof-wait)
        reader.join(timeout=args.wait)
        write(None)  # close handshake (bounded by the close timeout); read() then returns None
        reader.join(timeout=1)
    finally:
        reader.kill()
        sys.stdout.flush()
    return status


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text!r}")
    return value


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="gws", description="Synchronous WebSockets on gevent")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="echo example against a loopback server started here")
    p_demo.add_argument("message", nargs="*", help="extra messages to send")
    p_demo.set_defaults(func=demo)
    p_srv = sub.add_parser("echo-server", help="run an echo server")
    p_srv.add_argument("--host", default="127.0.0.1")
    p_srv.add_argument("--port", type=int, default=8765)
    p_srv.set_defaults(func=echo_server)
    p_cli = sub.add_parser("client", help="send stdin lines as text messages, print replies")
    p_cli.add_argument("url")
    p_cli.add_argument("--heartbeat", type=int, default=None, help="ms between pings")
    p_cli.add_argument(
        "-w",
        "--wait",
        type=_seconds,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help="after stdin ends, keep printing replies for this long (or until the server "
        f"closes) before closing (default: {DEFAULT_WAIT:g})",
    )
    p_cli.set_defaults(func=client)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
