"""What ``verify``, ``show`` and the page say of a store's verify table, one line per checkpoint (no torch)."""

from __future__ import annotations

import numpy as np

from storage.reader import Sweep

__all__ = ["format_verify_summary"]


def format_verify_summary(sweep: Sweep) -> list[str]:
    """One line per verified checkpoint (what ``verify`` and ``show`` print)."""
    summary = sweep.verify_summary()
    lines = []
    for r in summary.itertuples():
        within = (f"within 10% at ε ≤ {r.within_10pct:.3g}" if np.isfinite(r.within_10pct)
                  else "not within 10% at any ε tried")
        relu = "" if not np.isfinite(r.relu_switch_at_lr) else f"; {100 * r.relu_switch_at_lr:.2g}% of ReLU inputs " \
                                                                  "switch sign in one step"
        lines.append(f"step {r.step:>6}: at ε = {r.lr:.3g} the leading order is off by {100 * r.at_lr:.3g}% "
                     f"(median of {r.pairs} pairs; worst {100 * r.max_rel_at_lr:.3g}%); {within}{relu}")
    return lines
