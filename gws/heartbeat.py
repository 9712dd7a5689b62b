"""The heartbeat: a ping every ``interval``, and a dead peer noticed in time.

It is a loop timer (a few hundred bytes) that spawns a short-lived greenlet
per step, not a greenlet per connection sleeping between pings (about 6 KiB
of saved stack each). A step checks the oldest unanswered ping, reads once
for an idle connection (so a quiet reader does not look like a dead peer),
and sends the next ping when due. A step that blocks longer than the
timeout (a writer stuck on a peer that stopped reading holds the write lock)
drops the connection with :class:`~gws.errors.HeartbeatTimeout`.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import TYPE_CHECKING, Optional

import gevent

from .deadline import Deadline
from .errors import HeartbeatTimeout, WebSocketError
from .frames import OP_PING, Message
from .protocol import OPEN

if TYPE_CHECKING:
    from gevent._types import _TimerWatcher

    from .connection import Connection

    # A step: a greenlet running _beat(), whose value is the delay to the next.
    _Step = gevent.Greenlet[[], Optional[float]]

__all__ = ["Heartbeat"]

log = logging.getLogger("gws")


class Heartbeat:
    """Pings for ``conn`` every ``interval`` seconds with ``opcode`` (9 or
    10); with ``timeout`` set, no frame within ``timeout`` of a ping drops
    the connection."""

    __slots__ = ("conn", "interval", "timeout", "opcode", "_timer", "_step", "_waiting", "_next")

    def __init__(
        self, conn: Connection, interval: float, timeout: Optional[float], opcode: int = OP_PING
    ) -> None:
        self.conn = conn
        self.interval = interval
        self.timeout = timeout
        self.opcode = opcode
        self._timer: Optional[_TimerWatcher] = None
        self._step: Optional[_Step] = None
        self._waiting: Optional[float] = None  # when the oldest unanswered ping went out
        self._next = monotonic() + interval
        self._schedule(interval)

    @property
    def active(self) -> bool:
        """Whether a step is scheduled or running."""
        return self._timer is not None or self._step is not None

    def stop(self) -> None:
        """Cancel the timer and kill a running step (unless it is the caller)."""
        timer = self._timer
        if timer is not None:
            timer.close()
            self._timer = None
        step = self._step
        if step is not None and step is not gevent.getcurrent():
            self._step = None
            step.kill(block=False)

    def _schedule(self, delay: float) -> None:
        timer = self._timer = gevent.get_hub().loop.timer(max(delay, 0.0))
        timer.start(self._spawn_step)

    def _spawn_step(self) -> None:
        # Runs in the hub, which must not block: the step gets its own greenlet.
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        if self.conn.protocol.state is OPEN:
            step = self._step = gevent.spawn(self._beat)
            step.rawlink(self._step_ended)

    def _step_ended(self, step: _Step) -> None:
        # Also when the step was killed, even before it started: the heartbeat
        # goes on while the connection is open (stop() unsets _step first).
        if self._step is not step:
            return
        self._step = None
        value = step.value  # a kill leaves the GreenletExit here
        delay = (
            value if step.successful() and not isinstance(value, BaseException) else self.interval
        )
        if delay is not None and self.conn.protocol.state is OPEN:
            self._schedule(delay)

    def _beat(self) -> Optional[float]:
        """One step; the delay until the next, or None once the connection is gone."""
        conn = self.conn
        timeout = self.timeout
        now = monotonic()
        waiting = self._waiting
        if waiting is not None:
            assert timeout is not None
            if conn.last_rx < waiting and now >= waiting + timeout:
                with Deadline(timeout) as deadline:
                    conn.pump(0.05)
                if deadline.expired:
                    self._dead("heartbeat blocked reading")
                    return None
            if conn.last_rx >= waiting:
                waiting = self._waiting = None
            elif now >= waiting + timeout:
                log.info("no frame from the peer for %.3f s: heartbeat timeout", now - waiting)
                self._dead(None)
                return None
        if now >= self._next:
            ping = Message(True, False, False, False, self.opcode, False, b"")
            with Deadline(timeout) as deadline:
                try:
                    conn.send_control(ping)
                except WebSocketError:
                    return None  # closing or closed: nothing more to do
            if deadline.expired:
                self._dead("heartbeat blocked sending")
                return None
            self._next = now + self.interval
            if timeout is not None and waiting is None:
                waiting = self._waiting = now
        wake = self._next
        if waiting is not None and timeout is not None:  # waiting is only set with a timeout
            wake = min(wake, waiting + timeout)
        return wake - monotonic()

    def _dead(self, why: Optional[str]) -> None:
        if why is not None:
            log.info("%s for %.3f s: heartbeat timeout", why, self.timeout)
        self.conn.abort(HeartbeatTimeout("heartbeat timeout"))
