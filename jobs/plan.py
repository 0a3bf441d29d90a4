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

from lie_sweep import FunctionalModel, ParamSpec, SGDField, apply_checkpoint, bracket_kernel, find_checkpoints
from lie_sweep import compute_example_fields, load_checkpoint, stack_examples
from lie_sweep.analysis import jacobian_fits, logit_deltas, output_jacobian
from lie_sweep.brackets import default_chunk_size
from lie_sweep.hvp_calibration import fastest_agreeing, time_hvp_modes
from lie_sweep.training import save_steps
from storage.codecs import CODEC_PRESETS, encode_roundtrip

from .progress import format_bytes
from .sizing import worker_fit
from .sweep import checkpoint_location, epsilon_of, resolve_grid, update_field
from .worker import DTYPES, resolve_device

__all__ = ["PlanReport", "plan_sweep", "format_plan"]


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
    model = grid.model.to(device=device, dtype=dtype)
    field_ = SGDField()
    where = "initial weights (run trains the checkpoints" + (
        "; no Adam state yet, so calibrated with the SGD field, which costs about the same)" if cfg.field.name == "adam"
        else ")")
    if first is not None:
        ckpt = load_checkpoint(first)
        apply_checkpoint(model, ckpt)
        where = f"checkpoint step {ckpt.step}"
        field_ = update_field(cfg.field, ckpt.optimizer_state, [n for n, _ in model.named_parameters()], str(first))
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    spec = ParamSpec.from_tensors(params)
    stored, index = (spec, None) if grid.kept_names is None else spec.subset(grid.kept_names)
    item = torch.empty((), dtype=dtype).element_size()
    chunk = min(cfg.chunk_size or default_chunk_size(spec.size, dtype, device), cfg.pairs.per_task)

    first_pairs = grid.pairs[:max(1, min(calibration_pairs, len(grid.pairs)))]
    cal_examples = sorted({k for p in first_pairs for k in p})
    inputs, targets = stack_examples(grid.data, cal_examples)
    pos = {e: k for k, e in enumerate(cal_examples)}
    cal_pairs = [(pos[i], pos[j]) for i, j in first_pairs]
    involved = len({k for p in cal_pairs for k in p})
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    timings, s_grad = time_hvp_modes(fmodel, params, inputs, targets, cal_pairs, field=field_.bind(params),
                                     chunk_size=chunk)
    choice = fastest_agreeing(timings)
    mode = choice if cfg.hvp == "auto" else str(cfg.hvp)

    def kernel():
        return bracket_kernel(fmodel, params, inputs, targets, cal_pairs, field=field_, chunk_size=chunk, hvp=mode)

    kernel()  # warm-up: first calls pay one-off dispatch and allocation costs
    seconds, out = _time(kernel, sync)
    # the kernel's time includes the involved examples' gradients (a worker computes all E once per checkpoint)
    t_grads, _ = _time(lambda: _involved_example_fields(fmodel, params, inputs, targets, cal_pairs, field_), sync)
    s_example = t_grads / involved
    s_pair = max(seconds - t_grads, 0.0) / len(cal_pairs)
    s_logit = s_jacobian = 0.0
    if grid.eval_examples:
        x_eval = stack_examples(grid.data, grid.eval_examples)[0]
        jac = None
        if jacobian_fits(len(grid.eval_examples), len(grid.output_names), spec.size, dtype, device):
            s_jacobian, jac = _time(lambda: output_jacobian(fmodel, params, x_eval), sync)
        t_logit, _ = _time(lambda: logit_deltas(fmodel, params, x_eval, out.brackets, epsilon=epsilon_of(cfg),
                                                chunk_size=chunk, jacobian=jac), sync)
        s_logit = t_logit / len(cal_pairs)
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None

    brackets = out.brackets.detach().cpu()
    values = (brackets if index is None else brackets[:, index]).numpy()
    codecs = []
    if stored.size:
        raw = values.nbytes / len(values)
        for preset in CODEC_PRESETS:
            try:
                nbytes, back = encode_roundtrip(values, preset, level=cfg.storage.level,
                                                keepbits=cfg.storage.keepbits, inner=cfg.storage.inner_chunk)
            except Exception as exc:  # noqa: BLE001 - e.g. float16 range: reported, not fatal
                codecs.append({"codec": preset, "error_text": str(exc).splitlines()[0]})
                continue
            err = float(np.linalg.norm(back - values) / max(np.linalg.norm(values), 1e-300))
            codecs.append({"codec": preset, "bytes_per_pair": nbytes / len(values), "ratio": nbytes / values.nbytes,
                           "raw_bytes_per_pair": raw, "l2_rel_error": err})
    fit = worker_fit(cfg, grid, spec.size, stored.size, device, dtype, n_checkpoints=n_ckpt)
    shape, need = fit.shape, fit.need
    memory = {
        f"example cache (≤ cluster.cache_gib; {shape.local_examples} examples/task at most)": need.cache,
        f"task's example rows (2 × {shape.local_examples} × D)": need.task_rows,
        f"kernel call ({chunk} pairs × 2 HVPs)": need.kernel_call,
        ("brackets, order1, order2 and their stored copies (6 × pairs/task × D)" if cfg.field.name == "optimizer"
         else "brackets and their stored copy (2 × pairs/task × D)"): need.brackets,
        "output Jacobian on the evaluation batch (B × O × D)": need.jacobian,
        "parameters": spec.size * item,
    }
    keep = "all" if grid.kept_names is None else ("summary" if not grid.kept_names else ",".join(grid.kept_names))
    return PlanReport(n_checkpoints=n_ckpt, checkpoints_note=note, n_examples=len(grid.examples),
                      n_pairs=len(grid.pairs), n_eval=len(grid.eval_examples), n_outputs=len(grid.output_names),
                      n_tasks=shape.n_tasks, pairs_per_task=cfg.pairs.per_task, n_params=spec.size,
                      n_tensors=len(spec.entries), n_stored=stored.size, keep=keep, dtype=cfg.precision,
                      device=str(device), chunk_size=chunk, memory=memory,
                      calibration={"where": where, "pairs": len(cal_pairs), "s_per_pair": s_pair,
                                   "s_per_example": s_example, "s_per_logit_pair": s_logit,
                                   "s_per_checkpoint": s_jacobian, "peak_bytes": peak},
                      codecs=codecs, codec=cfg.storage.codec, workers=cfg.cluster.workers, grid=str(cfg.pairs.mode),
                      n_files=shape.n_files, block=shape.block, field=str(cfg.field.name),
                      worker_memory=fit.share, fit=fit.problem, hvp=str(cfg.hvp), hvp_choice=choice,
                      hvp_modes=[{"mode": t.mode, "s_per_hvp": t.s_per_hvp, "per_gradient": t.s_per_hvp / s_grad
                                  if s_grad > 0 else float("nan"), "deviation": t.deviation, "agrees": t.agrees,
                                  "error": t.error} for t in timings])


