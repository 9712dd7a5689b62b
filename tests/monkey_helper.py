"""Run by test_monkeypatch.py in a subprocess: gws with and without
``gevent.monkey.patch_all()``.

    python monkey_helper.py patched     # patch_all() first, then use gws
    python monkey_helper.py unpatched   # plain import: gws must not patch

Prints "OK <mode>" and exits 0 when every check passed; any failure raises.
"""

from __future__ import annotations

import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "patched"

if MODE == "patched":
    from gevent import monkey

    monkey.patch_all()

import socket  # noqa: E402
import threading  # noqa: E402

import gevent  # noqa: E402
import gevent.monkey  # noqa: E402

import gws  # noqa: E402


def check_import_did_not_patch() -> None:
    assert not gevent.monkey.is_module_patched("socket"), "import gws patched socket"
    assert not gevent.monkey.is_module_patched("threading"), "import gws patched threading"
    assert socket.socket.__module__ == "socket", socket.socket


def exercise() -> None:
    closes = []

    def handler(request, read, write):
        for msg in read:
            write(gws.Message(opcode=msg.opcode, payload=msg.payload))
        closes.append((read.close_code, read.close_reason))

    server = gws.serve(handler, "127.0.0.1", 0)
    try:
        with gevent.Timeout(20):
            port = server.server_port
            res, read, write = gws.connect(
                {"host": "127.0.0.1", "port": port, "heartbeat": 50, "timeout": 5000}
            )
            assert res, read
            assert res.code == 101
            assert write({"payload": "Hello There!"}) == (True, None)
            msg = read()
            assert msg is not None and msg.payload == b"Hello There!", (msg, read.error)

            # several greenlets writing at once, heartbeat running meanwhile
            def writer(i: int) -> None:
                ok, err = write(f"msg {i} " + "x" * (i * 997))
                assert ok, err

            greenlets = [gevent.spawn(writer, i) for i in range(20)]
            gevent.joinall(greenlets, raise_error=True)
            got = sorted(read().payload.split(" ")[1] for _ in range(20))
            assert got == sorted(str(i) for i in range(20)), got

            assert write.close(4000, "done") == (True, None)
            assert read() is None and read.error is None
            assert read.close_code == 4000

            # the Pythonic face, and a clear error value on a refused port
            with gws.open(f"ws://127.0.0.1:{port}/", compression=None) as ws:
                ws.send("py")
                assert ws.recv().payload == "py"
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
            probe.close()
            res, err, _ = gws.connect(port=free)
            assert res is None and "refused" in err, err

            # a client in another OS thread (its own hub), while this
            # thread's hub keeps serving; the wait for it is cooperative
            def in_thread() -> str:
                res, read, write = gws.connect(port=port, timeout=5000)
                assert res, read
                write("from a thread")
                payload = read().payload
                write.close()
                return payload

            pool = gevent.get_hub().threadpool
            assert pool.spawn(in_thread).get(timeout=10) == "from a thread"

            # and a greenlet-friendly thread when patched (a plain one otherwise)
            if MODE == "patched":
                results = []
                thread = threading.Thread(
                    target=lambda: results.append(gws.connect(port=port)[0] is not None)
                )
                thread.start()
                thread.join(10)
                assert results == [True], results
    finally:
        server.stop(timeout=1)
    assert (4000, "done") in closes, closes


def main() -> int:
    if MODE == "unpatched":
        check_import_did_not_patch()
    elif MODE == "patched":
        assert gevent.monkey.is_module_patched("socket")
    else:
        raise SystemExit(f"unknown mode {MODE!r}")
    exercise()
    if MODE == "unpatched":
        check_import_did_not_patch()  # still not patched after using gws
    print(f"OK {MODE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
