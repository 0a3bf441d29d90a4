"""Example rankings: how order-sensitive each example is, from a sweep's ``pairs`` table. Pure pandas.

For example e at a checkpoint, over its partners j (every pair of the grid that contains e):

    partners        n_e, the number of pairs containing e
    mean_norm       mean_j ‖[u_e, u_j]‖                 se_norm  = std_j / √n_e
    rms_norm        (mean_j ‖[u_e, u_j]‖²)^½
    mean_c          mean_j c_ej (the slope-1 fit constant) se_c   = std_j / √n_e
    mean_logit_rms  mean_j logit RMS of the pair         se_logit_rms = std_j / √n_e
    mean_swap_norm  mean_j ‖θ_ej − θ_je‖ (exact swaps)    se_swap_norm = std_j / √n_e  (effect swap only)

In a tournament the partners are a uniform random sample of the examples, so ``mean_norm``
estimates E_j ‖[u_e, u_j]‖ over the pool and ``se_norm`` is its standard error; in a cross grid they
are the probes (or the pool, for a probe). std is the sample standard deviation (ddof=1; NaN for
one partner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .scores import SCORES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["example_stats", "rank_examples"]
_COLUMNS = ["example", "partners", "mean_norm", "se_norm", "rms_norm", "mean_c", "se_c", "mean_logit_rms",
            "se_logit_rms"]


def example_stats(fits: "pd.DataFrame", by_step: bool = True) -> "pd.DataFrame":
    """Per (step ×) example statistics over partners (see the module docstring) of a ``pairs`` table;
    ``by_step=False`` pools every checkpoint's pairs of an example."""
    import pandas as pd

    keys = ["step", "example"] if by_step else ["example"]
    if fits.empty:
        return pd.DataFrame(columns=keys[:-1] + _COLUMNS)
    swap = "swap_norm" in fits.columns           # a store with effect swap: its exact swaps rank examples too
    cols = ["step", "norm", "c", "logit_rms", *(["swap_norm"] if swap else [])]
    both = pd.concat([fits[["i", *cols]].rename(columns={"i": "example"}),
                      fits[["j", *cols]].rename(columns={"j": "example"})], ignore_index=True)
    both["norm2"] = both["norm"] ** 2
    g = both.groupby(keys, sort=True)
    out = g.agg(partners=("norm", "size"), mean_norm=("norm", "mean"), sd_norm=("norm", "std"),
                ms_norm=("norm2", "mean"), mean_c=("c", "mean"), sd_c=("c", "std"),
                mean_logit_rms=("logit_rms", "mean"), sd_logit_rms=("logit_rms", "std"),
                **({"mean_swap_norm": ("swap_norm", "mean"), "sd_swap_norm": ("swap_norm", "std")} if swap else {})
                ).reset_index()
    root_n = np.sqrt(out["partners"].astype(float))
    out["se_norm"] = out.pop("sd_norm") / root_n
    out["se_c"] = out.pop("sd_c") / root_n
    out["se_logit_rms"] = out.pop("sd_logit_rms") / root_n
    out["rms_norm"] = np.sqrt(out.pop("ms_norm"))
    if not swap:
        return out[keys[:-1] + _COLUMNS]
    out["se_swap_norm"] = out.pop("sd_swap_norm") / root_n
    return out[keys[:-1] + _COLUMNS + ["mean_swap_norm", "se_swap_norm"]]


def rank_examples(fits: "pd.DataFrame", by: str = "norm", top: int | None = None,
                  by_step: bool = False) -> "pd.DataFrame":
    """Examples by decreasing score ``by`` (:data:`storage.scores.SCORES`; norm: mean ‖[u_e,u_j]‖ over
    partners), with ``score`` and ``se`` (its standard error; NaN for rms); the first ``top`` when given."""
    score = SCORES[by]
    stats = example_stats(fits, by_step=by_step)
    score.require(stats.columns, score.example_column)
    stats["score"] = stats[score.example_column]
    stats["se"] = stats[score.example_se] if score.example_se else np.nan
    stats = stats.sort_values("score", ascending=False, kind="stable", na_position="last").reset_index(drop=True)
    return stats if top is None else stats.head(top).reset_index(drop=True)
