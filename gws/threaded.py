"""Thread mode: connections any OS thread may call, kept alive by a hub thread.

``gws.connect(url, thread=True)`` and ``gws.open(url, thread=True)`` open the
connection on the process's one gws hub thread: a daemon OS thread running
a gevent hub of its own, started on first use and shared by every
thread-mode connection. There the connection is an ordinary gws connection
with a reader greenlet that keeps reading (so the peer's pings are answered
and the heartbeat runs) whatever the calling threads do: sleep in
``time.sleep``, block in a C call, or hold no reference to it at all.

Every call (``send``, ``recv``, ``ping``, ``close``; ``read``, ``write``)
is marshalled onto the hub thread and runs there in a greenlet of its own;
the caller waits for its result:

- a plain thread (no gevent hub of its own) blocks on a real lock, which
  releases the GIL and can be interrupted by a signal (Ctrl-C);
- a greenlet (a thread that runs a gevent hub, or any caller once
  ``gevent.monkey.patch_all()`` turned threads into greenlets) waits
  cooperatively: its own hub is woken from the hub thread, so its other
  greenlets keep running.

A call interrupted in the caller (KeyboardInterrupt, a ``gevent.Timeout``)
is cancelled on the hub thread: the greenlet running it is killed (the
connection's own interruption rules apply there). Receiving takes no trip
to the hub thread: callers take messages from the read-ahead queue
directly, and an interrupted receive gives back a message handed to it.

Messages are read ahead into a queue of at most :data:`QUEUE_SIZE`; while
it is full the reader pauses, so a program that stops receiving never
makes gws buffer without bound (the peer's pings then wait for the reader
too, as in websockets' threading client).
"""

from __future__ import annotations

import collections
import os
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterator,
    Mapping,
    Optional,
    Tuple,
    Union,
)

import gevent
import greenlet
from gevent._hub_local import get_hub_if_exists
from gevent.event import Event
from gevent.hub import Waiter
from gevent.monkey import get_original, is_module_patched

from .client import Response, WebSocket, _establish
from .client import connect as _connect
from .connection import Connection, MessageLike, Pong
from .errors import ReceiveTimeout
from .frames import Message
from .io import Reader, Writer, WriteResult

__all__ = [
    "QUEUE_SIZE",
    "HubThread",
    "ThreadReader",
    "ThreadWriter",
    "ThreadWebSocket",
    "hub_thread",
    "connect",
    "open",
]

#: Messages read ahead per thread-mode connection before its reader pauses.
QUEUE_SIZE = 16

_start_new_thread = get_original("_thread", "start_new_thread")
_allocate_lock = get_original("_thread", "allocate_lock")
_get_ident = get_original("_thread", "get_ident")


def _noop() -> None:
    pass


