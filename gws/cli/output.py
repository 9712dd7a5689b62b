"""What the command line prints, and how: markers, colour, frame trace.

Pure formatting over two text streams; no sockets and no gevent, so every
line the CLI prints can be checked without a connection. :class:`Printer`
sends message lines to ``out`` (stdout) and status, trace and error lines
to ``err`` (stderr).
"""

from __future__ import annotations

import os
import time
from typing import IO, Callable, Mapping, Optional, Union

from ..frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, Message

__all__ = [
    "CLOSE_CODES",
    "OPCODES",
    "Printer",
    "close_meaning",
    "describe_close",
    "format_frame",
    "format_payload",
    "use_color",
]

CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "abnormal closure: the connection dropped without a close frame",
    1007: "invalid payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension missing",
    1011: "internal server error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}
"""What each close code means (RFC 6455 7.4.1 and the IANA registry)."""

OPCODES = {
    OP_CONTINUATION: "continuation",
    OP_TEXT: "text",
    OP_BINARY: "binary",
    OP_CLOSE: "close",
    OP_PING: "ping",
    OP_PONG: "pong",
}

RESET = "\033[0m"
COLORS = {"received": "\033[36m", "sent": "\033[32m", "control": "\033[33m", "error": "\033[31m"}


def close_meaning(code: Optional[int]) -> str:
    """Words for a close code: ``1000`` -> ``"normal closure"``."""
    if code is None:
        return "no close code"
    if code in CLOSE_CODES:
        return CLOSE_CODES[code]
    if 3000 <= code <= 3999:
        return "registered for libraries and frameworks"
    if 4000 <= code <= 4999:
        return "private use: the application's own meaning"
    return "unknown close code"


def describe_close(code: Optional[int], reason: Optional[str], error: Optional[str]) -> str:
    """One line on how a connection ended: code, meaning, reason, error."""
    text = f"closed: code {code} ({close_meaning(code)})" if code is not None else "closed"
    if reason:
        text += f", reason {reason!r}"
    if error:
        text += f": {error}"
    return text


def use_color(
    stream: IO[str], *, disabled: bool = False, environ: Optional[Mapping[str, str]] = None
) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set to
    anything non-empty (no-color.org) or ``disabled`` (``--no-color``)."""
    env = os.environ if environ is None else environ
    if disabled or env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_payload(payload: Union[str, bytes], *, hex: bool = False) -> str:
    """Text as itself; bytes escaped (``b'\\x00hi'``) or, with ``hex``, as
    space-separated hex pairs."""
    if isinstance(payload, str):
        return payload
    if hex:
        return payload.hex(" ") if payload else "(empty)"
    return repr(payload)


def format_frame(direction: str, frame: Message, *, preview: int = 40) -> str:
    """One frame trace line: direction, opcode, flags, length, and a close
    frame's code or a short payload preview.

    ``direction`` is ``">"`` (sent) or ``"<"`` (received); ``frame`` is as
    on the wire (compressed payload, ``rsv1`` set).
    """
    opcode = frame.opcode
    name = OPCODES.get(opcode, "reserved")
    payload = frame.payload
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    rsv = "".join(f" rsv{i}=1" for i, on in ((2, frame.rsv2), (3, frame.rsv3)) if on)
    line = (
        f"{direction} frame opcode={opcode} ({name}) fin={int(frame.fin)} "
        f"rsv1={int(frame.rsv1)}{rsv} mask={int(frame.mask)} len={len(data)}"
    )
    if opcode == OP_CLOSE:
        if len(data) >= 2:
            code = int.from_bytes(data[:2], "big")
            reason = data[2:].decode("utf-8", "replace")
            line += f" code={code} ({close_meaning(code)})"
            if reason:
                line += f" reason={reason!r}"
        else:
            line += " (no code)"
    elif data and not frame.rsv1:
        shown = data[:preview]
        if opcode == OP_TEXT or (opcode == OP_CONTINUATION and _is_text(shown)):
            text: str = repr(shown.decode("utf-8", "replace"))
        else:
            text = repr(shown)
        line += " " + text + ("..." if len(data) > preview else "")
    return line


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _silence(stream: IO[str]) -> None:
    """Point a broken pipe's descriptor at /dev/null, so that nothing more,
    not even the flush at exit, fails writing to it."""
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


class Printer:
    """Prints what a CLI session shows.

    ``color`` colours stdout lines, ``err_color`` stderr lines (default:
    as ``color``). ``raw``: message payloads only, no markers, no colour on
    stdout (wsdump's ``--raw``). ``hex``: binary payloads as hex. ``timings``: each line
    starts with the seconds since ``start`` (wsdump's ``--timings``).
    ``before``/``after`` are called around each line (the interactive
    console clears and redraws its prompt there). Once a stream turns out
    to be a closed pipe, ``out_closed`` is True and nothing more is written
    to it.
    """

    def __init__(
        self,
        out: IO[str],
        err: IO[str],
        *,
        color: bool = False,
        err_color: Optional[bool] = None,
        raw: bool = False,
        hex: bool = False,
        timings: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.err = err
        self.color = color and not raw
        self.err_color = color if err_color is None else err_color
        self.raw = raw
        self.hex = hex
        self.timings = timings
        self.clock = clock
        self.start = clock()
        self.out_closed = False  # stdout or stderr is a closed pipe
        self.before: Optional[Callable[[], None]] = None
        self.after: Optional[Callable[[], None]] = None

    def _emit(self, stream: IO[str], text: str, kind: Optional[str] = None) -> None:
        if self.timings:
            text = f"{self.clock() - self.start:.3f}: {text}"
        if kind is not None and (self.color if stream is self.out else self.err_color):
            text = COLORS[kind] + text + RESET
        if self.before is not None:
            self.before()
        try:
            stream.write(text + "\n")
            stream.flush()
        except BrokenPipeError:  # the reader went away (| head): print no more
            self.out_closed = True
            _silence(stream)
            return
        if self.after is not None:
            self.after()

    def received(self, payload: Union[str, bytes]) -> None:
        """A message from the peer: ``< text``."""
        shown = format_payload(payload, hex=self.hex)
        self._emit(self.out, shown if self.raw else "< " + shown, "received")

    def sent(self, payload: Union[str, bytes]) -> None:
        """A message this side sent: ``> text`` (not shown with ``raw``)."""
        if not self.raw:
            self._emit(self.out, "> " + format_payload(payload, hex=self.hex), "sent")

    def control(self, direction: str, opcode: int, payload: bytes) -> None:
        """A ping or pong (``-P``): ``< ping b''``."""
        name = OPCODES.get(opcode, str(opcode))
        self._emit(
            self.out, f"{direction} {name} {format_payload(payload, hex=self.hex)}", "control"
        )

    def frame(self, direction: str, frame: Message) -> None:
        """A frame trace line (``-v``), to stderr."""
        self._emit(self.err, format_frame(direction, frame), "control")

    def status(self, text: str) -> None:
        """A status line (connected, closed, headers), to stderr."""
        self._emit(self.err, text, "control")

    def error(self, text: str) -> None:
        """An error line, to stderr: ``error: ...``."""
        self._emit(self.err, "error: " + text, "error")
