"""Example rankings: how order-sensitive each example is, from a sweep's ``pairs`` table. Pure pandas.

For example e at a checkpoint, over its partners j (every pair of the grid that contains e):

    partners        n_e, the number of pairs containing e
    mean_norm       mean_j ‖[u_e, u_j]‖                 se_norm  = std_j / √n_e
    rms_norm        (mean_j ‖[u_e, u_j]‖²)^½
    mean_c          mean_j c_ej (the slope-1 fit constant) se_c   = std_j / √n_e
    mean_logit_rms  mean_j logit RMS of the pair         se_logit_rms = std_j / √n_e
    mean_swap_norm  mean_j ‖θ_ej − θ_je‖ (exact swaps)    se_swap_norm = std_j / √n_e  (effect swap only)
    mean_swap_logit_rms  mean_j exact logit RMS           se_swap_logit_rms          (effect swap only)

Each statistic is there when its column is in the table: the bracket's (norm, c, logit_rms) with effect
bracket, the swap's with effect swap.

In a tournament the partners are a uniform random sample of the examples, so ``mean_norm``
estimates E_j ‖[u_e, u_j]‖ over the pool and ``se_norm`` is its standard error; in a cross grid they
are the probes (or the pool, for a probe). std is the sample standard deviation (ddof=1; NaN for
one partner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .scores import SCORES, default_score

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["example_stats", "rank_examples"]

# pairs-table column → the statistics over partners it gives: (mean, its standard error, root mean square or None)
_STATS = {"norm": ("mean_norm", "se_norm", "rms_norm"), "c": ("mean_c", "se_c", None),
          "logit_rms": ("mean_logit_rms", "se_logit_rms", None),
          "swap_norm": ("mean_swap_norm", "se_swap_norm", None),
          "swap_logit_rms": ("mean_swap_logit_rms", "se_swap_logit_rms", None)}


def example_stats(fits: "pd.DataFrame", by_step: bool = True) -> "pd.DataFrame":
    """Per (step ×) example statistics over partners (see the module docstring) of a ``pairs`` table, for each
    column of it the statistics are over (a store's effects decide which it has); ``by_step=False`` pools every
    checkpoint's pairs of an example."""
    import pandas as pd

    keys = ["step", "example"] if by_step else ["example"]
    cols = [c for c in _STATS if c in fits.columns]
    names = [n for c in cols for n in _STATS[c] if n]
    if fits.empty:
        return pd.DataFrame(columns=keys[:-1] + ["example", "partners"] + names)
    both = pd.concat([fits[["i", "step", *cols]].rename(columns={"i": "example"}),
                      fits[["j", "step", *cols]].rename(columns={"j": "example"})], ignore_index=True)
    for c in cols:
        both[c + "2"] = both[c] ** 2
    g = both.groupby(keys, sort=True)
    aggs = {"partners": ("step", "size")}
    for c in cols:
        aggs.update({f"mean {c}": (c, "mean"), f"sd {c}": (c, "std"), f"ms {c}": (c + "2", "mean")})
    out = g.agg(**aggs).reset_index()
    root_n = np.sqrt(out["partners"].astype(float))
    for c in cols:
        mean, se, rms = _STATS[c]
        out[mean] = out.pop(f"mean {c}")
        out[se] = out.pop(f"sd {c}") / root_n
        ms = out.pop(f"ms {c}")
        if rms:
            out[rms] = np.sqrt(ms)
    return out[keys[:-1] + ["example", "partners"] + names]


def rank_examples(fits: "pd.DataFrame", by: str | None = None, top: int | None = None,
                  by_step: bool = False) -> "pd.DataFrame":
    """Examples by decreasing score ``by`` (:data:`storage.scores.SCORES`; norm: mean ‖[u_e,u_j]‖ over
    partners; None: :func:`storage.scores.default_score`), with ``score`` and ``se`` (its standard error; NaN
    for rms); the first ``top`` when given."""
    score = SCORES[by or default_score(fits.columns)]
    stats = example_stats(fits, by_step=by_step)
    score.require(stats.columns, score.example_column)
    stats["score"] = stats[score.example_column]
    stats["se"] = stats[score.example_se] if score.example_se else np.nan
    stats = stats.sort_values("score", ascending=False, kind="stable", na_position="last").reset_index(drop=True)
    return stats if top is None else stats.head(top).reset_index(drop=True)
