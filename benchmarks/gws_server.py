"""gws's own gevent echo server for the benchmarks.

Listeners on 127.0.0.1 free ports: ``plain`` (compression off),
``deflate`` (permessage-deflate accepted) and, when ``GWS_BENCH_CERT`` and
``GWS_BENCH_KEY`` name PEM files, ``tls`` (wss, compression off). Prints one
JSON line with the ports, then serves until SIGTERM, SIGINT or the parent
process goes away.
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
    servers = [plain, deflate]
    tls_port = None
    if os.environ.get("GWS_BENCH_CERT"):
        from gevent import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.environ["GWS_BENCH_CERT"], os.environ["GWS_BENCH_KEY"])
        tls = gws.serve(gws.echo, "127.0.0.1", 0, compression=None, ssl_context=ctx)
        servers.append(tls)
        tls_port = tls.server_port
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    parent = os.getppid()
    print(
        json.dumps(
            {
                "plain": plain.server_port,
                "deflate": deflate.server_port,
                "tls": tls_port,
                "gws": gws.__version__,
            }
        ),
        flush=True,
    )
    while not stop.wait(1.0):
        if os.getppid() != parent:  # orphaned: run.py died
            break
    for server in servers:
        server.stop(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
