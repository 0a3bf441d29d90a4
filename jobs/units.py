"""Units the commands print: durations as H:MM:SS and bytes in binary units."""

from __future__ import annotations

from storage.units import format_bytes  # the store's error lines print bytes the same way

__all__ = ["format_seconds", "format_bytes"]


def format_seconds(s: float) -> str:
    """``s`` seconds as H:MM:SS (M:SS under an hour; "?" when unknown)."""
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
