"""``lie-sweep show STORE``: what a sweep found, for the terminal, from its tables and logit deltas.

Reads only the summary tables and the logit deltas (one checkpoint at a time), never the
parameter-sized arrays, so it is quick on any store, including ``storage.keep=summary`` ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from storage.accounting import compression, sketch_note, throughput
from storage.ranking import rank_examples
from storage.reader import Sweep, open_sweep, rank_pairs
from storage.scores import default_score

from jobs.units import format_bytes
from .verify_text import format_verify_summary

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["show_store", "format_show", "output_movement"]


def output_movement(sweep: Sweep) -> list[tuple[str, float]]:
    """(output name, mean |logit delta|) over checkpoints, completed pairs and evaluation examples, largest
    first (from :meth:`Sweep.output_movement`, pooled over checkpoints weighted by their pairs)."""
    per_step = sweep.output_movement()
    if per_step.empty:
        return []
    per_step = per_step.assign(total=per_step["mean_abs"] * per_step["n_pairs"])
    pooled = per_step.groupby("output", sort=False).agg(total=("total", "sum"), n=("n_pairs", "sum"))
    mean = pooled["total"] / pooled["n"]
    return sorted(zip(mean.index.tolist(), mean.tolist()), key=lambda t: -t[1])


def _fmt(x: Any, spec: str = ".3e") -> str:
    try:
        return "nan" if x is None or not np.isfinite(x) else format(x, spec)
    except TypeError:
        return str(x)


def _header(sweep: Sweep) -> list[str]:
    meta, layout = sweep.meta, sweep.store.layout
    done, n_tasks = len(sweep.store.ledger.done_tasks()), meta.n_tasks
    kept = ("summaries only" if not layout.keeps_params else
            "all tensors" if len(sweep.stored_names) == len(sweep.param_names) else
            f"{len(sweep.stored_names)} of {len(sweep.param_names)} tensors")
    return [
        f"store        {sweep.store.path}",
        f"grid         {len(sweep.steps)} checkpoints (steps {sweep.steps[0]}..{sweep.steps[-1]}) × "
        f"{len(sweep.pairs)} pairs of {len(sweep.examples)} "
        + ("examples" if sweep.batches is None else f"minibatches of {len(sweep.batches[0])} examples (items "
           "0..; sweep.batches[k]: item k's dataset indices; a step on one is its mean-gradient step)")
        + f"; {done} of {n_tasks} tasks done",
        f"stored       {kept}, codec {meta.codec}"
        + (f" (keepbits {meta.keepbits})" if meta.codec == "bitround" else "")
        + f", {format_bytes(sweep.store.bytes_on_disk())} on disk" + _rates(sweep),
        ("convention   theta_ij - theta_ji = lr^2 [u_i,u_j] + O(lr^3); BatchNorm in eval mode"
         + (f"; {measured(sweep)[0]} deltas at epsilon = {sweep.epsilon:g}" if sweep.eval_examples else "")
         if layout.keeps_brackets else
         "convention   theta_ij - theta_ji from two real steps in each order (no expansion); BatchNorm in eval mode"),
        f"task         {task_of_store(sweep).name}: {task_of_store(sweep).help}",
    ]


def task_of_store(sweep: Sweep) -> Any:
    """The registry entry of the store's task (stores from before tasks were a choice: multilabel)."""
    from lie_sweep.task_kinds import TASKS

    name = (sweep.config.get("task") or {}).get("name", "multilabel")
    return TASKS[name] if name in TASKS else TASKS["multilabel"]


def measured(sweep: Sweep) -> tuple[str, str]:
    """(what the evaluation batch measures, what its axis holds): ("logit", "outputs") for a classifier,
    ("log p(next token)", "positions") for a language model."""
    what = task_of_store(sweep).measures
    return what, "positions" if what.startswith("log p") else "outputs"


def _rates(sweep: Sweep) -> str:
    """Compression and throughput as ``status`` and the run's account define them (storage.accounting)."""
    ratio, rate = compression(sweep.store).ratio, throughput(sweep.store).pairs_per_second
    return ((f" (compression ratio {ratio:.2f}x)" if ratio else "") + sketch_note(sweep.store)
            + (f"; {rate:.1f} pairs/s once workers were ready" if rate else ""))


def _top_pairs(pairs: "pd.DataFrame") -> list[str]:
    lines = ["", "most order-sensitive pairs (mean over checkpoints; c: fit constant, log RMS[u_i,u_j] = log c + "
                 "log RMS g)",
             f"{'i':>6} {'j':>6} {'|[u_i,u_j]|':>12} {'c':>10} {'R^2':>7} {'logit RMS':>10}"]
    for row in pairs.itertuples():
        lines.append(f"{row.i:>6} {row.j:>6} {_fmt(row.norm):>12} {_fmt(row.c, '.3g'):>10} {_fmt(row.r2, '.2f'):>7} "
                     f"{_fmt(row.logit_rms, '.2e'):>10}")
    return lines