class _Call:
    """One call marshalled onto the hub thread, and how its caller waits."""

    __slots__ = ("fn", "args", "value", "error", "lock", "waiter", "loop", "task", "state", "undo")

    def __init__(self, fn: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.lock: Any = None  # a real lock the caller blocks on, or
        self.waiter: Optional[Waiter[None]] = None  # a Waiter in the caller's hub
        self.loop: Any = None  # ... and that hub's loop
        self.task: Optional[greenlet.greenlet] = None
        self.state = 0  # 0 running, 1 done, 2 cancelled by the caller
        self.undo: Optional[Callable[[Any], None]] = None  # gives a cancelled result back

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, GreenletExit too
            self.error = exc
        if self.state == 2:
            if self.error is None and self.undo is not None:
                self.undo(self.value)
            return
        self.state = 1
        if self.lock is not None:
            self.lock.release()
        else:
            self.loop.run_callback_threadsafe(self.waiter.switch, None)  # type: ignore[union-attr]


class HubThread:
    """The process's gws hub thread: a daemon OS thread running a gevent
    hub, where thread-mode connections live. Use :func:`hub_thread`."""

    def __init__(self) -> None:
        ready = _allocate_lock()
        ready.acquire()
        self.ident: int = 0
        self.pid = os.getpid()
        self._loop: Any = None
        self._hub: Any = None
        self._ready = ready
        _start_new_thread(self._main, ())
        ready.acquire()  # until the thread's hub exists

    def _main(self) -> None:
        hub = gevent.get_hub()
        self._hub = hub
        self._loop = hub.loop
        self.ident = _get_ident()
        keepalive = hub.loop.async_()  # an active watcher keeps the loop running
        keepalive.start(lambda: None)
        self._ready.release()
        Event().wait()  # forever: calls arrive as loop callbacks

    @property
    def current(self) -> bool:
        """Whether the caller runs on the hub thread."""
        return bool(_get_ident() == self.ident)

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        undo: Optional[Callable[[Any], None]] = None,
    ) -> Any:
        """Run ``fn(*args)`` in a new greenlet on the hub thread and return
        its result (or raise its exception) in the calling thread. When the
        caller is interrupted, the greenlet is killed (if still running).

        ``undo(result)`` runs on the hub thread when the caller was
        interrupted but ``fn`` finished anyway (e.g. to close a connection
        nobody will own).
        """
        if _get_ident() == self.ident:
            return fn(*args)
        job = _Call(fn, args)
        job.undo = undo
        hub = get_hub_if_exists()
        if hub is None and is_module_patched("threading"):
            hub = gevent.get_hub()  # "threads" are greenlets: never block their hub
        if hub is not None and greenlet.getcurrent() is not hub:
            job.waiter = Waiter(hub)
            job.loop = hub.loop
        else:
            job.lock = _allocate_lock()
            job.lock.acquire()
        self._loop.run_callback_threadsafe(self._start, job)
        try:
            if job.lock is not None:
                job.lock.acquire()
            else:
                # The wake-up comes as a thread-safe callback, which does not
                # keep the caller's loop alive: a watcher of its own does.
                keepalive = job.loop.async_()
                keepalive.start(_noop)
                try:
                    job.waiter.get()  # type: ignore[union-attr]
                finally:
                    keepalive.close()
        except BaseException:
            self._loop.run_callback_threadsafe(self._cancel, job)
            raise
        error = job.error
        if error is not None:
            job.error = None
            raise error
        return job.value

    def _start(self, job: _Call) -> None:
        # A loop callback on the hub thread: the call gets a greenlet of its own.
        task = job.task = greenlet.greenlet(job.run, self._hub)
        task.switch()

    def _cancel(self, job: _Call) -> None:
        if job.state == 0:
            job.state = 2
            task = job.task
            if task is not None and not task.dead:
                task.throw(greenlet.GreenletExit)  # runs there at once; we are the hub
        elif job.state == 1 and job.error is None and job.undo is not None:
            job.state = 2
            job.undo(job.value)  # finished just as the caller gave up: give it back


_hub: Optional[HubThread] = None
_hub_lock = _allocate_lock()


def _forget_hub() -> None:
    # In a child after fork(): the hub thread was not copied, nor may a lock
    # held by another thread at the fork ever be released.
    global _hub, _hub_lock
    _hub = None
    _hub_lock = _allocate_lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_hub)


def hub_thread() -> HubThread:
    """The process's gws hub thread, started on first use (and again in a
    child process after ``fork()``, which copies no threads)."""
    global _hub
    hub = _hub
    if hub is None or hub.pid != os.getpid():
        with _hub_lock:
            hub = _hub
            if hub is None or hub.pid != os.getpid():
                hub = _hub = HubThread()
    return hub


class _Taker:
    """One caller waiting in :meth:`_Inbox.get`, woken the way its thread
    waits (see :meth:`HubThread.call`)."""

    __slots__ = ("msg", "given", "lock", "waiter", "loop", "threadsafe")

    def __init__(self) -> None:
        self.msg: Optional[Message] = None
        self.given = False  # a message (or the end) was handed over
        self.lock: Any = None
        self.waiter: Optional[Waiter[None]] = None
        self.loop: Any = None
        self.threadsafe = True

    def wake(self) -> None:
        """Called with the inbox's mutex held, on the hub thread."""
        self.given = True
        if self.lock is not None:
            self.lock.release()
        elif self.threadsafe:
            self.loop.run_callback_threadsafe(self.waiter.switch, None)  # type: ignore[union-attr]
        else:
            self.loop.run_callback(self.waiter.switch, None)  # type: ignore[union-attr]


