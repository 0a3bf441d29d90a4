"""What the command line prints is text: terminal control sequences are taken out of every line.

Much of what the commands print comes from a store (output and tensor names, paths, config values, error
lines quoting them), and a store is data anyone may hand a colleague: an ANSI or OSC sequence in it would
clear the reader's screen, set the terminal's title or hide text. :class:`TextOnly` wraps ``stdout`` and
``stderr`` for the length of a command and removes CSI and OSC sequences, then every other C0/C1 control
character but tab, newline and carriage return (the progress line redraws itself with ``\\r``).
"""

from __future__ import annotations

import io
import re
from typing import TextIO

__all__ = ["printable", "TextOnly"]

_SEQUENCES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]|"
                        r"\x9d[^\x07\x1b]*(?:\x07|\x1b\\)?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without terminal control sequences or control characters (tab, newline, ``\\r`` kept)."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


class TextOnly(io.TextIOBase):
    """A text stream writing :func:`printable` text to ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` without its control sequences; returns ``len(text)`` (what the caller asked)."""
        self.stream.write(printable(text))
        return len(text)

    def flush(self) -> None:
        """Flush the underlying stream."""
        self.stream.flush()

    def isatty(self) -> bool:
        """Whether the underlying stream is a terminal."""
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        """The underlying stream's file descriptor."""
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # noqa: D102 - the underlying stream's
        return getattr(self.stream, "encoding", "utf-8")