def _per_checkpoint(sweep: Sweep, fits: "pd.DataFrame") -> list[str]:
    ckpts = sweep.checkpoint_table()
    rank = "effective_rank" in ckpts.columns
    bracket = "norm" in fits.columns
    lines = ["", "per checkpoint",
             f"{'step':>8} {'pairs':>6} {'mean loss':>10}" + (f" {'eff. rank':>9}" if rank else "")
             + (f" {'mean |[u,u]|':>13} {'median c':>9} {'median R^2':>10}" if bracket else f" {'mean |swap|':>13}")]
    info: Mapping[int, Any] = {int(r.step): r for r in ckpts.itertuples()} if not ckpts.empty else {}
    for step, group in fits.groupby("step"):
        r = info.get(int(step))
        lines.append(f"{int(step):>8} {len(group):>6} {_fmt(r.mean_loss if r else None, '.4f'):>10}"
                     + (f" {_fmt(r.effective_rank if r else None, '.2f'):>9}" if rank else "")
                     + (f" {_fmt(group['norm'].mean()):>13} {_fmt(group['c'].median(), '.3g'):>9} "
                        f"{_fmt(group['r2'].median(), '.2f'):>10}" if bracket else
                        f" {_fmt(group['swap_norm'].mean()):>13}"))
    return lines


def _tensors_and_outputs(sweep: Sweep, fits: "pd.DataFrame", top: int) -> list[str]:
    lines: list[str] = []
    last = int(fits["step"].max())
    column, what = ("rms_bracket", "bracket") if "norm" in fits.columns else ("rms_swap", "exact swap")
    ratio = tensor_ratios(sweep, last, column)
    if ratio:
        lines += ["", f"tensors with the largest {what} RMS / gradient RMS at step {last} (median over pairs)"]
        lines += [f"  {name:<40} {_fmt(v, '.3g'):>10}" for name, v in sorted(ratio.items(), key=lambda t: -t[1])[:top]]
    moved = output_movement(sweep)
    if moved:
        what, axis = measured(sweep)
        moves = f"{what} moves" if axis == "positions" else f"{what}s move"
        lines += ["", f"{axis} whose {moves} most under a swap (mean |{what} delta| over pairs and eval examples)"]
        lines += [f"  {name:<24} {_fmt(v, '.3e'):>10}" for name, v in moved[:min(top, 8)]]
    return lines


def tensor_ratios(sweep: Sweep, step: int, column: str) -> dict[str, float]:
    """{tensor: median over the step's pairs of RMS(effect) / RMS(gradients)} (the gradients' RMS: the geometric
    mean of the pair's two), reading only those columns and sorting nothing: a 10⁶-pair step in about a second."""
    import pandas as pd

    frame = sweep.table("pair_rms", step, columns=["tensor", column, "rms_grad_i", "rms_grad_j"])
    if frame.empty:
        return {}
    ratio = frame[column].to_numpy() / np.sqrt(frame["rms_grad_i"].to_numpy() * frame["rms_grad_j"].to_numpy())
    codes, names = pd.factorize(frame["tensor"])
    out = {}
    for k, name in enumerate(names):
        values = ratio[codes == k]
        values = values[np.isfinite(values)]
        out[str(name)] = float(np.median(values)) if len(values) else float("nan")
    return out


def _examples(sweep: Sweep, fits: "pd.DataFrame", top: int) -> list[str]:
    ranking = rank_examples(fits, top=min(top, 8))
    losses = sweep.example_table().groupby("example")["loss"].mean() if len(ranking) else None
    bracket = "norm" in fits.columns
    what = "|swap_ej|" if default_score(fits.columns) == "swap" else "|[u_e,u_j]|"  # what rank_examples ranks by
    lines = ["", f"examples ranked by order sensitivity (mean {what} over partners and checkpoints, ± s.e.; "
                 "sweep.example_ranking())",
             f"{'example':>8} {'mean ' + what:>17} {'± s.e.':>10} {'partners':>8}"
             + (f" {'mean c':>9}" if bracket else "") + f" {'mean loss':>10}"]
    for row in ranking.itertuples():
        loss = _fmt(losses.get(row.example) if losses is not None else None, ".4f")
        lines.append(f"{row.example:>8} {_fmt(row.score):>17} {_fmt(row.se, '.2e'):>10} {row.partners:>8}"
                     + (f" {_fmt(row.mean_c, '.3g'):>9}" if bracket else "") + f" {loss:>10}")
    return lines


