"""The errors a user can cause, as one small hierarchy.

Every error renders as one line: what was expected, what was found, and how to fix it.
The CLI prints ``str(error)`` and exits non-zero, without a traceback.
"""

from __future__ import annotations

__all__ = [
    "LieSweepError",
    "ConfigError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointMismatchError",
    "ExampleIndexError",
    "PairError",
]


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


class ConfigError(LieSweepError):
    """A configuration value is of the wrong type, out of range, or unknown."""


class CheckpointError(LieSweepError):
    """A checkpoint cannot be used."""


class CheckpointNotFoundError(CheckpointError):
    """A checkpoint path or glob matches no file."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's tensors do not fit the model (missing/unexpected keys, wrong shapes)."""


class ExampleIndexError(LieSweepError, IndexError):
    """An example index lies outside the batch or dataset."""


class PairError(LieSweepError, ValueError):
    """A pair list is malformed (i == j, duplicates, wrong shape)."""
