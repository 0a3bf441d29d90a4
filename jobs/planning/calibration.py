"""``lie-sweep plan``'s calibration: each of a sweep's effects timed on a few real pairs at the first checkpoint
(or the initial weights), as a worker computes them, on the configured device. Nothing is written."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from lie_sweep import FunctionalModel, SGDField, bracket_kernel, compute_example_fields, stack_examples
from lie_sweep.analysis import jacobian_fits, logit_deltas, output_jacobian
from lie_sweep.field_kinds import FIELDS
from lie_sweep.hvp_calibration import fastest_agreeing, time_hvp_modes
from lie_sweep.order import order_terms_of_pairs
from lie_sweep.swap import FieldRule, OptimizerRule, swap_kernel

from .build import epsilon_of
from .checks import swap_epsilons
from .loader import load_into
from .sizing import sweep_effects

__all__ = ["Setup", "calibration_setup", "calibrate"]


@dataclass(frozen=True)
class Setup:
    """The model the calibration runs at, its field, and where that is (for the account)."""

    fmodel: FunctionalModel
    params: dict[str, torch.Tensor]
    field: Any
    where: str
    optimizer: Any = None  # the checkpoint's saved optimizer (step, state), where field=optimizer loads one


def calibration_setup(cfg: DictConfig, grid: Any, first: Any, device: torch.device, dtype: torch.dtype) -> Setup:
    """The first checkpoint through the sweep's loader, or the initial weights when ``run`` would train (with
    the SGD field: no optimizer state exists yet)."""
    model = grid.model.to(device=device, dtype=dtype)
    if first is not None:
        loaded = load_into(model, first, cfg.field, batched_items=grid.batches is not None, task=grid.task)
        return Setup(loaded.fmodel, loaded.params, loaded.field, f"checkpoint step {loaded.checkpoint.step}",
                      loaded.optimizer)
    fmodel = FunctionalModel(model, batched_items=grid.batches is not None, task=grid.task)
    where = "initial weights (run trains the checkpoints" + (
        "; no optimizer state yet, so calibrated with the SGD field, which costs about the same)"
        if FIELDS[cfg.field.name].needs_state else ")")
    return Setup(fmodel, fmodel.params(), SGDField(), where)


def _time(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


def calibrate(cfg: DictConfig, grid: Any, setup: Setup, chunk: int, calibration_pairs: int,
               device: torch.device) -> tuple[dict[str, Any], list[dict[str, Any]], str, torch.Tensor]:
    """Seconds per example and, for each of the sweep's effects, per pair (and per logit pair, per checkpoint
    for the output Jacobian); the HVP modes' timings and the mode ``auto`` would take (effect bracket); and the
    calibration pairs' stored values (brackets, else the first step size's swaps) on the CPU."""
    effects = sweep_effects(cfg)
    first_pairs = grid.pairs[:max(1, min(calibration_pairs, len(grid.pairs)))]
    cal_examples = sorted({k for p in first_pairs for k in p})
    inputs, targets = stack_examples(grid.items, cal_examples, grid.task)
    pos = {e: k for k, e in enumerate(cal_examples)}
    batch = _Batch(inputs, targets, [(pos[i], pos[j]) for i, j in first_pairs])
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    n = len(batch.pairs)
    _involved_example_fields(setup, batch)  # warm-up: first calls pay one-off dispatch and allocation costs
    t_grads, fields = _time(lambda: _involved_example_fields(setup, batch), sync)
    cal = {"where": setup.where, "pairs": n, "s_per_example": t_grads / len({k for p in batch.pairs for k in p}),
           "s_per_pair": 0.0, "s_per_logit_pair": 0.0, "s_per_checkpoint": 0.0, "s_per_swap_pair": 0.0,
           "s_per_order_pair": 0.0, "effects": list(effects)}
    modes, choice, values = [], str(cfg.hvp), None
    if "bracket" in effects:
        modes, choice, seconds, values = _bracket_seconds(cfg, setup, batch, chunk, sync)
        cal["s_per_pair"] = max(seconds - t_grads, 0.0) / n  # the kernel's time includes the examples' gradients
    if "order" in effects and setup.optimizer is not None:
        step, state = setup.optimizer
        seconds, order = _time(lambda: order_terms_of_pairs(setup.fmodel, step, setup.params, state, batch.inputs,
                                                            batch.targets, batch.pairs, int(cfg.field.follow_steps)),
                               sync)
        cal["s_per_order_pair"] = seconds / n
    if values is not None or ("order" in effects and setup.optimizer is not None):
        s_logit, cal["s_per_checkpoint"] = _logit_seconds(cfg, grid, setup.fmodel, setup.params,
                                                          order[0] if values is None else values, chunk, device, sync)
        cal["s_per_logit_pair"] = s_logit / n
    if "swap" in effects:
        seconds, swaps = _swap_seconds(cfg, grid, setup, batch, fields.gradients, sync)
        cal["s_per_swap_pair"] = seconds / n
        values = swaps if values is None else values
    cal["peak_bytes"] = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return cal, modes, choice, (values if values is not None else order[0]).detach().cpu()


@dataclass(frozen=True)
class _Batch:
    """The calibration pairs' examples and the pairs as rows of them."""

    inputs: torch.Tensor
    targets: torch.Tensor
    pairs: list[tuple[int, int]]


