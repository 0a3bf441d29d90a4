"""The root of lie-sweep's error hierarchy, and the store's errors.

Every error a user can cause renders as one line: what was expected, what was found, and how to
fix it. The root lives here, in the bottom layer (no torch, no ray), so that the store, the math
(``lie_sweep.errors``) and the execution layer share one hierarchy.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["LieSweepError", "StoreError", "NotASweepError", "StoreExistsError", "StoreKeyError", "first_line",
           "brief"]


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message reduced to its first non-empty line (or its type's name), at most ``limit`` chars."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


def brief(values: Sequence[object], limit: int = 6) -> str:
    """A short rendering of a list for one error line: ``0..31 (32 values)`` for a run of consecutive
    integers, else the first few and the count."""
    values = list(values)
    n = len(values)
    if n > 2 and all(isinstance(v, int) for v in values) and values == list(range(values[0], values[0] + n)):
        return f"{values[0]}..{values[-1]} ({n} values)"
    if n <= limit:
        return ", ".join(str(v) for v in values)
    return ", ".join(str(v) for v in values[:limit - 1]) + f", … ({n} values)"


class LieSweepError(Exception):
    """Base of every error a user can cause; ``str()`` is a single line."""

    def __init__(self, what: str, *, expected: str | None = None, found: str | None = None,
                 fix: str | None = None) -> None:
        self.what = what
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(self._line())

    def _line(self) -> str:
        parts = [self.what]
        if self.expected is not None:
            parts.append(f"expected {self.expected}")
        if self.found is not None:
            parts.append(f"found {self.found}")
        line = "; ".join(parts)
        if self.fix is not None:
            line += f" (fix: {self.fix})"
        return " ".join(line.split())  # one line, whatever the parts held


class StoreError(LieSweepError):
    """A sweep store cannot be created, opened or read."""


class NotASweepError(StoreError):
    """A path holds no lie-sweep store."""


class StoreExistsError(StoreError):
    """A run would write into a store that already exists."""


class StoreKeyError(StoreError, KeyError):
    """A checkpoint, example or parameter asked of a store is not in it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""
