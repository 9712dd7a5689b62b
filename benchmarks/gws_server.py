"""gws's own gevent echo server for the benchmarks.

Two listeners on 127.0.0.1 free ports: ``plain`` (compression off) and
``deflate`` (permessage-deflate accepted). Prints one JSON line with the
ports, then serves until SIGTERM, SIGINT or the parent process goes away.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main() -> int:
    import gevent
    from gevent.event import Event

    import gws

    plain = gws.serve(gws.echo, "127.0.0.1", 0, compression=None)
    deflate = gws.serve(gws.echo, "127.0.0.1", 0, compression="deflate")
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    parent = os.getppid()
    print(
        json.dumps(
            {"plain": plain.server_port, "deflate": deflate.server_port, "gws": gws.__version__}
        ),
        flush=True,
    )
    while not stop.wait(1.0):
        if os.getppid() != parent:  # orphaned: run.py died
            break
    plain.stop(timeout=1)
    deflate.stop(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
