"""``lie-sweep verify`` of a store's exact swaps (effect swap): each sampled pair's stored θ_ij − θ_ji, at every
swap step size, against a reference taken independently in float64 from the checkpoint:

* ``field=optimizer``: ``torch.optim`` itself, the optimizers rebuilt from the checkpoint's saved state
  (:func:`lie_sweep.torch_swap.torch_optim_ends`);
* the field rules (``sgd``, ``adam``'s frozen P): two steps along the field, one example at a time
  (:func:`lie_sweep.verify.real_swap`; for ``sgd`` exactly ``torch.optim.SGD(lr=ε)``).

Per pair and step size: ``swap_rel_err`` = ‖Δ_stored − Δ_ref‖ / ‖Δ_ref‖ over the tensors the store keeps (NaN
for ``storage.keep=summary``), ``norm_rel_err`` = |swap_norm − ‖Δ_ref‖| / ‖Δ_ref‖ from the pairs table (the
first step size only; NaN for the others), and ``logit_rel_err`` for the exact logit deltas. A store in float32
matches to its rounding (about u‖g‖ / (ε‖Hu‖), see :mod:`lie_sweep.swap`); a float64 store to ~1e-10, or to
the reference's own round-off where that is larger: the reference subtracts two parameter vectors, an
absolute error of about u·max|θ| (≈1e-16 in float64), which dominates for swaps of norm below ~1e-7.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lie_sweep.fields import eval_mode
from lie_sweep.torch_swap import torch_optim_ends
from lie_sweep.verify import real_swap
from storage.reader import Sweep

__all__ = ["SWAP_COLUMNS", "swap_check_rows"]

SWAP_COLUMNS = ("step", "pair", "i", "j", "epsilon", "swap_rel_err", "norm_rel_err", "logit_rel_err", "norm_ref",
                "reference")


def _reference(loaded: Any, follow_steps: int, ex_i: Any, ex_j: Any, eps: float) -> tuple[dict, dict, str]:
    """(θ_ij, θ_ji) by name, float64, and what took them."""
    fm, params = loaded.fmodel, loaded.params
    if loaded.optimizer is None:
        a, b = real_swap(fm, loaded.field, params, ex_i, ex_j, eps)
        return a, b, "field steps"
    ends = torch_optim_ends(fm.module, loaded.checkpoint.optimizer_state, ex_i, ex_j, eps,
                            follow_steps=follow_steps, loss_fn=fm.loss_fn, batched_items=fm.batched_items)
    shapes = [(n, params[n].shape, params[n].numel()) for n in fm.param_names]
    named = []
    for flat in ends:
        parts = torch.split(flat, [k for _, _, k in shapes])
        named.append({n: t.reshape(shape) for (n, shape, _), t in zip(shapes, parts)})
    return named[0], named[1], "torch.optim"


def _relative(error: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(error) / np.linalg.norm(ref))


def swap_check_rows(sweep: Sweep, loaded: Any, follow_steps: int, step: int, row: Any, ex_i: Any, ex_j: Any,
                    eval_inputs: Any) -> list[dict[str, Any]]:
    """One row per swap step size for the pair of pairs-table row ``row`` at checkpoint ``step`` (see the module
    docstring); ``loaded``: the checkpoint applied to the float64 model (:func:`jobs.planning.loader.load_into`)."""
    layout, kept = sweep.store.layout, sweep.stored_names
    i, j = int(row.i), int(row.j)
    logits = sweep.swap_logit_deltas() if layout.keeps_logits else None
    out = []
    for k, eps in enumerate(sweep.swap_epsilons):
        a, b, reference = _reference(loaded, follow_steps, ex_i, ex_j, eps)
        ref = {n: (a[n] - b[n]).detach().numpy() for n in a}
        ref_all = np.concatenate([v.reshape(-1) for v in ref.values()])
        values = {"step": step, "pair": int(row.pair), "i": i, "j": j, "epsilon": float(eps),
                  "swap_rel_err": np.nan, "norm_rel_err": np.nan, "logit_rel_err": np.nan,
                  "norm_ref": float(np.linalg.norm(ref_all)), "reference": reference}
        if layout.keeps_params:
            stored = sweep.swap(step, i, j, epsilon=eps)
            values["swap_rel_err"] = _relative(
                np.concatenate([(stored[n].astype(np.float64) - ref[n]).reshape(-1) for n in kept]),
                np.concatenate([ref[n].reshape(-1) for n in kept]))
        if k == 0:
            values["norm_rel_err"] = abs(float(row.swap_norm) - values["norm_ref"]) / values["norm_ref"]
        if logits is not None and eval_inputs is not None:
            with eval_mode(loaded.fmodel.module), torch.no_grad():
                fm = loaded.fmodel
                real = (fm.measure(a, eval_inputs.inputs, eval_inputs.targets)
                        - fm.measure(b, eval_inputs.inputs, eval_inputs.targets)).numpy()
            stored_f = np.asarray(logits.sel(epsilon=eps).sel(step=step, i=i, j=j).values, dtype=np.float64)
            values["logit_rel_err"] = _relative(stored_f - real, real)
        out.append(values)
    return out