class _Inbox:
    """A thread-mode connection's messages: a reader greenlet on the hub
    thread reads ahead into a bounded queue, and callers in any thread take
    from it directly (a message already there costs no trip to the hub
    thread; one still to come is handed straight to the waiting caller)."""

    __slots__ = (
        "conn",
        "messages",
        "eof",
        "reader",
        "_hub",
        "_mutex",
        "_takers",
        "_space",
        "_paused",
    )

    def __init__(self, conn: Connection, hub: HubThread) -> None:
        self.conn = conn
        self.messages: Deque[Message] = collections.deque()
        self.eof = False
        self._hub = hub
        self._mutex = _allocate_lock()  # messages, eof, _takers, _paused
        self._takers: Deque[_Taker] = collections.deque()
        self._space = Event()  # hub thread: set when the paused reader may go on
        self._paused = False
        conn.closed.rawlink(lambda _: self._space.set())  # a paused reader drains and ends
        self.reader = gevent.spawn(self._read_ahead)

    def _read_ahead(self) -> None:
        conn = self.conn
        closed = conn.closed
        mutex = self._mutex
        while True:
            with mutex:
                pause = len(self.messages) >= QUEUE_SIZE and not closed.is_set()
                if pause:
                    self._paused = True
                    self._space.clear()
            if pause:
                self._space.wait()
                continue
            try:
                msg = conn.read()
            except Exception as exc:  # noqa: BLE001 - never a stray exception in a greenlet
                conn.abort(exc)
                msg = None
            with mutex:
                if msg is None:
                    self.eof = True
                    while self._takers:
                        self._takers.popleft().wake()
                    return
                self._deliver(msg)

    def _deliver(self, msg: Message) -> None:
        # Hold the mutex.
        if self._takers:
            taker = self._takers.popleft()
            taker.msg = msg
            taker.wake()
        else:
            self.messages.append(msg)

    def get(self, timeout: Optional[float]) -> Optional[Message]:
        """The next message (None once closed), from any thread; ``timeout``
        in seconds raises :class:`ReceiveTimeout`."""
        with self._mutex:
            if self.messages:
                msg = self.messages.popleft()
                if self._paused and len(self.messages) < QUEUE_SIZE:
                    self._paused = False
                    self._resume()
                return msg
            if self.eof:
                return None
            taker = _Taker()
            hub = get_hub_if_exists()
            if hub is None and is_module_patched("threading"):
                hub = gevent.get_hub()
            if hub is not None and greenlet.getcurrent() is not hub:
                taker.waiter = Waiter(hub)
                taker.loop = hub.loop
                taker.threadsafe = not self._hub.current
            else:
                taker.lock = _allocate_lock()
                taker.lock.acquire()
            self._takers.append(taker)
        try:
            if taker.lock is not None:
                woke = taker.lock.acquire(True, -1 if timeout is None else max(timeout, 0.0))
            else:
                woke = self._wait_cooperatively(taker, timeout)
        except BaseException:
            self._withdraw(taker, give_back=True)
            raise
        if not woke and not self._withdraw(taker, give_back=False):
            raise ReceiveTimeout(f"no message within {timeout * 1000:g} ms")  # type: ignore[operator]
        return taker.msg

    def _wait_cooperatively(self, taker: _Taker, timeout: Optional[float]) -> bool:
        loop = taker.loop
        keepalive = loop.async_()  # the thread-safe wake-up alone would not keep the loop alive
        keepalive.start(_noop)
        timer = None if timeout is None else gevent.Timeout(max(timeout, 0.0))
        if timer is not None:
            timer.start()
        try:
            taker.waiter.get()  # type: ignore[union-attr]
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            return False
        finally:
            if timer is not None:
                timer.close()
            keepalive.close()
        return True

    def _withdraw(self, taker: _Taker, give_back: bool) -> bool:
        """Take ``taker`` off the queue after a timeout or an interruption;
        whether it had been given a message meanwhile (with ``give_back``,
        that message goes back to the head of the queue)."""
        with self._mutex:
            if not taker.given:
                self._takers.remove(taker)
                return False
            if give_back and taker.msg is not None:
                msg, taker.msg = taker.msg, None
                self.messages.appendleft(msg)
                if self._takers:  # someone else is waiting: hand it on
                    self._deliver(self.messages.popleft())
        if taker.lock is not None and not give_back:
            taker.lock.acquire()  # released by wake(); returns at once
        return True

    def _resume(self) -> None:
        # Hold the mutex. Wake the paused reader on the hub thread.
        hub = self._hub
        if hub.current:
            self._space.set()
        else:
            hub._loop.run_callback_threadsafe(self._space.set)


