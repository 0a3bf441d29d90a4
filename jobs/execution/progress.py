"""A progress line for sweeps: pairs done, pairs/s, ETA (a bar on a terminal, lines otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from jobs.units import format_seconds

__all__ = ["Progress"]


class Progress:
    """Counts pairs; rate and ETA are over the pairs computed in this run."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.total, self.done, self.fresh = total, done, 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.start = time.perf_counter()
        self._last = 0.0
        self.failed = 0

    @property
    def rate(self) -> float:
        """Pairs per second since the progress clock started."""
        elapsed = time.perf_counter() - self.start
        return self.fresh / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The progress line: bar, pairs done of total, pairs/s and ETA."""
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * 24)
        fail = f"  {self.failed} failed" if self.failed else ""
        return (f"[{bar:<24}] {self.done}/{self.total} pairs  {rate:.1f} pairs/s  "
                f"ETA {format_seconds(eta)}{fail}")

    def update(self, pairs: int, force: bool = False) -> None:
        """Count ``pairs`` more as done and redraw (at most a few times a second unless ``force``)."""
        self.done += pairs
        self.fresh += pairs
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif force or now - self._last >= self.interval or self.done >= self.total:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last = now

    def close(self) -> None:
        """Draw the final line and end it."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
