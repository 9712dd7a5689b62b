"""``broadcast(connections, message)``: one message to many connections, and
no slow client can stall the others.

How: a bounded queue per connection, not a write timeout. Each connection
gets its messages from a writer greenlet of its own, which exists while the
connection has messages queued; ``broadcast()`` only appends to the queues
and yields once, so the writers run, and returns. A client that reads
slowly only lengthens its own queue; the others are written to at their
own pace, in order. A client whose queue already holds ``max_queue``
messages when the next one comes is dropped (its connection aborted: it
sees 1006, the server's ``read()`` returns None with ``read.error`` saying
why): it is too far behind to catch up, and the server's memory per client
stays bounded by ``max_queue`` messages.

Why not a write timeout: with one, ``broadcast()`` itself waits up to the
timeout for every slow client, so each broadcast call, and every fast
client's next message, is late by that much while a client stalls; and a
write cut short by the timeout has to drop the connection anyway (half a
frame is on the wire). The queue keeps the broadcaster from ever waiting on
a client and tolerates a short stall (up to ``max_queue`` messages) without
dropping anyone.

Messages are compressed per connection when permessage-deflate was
negotiated (each connection has its own compression context); the payload
itself is shared, not copied, by the queues.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from typing import Any, Deque, Iterable, Optional

import gevent
from gevent import Greenlet

from .connection import Connection, MessageLike, to_message
from .errors import WebSocketError
from .frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Message
from .protocol import OPEN

__all__ = ["broadcast", "DEFAULT_MAX_QUEUE", "queued"]

log = logging.getLogger("gws")

DEFAULT_MAX_QUEUE = 64
"""Messages a connection may have waiting before broadcast() drops it."""


class TooSlow(WebSocketError):
    """Why broadcast() dropped a connection: its queue was full."""


class _Outbox:
    """The messages waiting for one connection, and the greenlet writing them."""

    __slots__ = ("queue", "writer")

    def __init__(self) -> None:
        self.queue: Deque[Message] = deque()
        self.writer: Optional[Greenlet[..., Any]] = None


_outboxes: weakref.WeakKeyDictionary[Connection, _Outbox] = weakref.WeakKeyDictionary()


def _connection_of(item: Any) -> Connection:
    if isinstance(item, Connection):
        return item
    conn = getattr(item, "connection", None)
    if isinstance(conn, Connection):
        return conn
    raise TypeError(
        f"cannot broadcast to {type(item).__name__}: pass gws connections, readers, writers"
        " or WebSocket objects (anything with a .connection)"
    )


def _frame(message: MessageLike) -> Message:
    if message is None:
        raise TypeError("broadcast(None): close connections with close(), not broadcast()")
    frame = to_message(message)
    if frame.opcode == OP_CLOSE:
        raise ValueError("broadcast cannot send a close frame: close each connection instead")
    if frame.opcode == OP_CONTINUATION or not frame.fin:
        raise ValueError("broadcast sends whole messages only (fin=True, no continuation)")
    if frame.opcode not in (OP_TEXT, OP_BINARY, OP_PING, OP_PONG):
        raise ValueError(f"cannot broadcast opcode {frame.opcode}")
    if frame.opcode >= OP_PING and len(frame.payload) > 125:
        raise ValueError("a ping or pong payload is at most 125 bytes")
    return frame


def queued(connection: Any) -> int:
    """How many broadcast messages wait for ``connection`` (0 when none)."""
    box = _outboxes.get(_connection_of(connection))
    return 0 if box is None else len(box.queue)


def broadcast(
    connections: Iterable[Any], message: MessageLike, *, max_queue: int = DEFAULT_MAX_QUEUE
) -> int:
    """Queue ``message`` for every open connection in ``connections``; return
    for how many it was queued.

    ``connections``: :class:`~gws.connection.Connection` objects (such as
    ``server.connections``), or anything with a ``.connection`` (the
    ``read``/``write`` a handler gets, a :class:`gws.WebSocket`). Closed
    ones are skipped. ``message``: ``str`` (text), ``bytes`` (binary), a
    :class:`gws.Message` or dict, as ``write()`` takes, but one whole
    message (no close frame, no fragments); a bad one raises TypeError or
    ValueError before anything is queued.

    Never waits for a client: it yields once so the connections' writer
    greenlets run, and returns. A connection that already has ``max_queue``
    messages waiting is dropped instead (logged at WARNING). See the module
    docstring for why a queue and not a write timeout. Call it from the
    thread whose hub runs the connections (:class:`gws.WrongThread`
    otherwise).
    """
    if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
        raise ValueError("max_queue must be a positive int (messages)")
    frame = _frame(message)
    conns = [_connection_of(item) for item in connections]
    count = 0
    for conn in conns:
        if conn.state is not OPEN:
            continue
        conn.check_thread()
        box = _outboxes.get(conn)
        if box is None:
            box = _outboxes[conn] = _Outbox()
        if len(box.queue) >= max_queue:
            log.warning(
                "broadcast: dropping a connection with %d messages queued (client too slow)",
                len(box.queue),
            )
            box.queue.clear()
            conn.abort(TooSlow(f"too slow for broadcast: {max_queue} messages were queued"))
            continue
        box.queue.append(frame)
        if box.writer is None:
            box.writer = gevent.spawn(_drain, conn, box)
        count += 1
    if count:
        gevent.sleep(0)
    return count


def _drain(conn: Connection, box: _Outbox) -> None:
    """Write ``box``'s messages to ``conn`` in order until none is left."""
    queue = box.queue
    try:
        while queue and conn.state is OPEN:
            conn.send(queue[0])
            if queue:  # a drop may have cleared it meanwhile
                queue.popleft()
    except (WebSocketError, OSError, ValueError) as exc:
        log.debug("broadcast: send failed: %s", exc)
        queue.clear()
    finally:
        box.writer = None
        if conn.state is not OPEN:
            queue.clear()
        if not queue and _outboxes.get(conn) is box:
            del _outboxes[conn]
