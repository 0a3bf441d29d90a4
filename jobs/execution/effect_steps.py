"""A task's effects (:data:`lie_sweep.effects.EFFECTS`): one computation per effect, registered by name, run by
the worker in the registry's order on the task's example rows at the loaded checkpoint.

=========  ============================================================  ==========  =====================
effect     computes (P pairs of the task, D parameters)                  clock lap   fills
=========  ============================================================  ==========  =====================
bracket    [u_i, u_j] (P × D), the batched kernel (:mod:`lie_sweep.kernel`)  kernel_s    ``brackets``
order      Δ₁, Δ₂ of the saved optimizer (P × D each, :mod:`lie_sweep.order`)  order_s     ``order``
swap       θ_ij − θ_ji at each swap ε (K × P × D) and its logit deltas         swap_s      ``swaps``, ``swap_logits``
=========  ============================================================  ==========  =====================

Each result is checked finite as soon as it exists (one error line naming checkpoint, pair and tensor). A new
effect is an :class:`~lie_sweep.effects.Effect` in the registry, an :class:`EffectStep` here, and its arrays in
:mod:`storage.layout`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from lie_sweep import ParamSpec
from storage.layout import Task

from .derive import (order_columns, order_terms, pair_tables, require_finite_outputs, swap_columns,
                     swap_pair_tables, swap_terms)
from .field_cache import ExampleRows

__all__ = ["TaskInputs", "TaskEffects", "EffectStep", "EFFECT_STEPS", "step_of", "task_tables"]


@dataclass
class TaskInputs:
    """A task's example rows at the loaded checkpoint, its pairs as rows ``local`` of them, and the example
    positions (in the sweep's list) those rows are."""

    task: Task
    ex: ExampleRows
    local: np.ndarray
    positions: list[int]


@dataclass
class TaskEffects:
    """What a task's effects computed (None: not among the sweep's effects); ``arrays`` and ``columns``: a
    registered effect's own (lie_sweep.effects): P × D tensors by array name, and pairs-table columns (P values)."""

    brackets: torch.Tensor | None = None                        # P × D
    order: tuple[torch.Tensor, torch.Tensor] | None = None      # (Δ₁, Δ₂), P × D each
    swaps: torch.Tensor | None = None                           # K × P × D
    swap_logits: torch.Tensor | None = None                     # K × P × B × O
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class EffectStep:
    """How a worker computes effect ``name`` for a task: ``compute(worker, inputs, out)`` fills ``out``; the
    time it takes is the phase ``lap``. ``worker`` is the :class:`jobs.execution.worker.BracketWorker` (its
    loaded ``state``, ``spec``, ``full_spec``, ``eval_inputs``, ``brackets`` and ``require_finite``)."""

    name: str
    lap: str
    compute: Callable[[Any, TaskInputs, TaskEffects], None]


def _bracket(worker: Any, inputs: TaskInputs, out: TaskEffects) -> None:
    out.brackets = worker.brackets(inputs.ex, inputs.local, inputs.positions)
    worker.require_finite(inputs.task, out.brackets, "bracket", "[u_{i}, u_{j}]", "the Hessian-vector products")


def _order(worker: Any, inputs: TaskInputs, out: TaskEffects) -> None:
    st = worker.state
    out.order = order_terms(st.fmodel, st.optimizer, st.params, inputs.ex, inputs.local,
                            worker.spec.config.field.follow_steps, worker.full_spec)
    for k, terms in enumerate(out.order, start=1):
        worker.require_finite(inputs.task, terms, f"order-{k} term", f"Δ{k} of ({{i}}, {{j}})", "the derivatives")


def _swap(worker: Any, inputs: TaskInputs, out: TaskEffects) -> None:
    st = worker.state
    out.swaps, out.swap_logits = swap_terms(st.fmodel, st.params, st.field, st.optimizer, inputs.ex, inputs.local,
                                            worker.spec.swap_epsilons, worker.spec.config.field.follow_steps,
                                            worker.eval_inputs)
    for values in out.swaps:  # one step size at a time: rows are the task's pairs
        worker.require_finite(inputs.task, values, "swap", "θ_ij − θ_ji of ({i}, {j})", "steps")
    if out.swap_logits is not None:
        task = inputs.task
        require_finite_outputs(out.swap_logits, worker.spec.checkpoints[task.checkpoint],
                               lambda row: worker.spec.pairs[task.start + row], worker.spec.swap_epsilons)


EFFECT_STEPS: dict[str, EffectStep] = {step.name: step for step in (
    EffectStep("bracket", "kernel_s", _bracket),
    EffectStep("order", "order_s", _order),
    EffectStep("swap", "swap_s", _swap),
)}


def step_of(effect: Any) -> EffectStep:
    """How the worker computes ``effect`` (a :class:`lie_sweep.effects.Effect`): a built-in's step above, or the
    registered effect's own ``compute``, whose results are checked finite like the built-ins'."""
    if effect.name in EFFECT_STEPS:
        return EFFECT_STEPS[effect.name]

    def compute(worker: Any, inputs: TaskInputs, out: TaskEffects) -> None:
        effect.compute(worker, inputs, out)
        for name in effect.arrays:
            if name not in out.arrays:
                raise RuntimeError(f"effect {effect.name} computed no array {name!r}")
            worker.require_finite(inputs.task, out.arrays[name], f"effect {effect.name}", f"{name} of ({{i}}, {{j}})",
                                  "the effect's computation")
    return EffectStep(effect.name, effect.lap, compute)


def task_tables(step: int, ids: np.ndarray, pairs: np.ndarray, inputs: TaskInputs, out: TaskEffects,
                logits: torch.Tensor | None, lead_logits: torch.Tensor | None, spec: ParamSpec, epsilon: float,
                swap_epsilons: tuple[float, ...]) -> dict[str, dict]:
    """A task's ``pairs`` and ``pair_rms`` rows (pair ids ``ids``, dataset-index ``pairs``) from what its
    effects computed: the bracket's columns (or, without it, the pair keys and the swap's per-tensor RMS), then
    the optimizer expansion's and the swap's (:mod:`jobs.execution.derive`). ``logits``: the stored logit
    deltas (bracket or expansion); ``lead_logits``: ε²J_f[u_i, u_j] at ``epsilon``, to measure the swap's."""
    if out.brackets is not None:
        tables = pair_tables(step, ids, pairs, inputs.local, inputs.ex, out.brackets, logits, spec)
    else:
        tables = swap_pair_tables(step, ids, pairs, inputs.local, inputs.ex, out.swaps[0], spec)
    if out.order is not None:
        tables["pairs"].update(order_columns(out.order, epsilon))
    if out.swaps is not None:
        tables["pairs"].update(swap_columns(out.swaps, out.brackets, swap_epsilons, out.swap_logits, lead_logits,
                                            epsilon, out.order))
    tables["pairs"].update({k: np.asarray(v) for k, v in out.columns.items()})  # a registered effect's columns
    return tables
