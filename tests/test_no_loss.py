"""Nothing is lost, duplicated, reordered or corrupted, in either direction.

The client sends 20,000 messages of random sizes (text and binary) from
several greenlets sharing one connection, each greenlet numbering its own
messages; a gws server handler records (greenlet, sequence number, SHA-256)
of every message and echoes it; a reader greenlet on the client records the
echoes. After a clean close, the server's record must equal what each
greenlet sent, in each greenlet's order, and so must the echoes.

Sizes: mostly under 1 KiB, about 1% large (SCALE_NOTE below). permessage-deflate
is negotiated (the default), so every byte also goes through compression and
decompression on both sides.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any, Dict, List, Tuple

import gevent
import pytest
from helpers import Harness, peak_rss_bytes

import gws
from gws.frames import OP_BINARY, OP_TEXT, Message

MESSAGES = 20_000
SENDERS = 4
BIG_SHARE = 0.01
BIG_MIN, BIG_MAX = 896 * 1024, 1024 * 1024
SMALL_MAX = 1024
SCALE_NOTE = "full scale: 1% of messages 896 KiB-1 MiB"

Record = Tuple[int, int, bytes, int]  # (sender, seq, sha256, opcode)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

_rng = random.Random(6455)
_POOL = _rng.randbytes(BIG_MAX + 4096)
_TEXT_POOL = "".join(_rng.choice("abcdefghij KLMNOP 0123456789 éß€漢🙂") for _ in range(BIG_MAX))


def _plan() -> List[List[Tuple[int, int, bool]]]:
    """Per sender: (seq, size, is_text) for each of its messages."""
    rng = random.Random(1)
    plans: List[List[Tuple[int, int, bool]]] = [[] for _ in range(SENDERS)]
    for _ in range(MESSAGES):
        sender = rng.randrange(SENDERS)
        if rng.random() < BIG_SHARE:
            size = rng.randint(BIG_MIN, BIG_MAX)
        else:
            size = rng.randint(0, SMALL_MAX)
        plans[sender].append((len(plans[sender]), size, rng.random() < 0.4))
    return plans


def _payload(sender: int, seq: int, size: int, is_text: bool, salt: int) -> Any:
    head = f"{sender}:{seq}:"
    if is_text:
        start = salt % (len(_TEXT_POOL) - size) if size < len(_TEXT_POOL) else 0
        return head + _TEXT_POOL[start : start + size]
    start = salt % 4096
    return head.encode() + _POOL[start : start + size]


def _record(payload: Any, opcode: int) -> Record:
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    sender, seq, _ = data[:40].split(b":", 2)
    return int(sender), int(seq), hashlib.sha256(data).digest(), opcode


def test_20000_messages_none_lost_in_either_direction() -> None:
    plans = _plan()
    received: List[Record] = []
    harness = Harness()

    def recorder(request: gws.Request, read: gws.Reader, write: gws.Writer) -> None:
        for msg in read:
            received.append(_record(msg.payload, msg.opcode))
            ok, err = write(Message(opcode=msg.opcode, payload=msg.payload))
            assert ok, err

    sent: Dict[int, List[Record]] = {s: [] for s in range(SENDERS)}
    echoed: List[Record] = []
    total_bytes = 0
    started = time.monotonic()
    with gevent.Timeout(200), harness.no_leaks(join_timeout=30):
        srv = harness.ws(recorder)
        res, read, write = gws.connect(srv.url, timeout=10000)
        assert res, read
        assert "permessage-deflate" in res.extensions

        def sender(index: int) -> None:
            nonlocal total_bytes
            for seq, size, is_text in plans[index]:
                payload = _payload(index, seq, size, is_text, seq * 7919 + index)
                record = _record(payload, OP_TEXT if is_text else OP_BINARY)
                ok, err = write(payload)
                assert ok, err
                sent[index].append(record)
                total_bytes += len(payload)

        def reader() -> None:
            while len(echoed) < MESSAGES:
                msg = read()
                assert msg is not None, read.error
                echoed.append(_record(msg.payload, msg.opcode))

        echo_reader = gevent.spawn(reader)
        senders = [gevent.spawn(sender, i) for i in range(SENDERS)]
        gevent.joinall(senders, raise_error=True)
        echo_reader.get()
        assert write.close() == (True, None)
        assert read.error is None
        assert read.close_code == 1000
        assert read() is None
    elapsed = time.monotonic() - started

    print(
        f"\n{MESSAGES} messages, {total_bytes / 2**20:.0f} MiB each way ({SCALE_NOTE}), "
        f"{elapsed:.1f} s, peak RSS {peak_rss_bytes() / 2**20:.0f} MiB"
    )
    assert sum(len(v) for v in sent.values()) == MESSAGES
    assert len(received) == MESSAGES, "the server did not get every message exactly once"
    assert len(echoed) == MESSAGES
    for index in range(SENDERS):
        expected = sent[index]
        assert [r for r in received if r[0] == index] == expected, f"server view of sender {index}"
        assert [r for r in echoed if r[0] == index] == expected, f"echoes of sender {index}"
    # and the server echoed in exactly the order it received
    assert echoed == received
