"""Questions asked after a sweep, answered from its stored order effects: numpy only, from the sketches
(``storage.sketch=k``) or from the full arrays.

* **The effect of a swap on a test item's loss**, to first order: L_t(θ_ij) − L_t(θ_ji) ≈ ⟨∇L_t(θ), Δ_ij⟩ for the
  exact swap Δ_ij = θ_ij − θ_ji, and ≈ ε²⟨∇L_t(θ), [u_i, u_j]⟩ for the leading order. With a sketch S these are
  ⟨S∇L_t, SΔ_ij⟩, accurate to √(2/k)·‖∇L_t‖‖Δ_ij‖ in standard deviation (:mod:`storage.sketch`). The test
  items' gradients come from anywhere (``lie-sweep query`` computes them from dataset indices, or items of
  another dataset of the same task, at each checkpoint): full vectors over all D parameters in the store's flat
  order, which are sketched here with the store's own S, or sketches already.
* **Which way order effects point**: the cosine of each pair's effect with the checkpoint's mean gradient (over
  the sweep's examples) and with each example's gradient, and the pair × pair cosines of the top pairs' effects,
  ordered so that effects pointing the same way sit together (greedy average-linkage order).

Only completed tasks' pairs are read (the others' cells are NaN: never a plausible 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .errors import StoreKeyError
from .sketch import SketchSpec

if TYPE_CHECKING:
    import pandas as pd

Sweep = Any  # a storage.reader.Sweep (the reader imports this module: no import back)

__all__ = ["effect_on", "similarities", "sketch_spec", "cluster_order", "EFFECT_ARRAYS"]

EFFECT_ARRAYS = {"swap": "swaps", "bracket": "brackets"}  # the order effect a question is asked of, by name
_PAIR_BLOCK = 1 << 14


def sketch_spec(sweep: Sweep) -> SketchSpec | None:
    """The sketch S of a store (None: not sketched), from its layout."""
    layout = sweep.store.layout
    if not layout.sketch_k:
        return None
    return SketchSpec(layout.sketch_k, d=sum(int(np.prod(e["shape"])) for e in sweep.param_spec), s=layout.sketch_s,
                      seed=layout.sketch_seed)


def _source(sweep: Sweep, effect: str, use: str) -> tuple[str, str]:
    """(array to read, "sketch" or "full") for ``effect`` with ``use`` auto | sketch | full."""
    if effect not in EFFECT_ARRAYS:
        raise StoreKeyError(f"unknown order effect {effect!r}", expected=" | ".join(EFFECT_ARRAYS), found=repr(effect),
                            fix="effect='swap' (the exact swap) or 'bracket' (the leading order)")
    name = EFFECT_ARRAYS[effect]
    layout = sweep.store.layout
    sketched = name in layout.sketched
    full = name in sweep.store.group and len(sweep.stored_names) == len(sweep.param_names)
    if use not in ("auto", "sketch", "full"):
        raise StoreKeyError("unknown source of order effects", expected="auto | sketch | full", found=repr(use),
                            fix="use='auto'")
    if use == "sketch" or (use == "auto" and sketched and not full):
        if not sketched:
            raise StoreKeyError(f"this store has no sketch of its {name}", expected="a store run with storage.sketch=k",
                                found=f"storage.sketch={layout.sketch_k or 'null'}", fix="use='full', or re-run "
                                "the sweep with storage.sketch=1024")
        return f"sketch_{name}", "sketch"
    if not full:
        raise StoreKeyError(f"this store keeps no full {name} of every tensor", expected=f"effect {effect} stored "
                            "in full (storage.keep=all) or sketched (storage.sketch=k)",
                            found=f"storage.keep={sweep.config.get('storage', {}).get('keep', 'all')}",
                            fix="run the sweep with storage.sketch=1024 (or storage.keep=all)")
    return name, "full"


def _effect_rows(sweep: Sweep, array: str, c: int, k: int, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of an effect array at checkpoint c (swaps: step size k), float64, NaN where not done."""
    a = sweep.store.group[array]
    rows = a[c, k, start:stop] if array.endswith("swaps") else a[c, start:stop]
    return np.asarray(rows, dtype=np.float64)