def _order_terms(sweep: Sweep, fits: "pd.DataFrame") -> list[str]:
    if "order1_norm" not in fits.columns:  # field=optimizer: the saved optimizer's own expansion
        return []
    eps = sweep.epsilon
    lines = ["", f"the optimizer's order terms at epsilon = {eps:g} (theta_ij - theta_ji = eps D1 + eps^2 D2 + "
                 "O(eps^3); medians over pairs)",
             f"{'step':>8} {'eps |D1|':>11} {'eps^2 |D2|':>11} {'eps^2 |[u,u]|':>14} {'first-order dominant':>21}"]
    for step, group in fits.groupby("step"):
        first = float((group["dominant"] == "first").mean())
        bracket = eps * eps * group["norm"].median() if "norm" in group else None
        lines.append(f"{int(step):>8} {_fmt(eps * group['order1_norm'].median()):>11} "
                     f"{_fmt(eps * eps * group['order2_norm'].median()):>11} "
                     f"{_fmt(bracket):>14} {100 * first:>20.0f}%")
    return lines


def _swaps(sweep: Sweep, fits: "pd.DataFrame", top: int) -> list[str]:
    """Effect swap: the leading order's error against the exact swap per checkpoint, and the pairs the exact
    swap moves most."""
    if "swap_norm" not in fits.columns:
        return []
    eps = sweep.swap_epsilons[0]
    rule = sweep.config.get("field", {}).get("name", "sgd")
    # relative errors of the expansions against the exact swap, where the store has them: medians over pairs
    errors = [(c, label) for c, label in (("lead_rel_err", "lead err"), ("lead_logit_rel_err", "logit err"),
                                          ("order_rel_err", "order err")) if c in fits.columns]
    against = " against the leading order eps^2 [u_i,u_j]: medians over pairs of the relative error" if errors else \
        ": medians over pairs"
    lines = ["", f"exact swaps theta_ij - theta_ji at epsilon = {eps:g} (field={rule} steps){against}",
             f"{'step':>8} {'|swap|':>11}" + "".join(f" {label:>10}" for _, label in errors)]
    for step, group in fits.groupby("step"):
        lines.append(f"{int(step):>8} {_fmt(group['swap_norm'].median()):>11}"
                     + "".join(f" {100 * group[c].median():>9.1f}%" for c, _ in errors))
    best = rank_pairs(fits, top, by="swap", over_checkpoints=True)
    bracket = "norm" in best.columns
    lines += ["", f"top {len(best)} pairs by exact swap |theta_ij - theta_ji| (mean over checkpoints)",
              f"{'i':>6} {'j':>6} {'|swap|':>11}" + (f" {'eps^2 |[u,u]|':>14}" if bracket else "")]
    lines += [f"{int(r.i):>6} {int(r.j):>6} {_fmt(r.swap_norm):>11}" + (f" {_fmt(eps * eps * r.norm):>14}"
                                                                         if bracket else "")
              for r in best.itertuples()]
    return lines


def _registered_effects(sweep: Sweep) -> list[str]:
    """What a registered effect (lie_sweep.effects) shows of itself; a line where its module is not imported."""
    from lie_sweep.effects import EFFECTS

    lines: list[str] = []
    for name in sweep.config.get("effects") or ():
        if name in ("bracket", "swap", "order"):
            continue
        if name not in EFFECTS:
            lines += ["", f"effect {name}: registered by a module not imported here (its arrays: "
                          f"{', '.join(sweep.store.layout.effect_arrays) or 'none'})"]
        elif EFFECTS[name].show is not None:
            lines += ["", *EFFECTS[name].show(sweep)]
    return lines


def format_show(sweep: Sweep, top: int = 10) -> str:
    """The terminal summary of a sweep (what ``lie-sweep show`` prints), from its tables and logit deltas."""
    lines = _header(sweep)
    fits = sweep.fits()  # the pairs table, read once for every ranking below
    if fits.empty:
        return "\n".join(lines + ["", "no completed task yet: nothing to show"])
    if "norm" in fits.columns:  # the bracket's top pairs; a sweep without it shows the exact swap's below
        lines += _top_pairs(rank_pairs(fits, top, by="norm", over_checkpoints=True))
    lines += _per_checkpoint(sweep, fits) + _tensors_and_outputs(sweep, fits, top)
    lines += _examples(sweep, fits, top) + _order_terms(sweep, fits) + _swaps(sweep, fits, top)
    lines += _registered_effects(sweep)
    verified = format_verify_summary(sweep)
    if verified:
        lines += ["", "the leading order against real swaps (lie-sweep verify; relative error of theta_ij - theta_ji)"]
        lines += ["  " + line for line in verified]
    return "\n".join(lines)


def show_store(path: str, top: int = 10, storage_options: Mapping[str, Any] | None = None) -> str:
    """The terminal summary of the store at ``path`` (see :func:`format_show`)."""
    return format_show(open_sweep(path, storage_options=storage_options), top=top)
