"""What a report page shows, read from a store through the lazy reader (numpy and pandas, no torch; the
effective rank: :func:`lie_sweep.spectra.effective_rank_of_gram`).

``collect_report`` reads:

* the ``pairs`` table (every completed pair: rankings, per-checkpoint statistics, the example ranking
  that picks the shown examples) and the ``examples`` table (losses);
* for the *shown* pairs only (every grid pair between two shown examples, plus the top pairs): their
  ``logit_deltas`` chunks and their tasks' ``pair_rms`` table parts;
* per checkpoint × output, the mean |logit delta| over all completed pairs
  (:meth:`Sweep.output_movement`, streamed);
* per checkpoint, the cosines among the top pairs' order effects (:mod:`jobs.report.similarity`: the sketches,
  or full arrays small enough to read).

Only completed tasks count (the reader filters tables by completion marks, and logit deltas are
masked by them), so a store that is still being written reports what is finished.
:func:`shrink` keeps the first k shown examples (by rank) without reading again, for the size budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from lie_sweep.errors import ConfigError
from storage.accounting import compression, throughput
from storage.ranking import rank_examples
from storage.scores import SCORES, default_score
from storage.reader import Sweep, rank_pairs

from .checkpoint_stats import checkpoint_stats, rankings, verify_curves
from .similarity import similarity_panel

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReportData", "collect_report", "shrink", "PAIR_SCORES"]

# per checkpoint × pair scores the page embeds, from the pairs table (each where the store's effects give it)
PAIR_SCORES = ("norm", "c", "r2", "logit_rms", "grad_dot", "swap_norm", "swap_logit_rms", "lead_rel_err",
               "lead_logit_rel_err", "order_rel_err")


@dataclass
class ReportData:
    """Everything a page shows, as numpy arrays and JSON-able values (see the module docstring).

    ``ranked``: candidate examples, most order-sensitive first; ``shown``: the first ``k`` of them;
    ``pairs`` (Ps, 2) dataset indices of the embedded pairs (i before j as stored), ``positions``
    their positions in ``sweep.pairs``; per-pair arrays are (C, Ps, …) and NaN where a task is not
    complete."""

    info: dict[str, Any]
    steps: list[int]
    ranked: list[int]
    k: int
    top_pairs_set: list[int]
    positions: np.ndarray
    pairs: np.ndarray
    done: np.ndarray
    scores: dict[str, np.ndarray]
    logits: np.ndarray | None
    swap_logits: np.ndarray | None
    tensors: list[str]
    rms_bracket: np.ndarray
    rms_grad: np.ndarray
    loss_mean: np.ndarray
    loss_q10: np.ndarray
    loss_q90: np.ndarray
    losses: dict[int, np.ndarray]
    ckpt_stats: dict[str, np.ndarray]
    rank_scope: str
    rankings: list[dict[str, Any]]
    outputs: np.ndarray | None
    outputs_pairs: list[int] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    similarity: dict[str, Any] | None = None   # the top pairs' effects' cosines (jobs.report.similarity)

    @property
    def shown(self) -> list[int]:
        """The shown examples (dataset indices), in dataset order."""
        return sorted(self.ranked[:self.k])


def _pick_examples(sweep: Sweep, fits: "pd.DataFrame", examples: Sequence[int] | None, by: str) -> list[int]:
    """Candidate examples, most order-sensitive first: ``examples`` as given, else all ranked by ``by``."""
    if examples is not None:
        known = set(sweep.examples)
        unknown = [e for e in examples if e not in known]
        if unknown:
            raise ConfigError("--examples names examples outside this sweep",
                              expected=f"dataset indices among the sweep's {len(sweep.examples)} examples",
                              found=", ".join(map(str, unknown[:5])), fix="list them with lie_sweep.open_sweep"
                              "(STORE).examples, or leave --examples out to show the top ones")
        if len(set(examples)) < 2:
            raise ConfigError("--examples needs two examples or more", expected="I,J[,…]",
                              found=",".join(map(str, examples)), fix="name at least two dataset indices")
        return list(dict.fromkeys(int(e) for e in examples))
    ranked = [int(e) for e in rank_examples(fits, by=by)["example"]]
    seen = set(ranked)
    return ranked + [e for e in sweep.examples if e not in seen]  # examples with no completed pair last


def _embedded_pairs(sweep: Sweep, ranked: list[int], k: int, top: set[int]) -> np.ndarray:
    """Positions (in ``sweep.pairs``) of the grid pairs between two of the first k ranked examples, and ``top``."""
    shown = np.zeros(max(sweep.examples) + 1, dtype=bool)
    shown[ranked[:k]] = True
    both = shown[sweep.pairs[:, 0]] & shown[sweep.pairs[:, 1]]
    both[list(top)] = True
    return np.flatnonzero(both)


def _done_mask(sweep: Sweep, positions: np.ndarray) -> np.ndarray:
    """(C, Ps): whether the task computing pair ``positions[p]`` at checkpoint c has its completion mark."""
    done = set(sweep.store.ledger.done_tasks())
    ids = sweep.store.layout.task_of(np.arange(len(sweep.steps))[:, None], positions[None, :])
    return np.vectorize(lambda t: int(t) in done, otypes=[bool])(ids) if ids.size else np.zeros(ids.shape, bool)


def _pair_scores(fits: "pd.DataFrame", steps: list[int], positions: np.ndarray) -> dict[str, np.ndarray]:
    col = {int(p): k for k, p in enumerate(positions)}
    row = {s: c for c, s in enumerate(steps)}
    names = [name for name in PAIR_SCORES if name in fits.columns]
    out = {name: np.full((len(steps), len(positions)), np.nan) for name in names}
    sub = fits[fits["pair"].isin(col)]
    cs = sub["step"].map(row).to_numpy()
    ps = sub["pair"].map(col).to_numpy()
    for name in names:
        out[name][cs, ps] = sub[name].to_numpy(dtype=np.float64)
    return out


def _logits(sweep: Sweep, positions: np.ndarray, done: np.ndarray, exact: bool = False) -> np.ndarray | None:
    """(C, Ps, B, O) logit deltas of the embedded pairs, NaN where not complete; reads only their chunks. With
    ``exact``, the exact swap's f(θ_ij) − f(θ_ji) at its first step size (None where the store has neither)."""
    layout = sweep.store.layout
    if not (layout.keeps_logits and (layout.keeps_swaps if exact else layout.keeps_lead_logits)):
        return None
    arr = sweep.store.array("swap_logit_deltas" if exact else "logit_deltas")
    lead = (0,) if exact else ()
    out = np.full((len(sweep.steps), len(positions), layout.n_eval, layout.n_outputs), np.nan, dtype=np.float32)
    for c in range(len(sweep.steps)):
        cols = np.flatnonzero(done[c])
        if len(cols):
            out[c, cols] = arr.get_orthogonal_selection((c, *lead, positions[cols], slice(None), slice(None)))
    return out