def _completed_blocks(sweep: Sweep, array: str, c: int, k: int, done: np.ndarray):
    """(pair indices, their effect rows) of checkpoint c's completed pairs, _PAIR_BLOCK pairs at a time, so that
    memory stays bounded by one block whatever the grid's size."""
    layout = sweep.store.layout
    for start in range(0, len(sweep.pairs), _PAIR_BLOCK):
        stop = min(len(sweep.pairs), start + _PAIR_BLOCK)
        ok = done[layout.task_of(c, np.arange(start, stop))]
        if ok.any():
            yield np.arange(start, stop)[ok], _effect_rows(sweep, array, c, k, start, stop)[ok]


def effect_on(sweep: Sweep, gradients: Mapping[Any, np.ndarray], *, effect: str = "swap",
              epsilon: float | None = None, steps: Sequence[int] | None = None, use: str = "auto") -> "pd.DataFrame":
    """The first-order change of each test item's loss caused by each stored order effect (module docstring):
    one row per checkpoint × test item × completed pair, with ``change`` = L_t(θ_ij) − L_t(θ_ji) to first order,
    ``error_sd`` (from a sketch: the standard deviation its bound allows, √(2/k)·‖S∇L_t‖‖SΔ_ij‖; 0 from full
    vectors) and ``rank`` (1: the pair whose order moves that item's loss most, at that checkpoint).

    ``gradients``: {test item: (checkpoints, D) full gradients over all parameters in the store's flat order,
    or (checkpoints, k) sketches}; ``effect``: ``swap`` (the exact swap, at ``epsilon``: one of the swaps' step
    sizes, None the first) or ``bracket`` (ε²[u_i, u_j], ε = ``epsilon`` or the swaps' first step size, else the
    logit deltas'); ``use``: ``sketch``, ``full`` or ``auto`` (the full vectors where the store keeps them, else
    the sketch)."""
    import pandas as pd

    array, source = _source(sweep, effect, use)
    spec, layout = sketch_spec(sweep), sweep.store.layout
    k_eps = sweep._epsilon(epsilon) if effect == "swap" else 0
    eps = float(epsilon if epsilon is not None else (sweep.swap_epsilons[0] if sweep.swap_epsilons else
                                                     sweep.epsilon))
    scale = eps * eps if effect == "bracket" else 1.0
    chosen = list(sweep.steps) if steps is None else [int(s) for s in steps]
    done = _done_tasks(sweep)
    n_params = sum(int(np.prod(e["shape"])) for e in sweep.param_spec)
    tests = {}
    for name, g in gradients.items():
        g = np.asarray(g, dtype=np.float64)
        widths = (n_params, spec.k) if source == "sketch" else (n_params,)
        if g.ndim != 2 or g.shape[0] != layout.n_checkpoints or g.shape[1] not in widths:
            raise StoreKeyError(f"test item {name}'s gradients do not fit the store", expected=" or ".join(
                f"({layout.n_checkpoints}, {w})" for w in widths) + " (checkpoints × all parameters, or sketches)",
                found=str(g.shape), fix="compute them at every checkpoint over all the model's parameters, in the "
                                        "store's flat order")
        tests[name] = spec.apply(g) if source == "sketch" and g.shape[1] == n_params else g
    frames = []
    for step in chosen if tests else ():
        c = sweep._checkpoint(step)
        g = np.stack([t[c] for t in tests.values()])                      # (T, k or D)
        for pairs, rows in _completed_blocks(sweep, array, c, k_eps, done):
            change = scale * (g @ rows.T)                                  # (T, pairs)
            sd = scale * np.sqrt(2.0 / spec.k) * np.outer(np.linalg.norm(g, axis=1), np.linalg.norm(rows, axis=1)) \
                if source == "sketch" else np.zeros_like(change)           # the bound's standard deviation
            for t, name in enumerate(tests):
                frames.append(pd.DataFrame({"step": step, "test": name, "pair": pairs, "i": sweep.pairs[pairs, 0],
                                            "j": sweep.pairs[pairs, 1], "change": change[t], "error_sd": sd[t]}))
    columns = ["step", "test", "pair", "i", "j", "change", "error_sd"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in columns})
    out["rank"] = out.assign(size=out["change"].abs()).groupby(["step", "test"])["size"].rank(
        ascending=False, method="first").astype(int)
    out.attrs.update(effect=effect, epsilon=eps, source=source,
                     sketch_k=layout.sketch_k if source == "sketch" else None)
    return out


