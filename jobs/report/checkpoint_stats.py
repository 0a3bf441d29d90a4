"""The page's per-checkpoint statistics and rankings, read off a store's tables: median fit constants and
R², the effective rank of the gradient Gram matrix where the store keeps it, each checkpoint's top pairs and
examples by the chosen score (:data:`storage.scores.SCORES`), and ``verify``'s error curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lie_sweep.spectra import effective_rank_of_gram
from storage.ranking import example_stats
from storage.reader import Sweep, rank_pairs
from storage.scores import SCORES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["checkpoint_stats", "rankings", "verify_curves", "num", "gram_ranks", "PAIR_COLUMNS"]

# the top-pairs tables' columns, each where the store's effects give it
PAIR_COLUMNS = ("norm", "c", "r2", "logit_rms", "swap_norm", "swap_logit_rms", "lead_rel_err")


def gram_ranks(sweep: Sweep, fits: "pd.DataFrame", table: "pd.DataFrame",
                members: list[int]) -> tuple[np.ndarray, str]:
    """Per checkpoint, the effective rank of the Gram matrix g_a·g_b of ``members`` from the pairs table's
    ``grad_dot`` and the examples table's ``grad_norm``; NaN where a pair among them is missing."""
    ranks = np.full(len(sweep.steps), np.nan)
    if "grad_dot" not in fits.columns or len(members) < 2:
        return ranks, ""
    index = {e: a for a, e in enumerate(members)}
    for c, step in enumerate(sweep.steps):
        sub = fits[(fits["step"] == step) & fits["i"].isin(index) & fits["j"].isin(index)]
        norms = table[(table["step"] == step) & table["example"].isin(index)]
        if len(sub) < len(members) * (len(members) - 1) // 2 or len(norms) < len(members):
            continue
        gram = np.empty((len(members), len(members)))
        a, b = sub["i"].map(index).to_numpy(), sub["j"].map(index).to_numpy()
        gram[a, b] = gram[b, a] = sub["grad_dot"].to_numpy(np.float64)
        d = norms["example"].map(index).to_numpy()
        gram[d, d] = norms["grad_norm"].to_numpy(np.float64) ** 2
        ranks[c] = effective_rank_of_gram(gram)
    return ranks, f"over {len(members)} examples"


def checkpoint_stats(sweep: Sweep, fits: "pd.DataFrame", table: "pd.DataFrame",
                     shown: list[int]) -> tuple[dict[str, np.ndarray], str]:
    """Per checkpoint: completed pairs; mean bracket norm, median c and R² (effect bracket); mean exact swap
    norm and the median leading-order error (effect swap); and the effective rank of the gradients' Gram
    matrix (over the ``shown`` examples unless the store keeps the whole one), with the examples it is over."""
    steps = sweep.steps
    columns = {"mean_norm": ("norm", "mean"), "median_c": ("c", "median"), "median_r2": ("r2", "median"),
               "mean_swap": ("swap_norm", "mean"), "median_lead_err": ("lead_rel_err", "median")}
    columns = {k: v for k, v in columns.items() if v[0] in fits.columns}
    stats = {k: np.full(len(steps), np.nan) for k in [*columns, "n_pairs"]}
    for step, group in fits.groupby("step"):
        c = steps.index(int(step))
        for key, (column, how) in columns.items():
            stats[key][c] = getattr(group[column], how)()
        stats["n_pairs"][c] = len(group)
    scope = ""
    if sweep.store.layout.keeps_gram:  # schema <= 3 stored the whole Gram matrix's effective rank
        ckpts = sweep.checkpoint_table()
        ranks = np.full(len(steps), np.nan)
        for r in ckpts.itertuples():
            ranks[steps.index(int(r.step))] = r.effective_rank
        scope = f"over all {len(sweep.examples)} examples"
    else:
        members = sweep.examples if len(sweep.examples) <= 512 else shown
        ranks, scope = gram_ranks(sweep, fits, table, members)
        if np.isnan(ranks).all() and members is not shown:
            ranks, scope = gram_ranks(sweep, fits, table, shown)
        if np.isnan(ranks).all():
            scope = "not available: the grid (or the completed part of it) lacks some pairs among the examples"
    stats["effective_rank"] = ranks
    return stats, scope


def rankings(sweep: Sweep, fits: "pd.DataFrame", table: "pd.DataFrame", by: str, top: int) -> list[dict[str, Any]]:
    """Per checkpoint: its top pairs (by the pair score matching ``by``) and top examples (by ``by``)."""
    stats = example_stats(fits, by_step=True)
    column, se = SCORES[by].example_column, SCORES[by].example_se
    loss = {(int(r.step), int(r.example)): float(r.loss) for r in table.itertuples()} if not table.empty else {}
    out = []
    for step in sweep.steps:
        pairs = rank_pairs(fits[fits["step"] == step], top, by=by)
        ex = stats[stats["step"] == step].sort_values(column, ascending=False, kind="stable").head(top)
        out.append({
            "pairs": [{"pair": int(r["pair"]), "i": int(r["i"]), "j": int(r["j"]),
                       **{k: num(r[k]) for k in PAIR_COLUMNS if k in r.index}} for _, r in pairs.iterrows()],
            "examples": [{"example": int(r["example"]), "score": num(r[column]),
                          "se": num(r[se]) if se else None, "partners": int(r["partners"]),
                          "mean_c": num(r["mean_c"]) if "mean_c" in r.index else None,
                          "loss": num(loss.get((step, int(r["example"]))))}
                         for _, r in ex.iterrows()]})
    return out


def num(x: Any) -> float | None:
    """A finite number as a float, anything else (NaN, None) as None (JSON null)."""
    return None if x is None or not np.isfinite(x) else float(x)


def verify_curves(sweep: Sweep) -> dict[str, Any] | None:
    """``lie-sweep verify``'s results for the page: per verified checkpoint, the median relative errors at
    each ε and the summary (None when verify has not run)."""
    rows = sweep.verify_table()
    if rows.empty:
        return None
    eps = sorted(float(e) for e in rows["epsilon"].unique())
    steps = sorted(int(s) for s in rows["step"].unique())
    med = rows.groupby(["step", "epsilon"])[["rel_theta", "rel_logits"]].median()
    grid = {k: [[num(med[k].get((s, e), np.nan)) for e in eps] for s in steps] for k in ("rel_theta", "rel_logits")}
    summary = [{k: (int(v) if k in ("step", "pairs") else num(float(v))) for k, v in r._asdict().items()
                if k != "Index"} for r in sweep.verify_summary().itertuples()]
    return {"steps": steps, "epsilons": eps, **grid, "summary": summary}


