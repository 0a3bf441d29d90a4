"""A full disk, told in one line: which store, how much is free, how much more it needs, how to go on.

``ENOSPC`` (and ``EDQUOT``, a quota) can surface anywhere a store is written: its creation, a worker's
shards, the driver's marks and failure records. :func:`is_no_space` finds it in an exception's chain (a
worker's error arrives wrapped, with the original as ``cause``); :func:`no_space_error` is the line the
user sees. What was written before stays: a task without a completion mark is recomputed by ``resume``.
"""

from __future__ import annotations

import errno
import os
import shutil

from .errors import StoreError
from .units import format_bytes

__all__ = ["NoSpaceError", "is_no_space", "free_bytes", "no_space_error"]

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(StoreError):
    """The filesystem holding a store is full (or its quota is used up)."""


def is_no_space(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from or during (``__cause__``, ``__context__``, a wrapped
    ``cause``), is a full disk."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NoSpaceError) or isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "cause", None)
    return False


def free_bytes(path: str) -> int | None:
    """Free bytes on the local filesystem holding ``path`` (its nearest existing folder); None for a URL."""
    if "://" in path and not path.startswith("file://"):
        return None
    here = os.path.abspath(path[len("file://"):] if path.startswith("file://") else path)
    while not os.path.exists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    try:
        return shutil.disk_usage(here).free
    except OSError:
        return None


def no_space_error(store: str, *, needed: int | None = None, written: str = "", fix: str | None = None) -> NoSpaceError:
    """The one line for a full disk under ``store``: ``needed``, the bytes the rest of the work takes (None:
    unknown here; ``lie-sweep plan`` estimates it); ``written``, what became of the store."""
    free = free_bytes(store)
    return NoSpaceError(f"no space left on the device of {store}" + (f": {written}" if written else ""),
                        expected=f"about {format_bytes(needed)} free for the rest of it" if needed is not None else
                        "room for the store (`lie-sweep plan` with the same overrides estimates its size)",
                        found=f"{format_bytes(free)} free", fix=fix or f"free space, then lie-sweep resume {store}")