def cluster_order(cos: np.ndarray) -> list[int]:
    """An order of the rows of a (K × K) cosine matrix in which rows that point the same way sit together: greedy
    average-linkage merging of clusters by their mean cosine, the merged clusters' orders concatenated."""
    clusters = [[k] for k in range(cos.shape[0])]
    while len(clusters) > 1:
        best, pair = -np.inf, (0, 1)
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                link = float(np.nanmean(cos[np.ix_(clusters[a], clusters[b])]))
                if link > best:
                    best, pair = link, (a, b)
        a, b = pair
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return clusters[0] if clusters else []


def similarities(sweep: Sweep, step: int, *, effect: str = "swap", top: int = 16, use: str = "auto",
                 epsilon: float | None = None) -> dict[str, Any]:
    """Which way a checkpoint's order effects point (module docstring), read a block of pairs at a time:

    * ``pairs``: one row per completed pair: i, j, ``norm`` (‖effect‖), ``cos_mean`` (its cosine with the mean
      gradient of the sweep's examples), ``cos_i`` and ``cos_j`` (with the gradients of its own two examples);
    * ``top_pairs``: the ``top`` pairs by norm; ``top_cos``: their pair × pair cosines; ``top_order``: positions
      into ``top_pairs`` in which effects pointing the same way sit together (:func:`cluster_order`);
    * ``examples``: the top pairs' cosines with each example's gradient (top × E, columns ``sweep.examples``).

    A cosine is sign-aware: the gradient ∇L points uphill, so a swap with cos_mean > 0 raises the mean loss."""
    import pandas as pd

    array, source = _source(sweep, effect, use)
    c = sweep._checkpoint(step)
    k_eps = sweep._epsilon(epsilon) if effect == "swap" else 0
    grads_name = "sketch_gradients" if source == "sketch" else "gradients"
    if grads_name not in sweep.store.group:
        sweep.store.array("gradients")  # one error line
    raw = np.asarray(sweep.store.group[grads_name][c], dtype=np.float64)     # (E, k or D)
    grads, mean = _unit(raw), _unit(raw.mean(axis=0))
    del raw
    position = {int(e): n for n, e in enumerate(sweep.examples)}
    done = _done_tasks(sweep)
    frames, kept, kept_norm = [], np.zeros((0, grads.shape[1])), np.zeros(0)
    for pairs, rows in _completed_blocks(sweep, array, c, k_eps, done):
        ij = sweep.pairs[pairs]
        norm, unit = np.linalg.norm(rows, axis=1), _unit(rows)
        gi = grads[[position[int(i)] for i in ij[:, 0]]]
        gj = grads[[position[int(j)] for j in ij[:, 1]]]
        frames.append(pd.DataFrame({"step": step, "pair": pairs, "i": ij[:, 0], "j": ij[:, 1], "norm": norm,
                                    "cos_mean": unit @ mean, "cos_i": (unit * gi).sum(1),
                                    "cos_j": (unit * gj).sum(1)}))
        both = np.concatenate([kept_norm, norm])            # the running top pairs: memory O(top), not O(P)
        best = np.argsort(-both, kind="stable")[:top]
        kept, kept_norm = np.concatenate([kept, unit])[best], both[best]
    columns = ["step", "pair", "i", "j", "norm", "cos_mean", "cos_i", "cos_j"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in columns})
    top_pairs = table.sort_values("norm", ascending=False, kind="stable").head(top).reset_index(drop=True)
    top_cos = kept @ kept.T
    return {"pairs": table, "top_pairs": top_pairs, "top_cos": top_cos, "top_order": cluster_order(top_cos),
            "examples": kept @ grads.T, "source": source}


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (a zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)


def _done_tasks(sweep: Sweep) -> np.ndarray:
    """Whether each task of the store is complete (by task id)."""
    layout = sweep.store.layout
    done = np.zeros(layout.n_checkpoints * layout.n_tasks_per_checkpoint, dtype=bool)
    done[list(sweep.store.ledger.done_tasks())] = True
    return done
