"""What a worker derives from a task's brackets while they are in memory: table rows (norms, the slope-1
fits, per-tensor RMS, gradient dot products; :mod:`lie_sweep.analysis`), the optimizer's order terms, the
exact swaps and how far the leading order is from them, and the checks that name where a value first became
NaN/Inf. Torch and numpy; no Ray, no store.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from lie_sweep import ParamSpec, compute_example_fields, stack_examples
from lie_sweep.analysis import gram_matrix, norms_from_rms, pair_fits, tensor_rms
from lie_sweep.errors import NonFiniteError
from lie_sweep.fields import on_device
from lie_sweep.kernel import ExampleFields
from lie_sweep.order import order_terms_of_pairs
from lie_sweep.swap import FieldRule, OptimizerRule, swap_kernel

from . import rows
from .field_cache import ExampleRows

__all__ = ["first_nonfinite", "pair_dots", "nonfinite_example_values", "require_finite", "require_finite_outputs",
           "pair_tables",
           "swap_pair_tables", "order_terms", "order_columns", "example_rows", "swap_terms", "swap_columns"]


def first_nonfinite(flat: torch.Tensor, spec: ParamSpec) -> tuple[int, str] | None:
    """(row, tensor name) of the first NaN/Inf in ``flat`` (rows × D on ``spec``'s axis), or None."""
    bad = ~torch.isfinite(flat)
    bad_rows = bad.any(dim=1).nonzero()
    if not bad_rows.numel():
        return None
    row = int(bad_rows[0, 0])
    col = int(bad[row].nonzero()[0, 0])
    return row, next(e.name for e in spec.entries if e.offset <= col < e.stop)


def pair_dots(rows_: torch.Tensor, li: torch.Tensor, lj: torch.Tensor) -> np.ndarray:
    """g_i · g_j in float64 for each pair (li[p], lj[p]) of ``rows_`` (n × D), read off the rows' Gram matrix
    (a product per pair would convert each row to float64 once per partner)."""
    return gram_matrix(rows_)[li.to(rows_.device), lj.to(rows_.device)].cpu().numpy()


def nonfinite_example_values(fields: ExampleFields, examples: Sequence[int], spec: ParamSpec) -> str | None:
    """Where some examples' (dataset indices ``examples``, one per row) losses, gradients or fields first hold
    NaN/Inf, or None."""
    bad_losses = (~torch.isfinite(fields.losses)).nonzero()
    if bad_losses.numel():
        return f"a NaN/Inf loss for example {examples[int(bad_losses[0, 0])]}"
    for what, values in (("gradient", fields.gradients), ("update field", fields.fields)):
        bad = first_nonfinite(values, spec)
        if bad is not None:
            return f"NaN/Inf in the {what} of example {examples[bad[0]]}, tensor {bad[1]}"
    return None


def require_finite(values: torch.Tensor, spec: ParamSpec, prov: dict[str, Any], pair: tuple[int, int] | None,
                   what: str, term: str, source: str) -> None:
    """One :class:`NonFiniteError` line naming the checkpoint ``prov``, the pair (``term`` formatted with the
    dataset indices i, j of the row's pair; ``pair(row)``) and the tensor where per-pair ``values`` first
    hold NaN/Inf."""
    bad = first_nonfinite(values, spec)
    if bad is None:
        return
    i, j = pair(bad[0])
    raise NonFiniteError(f"non-finite {what} at step {prov['step']} ({os.path.basename(prov['path'])})",
                         expected=f"finite {what}s from finite gradients",
                         found=f"NaN/Inf in {term.format(i=i, j=j)} for tensor {bad[1]}",
                         fix=f"{source} overflow at these weights: try precision=float64")


def require_finite_outputs(values: torch.Tensor, prov: dict[str, Any], pair: Any, epsilons: Sequence[float]) -> None:
    """One :class:`NonFiniteError` line where exact logit deltas (K × P × B × O) first hold NaN/Inf: the model's
    outputs overflowed at the swapped weights (``pair(row)``: the dataset indices of a row's pair)."""
    bad = (~torch.isfinite(values)).flatten(2).any(dim=2).nonzero()
    if not bad.numel():
        return
    k, row = (int(v) for v in bad[0])
    i, j = pair(row)
    raise NonFiniteError(f"non-finite exact logit deltas at step {prov['step']} ({os.path.basename(prov['path'])})",
                         expected="finite outputs f(θ_ij), f(θ_ji) on the evaluation batch",
                         found=f"NaN/Inf in f(θ_ij) − f(θ_ji) of ({i}, {j}) at ε = {epsilons[k]:g}",
                         fix="the model overflows at the swapped weights: lower swap_epsilon, or try precision=float64")


def pair_tables(step: int, ids: np.ndarray, pairs: np.ndarray, local: np.ndarray, ex: ExampleRows,
                brackets: torch.Tensor, logits: torch.Tensor | None, spec: ParamSpec) -> dict[str, dict]:
    """A task's ``pairs`` and ``pair_rms`` rows (pair ids ``ids``, dataset-index pairs ``pairs``, pairs as rows
    ``local`` of the task's examples ``ex``)."""
    li, lj = torch.from_numpy(local[:, 0]), torch.from_numpy(local[:, 1])
    grad_rms = ex.grad_rms.cpu()
    rms_b = tensor_rms(brackets, spec).cpu()
    rms_gi, rms_gj = grad_rms[li], grad_rms[lj]
    fits = pair_fits(rms_b, rms_gi, rms_gj)
    norms = norms_from_rms(rms_b, spec)
    logit_rms = None if logits is None else logits.double().pow(2).mean(dim=(1, 2)).sqrt().numpy()
    return {
        "pairs": rows.pair_rows(step, ids, pairs, norms.numpy(), (norms / spec.size ** 0.5).numpy(),
                                fits.log_c.numpy(), fits.r2.numpy(), fits.n_tensors.numpy(), logit_rms,
                                pair_dots(ex.gradients, li, lj)),
        "pair_rms": rows.pair_rms_rows(step, ids, pairs, spec.names, rms_b.numpy(), rms_gi.numpy(), rms_gj.numpy()),
    }


def swap_pair_tables(step: int, ids: np.ndarray, pairs: np.ndarray, local: np.ndarray, ex: ExampleRows,
                     swaps: torch.Tensor, spec: ParamSpec) -> dict[str, dict]:
    """A task's ``pairs`` and ``pair_rms`` rows in a sweep without the bracket (``effects=[swap]``): the pair
    keys and g_i · g_j (:func:`swap_columns` adds the swap's), and per tensor the RMS of θ_ij − θ_ji at the
    first step size (``swaps``: P × D) beside both examples' gradient RMS."""
    li, lj = torch.from_numpy(local[:, 0]), torch.from_numpy(local[:, 1])
    grad_rms = ex.grad_rms.cpu()
    return {"pairs": rows.pair_key_rows(step, ids, pairs, pair_dots(ex.gradients, li, lj)),
            "pair_rms": rows.pair_rms_rows(step, ids, pairs, spec.names, tensor_rms(swaps, spec).cpu().numpy(),
                                           grad_rms[li].numpy(), grad_rms[lj].numpy(), "rms_swap")}


def order_terms(fmodel: Any, optimizer: tuple[Any, Any], params: dict[str, torch.Tensor], ex: ExampleRows,
                local: np.ndarray, follow_steps: int, spec: ParamSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(Δ₁, Δ₂) of the optimizer ``(step, state)`` for each pair (rows ``local`` of ``ex``), (P × D) each, on
    ``spec``'s flat axis (:func:`lie_sweep.order.order_terms_of_pairs`)."""
    step, state = optimizer
    return order_terms_of_pairs(fmodel, step, params, state, ex.inputs, ex.targets, local.tolist(), follow_steps)


def order_columns(order: tuple[torch.Tensor, torch.Tensor], epsilon: float) -> dict[str, np.ndarray]:
    """The ``pairs`` table's order columns: ‖Δ₁‖, ‖Δ₂‖ and which of εΔ₁, ε²Δ₂ dominates."""
    n1, n2 = (o.double().norm(dim=1).cpu().numpy() for o in order)
    return {"order1_norm": n1, "order2_norm": n2,
            "dominant": np.where(epsilon * n1 >= epsilon * epsilon * n2, "first", "second")}


def example_rows(state: Any, data: Any, examples: list[int], positions: list[int], device: torch.device,
                 dtype: torch.dtype, spec: ParamSpec, prov: dict[str, Any]) -> ExampleRows:
    """Inputs, targets, losses, gradients, fields and gradient RMS of dataset ``examples`` (at ``positions``)
    at the loaded checkpoint ``state`` (provenance ``prov``); NaN/Inf anywhere is one error naming the example."""
    inputs, targets = stack_examples(data, examples, state.fmodel.task)
    inputs, targets = on_device(inputs, device, dtype), on_device(targets, device, dtype)
    # one example per call: batched, a row's last bits depend on the batch it was computed in, and which
    # examples a worker's cache misses together depends on its task history; so a resumed or
    # differently scheduled sweep would not reproduce a store bit for bit
    fields = compute_example_fields(state.fmodel, state.params, inputs, targets, field=state.field, chunk_size=1)
    found = nonfinite_example_values(fields, examples, spec)
    if found is not None:
        raise NonFiniteError(f"non-finite results at step {prov['step']} ({os.path.basename(prov['path'])})",
                             expected="finite losses and gradients from a finite checkpoint", found=found,
                             fix="the model overflows at these weights (try precision=float64), or this "
                                 "example's input or target is not finite")
    return ExampleRows(positions, inputs, targets, fields.losses, fields.gradients, fields.fields,
                       tensor_rms(fields.gradients, spec))


def swap_terms(fmodel: Any, params: dict[str, torch.Tensor], field: Any, optimizer: tuple[Any, Any] | None,
               ex: ExampleRows, local: np.ndarray, epsilons: Sequence[float], follow_steps: int,
               eval_inputs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Exact swaps of each pair (rows ``local`` of ``ex``) at each step size: θ_ij − θ_ji (K × P × D) and
    f(θ_ij) − f(θ_ji) on ``eval_inputs`` (K × P × B × O; None without them), by :func:`lie_sweep.swap.swap_kernel`
    with the checkpoint's own ``optimizer`` (step, state) where it is stepped, else steps along ``field``."""
    results = []
    for eps in epsilons:
        rule = FieldRule(field, eps) if optimizer is None else OptimizerRule(optimizer[0], eps)
        results.append(swap_kernel(fmodel, params, ex.inputs, ex.targets, torch.from_numpy(local), rule,
                                   state=None if optimizer is None else optimizer[1], gradients=ex.gradients,
                                   follow_steps=0 if optimizer is None else follow_steps, eval_inputs=eval_inputs))
    logits = None if eval_inputs is None else torch.stack([r.logit_deltas for r in results])
    return torch.stack([r.deltas for r in results]), logits


def _relative(error: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    """‖error_p‖ / ‖ref_p‖ per row (rows flattened; float64)."""
    e, r = (t.double().reshape(t.shape[0], -1).norm(dim=1) for t in (error, ref))
    return (e / r).cpu().numpy()


def swap_columns(swaps: torch.Tensor, brackets: torch.Tensor | None, epsilons: Sequence[float],
                 swap_logits: torch.Tensor | None, lead_logits: torch.Tensor | None, lead_epsilon: float,
                 order: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, np.ndarray]:
    """The ``pairs`` table's swap columns, at the first step size ε = ``epsilons[0]`` (P rows; ``swaps``
    K × P × D): ``swap_norm`` ‖Δ‖; with ``brackets``, ``lead_rel_err`` ‖Δ − ε²[u_i,u_j]‖/‖Δ‖; with logits,
    ``swap_logit_rms`` and (with ``lead_logits``: ε_d²J_f b at ε_d = ``lead_epsilon``, rescaled)
    ``lead_logit_rel_err`` ‖δf − ε²J_f b‖/‖δf‖;
    with the optimizer expansion, ``order_rel_err`` ‖Δ − εΔ₁ − ε²Δ₂‖/‖Δ‖ and ``first_order_share`` ‖εΔ₁‖/‖Δ‖."""
    epsilon = float(epsilons[0])
    swap64 = swaps[0].double()
    out = {"swap_norm": swap64.norm(dim=1).cpu().numpy()}
    if brackets is not None:
        out["lead_rel_err"] = _relative(swap64 - epsilon ** 2 * brackets.double(), swap64)
    if swap_logits is not None:
        first = swap_logits[0].double().cpu()
        out["swap_logit_rms"] = first.pow(2).mean(dim=(1, 2)).sqrt().numpy()
        if lead_logits is not None:
            lead = lead_logits.double().cpu() * (epsilon / lead_epsilon) ** 2
            out["lead_logit_rel_err"] = _relative(first - lead, first)
    if order is not None:
        d1 = epsilon * order[0].double()
        out["order_rel_err"] = _relative(swap64 - d1 - epsilon ** 2 * order[1].double(), swap64)
        out["first_order_share"] = _relative(d1, swap64)
    return out
