"""``lie-sweep plan``: what a sweep would do, from its config alone, writing nothing.

Counts tasks and Hessian-vector products, estimates memory per task from the parameter-sized
buffers, and calibrates time and bytes on disk on a few real brackets: at the first checkpoint
when checkpoints are given, at the initial weights when ``run`` would train them (nothing is
trained here). Bytes per codec come from encoding those brackets with each preset in memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig

from lie_sweep import FunctionalModel, ParamSpec, SGDField, bracket_kernel, compute_example_fields, find_checkpoints
from lie_sweep import stack_examples
from lie_sweep.analysis import jacobian_fits, logit_deltas, output_jacobian
from lie_sweep.budget import default_chunk_size
from lie_sweep.devices import DTYPES, resolve_device
from lie_sweep.field_kinds import FIELDS
from lie_sweep.hvp_calibration import fastest_agreeing, time_hvp_modes
from lie_sweep.training import save_steps
from storage.codecs import CODEC_PRESETS, encode_roundtrip

from .build import epsilon_of, resolve_grid
from .loader import load_into
from .sizing import pair_arrays, worker_fit
from .spec import checkpoint_location

__all__ = ["PlanReport", "plan_sweep"]


@dataclass
class PlanReport:
    """What ``lie-sweep plan`` found: the grid, the work, memory, calibration and bytes per codec."""
    n_checkpoints: int
    checkpoints_note: str
    n_examples: int
    n_pairs: int
    n_eval: int
    n_outputs: int
    n_tasks: int
    pairs_per_task: int
    n_params: int
    n_tensors: int
    n_stored: int
    keep: str
    dtype: str
    device: str
    chunk_size: int
    memory: dict[str, int]
    calibration: dict[str, Any]
    codecs: list[dict[str, Any]] = field(default_factory=list)
    codec: str = "lossless"
    workers: int | None = None
    grid: str = "all"
    n_files: int = 0
    block: int = 0
    worker_memory: int = 0
    fit: str | None = None     # why a task would not fit a worker's memory, with a fix; None when it fits
    hvp_modes: list[dict[str, Any]] = field(default_factory=list)  # per mode: ms/HVP, ÷ gradient, deviation
    hvp: str = "forward"       # the configured mode (config.hvp)
    hvp_choice: str = "forward"  # the fastest mode that agrees with forward on the calibration pairs
    field: str = "sgd"         # (last: the name shadows dataclasses.field in this class body)

    @property
    def hvps(self) -> int:
        """Ordered Hessian-vector products of the whole sweep: two per pair and checkpoint."""
        return 2 * self.n_checkpoints * self.n_pairs

    def seconds(self, workers: int = 1) -> float:
        """Estimated seconds of the sweep with ``workers`` workers like this machine's, from the calibration."""
        cal = self.calibration
        per_ckpt = (cal["s_per_checkpoint"] + self.n_examples * cal["s_per_example"]
                    + self.n_pairs * (cal["s_per_pair"] + cal["s_per_logit_pair"]))
        return self.n_checkpoints * per_ckpt / max(1, workers)


def _checkpoint_count(cfg: DictConfig) -> tuple[int, str, Any]:
    ck = cfg.checkpoints
    if ck.source == "train":
        steps = save_steps(ck.steps, ck.save_every)
        return len(steps), f"trained by run: steps {steps[0]}..{steps[-1]}", None
    paths = find_checkpoints(checkpoint_location(ck))
    return len(paths), f"{len(paths)} file(s), first {paths[0]}", paths[0]


