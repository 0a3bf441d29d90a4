"""Units the commands print: durations as H:MM:SS and bytes in binary units."""

from __future__ import annotations

__all__ = ["format_seconds", "format_bytes"]


def format_seconds(s: float) -> str:
    """``s`` seconds as H:MM:SS (M:SS under an hour; "?" when unknown)."""
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_bytes(n: float) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB`` … ``2.0 PiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"