def _rms(sweep: Sweep, positions: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tensor names and (C, Ps, T) bracket RMS (the exact swap's, in a store without the bracket) and gradient
    RMS (geometric mean of the pair's) from ``pair_rms``."""
    frame = sweep.rms_table(pairs=positions.tolist())
    names = [e["name"] for e in sweep.param_spec]
    shape = (len(sweep.steps), len(positions), len(names))
    bracket, grad = np.full(shape, np.nan), np.full(shape, np.nan)
    if not frame.empty:
        col = {int(p): k for k, p in enumerate(positions)}
        cs = frame["step"].map({s: c for c, s in enumerate(sweep.steps)}).to_numpy()
        ps = frame["pair"].map(col).to_numpy()
        ts = frame["tensor"].map({n: t for t, n in enumerate(names)}).to_numpy()
        column = "rms_bracket" if "rms_bracket" in frame.columns else "rms_swap"
        bracket[cs, ps, ts] = frame[column].to_numpy(np.float64)
        grad[cs, ps, ts] = frame["rms_grad"].to_numpy(np.float64)
    return names, bracket, grad


def _losses(sweep: Sweep, table: "pd.DataFrame", ranked: list[int]) -> tuple[np.ndarray, ...]:
    steps = sweep.steps
    mean, q10, q90 = (np.full(len(steps), np.nan) for _ in range(3))
    per: dict[int, np.ndarray] = {e: np.full(len(steps), np.nan) for e in ranked}
    if not table.empty:
        for step, group in table.groupby("step"):
            c = steps.index(int(step))
            values = group["loss"].to_numpy(np.float64)
            mean[c] = values.mean()
            q10[c], q90[c] = np.quantile(values, [0.1, 0.9])
            for e, v in zip(group["example"].to_numpy(), values):
                if int(e) in per:
                    per[int(e)][c] = v
    return mean, q10, q90, per


def _task(sweep: Sweep) -> Any:
    from jobs.results.show import task_of_store

    return task_of_store(sweep)


def _info(sweep: Sweep, by: str) -> dict[str, Any]:
    meta, cfg, layout = sweep.meta, sweep.config, sweep.store.layout
    done, total = len(sweep.store.ledger.done_tasks()), meta.n_tasks
    field_cfg = cfg.get("field", {})
    field_name = field_cfg.get("name", "sgd")
    return {
        "store": sweep.store.path, "steps": sweep.steps, "n_examples": len(sweep.examples),
        "n_pairs": len(sweep.pairs), "n_tasks": total, "tasks_done": done, "complete": done == total,
        "epsilon": sweep.epsilon, "eval_examples": sweep.eval_examples, "outputs": sweep.output_names,
        "codec": meta.codec, "keepbits": meta.keepbits if meta.codec == "bitround" else None, "dtype": meta.dtype,
        "field": field_name, "field_text": {
            "adam": "u_x = −P∇L_x with Adam's frozen preconditioner P = 1/(√v̂ + eps) from each checkpoint's "
                    "optimizer state",
            "optimizer": "u_x = −∇L_x (SGD) for the bracket; the logit deltas are J_f(εΔ₁ + ε²Δ₂), the exact "
                         "expansion of each checkpoint's own saved optimizer's swap (arrays order1, order2)",
        }.get(field_name, "u_x = −∇L_x (SGD)"),
        "grid": cfg.get("pairs", {}).get("mode", "all"), "model": str(cfg.get("model", {}).get("_target_", "")),
        "data": str(cfg.get("data", {}).get("_target_", "")), "by": by, "schema": meta.schema_version,
        "n_params": int(sum(int(np.prod(e["shape"])) for e in sweep.param_spec)),
        "package_version": meta.package_version,
        "effects": [e for e in ("bracket", "order", "swap") if {"bracket": layout.keeps_brackets,
                                                                "order": layout.keeps_order,
                                                                "swap": layout.keeps_swaps}[e]],
        "swap_epsilon": sweep.swap_epsilons[0] if sweep.swap_epsilons else None,
        "swap_rule": next((dict(sweep.store.group[a].attrs).get("rule") for a in ("swaps", "swap_logit_deltas")
                           if a in sweep.store.group), None),
        "outputs_exact": layout.keeps_swaps and not layout.keeps_lead_logits,  # the outputs panel's logit deltas
        "unit": sweep.unit,  # example, or batch: the items are minibatches (sweep.batches)
        # the task: what the evaluation batch measures (logits; a language model's log p of each true next token)
        "task": _task(sweep).name, "task_text": _task(sweep).help, "measures": _task(sweep).measures,
        # the figures run, status and show print (storage.accounting)
        "compression_ratio": compression(sweep.store).ratio,
        "pairs_per_second": throughput(sweep.store).pairs_per_second,
    }


def collect_report(sweep: Sweep, *, top: int = 16, examples: Sequence[int] | None = None, by: str | None = None,
                   top_pairs: int = 10) -> ReportData:
    """Read what the page shows (see the module docstring): the first ``top`` examples by ``by`` (or
    ``examples``; None: :func:`storage.scores.default_score`), the grid pairs among them, and each checkpoint's
    ``top_pairs`` pairs."""
    if by is not None:
        SCORES[by]  # an unknown score is one error line naming the known ones
    if top < 2:
        raise ConfigError("--top too small", expected="2 or more examples", found=str(top), fix="--top 16")
    fits = sweep.fits()
    if fits.empty:
        raise ConfigError("no completed task in this store yet", expected="at least one completed task",
                          found=f"0 of {sweep.meta.n_tasks} done",
                          fix=f"wait for the sweep (lie-sweep status {sweep.store.path}) or resume it")
    by = by or default_score(fits.columns)
    SCORES[by].require(fits.columns)
    table = sweep.example_table()
    ranked = _pick_examples(sweep, fits, examples, by)
    k = min(top, len(ranked)) if examples is None else len(ranked)
    top_set = {int(p) for step in sweep.steps
               for p in rank_pairs(fits[fits["step"] == step], top_pairs, by=by)["pair"]}
    positions = _embedded_pairs(sweep, ranked, k, top_set)
    done = _done_mask(sweep, positions)
    tensors, rms_bracket, rms_grad = _rms(sweep, positions)
    mean, q10, q90, per = _losses(sweep, table, ranked)
    stats, scope = checkpoint_stats(sweep, fits, table, sorted(ranked[:k]))
    movement = sweep.output_movement()
    outputs = None
    if not movement.empty:
        outputs = np.full((len(sweep.steps), len(sweep.output_names)), np.nan)
        for r in movement.itertuples():
            outputs[sweep.steps.index(int(r.step)), sweep.output_names.index(r.output)] = r.mean_abs
    n_out_pairs = [int(movement[movement["step"] == s]["n_pairs"].max()) if (movement["step"] == s).any() else 0
                   for s in sweep.steps] if not movement.empty else []
    return ReportData(info=_info(sweep, by), steps=list(sweep.steps), ranked=ranked, k=k,
                      top_pairs_set=sorted(top_set), positions=positions, pairs=sweep.pairs[positions],
                      done=done, scores=_pair_scores(fits, sweep.steps, positions),
                      logits=_logits(sweep, positions, done), swap_logits=_logits(sweep, positions, done, exact=True),
                      tensors=tensors, rms_bracket=rms_bracket,
                      rms_grad=rms_grad, loss_mean=mean, loss_q10=q10, loss_q90=q90, losses=per,
                      ckpt_stats=stats, rank_scope=scope, rankings=rankings(sweep, fits, table, by, top_pairs),
                      outputs=outputs, outputs_pairs=n_out_pairs, verify=verify_curves(sweep),
                      similarity=similarity_panel(sweep))


def shrink(data: ReportData, k: int) -> ReportData:
    """``data`` showing only the first ``k`` ranked examples (and the top pairs): its arrays sliced, nothing read."""
    keep_examples, top = set(data.ranked[:k]), set(data.top_pairs_set)
    keep = np.array([(int(i) in keep_examples and int(j) in keep_examples) or int(p) in top
                     for p, (i, j) in zip(data.positions, data.pairs)], dtype=bool)
    return replace(data, k=k, positions=data.positions[keep], pairs=data.pairs[keep], done=data.done[:, keep],
                   scores={n: v[:, keep] for n, v in data.scores.items()},
                   logits=None if data.logits is None else data.logits[:, keep],
                   swap_logits=None if data.swap_logits is None else data.swap_logits[:, keep],
                   rms_bracket=data.rms_bracket[:, keep], rms_grad=data.rms_grad[:, keep])