def _time(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


def plan_sweep(cfg: DictConfig, *, calibration_pairs: int = 8) -> PlanReport:
    """Plan ``cfg``'s sweep and calibrate it on up to ``calibration_pairs`` pairs (nothing is written)."""
    grid = resolve_grid(cfg)
    n_ckpt, note, first = _checkpoint_count(cfg)
    device, dtype = resolve_device(cfg.cluster.device), DTYPES[cfg.precision]
    setup = _calibration_setup(cfg, grid, first, device, dtype)
    spec = ParamSpec.from_tensors(setup.params)
    stored, index = (spec, None) if grid.kept_names is None else spec.subset(grid.kept_names)
    chunk = min(cfg.chunk_size or default_chunk_size(spec.size, dtype, device), cfg.pairs.per_task)
    cal, modes, choice, brackets = _calibrate(cfg, grid, setup, chunk, calibration_pairs, device)
    values = (brackets if index is None else brackets[:, index]).numpy()
    fit = worker_fit(cfg, grid, spec.size, stored.size, device, dtype, n_checkpoints=n_ckpt)
    keep = "all" if grid.kept_names is None else ("summary" if not grid.kept_names else ",".join(grid.kept_names))
    return PlanReport(n_checkpoints=n_ckpt, checkpoints_note=note, n_examples=len(grid.examples),
                      n_pairs=len(grid.pairs), n_eval=len(grid.eval_examples), n_outputs=len(grid.output_names),
                      n_tasks=fit.shape.n_tasks, pairs_per_task=cfg.pairs.per_task, n_params=spec.size,
                      n_tensors=len(spec.entries), n_stored=stored.size, keep=keep, dtype=cfg.precision,
                      device=str(device), chunk_size=chunk, memory=_memory_rows(cfg, fit, chunk, spec.size, dtype),
                      calibration=cal, codecs=_codec_rows(cfg, values) if stored.size else [],
                      codec=cfg.storage.codec, workers=cfg.cluster.workers, grid=str(cfg.pairs.mode),
                      n_files=fit.shape.n_files, block=fit.shape.block, field=str(cfg.field.name),
                      worker_memory=fit.share, fit=fit.problem, hvp=str(cfg.hvp), hvp_choice=choice, hvp_modes=modes)


@dataclass(frozen=True)
class _Setup:
    """The model the calibration runs at, its field, and where that is (for the account)."""

    fmodel: FunctionalModel
    params: dict[str, torch.Tensor]
    field: Any
    where: str


def _calibration_setup(cfg: DictConfig, grid: Any, first: Any, device: torch.device, dtype: torch.dtype) -> _Setup:
    """The first checkpoint through the sweep's loader, or the initial weights when ``run`` would train (with
    the SGD field: no optimizer state exists yet)."""
    model = grid.model.to(device=device, dtype=dtype)
    if first is not None:
        loaded = load_into(model, first, cfg.field)
        return _Setup(loaded.fmodel, loaded.params, loaded.field, f"checkpoint step {loaded.checkpoint.step}")
    fmodel = FunctionalModel(model)
    where = "initial weights (run trains the checkpoints" + (
        "; no optimizer state yet, so calibrated with the SGD field, which costs about the same)"
        if FIELDS[cfg.field.name].needs_state else ")")
    return _Setup(fmodel, fmodel.params(), SGDField(), where)


def _calibrate(cfg: DictConfig, grid: Any, setup: _Setup, chunk: int, calibration_pairs: int,
               device: torch.device) -> tuple[dict[str, Any], list[dict[str, Any]], str, torch.Tensor]:
    """Seconds per pair, example and logit pair, the HVP modes' timings, the mode ``auto`` would take, and the
    calibration pairs' brackets (on the CPU)."""
    fmodel, params, field_ = setup.fmodel, setup.params, setup.field
    first_pairs = grid.pairs[:max(1, min(calibration_pairs, len(grid.pairs)))]
    cal_examples = sorted({k for p in first_pairs for k in p})
    inputs, targets = stack_examples(grid.data, cal_examples)
    pos = {e: k for k, e in enumerate(cal_examples)}
    cal_pairs = [(pos[i], pos[j]) for i, j in first_pairs]
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings, s_grad = time_hvp_modes(fmodel, params, inputs, targets, cal_pairs, field=field_, chunk_size=chunk)
    choice = fastest_agreeing(timings)
    mode = choice if cfg.hvp == "auto" else str(cfg.hvp)

    def kernel():
        return bracket_kernel(fmodel, params, inputs, targets, cal_pairs, field=field_, chunk_size=chunk, hvp=mode)

    kernel()  # warm-up: first calls pay one-off dispatch and allocation costs
    seconds, out = _time(kernel, sync)
    # the kernel's time includes the involved examples' gradients (a worker computes all E once per checkpoint)
    t_grads, _ = _time(lambda: _involved_example_fields(fmodel, params, inputs, targets, cal_pairs, field_), sync)
    s_logit, s_jacobian = _logit_seconds(cfg, grid, fmodel, params, out.brackets, chunk, device, sync)
    cal = {"where": setup.where, "pairs": len(cal_pairs), "s_per_pair": max(seconds - t_grads, 0.0) / len(cal_pairs),
           "s_per_example": t_grads / len({k for p in cal_pairs for k in p}),
           "s_per_logit_pair": s_logit / len(cal_pairs), "s_per_checkpoint": s_jacobian,
           "peak_bytes": int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None}
    modes = [{"mode": t.mode, "s_per_hvp": t.s_per_hvp, "per_gradient": t.s_per_hvp / s_grad if s_grad > 0 else
              float("nan"), "deviation": t.deviation, "agrees": t.agrees, "error": t.error} for t in timings]
    return cal, modes, choice, out.brackets.detach().cpu()


def _logit_seconds(cfg: DictConfig, grid: Any, fmodel: FunctionalModel, params: dict[str, torch.Tensor],
                   brackets: torch.Tensor, chunk: int, device: torch.device,
                   sync: Callable[[], None]) -> tuple[float, float]:
    """(seconds of the calibration pairs' logit deltas, seconds of the output Jacobian where it is used)."""
    if not grid.eval_examples:
        return 0.0, 0.0
    x_eval = stack_examples(grid.data, grid.eval_examples)[0]
    jac, s_jacobian = None, 0.0
    if jacobian_fits(len(grid.eval_examples), len(grid.output_names), sum(p.numel() for p in params.values()),
                     next(iter(params.values())).dtype, device):
        s_jacobian, jac = _time(lambda: output_jacobian(fmodel, params, x_eval), sync)
    t_logit, _ = _time(lambda: logit_deltas(fmodel, params, x_eval, brackets, epsilon=epsilon_of(cfg),
                                            chunk_size=chunk, jacobian=jac), sync)
    return t_logit, s_jacobian


def _codec_rows(cfg: DictConfig, values: np.ndarray) -> list[dict[str, Any]]:
    """Bytes per pair and error of each codec preset on the calibration brackets (encoded in memory)."""
    rows = []
    raw = values.nbytes / len(values)
    for preset in CODEC_PRESETS:
        try:
            nbytes, back = encode_roundtrip(values, preset, level=cfg.storage.level, keepbits=cfg.storage.keepbits,
                                            inner=cfg.storage.inner_chunk)
        except Exception as exc:  # noqa: BLE001 - e.g. float16 range: reported, not fatal
            rows.append({"codec": preset, "error_text": str(exc).splitlines()[0]})
            continue
        err = float(np.linalg.norm(back - values) / max(np.linalg.norm(values), 1e-300))
        rows.append({"codec": preset, "bytes_per_pair": nbytes / len(values), "ratio": nbytes / values.nbytes,
                     "raw_bytes_per_pair": raw, "l2_rel_error": err})
    return rows


def _memory_rows(cfg: DictConfig, fit: Any, chunk: int, n_params: int, dtype: torch.dtype) -> dict[str, int]:
    """A worker's parameter-sized buffers by part (:mod:`jobs.planning.memory`)."""
    shape, need = fit.shape, fit.need
    n_arrays, swaps = pair_arrays(cfg)
    names = ["brackets"] + (["order1, order2"] if n_arrays - swaps > 1 else []) + ([f"{swaps} swaps"] if swaps else [])
    arrays = f"{' and '.join(names)}, and their stored copies ({2 * n_arrays} × pairs/task × D)"
    return {
        f"example cache (≤ cluster.cache_gib; {shape.local_examples} examples/task at most)": need.cache,
        f"task's example rows ({3 if swaps else 2} × {shape.local_examples} × D"
        + (", the swaps' first steps included)" if swaps else ")"): need.task_rows,
        f"kernel call ({chunk} pairs × 2 HVPs)": need.kernel_call,
        arrays: need.brackets,
        "output Jacobian on the evaluation batch (B × O × D)": need.jacobian,
        "parameters": n_params * torch.empty((), dtype=dtype).element_size(),
    }


def _involved_example_fields(fmodel: FunctionalModel, params, inputs, targets, cal_pairs, field_) -> Any:
    """The involved examples' gradients and fields alone (what the kernel time includes)."""
    rows = sorted({k for p in cal_pairs for k in p})
    return compute_example_fields(fmodel, params, inputs[rows], targets[rows], field=field_)


