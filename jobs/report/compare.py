"""``lie-sweep report A B …``: one self-contained page comparing sweeps side by side.

What it compares (each store's values from its own tables; no array is read):

* **loss** per checkpoint (mean over each store's examples) and the **per-checkpoint score** (median and 90th
  percentile over a store's pairs), one line per store, on each store's own steps;
* **the pair matrix on shared pairs**: the examples every store holds, the top ``k`` of them by their mean score
  over the stores (partners among the shared examples), one heatmap per store, at a shared step or averaged over
  checkpoints; the colour scale is each store's own (fields differ by orders of magnitude);
* **rankings**: each store's top pairs (mean over checkpoints), and how the stores rank the shared pairs against
  each other: Spearman's ρ of every two stores' mean scores, and a scatter of any two.

The score is one of :data:`storage.scores.SCORES`, the same for every store (default: the exact swap where
every store has it, else the bracket norm). Stores that share no example, or whose items differ in kind
(examples against minibatches), are refused in one line. A store's label is what sets it apart: the identity
keys whose values differ between the stores (``field.name=adam``), else its path.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from lie_sweep.errors import ConfigError
from storage.reader import Sweep
from storage.scores import SCORES

__all__ = ["compare_payload", "store_labels", "spearman"]

MAX_SCATTER = 4000


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def store_labels(sweeps: Sequence[Sweep], longest: int = 48) -> tuple[list[str], list[str], list[str]]:
    """(one short label per store, the identity keys whose values differ between the stores, one full
    description per store). Checkpoint settings are left out where every store swept the same checkpoint files
    (by sha256: trained once, then glob'd); a label longer than ``longest`` becomes "store A", "store B", …
    (the full description goes in the page's tooltips and store list)."""
    flats = [_flat(dict(s.meta.identity)) for s in sweeps]
    keys = sorted({k for f in flats for k in f})
    varies = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    same_files = len({tuple(c.get("sha256") for c in s.meta.checkpoints) for s in sweeps}) == 1
    if same_files:
        varies = [k for k in varies if not k.startswith("checkpoints.")]
    full = [", ".join(f"{k}={f.get(k)}" for k in varies) or s.store.path for f, s in zip(flats, sweeps)]
    if len(set(full)) < len(full):  # the same identity twice: tell them apart by path
        full = [f"{label} ({s.store.path})" for label, s in zip(full, sweeps)]
    labels = full if max(len(label) for label in full) <= longest else [f"store {chr(65 + k)}" if k < 26 else
                                                                        f"store {k + 1}" for k in range(len(full))]
    return labels, varies, full


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two vectors (average ranks for ties; None below 3 finite pairs)."""
    import pandas as pd

    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return None
    ra, rb = (pd.Series(v[keep]).rank().to_numpy() for v in (a, b))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _score_name(sweeps: Sequence[Sweep], fits: list, by: str | None) -> str:
    if by is not None:
        for f in fits:
            SCORES[by].require(f.columns)
        return by
    if all("swap_norm" in f.columns for f in fits):
        return "swap"
    if all("norm" in f.columns for f in fits):
        return "norm"
    raise ConfigError("these stores share no score to compare", expected="stores that all have the bracket or all "
                      "the exact swap", found="a store without the bracket beside one without the swap",
                      fix="pass --by with a score every store has, or compare stores with a common effect")


def _check_shared(sweeps: Sequence[Sweep], labels: Sequence[str]) -> list[int]:
    units = {s.unit for s in sweeps}
    if len(units) > 1:
        raise ConfigError("the stores' items differ in kind", expected="all examples or all minibatches",
                          found=", ".join(f"{label}: {s.unit}" for label, s in zip(labels, sweeps)),
                          fix="compare sweeps with the same pairs.unit")
    shared = set(sweeps[0].examples)
    for s in sweeps[1:]:
        shared &= set(s.examples)
    if not shared:
        raise ConfigError("the stores share no example", expected="stores whose grids hold some of the same "
                          "examples (dataset indices)", found="; ".join(f"{label}: {len(s.examples)} examples from "
                                                                        f"{min(s.examples)}" for label, s in
                                                                        zip(labels, sweeps)),
                          fix="compare sweeps over the same examples (examples.start, examples.count)")
    return sorted(shared)


def _mean_scores(fits, column: str) -> dict[tuple[int, int], float]:
    per = fits.groupby(["i", "j"])[column].mean()
    return {(min(int(i), int(j)), max(int(i), int(j))): float(v) for (i, j), v in per.items()}


def _curves(sweep: Sweep, fits, column: str) -> dict[str, list]:
    table = sweep.checkpoint_table()
    loss = dict(zip(table["step"].astype(int), table["mean_loss"])) if not table.empty else {}
    by_step = fits.groupby("step")[column] if not fits.empty else None
    med = by_step.median().to_dict() if by_step is not None else {}
    q90 = by_step.quantile(0.9).to_dict() if by_step is not None else {}
    return {"steps": sweep.steps, "loss": [_number(loss.get(s)) for s in sweep.steps],
            "median": [_number(med.get(s)) for s in sweep.steps], "q90": [_number(q90.get(s)) for s in sweep.steps]}


def _number(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _matrices(fits_list, column: str, shown: list[int], steps: list[int]) -> list[list[list[list[float | None]]]]:
    """Per store, per view (each shared step, then the mean over checkpoints), the k × k matrix of the score
    (symmetric; None where the store has no such pair)."""
    pos = {e: n for n, e in enumerate(shown)}
    out = []
    for fits in fits_list:
        sub = fits[fits["i"].isin(shown) & fits["j"].isin(shown)]
        views = []
        for step in [*steps, None]:
            frame = sub if step is None else sub[sub["step"] == step]
            m = np.full((len(shown), len(shown)), np.nan)
            for (i, j), v in frame.groupby(["i", "j"])[column].mean().items():
                m[pos[int(i)], pos[int(j)]] = m[pos[int(j)], pos[int(i)]] = v
            views.append([[None if not np.isfinite(x) else float(x) for x in row] for row in m])
        out.append(views)
    return out


def compare_payload(sweeps: Sequence[Sweep], *, top: int = 12, by: str | None = None) -> dict[str, Any]:
    """The JSON object the comparison page's script reads (see the module docstring)."""
    labels, varies, full = store_labels(sweeps)
    shared_examples = _check_shared(sweeps, labels)
    fits = [s.fits() for s in sweeps]
    score = SCORES[_score_name(sweeps, fits, by)]
    column = score.pair_column
    means = [_mean_scores(f, column) for f in fits]
    shared_pairs = sorted(set.intersection(*(set(m) for m in means)))
    values = np.array([[m[p] for p in shared_pairs] for m in means]).reshape(len(sweeps), len(shared_pairs))
    # examples by their mean score over the stores (each store's scores scaled by its median: fields differ)
    scale = np.nanmedian(values, axis=1, keepdims=True) if shared_pairs else np.ones((len(sweeps), 1))
    weight = np.nanmean(values / np.where(scale > 0, scale, 1), axis=0) if shared_pairs else np.zeros(0)
    per_example: dict[int, float] = {e: 0.0 for e in shared_examples}
    for (i, j), w in zip(shared_pairs, weight):
        per_example[i] += w
        per_example[j] += w
    shown = sorted(sorted(per_example, key=lambda e: -per_example[e])[:max(2, top)])
    steps = sorted(set.intersection(*(set(s.steps) for s in sweeps)))
    order = np.argsort(-weight)[:MAX_SCATTER] if shared_pairs else np.zeros(0, dtype=int)
    rankings = []
    for f in fits:
        ranked = f.groupby(["i", "j"], as_index=False)[column].mean().sort_values(column, ascending=False).head(10)
        rankings.append([{"i": int(r.i), "j": int(r.j), "score": float(getattr(r, column))}
                         for r in ranked.itertuples()])
    return {
        "kind": "compare", "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "score": {"name": score.name, "help": score.help, "column": column},
        "varies": varies,
        "stores": [{"label": label, "full": text, "path": s.store.path, "effects": _effects(s),
                    "n_examples": len(s.examples), "n_pairs": len(s.pairs), "complete": s.complete,
                    "field": s.config.get("field", {}).get("name"),
                    **_curves(s, f, column)} for label, text, s, f in zip(labels, full, sweeps, fits)],
        "shared": {"examples": len(shared_examples), "pairs": len(shared_pairs), "steps": steps},
        "matrix": {"examples": shown, "views": _matrices(fits, column, shown, steps)},
        "scatter": {"pairs": [list(shared_pairs[k]) for k in order], "values": _finite(values[:, order])},
        "rank_corr": [[spearman(values[a], values[b]) for b in range(len(sweeps))] for a in range(len(sweeps))],
        "rankings": rankings,
    }


def _finite(a: np.ndarray) -> list:
    """Nested lists with None for NaN/Inf (the page's JSON allows no NaN)."""
    return [_finite(row) for row in a] if a.ndim > 1 else [float(x) if np.isfinite(x) else None for x in a]


def _effects(sweep: Sweep) -> list[str]:
    layout = sweep.store.layout
    return [e for e, kept in (("bracket", layout.keeps_brackets), ("order", layout.keeps_order),
                              ("swap", layout.keeps_swaps)) if kept]
