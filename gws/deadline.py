"""One helper for every bounded wait: ``with Deadline(seconds) as d: ...``.

A :class:`gevent.Timeout` of our own that never escapes: when it fires, the
block is left, ``d.expired`` is True and execution goes on after the
``with``. Any other exception (a caller's own ``gevent.Timeout``, a kill,
KeyboardInterrupt) passes through untouched.
"""

from __future__ import annotations

from types import TracebackType
from typing import Optional, Type

from gevent import Timeout

__all__ = ["Deadline"]


class Deadline:
    """Bound a block to ``seconds`` (None: no bound)."""

    __slots__ = ("seconds", "expired", "_timer")

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self.expired = False
        self._timer: Optional[Timeout] = None

    def __enter__(self) -> Deadline:
        if self.seconds is not None:
            self._timer = Timeout(max(self.seconds, 0.0))
            self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        timer = self._timer
        if timer is None:
            return False
        timer.close()
        if exc is not None and exc is timer:
            self.expired = True
            return True
        return False
