"""What the command line prints, without sockets: gws/cli/output.py and the
argument types of gws/cli/args.py."""

from __future__ import annotations

import argparse
import io

import pytest

from gws.cli.args import duration, header, seconds, size
from gws.cli.output import (
    Printer,
    close_meaning,
    describe_close,
    format_frame,
    format_payload,
    use_color,
)
from gws.frames import Message


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def frame(opcode, payload=b"", **flags):
    return Message(
        flags.get("fin", True), flags.get("rsv1", False), flags.get("rsv2", False),
        flags.get("rsv3", False), opcode, flags.get("mask", False), payload,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1000, "normal closure"),
        (1001, "going away"),
        (1006, "abnormal closure: the connection dropped without a close frame"),
        (1009, "message too big"),
        (1011, "internal server error"),
        (3001, "registered for libraries and frameworks"),
        (4242, "private use: the application's own meaning"),
        (2999, "unknown close code"),
        (None, "no close code"),
    ],
)
def test_close_meaning(code, words):
    assert close_meaning(code) == words


def test_describe_close():
    assert describe_close(1000, "", None) == "closed: code 1000 (normal closure)"
    assert (
        describe_close(1009, "", "message exceeds max_size 10")
        == "closed: code 1009 (message too big): message exceeds max_size 10"
    )
    assert describe_close(4000, "bye", None) == (
        "closed: code 4000 (private use: the application's own meaning), reason 'bye'"
    )
    assert describe_close(None, None, "boom") == "closed: boom"


def test_format_payload():
    assert format_payload("héllo") == "héllo"
    assert format_payload(b"\x00hi") == "b'\\x00hi'"
    assert format_payload(b"\x00hi", hex=True) == "00 68 69"
    assert format_payload(b"", hex=True) == "(empty)"


def test_format_frame_data_control_and_close():
    assert format_frame(">", frame(1, b"hi", mask=True)) == (
        "> frame opcode=1 (text) fin=1 rsv1=0 mask=1 len=2 'hi'"
    )
    assert format_frame("<", frame(2, b"\x00" * 50)) == (
        "< frame opcode=2 (binary) fin=1 rsv1=0 mask=0 len=50 " + repr(b"\x00" * 40) + "..."
    )
    # compressed: no preview of the deflate bytes
    assert format_frame("<", frame(1, b"J\x04\x00", rsv1=True, fin=False)) == (
        "< frame opcode=1 (text) fin=0 rsv1=1 mask=0 len=3"
    )
    assert format_frame("<", frame(0, b"lo")) == (
        "< frame opcode=0 (continuation) fin=1 rsv1=0 mask=0 len=2 'lo'"
    )
    assert format_frame("<", frame(9, b"")) == "< frame opcode=9 (ping) fin=1 rsv1=0 mask=0 len=0"
    assert format_frame("<", frame(8, b"\x03\xe9bye")) == (
        "< frame opcode=8 (close) fin=1 rsv1=0 mask=0 len=5 code=1001 (going away) reason='bye'"
    )
    assert format_frame(">", frame(8, b"")) == (
        "> frame opcode=8 (close) fin=1 rsv1=0 mask=0 len=0 (no code)"
    )
    assert format_frame("<", frame(3, b"", rsv2=True, rsv3=True)) == (
        "< frame opcode=3 (reserved) fin=1 rsv1=0 rsv2=1 rsv3=1 mask=0 len=0"
    )


def test_use_color_only_on_a_tty_without_no_color():
    assert use_color(Tty(), environ={}) is True
    assert use_color(io.StringIO(), environ={}) is False
    assert use_color(Tty(), environ={"NO_COLOR": "1"}) is False
    assert use_color(Tty(), environ={"NO_COLOR": ""}) is True  # no-color.org: non-empty only
    assert use_color(Tty(), disabled=True, environ={}) is False


