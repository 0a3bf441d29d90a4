"""Exact order effects: θ_ij − θ_ji, two real training steps in each order, batched per tile.

For examples i, j at parameters θ (optimizer state s), a step rule moves θ to θ + δ with
(δ, s') = rule.increment(θ, s, g), g the loss gradient of the step's example at the point it steps from:

    δ_i  = δ(θ, s, g_i(θ)),                  s_i its state after,
    r_ij = δ(θ + δ_i, s_i, g_j(θ + δ_i))     (+ K zero-gradient steps: ``follow_steps``),
    θ_ij = θ + δ_i + r_ij,    Δ_ij = θ_ij − θ_ji = (r_ij − δ_j) + (δ_i − r_ji).

No expansion and no finite difference in ε: Δ is the swap itself, to rounding. The rules:

* :class:`FieldRule` — a step along an update field, δ = ε u(g) (``sgd``: u = −g; ``adam``: u = −P g with
  Adam's frozen P). The grouping above makes each half a gradient difference at one example,
  Δ_ij = ε u([g_j(θ + δ_i) − g_j(θ)] − [g_i(θ + δ_j) − g_i(θ)]) = ε²[u_i, u_j] + O(ε³);
* :class:`OptimizerRule` — the checkpoint's own saved optimizer, stepped as torch.optim steps it
  (:mod:`lie_sweep.optim`: SGD with momentum/dampening/Nesterov/weight decay, Adam/AdamW with amsgrad and
  bias correction, Muon with its bfloat16 Newton–Schulz), its state carried from the first step to the
  second. Δ has a first-order part here wherever the state has memory.

Batching: θ + δ_a depends on a alone, so every partner b of a takes its gradient at θ + δ_a in one vmapped
call with shared weights (as ordinary training does), and the shifted points of a tile go together, one call
nested over their weights (:func:`shift_groups`): a pair costs two per-example gradients, against two
Hessian-vector products (1–2 gradients each) for its bracket. With an evaluation batch the exact logit
deltas f(θ_ij) − f(θ_ji) come from two forward passes per pair. BatchNorm runs on its running statistics.

Error: Δ is accumulated from increments, never as the difference of two parameter vectors of size O(‖θ‖).
The rounding left is that of a gradient at a moved point, about u‖g‖ (u: unit round-off, 6e-8 in float32),
against a half of size ε‖H u‖: a relative error near u‖g‖ / (ε‖H u‖), ~1e-4 at ε = 1e-3 in float32 for a
model whose ‖H u‖ is of the order of ‖g‖. Use float64 for ε below ~1e-4 (``verify`` measures it). Exact
logit deltas are differences of two outputs of size ‖f‖, so their relative error is u‖f‖ / ‖Δf‖.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

import torch
from torch.func import vmap

from .allocator import kernel_allocator
from .fields import FunctionalModel, Params, UpdateField, eval_mode, like_params
from .kernel import as_pair_tensor, example_gradients
from .optim import OptimizerStep, State
from .params import ParamSpec
from .tasks import EvalBatch, eval_batch

__all__ = ["StepRule", "FieldRule", "OptimizerRule", "SwapResult", "swap_kernel"]


class StepRule(Protocol):
    """One training step as an increment: θ → θ + δ with (δ, state') = ``increment(θ, state, g)``."""

    epsilon: float

    def increment(self, params: Mapping[str, torch.Tensor], state: State,
                  grads: Mapping[str, torch.Tensor]) -> tuple[Params, State]:
        """(δ, the state after the step) for a step on gradient ``grads`` at ``params``."""


@dataclass(frozen=True)
class FieldRule:
    """A step of size ``epsilon`` along an update field: δ = ε·field.direction(θ, g); no state. The fields here
    (``sgd``, ``adam``'s frozen P) act elementwise on g, so one call steps a whole batch of gradients."""

    field: UpdateField
    epsilon: float

    def increment(self, params: Mapping[str, torch.Tensor], state: State,
                  grads: Mapping[str, torch.Tensor]) -> tuple[Params, State]:
        """(ε u(g), ``state`` unchanged); ``grads`` may carry a leading batch dimension."""
        return {n: self.epsilon * d for n, d in self.field.direction(params, grads).items()}, state


@dataclass(frozen=True)
class OptimizerRule:
    """A step of a saved optimizer at learning rate ``epsilon`` (every group's rate scaled by ε over the
    first group's saved rate, as :meth:`OptimizerStep.step` does)."""

    step: OptimizerStep
    epsilon: float

    def increment(self, params: Mapping[str, torch.Tensor], state: State,
                  grads: Mapping[str, torch.Tensor]) -> tuple[Params, State]:
        """:meth:`OptimizerStep.increment` at ``epsilon``."""
        return self.step.increment(params, state, grads, lr=self.epsilon)


@dataclass
class SwapResult:
    """Swaps of ``pairs`` at one θ: ``deltas[p] = θ_ij − θ_ji`` (pairs × D, flat axis of the parameters) and,
    with an evaluation batch, ``logit_deltas[p] = f(θ_ij) − f(θ_ji)`` (pairs × n_eval × outputs)."""

    deltas: torch.Tensor
    logit_deltas: torch.Tensor | None


def _add(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> Params:
    return {n: a[n] + b[n] for n in a}


def _rest(rule: StepRule, moved: Params, state: State, grads: Params, follow_steps: int) -> Params:
    """r: the second step's increment from ``moved`` (+ ``follow_steps`` zero-gradient steps)."""
    total, state = rule.increment(moved, state, grads)
    for _ in range(follow_steps):
        zero = {n: torch.zeros_like(t) for n, t in total.items()}
        inc, state = rule.increment(_add(moved, total), state, zero)
        total = _add(total, inc)
    return total


def swap_kernel(fmodel: FunctionalModel, params: Params, inputs: torch.Tensor, targets: torch.Tensor,
                pairs: torch.Tensor, rule: StepRule, *, state: State | None = None,
                gradients: torch.Tensor | None = None, follow_steps: int = 0,
                eval_inputs: EvalBatch | torch.Tensor | None = None, chunk_size: int = 64) -> SwapResult:
    """Δ_ij = θ_ij − θ_ji for every pair ``(i, j)`` of ``pairs`` (indices into the batch), two steps of
    ``rule`` in each order from ``params`` with optimizer ``state`` (see the module docstring).

    ``gradients``: the batch's loss gradients at θ (n × D), when already computed; ``eval_inputs``: a batch
    (an :class:`~lie_sweep.tasks.EvalBatch`, or its inputs alone) on which to take f(θ_ij) − f(θ_ji), f the
    task's measurement; ``chunk_size``: pairs' worth of work per vmapped call (at most
    2·chunk_size gradients at shifted weights, as the bracket kernel's HVPs); it bounds memory.
    """
    kernel_allocator()  # once per process; documented in lie_sweep.allocator (opt out: LIE_SWEEP_MALLOC=system)
    pairs = as_pair_tensor(pairs, inputs.shape[0])
    spec = ParamSpec.from_tensors(params)
    state = {} if state is None else state
    inputs, targets = like_params(inputs, params), like_params(targets, params)
    with eval_mode(fmodel.module), torch.no_grad():
        if gradients is None:
            gradients, _ = example_gradients(fmodel, params, inputs, targets, chunk_size)
        partners: dict[int, list[tuple[int, int, float]]] = {}
        for p, (i, j) in enumerate(pairs.tolist()):
            partners.setdefault(i, []).append((p, j, 1.0))
            partners.setdefault(j, []).append((p, i, -1.0))
        flat = _flat_increments(rule, spec)  # a field scaling g elementwise: increments on the flat axis
        if flat is not None:
            first_flat = flat(gradients)      # δ_a for every example of the batch, n × D
            first = {a: (spec.unflatten(first_flat[a]), state) for a in partners}
        else:
            first = {a: rule.increment(params, state, spec.unflatten(gradients[a])) for a in partners}
            first_flat = torch.stack([spec.flatten(first[a][0]) if a in first else gradients[a].new_zeros(spec.size)
                                      for a in range(gradients.shape[0])])
        deltas = gradients.new_zeros((pairs.shape[0], spec.size))
        logits = None
        base = spec.flatten(params)
        batch = None if eval_inputs is None else eval_batch(eval_inputs).to(gradients.device, gradients.dtype)
        for group, union in shift_groups(partners, 2 * chunk_size):
            grid = _gradient_grid(fmodel, spec, base, first_flat, group, union, inputs, targets, 2 * chunk_size)
            column = {b: c for c, b in enumerate(union)}
            for k, a in enumerate(group):
                items = partners[a]
                rows = torch.tensor([p for p, _, _ in items])
                others = [b for _, b, _ in items]
                signs = gradients.new_tensor([sign for _, _, sign in items])
                moved_grads = grid[k, [column[b] for b in others]]
                moved = base + first_flat[a]
                rests = flat(moved_grads) if flat is not None else _rests(rule, spec.unflatten(moved), first[a][1],
                                                                          moved_grads, follow_steps, spec)
                # a = i adds r_ij − δ_j, a = j adds −(r_ji − δ_i): the grouping of the module docstring (each row
                # of ``deltas`` appears once per a, so the indexed add is exact and order-free)
                deltas.index_add_(0, rows, (rests - first_flat[others]).mul_(signs[:, None]))
                if batch is not None:
                    ends = _outputs(fmodel, spec, moved, rests, batch)
                    if logits is None:
                        logits = ends.new_zeros((pairs.shape[0], *ends.shape[1:]))
                    logits.index_add_(0, rows, ends.mul_(signs.reshape(-1, *[1] * (ends.ndim - 1)).to(ends)))
    return SwapResult(deltas, logits)


def shift_groups(partners: Mapping[int, list[tuple[int, int, float]]], limit: int,
                 min_use: float = 0.6) -> list[tuple[list[int], list[int]]]:
    """Shifted points ``a`` (keys of ``partners``, in increasing order) grouped with the union of their
    partners, for one nested-vmap gradient call per group: a point joins the group while
    ``len(group) · len(union) ≤ limit`` and at least ``min_use`` of that grid's gradients are ones some pair
    needs. A tile's triangle groups whole (its diagonal the only waste), a rectangle's rows and columns group
    apart, scattered pairs stay one point a call."""
    groups: list[tuple[list[int], list[int]]] = []
    group: list[int] = []
    union: list[int] = []
    needed = 0
    for a in sorted(partners):
        others = [b for _, b, _ in partners[a]]
        seen = set(union)
        grown = union + [b for b in dict.fromkeys(others) if b not in seen]
        if group and ((len(group) + 1) * len(grown) > limit or needed + len(others) < min_use * (len(group) + 1)
                      * len(grown)):
            groups.append((group, union))
            group, union, needed = [], [], 0
            grown = list(dict.fromkeys(others))
        group, union, needed = group + [a], grown, needed + len(others)
    if group:
        groups.append((group, union))
    return groups


def _gradient_grid(fmodel: FunctionalModel, spec: ParamSpec, base: torch.Tensor, first_flat: torch.Tensor,
                   group: list[int], union: list[int], inputs: torch.Tensor, targets: torch.Tensor,
                   chunk_size: int) -> torch.Tensor:
    """∇L_b(θ + δ_a) for a in ``group`` × b in ``union`` (len(group) × len(union) × D): one point's partners
    in vmapped chunks with shared weights; several points in one call nested over their weights (2× faster on
    the demo convnet's 16-example tile, even on the narrow ResNet; equal to one point at a time up to the
    round-off of batched convolutions)."""
    cols = torch.tensor(union)
    if len(group) == 1:
        moved = spec.unflatten(base + first_flat[group[0]])
        return example_gradients(fmodel, moved, inputs[cols], targets[cols], chunk_size)[0].unsqueeze(0)
    nested = vmap(vmap(fmodel.example_grad_and_loss, in_dims=(None, 0, 0)), in_dims=(0, None, None))
    moved = spec.unflatten(base + first_flat[group])
    return spec.flatten(nested(moved, inputs[cols], targets[cols])[0], batch_dims=2)


def _flat_increments(rule: StepRule, spec: ParamSpec) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For a field rule whose field scales the gradient elementwise (``flat_factor``), g ↦ ε·u(g) on rows of
    flat gradients in one or two passes, the same bits as ε·direction(g) by name; None for any other rule."""
    factor = rule.field.flat_factor(spec) if isinstance(rule, FieldRule) else None
    if factor is None:
        return None
    if isinstance(factor, float):  # ε·(f g) = (ε f) g exactly for f = ±1
        return lambda g: g.mul(factor * rule.epsilon)
    return lambda g: g.mul(factor).mul_(rule.epsilon)


def _rests(rule: StepRule, moved: Params, state: State, grads: torch.Tensor, follow_steps: int,
           spec: ParamSpec) -> torch.Tensor:
    """r_ab for every partner b (rows of ``grads``, their gradients at θ + δ_a), flat (partners × D), in one
    call: a field rule acts elementwise on a batch of gradients; a stateful rule's steps (and drain steps) are
    vmapped over the partners, the state θ + δ_a and s_a shared (elementwise kinds give the loop's bits; Muon's
    batched matrix products may differ from one partner at a time in the last bits)."""
    if isinstance(rule, FieldRule):
        return spec.flatten(rule.increment(moved, state, spec.unflatten(grads))[0], batch_dims=1)
    return vmap(lambda g: spec.flatten(_rest(rule, moved, state, spec.unflatten(g), follow_steps)))(grads)


def _outputs(fmodel: FunctionalModel, spec: ParamSpec, moved: torch.Tensor, rests: torch.Tensor,
             batch: EvalBatch) -> torch.Tensor:
    """f(θ + δ_a + r_ab) on the evaluation batch for every partner b (partners × B × O), f the task's
    measurement, one forward pass each (a vmap over the partners' weights measured slower on a convnet:
    per-sample weights defeat batched kernels)."""
    return torch.stack([fmodel.measure(spec.unflatten(moved + rest), batch.inputs, batch.targets) for rest in rests])
