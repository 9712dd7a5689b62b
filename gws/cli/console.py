"""Where ``gws connect`` gets the lines it sends: a terminal or a pipe.

On a terminal, :class:`Console` reads with ``input()`` (readline: editing
and history, up-arrow recalls earlier lines) in a thread of gevent's pool,
so received messages keep printing while the user types; it clears and
redraws the prompt around each printed line and restores the terminal's
settings on exit. From a pipe or file, :func:`piped_lines` reads line by
line through gevent's thread-backed file object.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Iterator, List, Optional

import gevent
from gevent.fileobject import FileObject

__all__ = ["Console", "piped_lines", "PROMPT"]

PROMPT = "> "

try:  # importing readline makes input() use it; absent on some platforms
    import readline as _readline
except ImportError:  # pragma: no cover - CPython on Linux and macOS has it
    _readline = None  # type: ignore[assignment]


def piped_lines(stream: IO[str]) -> Iterator[str]:
    """Lines of ``stream`` without their line ending, read cooperatively."""
    # gevent's FileObject wraps a file object too, not only a path or fd
    # as types-gevent's stub says.
    reader = FileObject(stream, "r")  # type: ignore[call-overload]
    for line in reader:
        yield line[:-1] if line.endswith("\n") else line


class Console:
    """An interactive prompt on a terminal (see the module docstring).

    Use as a context manager: on exit the terminal gets back the settings
    it had on entry, even if a line was still being edited.
    """

    def __init__(self, stdin: Optional[IO[str]] = None, stdout: Optional[IO[str]] = None) -> None:
        self.stdin = sys.stdin if stdin is None else stdin
        self.stdout = sys.stdout if stdout is None else stdout
        self.prompting = False  # a read_line() is waiting for the user
        self.drawn = False  # readline is reading, its prompt on screen
        self._cleared = False  # clear() wiped the prompt: redraw() shows it again
        # A line was printed while readline may have been drawing its prompt
        # (input() called, the pre-input hook not run yet): the prompt may be
        # split around that line, so it is drawn again, whole, once it is up.
        self._late = False
        self._saved: Optional[List[Any]] = None

    def __enter__(self) -> Console:
        try:
            import termios

            self._saved = termios.tcgetattr(self.stdin.fileno())
        except (ImportError, OSError, ValueError):
            self._saved = None
        if _readline is not None:
            _readline.set_pre_input_hook(self._drawn)
        return self

    def _drawn(self) -> None:
        # readline calls this in the input thread once the terminal is set
        # up and the prompt shown, just before it reads keys.
        self.drawn = True
        if self._late:
            self._redraw_whole()

    def _redraw_whole(self) -> None:
        self._late = False
        typed = _readline.get_line_buffer() if _readline is not None else ""
        self.stdout.write("\r\033[2K" + PROMPT + typed)
        self.stdout.flush()

    def __exit__(self, *exc: object) -> None:
        if self.prompting:
            self.stdout.write("\n")
            self.stdout.flush()
        self.prompting = False
        if _readline is not None:
            _readline.set_pre_input_hook(None)
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.stdin.fileno(), termios.TCSADRAIN, self._saved)
            except (OSError, ValueError):
                pass

    def read_line(self) -> Optional[str]:
        """The next line typed, or None at end of input (Ctrl-D)."""
        self.prompting = True
        try:
            line: Optional[str] = gevent.get_hub().threadpool.apply(self._input)
        finally:
            self.prompting = False
            self.drawn = False
            self._late = False
        if line is None:  # Ctrl-D leaves the cursor after the prompt
            self.stdout.write("\n")
            self.stdout.flush()
        return line

    def lines(self) -> Iterator[str]:
        """Lines typed until Ctrl-D; blank lines are not sent."""
        while True:
            line = self.read_line()
            if line is None:
                return
            if line:
                yield line

    def clear(self) -> None:
        """Before a line is printed: wipe the prompt and what is typed (only
        while readline shows them: before that, it draws them afterwards)."""
        self._cleared = self.drawn
        if self._cleared:
            self.stdout.write("\r\033[2K")
        elif self.prompting:
            self._late = True

    def redraw(self) -> None:
        """After a line is printed: show the prompt and the typed text again."""
        if self._cleared and self.drawn:
            typed = _readline.get_line_buffer() if _readline is not None else ""
            self.stdout.write(PROMPT + typed)
            self.stdout.flush()
        elif self._late and self.drawn:  # the hook ran while the line was printed
            self._redraw_whole()

    def _input(self) -> Optional[str]:
        """In a pool thread: one line, None at end of input."""
        try:
            return input(PROMPT)
        except EOFError:
            return None
        finally:
            self.drawn = False
