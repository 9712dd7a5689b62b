"""The ``gws`` command line (also ``python -m gws``).

Commands: ``connect`` (alias ``client``), ``serve``, ``demo`` and
``echo-server``; ``gws --version``; ``-h`` on each shows its examples.
One module per job: :mod:`.connect` and :mod:`.serve` run the commands,
:mod:`.output` formats what they print, :mod:`.console` reads the
terminal, :mod:`.args` parses durations, sizes and headers.
"""

from __future__ import annotations

import argparse
import platform
from typing import List, Optional

import gevent

from .. import __version__
from . import connect, demo, serve
from .args import RawHelp

__all__ = ["main", "build_parser"]

EXAMPLES = """\
examples:
  gws demo                                  echo example against a loopback server
  gws serve --port 8765                     an echo server
  gws connect ws://127.0.0.1:8765/          talk to it (interactive on a terminal)
  gws serve --broadcast --port 8765         a chat room
  gws connect wss://example.org/ -x hello -w 2   send, wait 2 s for replies, close

'gws COMMAND -h' shows each command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``gws`` argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="gws",
        description="Synchronous WebSockets on gevent: a client, a server, a demo.",
        epilog=EXAMPLES,
        formatter_class=RawHelp,
    )
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"gws {__version__} (Python {platform.python_version()}, "
        f"gevent {gevent.__version__})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connect.add_parser(sub)
    serve.add_parser(sub)
    demo.add_parsers(sub)
    connect.add_parser(sub, name="client", raw_default=True)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; return the exit status (2 for a usage error)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # stdout went away (| head): nothing left to say
        return 1