def _bracket_seconds(cfg: DictConfig, setup: Setup, batch: _Batch, chunk: int,
                     sync: Callable[[], None]) -> tuple[list[dict[str, Any]], str, float, torch.Tensor]:
    """The HVP modes' timings, the mode ``auto`` would take, the bracket kernel's seconds on the calibration
    pairs (after a warm-up call: first calls pay one-off dispatch and allocation costs) and its brackets."""
    fmodel, params, field_ = setup.fmodel, setup.params, setup.field
    timings, s_grad = time_hvp_modes(fmodel, params, batch.inputs, batch.targets, batch.pairs, field=field_,
                                     chunk_size=chunk)
    choice = fastest_agreeing(timings)
    mode = choice if cfg.hvp == "auto" else str(cfg.hvp)

    def kernel():
        return bracket_kernel(fmodel, params, batch.inputs, batch.targets, batch.pairs, field=field_,
                              chunk_size=chunk, hvp=mode)

    kernel()
    seconds, out = _time(kernel, sync)
    modes = [{"mode": t.mode, "s_per_hvp": t.s_per_hvp, "per_gradient": t.s_per_hvp / s_grad if s_grad > 0 else
              float("nan"), "deviation": t.deviation, "agrees": t.agrees, "error": t.error} for t in timings]
    return modes, choice, seconds, out.brackets


def _swap_seconds(cfg: DictConfig, grid: Any, setup: Setup, batch: _Batch, gradients: torch.Tensor,
                  sync: Callable[[], None]) -> tuple[float, torch.Tensor]:
    """Seconds of the calibration pairs' exact swaps at every swap step size (their exact logit deltas
    included; timed at one step size, after a warm-up call), and the swaps at the first."""
    given = swap_epsilons(cfg.swap_epsilon)
    eps = given[0] if given else (setup.optimizer[0].learning_rate() if setup.optimizer else epsilon_of(cfg))
    rule = FieldRule(setup.field, eps) if setup.optimizer is None else OptimizerRule(setup.optimizer[0], eps)
    x_eval = grid.eval_batch()

    def swaps():
        return swap_kernel(setup.fmodel, setup.params, batch.inputs, batch.targets, batch.pairs, rule,
                           state=None if setup.optimizer is None else setup.optimizer[1], gradients=gradients,
                           follow_steps=int(cfg.field.follow_steps) if setup.optimizer else 0, eval_inputs=x_eval)

    swaps()
    seconds, out = _time(swaps, sync)
    return seconds * max(1, len(given)), out.deltas


def _logit_seconds(cfg: DictConfig, grid: Any, fmodel: FunctionalModel, params: dict[str, torch.Tensor],
                   brackets: torch.Tensor, chunk: int, device: torch.device,
                   sync: Callable[[], None]) -> tuple[float, float]:
    """(seconds of the calibration pairs' logit deltas, seconds of the output Jacobian where it is used)."""
    if not grid.eval_examples:
        return 0.0, 0.0
    x_eval = grid.eval_batch()
    jac, s_jacobian = None, 0.0
    if jacobian_fits(len(grid.eval_examples), len(grid.output_names), sum(p.numel() for p in params.values()),
                     next(iter(params.values())).dtype, device):
        s_jacobian, jac = _time(lambda: output_jacobian(fmodel, params, x_eval), sync)
    t_logit, _ = _time(lambda: logit_deltas(fmodel, params, x_eval, brackets, epsilon=epsilon_of(cfg),
                                            chunk_size=chunk, jacobian=jac), sync)
    return t_logit, s_jacobian


def _involved_example_fields(setup: Setup, batch: _Batch) -> Any:
    """The calibration examples' gradients and fields (what the bracket kernel's time includes; every example of
    the batch is in some pair)."""
    return compute_example_fields(setup.fmodel, setup.params, batch.inputs, batch.targets, field=setup.field)