def test_printer_markers_streams_and_colour():
    out, err = Tty(), io.StringIO()
    p = Printer(out, err, color=True, err_color=False)
    p.received("hi")
    p.sent(b"\x01")
    p.control("<", 9, b"x")
    p.status("closed")
    p.error("bad")
    p.frame(">", frame(10, b""))
    assert out.getvalue() == (
        "\033[36m< hi\033[0m\n\033[32m> b'\\x01'\033[0m\n\033[33m< ping b'x'\033[0m\n"
    )
    assert err.getvalue() == (
        "closed\nerror: bad\n> frame opcode=10 (pong) fin=1 rsv1=0 mask=0 len=0\n"
    )


def test_printer_raw_prints_payloads_only_without_colour():
    out, err = Tty(), io.StringIO()
    p = Printer(out, err, color=True, raw=True)
    p.received("hi")
    p.sent("not shown")
    p.received(b"\xff")
    assert out.getvalue() == "hi\nb'\\xff'\n"


def test_printer_timings_and_hooks():
    ticks = iter([10.0, 10.25, 11.5])
    out, err = io.StringIO(), io.StringIO()
    p = Printer(out, err, timings=True, hex=True, clock=lambda: next(ticks))
    calls = []
    p.before, p.after = (lambda: calls.append("clear")), (lambda: calls.append("redraw"))
    p.received(b"\x01\x02")
    p.sent("x")
    assert out.getvalue() == "0.250: < 01 02\n1.500: > x\n"
    assert calls == ["clear", "redraw", "clear", "redraw"]


@pytest.mark.parametrize(
    ("unit", "text", "ms"),
    [("ms", "250", 250), ("ms", "2s", 2000), ("s", "1.5", 1500), ("s", "20ms", 20)],
)
def test_duration(unit, text, ms):
    assert duration(unit)(text) == ms


@pytest.mark.parametrize("text", ["0", "-1", "soon", "nan", "inf"])
def test_duration_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        duration("ms")(text)


def test_seconds_size_header():
    assert seconds("0") == 0 and seconds("0.5") == 0.5 and seconds("inf") == float("inf")
    with pytest.raises(argparse.ArgumentTypeError):
        seconds("-1")
    assert size("100") == 100 and size("64KiB") == 65536 and size("16mib") == 16 << 20
    for bad in ("-1", "big", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            size(bad)
    assert header("X-A:  b c ") == ("X-A", "b c")
    assert header("Authorization: Bearer a:b") == ("Authorization", "Bearer a:b")
    for bad in ("nocolon", ": value"):
        with pytest.raises(argparse.ArgumentTypeError):
            header(bad)


def test_console_redraws_a_prompt_that_a_printed_line_split() -> None:
    """A message printed in the instant readline draws its prompt (input()
    called, its pre-input hook not run yet) can land between the prompt's
    characters; once the hook runs, the prompt is drawn again, whole, on a
    line of its own. (CI caught it: ``>< hello`` then a lone space.)"""
    from gws.cli.console import PROMPT, Console

    out = io.StringIO()
    console = Console(io.StringIO(), out)
    console.prompting = True  # read_line() is waiting; readline is drawing its prompt
    console.clear()
    out.write("< hello\n")
    console.redraw()
    assert out.getvalue() == "< hello\n"  # nothing can be wiped or redrawn yet
    console._drawn()  # readline's pre-input hook: the prompt is up
    assert out.getvalue() == "< hello\n\r\033[2K" + PROMPT
    out.truncate(0)
    out.seek(0)
    console.clear()  # from now on: the usual wipe and redraw around a line
    out.write("< again\n")
    console.redraw()
    assert out.getvalue() == "\r\033[2K< again\n" + PROMPT


def test_console_leaves_the_prompt_alone_when_no_line_was_printed_while_drawing() -> None:
    from gws.cli.console import Console

    out = io.StringIO()
    console = Console(io.StringIO(), out)
    console.prompting = True
    console._drawn()
    assert out.getvalue() == ""
