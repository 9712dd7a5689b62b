"""``gws demo`` and ``gws echo-server``: the two commands of gws 0.1.

``demo`` starts an echo server on a free loopback port in this process and
runs coro-websocket's echo example against it through :func:`gws.connect`.
``echo-server`` is ``gws serve --echo`` under its old name.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..client import connect
from ..server import echo, serve

__all__ = ["add_parsers", "demo", "echo_server"]


def add_parsers(sub: Any) -> None:
    """Add ``demo`` and ``echo-server`` to ``sub``."""
    p_demo = sub.add_parser(
        "demo",
        help="echo example against a loopback server started here",
        description="Start an echo server on a free loopback port and run "
        "coro-websocket's echo example against it.",
        epilog="example:\n  gws demo 'one more message'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_demo.add_argument("message", nargs="*", help="extra messages to send")
    p_demo.set_defaults(func=demo)
    p_srv = sub.add_parser(
        "echo-server",
        help="run an echo server (old name of 'serve --echo')",
        description="An echo server; 'gws serve --echo' does the same with more options.",
        epilog="example:\n  gws echo-server --port 8765",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_srv.add_argument("--host", default="127.0.0.1")
    p_srv.add_argument("--port", type=int, default=8765)
    p_srv.set_defaults(func=echo_server)


def demo(args: argparse.Namespace) -> int:
    server = serve(echo, "127.0.0.1", 0)
    port = server.server_port
    print(f"echo server listening on ws://127.0.0.1:{port}/")
    try:
        result = connect({"host": "127.0.0.1", "port": port, "heartbeat": 5000})
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
    server = serve(echo, args.host, args.port, start=False)
    server.start()
    print(f"echo server listening on ws://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
