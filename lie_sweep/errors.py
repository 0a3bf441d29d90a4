"""The errors a user can cause, as one small hierarchy (root: :class:`storage.errors.LieSweepError`).

Every error renders as one line: what was expected, what was found, and how to fix it.
The CLI prints ``str(error)`` and exits non-zero, without a traceback.
"""

from __future__ import annotations

from storage.errors import LieSweepError, NotASweepError, StoreError, StoreExistsError, StoreKeyError, first_line

__all__ = [
    "LieSweepError",
    "StoreError",
    "NotASweepError",
    "StoreExistsError",
    "StoreKeyError",
    "ConfigError",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointMismatchError",
    "ExampleIndexError",
    "PairError",
    "NonFiniteError",
    "first_line",
    "require_indices",
]


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


def require_indices(indices, n: int, *, fix: str) -> None:
    """Every index in ``indices`` lies in [0, n); else one :class:`ExampleIndexError` line naming the first outside."""
    bad = next((int(k) for k in indices if not 0 <= int(k) < n), None)
    if bad is not None:
        raise ExampleIndexError("example index out of range", expected=f"indices in [0, {n - 1}]", found=str(bad),
                                fix=fix)


class NonFiniteError(LieSweepError, FloatingPointError):
    """A checkpoint, or a result computed from a finite one, holds NaN or Inf (deterministic: not retried)."""
