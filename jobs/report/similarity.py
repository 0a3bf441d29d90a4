"""The page's "which order effects point the same way" panel: per checkpoint, the pair × pair cosines of the top
pairs' order effects in a clustered order, and each one's cosine with the checkpoint's mean gradient
(:func:`storage.questions.similarities`: from the store's sketches, else from its full vectors where reading them
is cheap)."""

from __future__ import annotations

from typing import Any

import numpy as np

from storage.reader import Sweep

from .checkpoint_stats import num

__all__ = ["similarity_panel", "FULL_READ_LIMIT"]

FULL_READ_LIMIT = 1 << 27  # values of one checkpoint's full effect array the page reads at most (~1 GiB float64)


def _source(sweep: Sweep) -> tuple[str, str] | None:
    """(effect, use) the panel reads, or None: the exact swap where stored, else the bracket; sketches first."""
    layout = sweep.store.layout
    effect = "swap" if layout.keeps_swaps else ("bracket" if layout.keeps_brackets else None)
    if effect is None:
        return None
    name = "swaps" if effect == "swap" else "brackets"
    if name in layout.sketched:
        return effect, "sketch"
    full = name in sweep.store.group and len(sweep.stored_names) == len(sweep.param_names)
    n_params = sum(int(np.prod(e["shape"])) for e in sweep.param_spec)
    return (effect, "full") if full and len(sweep.pairs) * n_params <= FULL_READ_LIMIT else None


def similarity_panel(sweep: Sweep, top: int = 12) -> dict[str, Any] | None:
    """{effect, source, k, steps: [{pairs, cos, cos_mean, norm} per checkpoint, clustered]} or None when the store
    keeps no direction of its effects (summaries only, or full arrays too large to read for a page)."""
    source = _source(sweep)
    if source is None:
        return None
    effect, use = source
    steps = []
    for step in sweep.steps:
        s = sweep.similarities(step, effect=effect, use=use, top=top)
        order = s["top_order"]
        rows = s["top_pairs"].iloc[order] if order else s["top_pairs"]
        steps.append({"step": int(step), "pairs": [[int(r.i), int(r.j)] for r in rows.itertuples()],
                      "cos": [[num(float(s["top_cos"][a, b])) for b in order] for a in order],
                      "cos_mean": [num(float(v)) for v in rows["cos_mean"]],
                      "norm": [num(float(v)) for v in rows["norm"]]})
    return {"effect": effect, "source": use, "k": sweep.store.layout.sketch_k if use == "sketch" else None,
            "steps": steps}
