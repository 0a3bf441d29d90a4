"""``lie-sweep plan``: what a sweep would do, from its config alone, writing nothing.

Counts tasks and Hessian-vector products, estimates memory per task from the parameter-sized
buffers, and calibrates time and bytes on disk on a few real brackets: at the first checkpoint
when checkpoints are given, at the initial weights when ``run`` would train them (nothing is
trained here). Bytes per codec come from encoding those brackets with each preset in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from lie_sweep import ParamSpec, find_checkpoints
from lie_sweep.budget import default_chunk_size
from lie_sweep.devices import DTYPES, resolve_device
from lie_sweep.training import save_steps
from storage.codecs import CODEC_PRESETS, encode_roundtrip
from storage.sketch import SketchSpec

from .build import resolve_grid
from .calibration import calibrate, calibration_setup
from lie_sweep.task_kinds import TASKS

from .sizing import pair_arrays, resolve_task_size, sweep_effects, worker_fit
from .spec import checkpoint_location
from .task_size import AUTO

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
    task: str = "multilabel"   # the task (its loss and measurement) and what it measures per evaluation item
    measured: str = ""
    n_files: int = 0
    block: int = 0
    worker_memory: int = 0
    fit: str | None = None     # why a task would not fit a worker's memory, with a fix; None when it fits
    hvp_modes: list[dict[str, Any]] = field(default_factory=list)  # per mode: ms/HVP, ÷ gradient, deviation
    sketch: dict[str, Any] | None = None  # storage.sketch: k, results per pair, bytes per sketch row per codec
    hvp: str = "forward"       # the configured mode (config.hvp)
    hvp_choice: str = "forward"  # the fastest mode that agrees with forward on the calibration pairs
    swap_steps: int = 0        # effect swap: its step sizes (K); swaps of each pair and checkpoint
    batch_size: int | None = None  # pairs.unit=batch: examples per item (the grid's "examples" are minibatches)
    per_task_auto: bool = False  # pairs.per_task=auto chose pairs_per_task (jobs/planning/task_size.py)
    field: str = "sgd"         # (last: the name shadows dataclasses.field in this class body)

    @property
    def hvps(self) -> int:
        """Ordered Hessian-vector products of the whole sweep: two per pair and checkpoint (effect bracket)."""
        return 2 * self.n_checkpoints * self.n_pairs if "bracket" in self.calibration["effects"] else 0

    def seconds(self, workers: int = 1) -> float:
        """Estimated seconds of the sweep with ``workers`` workers like this machine's, from the calibration."""
        cal = self.calibration
        per_ckpt = (cal["s_per_checkpoint"] + self.n_examples * cal["s_per_example"]
                    + self.n_pairs * (cal["s_per_pair"] + cal["s_per_logit_pair"] + cal["s_per_swap_pair"]
                                      + cal["s_per_order_pair"]))
        return self.n_checkpoints * per_ckpt / max(1, workers)


def _checkpoint_count(cfg: DictConfig) -> tuple[int, str, Any]:
    ck = cfg.checkpoints
    if ck.source == "train":
        steps = save_steps(ck.steps, ck.save_every)
        return len(steps), f"trained by run: steps {steps[0]}..{steps[-1]}", None
    paths = find_checkpoints(checkpoint_location(ck))
    return len(paths), f"{len(paths)} file(s), first {paths[0]}", paths[0]


