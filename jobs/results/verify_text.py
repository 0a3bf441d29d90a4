"""What ``verify``, ``show`` and the page say of a store's verify table, one line per checkpoint (no torch)."""

from __future__ import annotations

import numpy as np

from storage.reader import Sweep

__all__ = ["format_verify_summary", "format_swap_check"]


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


def format_swap_check(sweep: Sweep) -> list[str]:
    """One line per checkpoint of ``verify``'s check of the stored exact swaps against the reference (none where
    it has not run)."""
    rows = sweep.verify_swaps()
    lines = []
    for step, g in (rows.groupby("step") if not rows.empty else ()):
        stored = g["swap_rel_err"].dropna()
        values = (f"stored theta_ij - theta_ji off by at most {stored.max():.2g} (median {stored.median():.2g})"
                  if len(stored) else "no stored values (storage.keep=summary)")
        norms = g["norm_rel_err"].dropna()
        logits = g["logit_rel_err"].dropna()
        lines.append(f"step {int(step):>6}: against {g['reference'].iloc[0]} on {g['pair'].nunique()} pairs x "
                     f"{g['epsilon'].nunique()} step size(s): {values}; |swap| in the table off by at most "
                     f"{norms.max():.2g}" + (f"; logit deltas at most {logits.max():.2g}" if len(logits) else ""))
    return lines