def _involved_example_fields(fmodel: FunctionalModel, params, inputs, targets, cal_pairs, field_) -> Any:
    """The involved examples' gradients and fields alone (what the kernel time includes)."""
    rows = sorted({k for p in cal_pairs for k in p})
    return compute_example_fields(fmodel, params, inputs[rows], targets[rows], field=field_)


def _duration(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def format_plan(r: PlanReport) -> str:
    """The dry run's account, for the terminal."""
    cal = r.calibration
    per_ckpt = -(-r.n_pairs // r.pairs_per_task)
    stored = ("summaries only (storage.keep=summary)" if r.n_stored == 0 else
              f"{r.n_stored:,} of {r.n_params:,} ({'all' if r.keep == 'all' else r.keep})")
    lines = [
        "plan (dry run: nothing trained, nothing written)",
        f"grid         pairs={r.grid}: {r.n_checkpoints} checkpoints ({r.checkpoints_note}) × {r.n_pairs:,} pairs of "
        f"{r.n_examples:,} examples",
        f"tasks        {r.n_tasks:,} tasks of ≤ {r.pairs_per_task} consecutive pairs of the grid's order "
        f"({per_ckpt:,} per checkpoint); blocks of {r.block} examples' gradients and losses are spread over them",
        f"files        {r.n_files:,} (shards, chunks, table parts and completion marks)",
        f"work         {r.n_checkpoints * r.n_pairs:,} brackets = {r.hvps:,} Hessian-vector products, "
        f"{r.n_checkpoints * r.n_examples:,} example gradients"
        + ((f", logit deltas from the output Jacobian ({r.n_eval} × {r.n_outputs} reverse passes per checkpoint, "
            "then one matrix product per task)" if r.calibration["s_per_checkpoint"] else
            f", {r.n_checkpoints * r.n_pairs:,} × {r.n_eval} output jvps (logit deltas; the {r.n_eval} × "
            f"{r.n_outputs} output Jacobian exceeds the memory budget)")
           if r.n_eval else ", no logit deltas (derived.eval_count=0)"),
        f"parameters   D = {r.n_params:,} in {r.n_tensors} tensors ({r.dtype}); stored: {stored}",
        f"memory       ~{format_bytes(sum(r.memory.values()))} per worker of parameter-sized buffers on {r.device} "
        f"(activations extra), of {format_bytes(r.worker_memory)} a worker has: "
        + (f"DOES NOT FIT: {r.fit}" if r.fit else "fits"),
    ]
    lines += [f"               {format_bytes(v):>10}  {k}" for k, v in r.memory.items()]
    if cal["peak_bytes"]:
        lines.append(f"               {format_bytes(cal['peak_bytes']):>10}  measured peak of the calibration "
                     f"on {r.device}")
    lines += [
        f"calibration  {cal['pairs']} pairs at the {cal['where']} on {r.device}: {cal['s_per_pair'] * 1e3:.1f} ms/pair "
        f"(brackets), {cal['s_per_logit_pair'] * 1e3:.1f} ms/pair (logit deltas), "
        f"{cal['s_per_example'] * 1e3:.1f} ms/example (gradients)"
        + (f", {cal['s_per_checkpoint']:.2f} s/checkpoint (output Jacobian)" if cal["s_per_checkpoint"] else ""),
    ]
    if r.hvp_modes:
        lines.append(f"hvp modes    on the calibration pairs (hvp={r.hvp}; the fastest agreeing with forward: "
                     f"{r.hvp_choice}, which hvp=auto would take):")
        for m in r.hvp_modes:
            if m["error"]:
                lines.append(f"               {m['mode']:<8} not available: {m['error']}")
                continue
            lines.append(f"               {m['mode']:<8} {m['s_per_hvp'] * 1e3:8.2f} ms/HVP  "
                         f"{m['per_gradient']:5.2f}× a gradient  max deviation from forward {m['deviation']:.1e}"
                         + ("" if m["agrees"] else " (does not agree: never chosen)"))
    workers = r.workers or 1
    time_line = f"time         ~{_duration(r.seconds(1))} with one worker like this machine's {r.device}"
    if workers > 1:
        time_line += f", ~{_duration(r.seconds(workers))} with cluster.workers={workers}"
    lines.append(time_line + " (excluding start-up; GPU workers are faster)")
    if r.field == "optimizer":
        lines.append("             field=optimizer: the order expansion (Δ₁, Δ₂) is not in this estimate; it costs "
                     "about 5-20x a bracket per pair (benchmarks/bench_order.py)")
    raw_nxn = r.n_checkpoints * r.n_examples ** 2 * r.n_params * (4 if r.dtype == "float32" else 8)
    if r.codecs:
        lines += ["disk         brackets on disk, estimated from the calibration pairs (raw n×n: the full "
                  f"n×n matrix of every checkpoint, {format_bytes(raw_nxn)}):",
                  f"               {'codec':<14} {'bytes/pair':>11} {'sweep total':>12} {'vs raw n×n':>11} "
                  f"{'L2 rel. err':>12}"]
        for c in r.codecs:
            mark = "*" if c["codec"] == r.codec else " "
            if "error_text" in c:
                lines.append(f"               {c['codec'] + mark:<14} cannot store these values: {c['error_text']}")
                continue
            total = c["bytes_per_pair"] * r.n_checkpoints * r.n_pairs
            lines.append(f"               {c['codec'] + mark:<14} {format_bytes(c['bytes_per_pair']):>11} "
                         f"{format_bytes(total):>12} {total / raw_nxn:>10.3f}x {c['l2_rel_error']:>12.1e}")
        lines.append("               (* storage.codec; gradients add about E/P of this, tables a few KiB per task)")
    else:
        lines.append("disk         no parameter-sized arrays (storage.keep=summary): tables and logit deltas only")
    return "\n".join(lines)