class ThreadReader(Reader):
    """``read`` of a thread-mode connection: callable from any thread."""

    __slots__ = ("_inbox", "_hub")

    def __init__(self, inbox: _Inbox, hub: HubThread) -> None:
        super().__init__(inbox.conn)
        self._inbox = inbox
        self._hub = hub

    def __call__(self, timeout: Optional[float] = None) -> Optional[Message]:
        self.timed_out = False
        try:
            msg = self._inbox.get(None if timeout is None else timeout / 1000.0)
        except ReceiveTimeout:
            self.timed_out = True
            return None
        return msg

    def __iter__(self) -> Iterator[Message]:
        while True:
            msg = self()
            if msg is None:
                return
            yield msg

    @property
    def error(self) -> Optional[str]:
        return self._conn.error_text()


class ThreadWriter(Writer):
    """``write`` of a thread-mode connection: callable from any thread."""

    __slots__ = ("_hub",)

    def __init__(self, conn: Connection, hub: HubThread) -> None:
        super().__init__(conn)
        self._hub = hub

    def __call__(self, message: MessageLike) -> WriteResult:
        result: WriteResult = self._hub.call(Writer.__call__, self, message)
        return result

    def close(self, code: Optional[int] = 1000, reason: str = "") -> WriteResult:
        result: WriteResult = self._hub.call(Writer.close, self, code, reason)
        return result

    def ping(self, payload: Union[bytes, str] = b"") -> WriteResult:
        result: WriteResult = self._hub.call(Writer.ping, self, payload)
        return result


class ThreadWebSocket(WebSocket):
    """A :class:`~gws.WebSocket` whose methods any OS thread may call.

    ``read``/``write`` are :class:`ThreadReader`/:class:`ThreadWriter`.
    ``connection`` and ``response.socket`` belong to the hub thread: call
    the methods here instead.
    """

    read: ThreadReader
    write: ThreadWriter

    def __init__(self, response: Response, read: ThreadReader, write: ThreadWriter) -> None:
        super().__init__(response, read, write)
        self._hub = read._hub
        self._inbox = read._inbox

    def send(self, message: MessageLike) -> None:
        self._hub.call(WebSocket.send, self, message)

    def _receive(self, timeout: Optional[float]) -> Optional[Message]:
        return self._inbox.get(timeout)

    def ping(
        self,
        payload: Union[bytes, str] = b"",
        *,
        wait: bool = False,
        timeout: Optional[float] = None,
    ) -> Pong:
        pong: Pong = self._hub.call(_ping, self, payload, wait, timeout)
        pong.hub = self._hub
        return pong

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._hub.call(WebSocket.close, self, code, reason)

    def __enter__(self) -> ThreadWebSocket:
        return self

    def __repr__(self) -> str:
        return "<gws.WebSocket (thread mode)" + super().__repr__()[len("<gws.WebSocket") :]


def _ping(ws: ThreadWebSocket, payload: Union[bytes, str], wait: bool, timeout: Any) -> Pong:
    return WebSocket.ping(ws, payload, wait=wait, timeout=timeout)


def _wrap(
    result: Tuple[Any, Any, Any], hub: HubThread
) -> Tuple[Response, ThreadReader, ThreadWriter]:
    res, read, write = result
    inbox = _Inbox(read.connection, hub)
    return res, ThreadReader(inbox, hub), ThreadWriter(read.connection, hub)


def _connect_on_hub(hub: HubThread, url_or_options: Any, options: Dict[str, Any]) -> Any:
    result = _connect(url_or_options, **options)
    if result[0] is None:
        return result
    return _wrap(result, hub)


def _open_on_hub(hub: HubThread, url_or_options: Any, options: Dict[str, Any]) -> ThreadWebSocket:
    return ThreadWebSocket(*_wrap(_establish(url_or_options, options), hub))


def _drop_connected(result: Any) -> None:
    # A connect that finished after its caller gave up: nobody owns it.
    if result[0] is not None:
        result[1].connection.abort()


def _drop_opened(ws: ThreadWebSocket) -> None:
    ws.connection.abort()


def connect(url_or_options: Union[str, Mapping[str, Any], None], options: Dict[str, Any]) -> Any:
    """:func:`gws.connect` in thread mode (``options`` without ``thread``)."""
    hub = hub_thread()
    return hub.call(_connect_on_hub, hub, url_or_options, options, undo=_drop_connected)


def open(  # noqa: A001 - gws.open's thread mode
    url_or_options: Union[str, Mapping[str, Any], None], options: Dict[str, Any]
) -> ThreadWebSocket:
    """:func:`gws.open` in thread mode (``options`` without ``thread``); raises on failure."""
    hub = hub_thread()
    ws: ThreadWebSocket = hub.call(_open_on_hub, hub, url_or_options, options, undo=_drop_opened)
    return ws