def plan_sweep(cfg: DictConfig, *, calibration_pairs: int = 8) -> PlanReport:
    """Plan ``cfg``'s sweep and calibrate it on up to ``calibration_pairs`` pairs (nothing is written)."""
    grid = resolve_grid(cfg)
    n_ckpt, note, first = _checkpoint_count(cfg)
    auto = cfg.pairs.per_task == AUTO
    cfg = resolve_task_size(cfg, grid, n_ckpt)
    device, dtype = resolve_device(cfg.cluster.device), DTYPES[cfg.precision]
    setup = calibration_setup(cfg, grid, first, device, dtype)
    spec = ParamSpec.from_tensors(setup.params)
    stored, index = (spec, None) if grid.kept_names is None else spec.subset(grid.kept_names)
    chunk = min(cfg.chunk_size or default_chunk_size(spec.size, dtype, device), cfg.pairs.per_task)
    cal, modes, choice, brackets = calibrate(cfg, grid, setup, chunk, calibration_pairs, device)
    values = (brackets if index is None else brackets[:, index]).numpy()
    fit = worker_fit(cfg, grid, spec.size, stored.size, device, dtype, n_checkpoints=n_ckpt)
    keep = "all" if grid.kept_names is None else ("summary" if not grid.kept_names else ",".join(grid.kept_names))
    return PlanReport(n_checkpoints=n_ckpt, checkpoints_note=note, n_examples=len(grid.examples),
                      n_pairs=len(grid.pairs), n_eval=len(grid.eval_examples), n_outputs=len(grid.output_names),
                      n_tasks=fit.shape.n_tasks, pairs_per_task=cfg.pairs.per_task, n_params=spec.size,
                      n_tensors=len(spec.entries), n_stored=stored.size, keep=keep, dtype=cfg.precision,
                      device=str(device), chunk_size=chunk, memory=_memory_rows(cfg, fit, chunk, spec.size, dtype),
                      calibration=cal, codecs=_codec_rows(cfg, values if stored.size else brackets.numpy()),
                      codec=cfg.storage.codec, workers=cfg.cluster.workers, grid=str(cfg.pairs.mode),
                      n_files=fit.shape.n_files, block=fit.shape.block, field=str(cfg.field.name),
                      worker_memory=fit.share, fit=fit.problem, hvp=str(cfg.hvp), hvp_choice=choice, hvp_modes=modes,
                      swap_steps=pair_arrays(cfg)[1], batch_size=None if grid.batches is None else len(grid.batches[0]),
                      task=str(cfg.task.name), measured=TASKS[cfg.task.name].measures, per_task_auto=auto,
                      sketch=_sketch_rows(cfg, brackets.numpy()))


def _codec_rows(cfg: DictConfig, values: np.ndarray) -> list[dict[str, Any]]:
    """Bytes per pair and error of each codec preset on the calibration pairs' values (brackets, else swaps;
    encoded in memory)."""
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


def _sketch_rows(cfg: DictConfig, vectors: np.ndarray) -> dict[str, Any] | None:
    """storage.sketch: k, the sketched results per pair (:func:`pair_arrays`; each example's gradient adds one per
    checkpoint) and the bytes of one sketch row under each codec, from the calibration vectors' sketches (the
    same S a sweep uses, encoded in memory); None without a sketch."""
    st = cfg.storage
    if not st.sketch:
        return None
    spec = SketchSpec(int(st.sketch), d=vectors.shape[1], s=int(st.sketch_nonzeros), seed=int(st.sketch_seed))
    sketches = spec.apply(vectors).astype(vectors.dtype)
    rows = {}
    for preset in CODEC_PRESETS:
        try:
            rows[preset] = encode_roundtrip(sketches, preset, level=st.level, keepbits=st.keepbits,
                                            inner=st.inner_chunk)[0] / len(sketches)
        except Exception:  # noqa: BLE001 - e.g. float16 range: that codec cannot store them
            rows[preset] = None
    return {"k": spec.k, "per_pair": pair_arrays(cfg)[0], "bytes_per_row": rows}


def _memory_rows(cfg: DictConfig, fit: Any, chunk: int, n_params: int, dtype: torch.dtype) -> dict[str, int]:
    """A worker's parameter-sized buffers by part (:mod:`jobs.planning.memory`)."""
    shape, need = fit.shape, fit.need
    n_arrays, swaps = pair_arrays(cfg)
    effects = sweep_effects(cfg)
    names = (["brackets"] if "bracket" in effects else []) + (["order1, order2"] if "order" in effects else []) + (
        [f"{swaps} swaps"] if swaps else [])
    arrays = f"{' and '.join(names)}, and their stored copies ({2 * n_arrays} × pairs/task × D)"
    return {
        f"example cache (≤ cluster.cache_gib; {shape.local_examples} examples/task at most)": need.cache,
        f"task's example rows ({3 if swaps else 2} × {shape.local_examples} × D"
        + (", the swaps' first steps included)" if swaps else ")"): need.task_rows,
        (f"kernel call ({chunk} pairs × 2 HVPs)" if "bracket" in effects else
         "a swap's batch at one shifted point (partners' gradients and second steps)"): need.kernel_call,
        arrays: need.brackets,
        "output Jacobian on the evaluation batch (B × O × D)": need.jacobian,
        "parameters": n_params * torch.empty((), dtype=dtype).element_size(),
    }
