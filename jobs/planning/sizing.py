"""The size of a sweep before it runs: tasks, files, examples per task, and whether a task fits a worker.

``plan`` prints these figures and ``run`` refuses, in one line, a sweep whose task cannot fit a
local worker's memory (see :mod:`jobs.planning.memory` for the parts of a worker's peak), suggesting a
``pairs.per_task`` and ``chunk_size`` that fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

import numpy as np
import torch

from lie_sweep.analysis import jacobian_fits
from lie_sweep.budget import default_chunk_size
from lie_sweep.effects import EFFECTS
from lie_sweep.errors import ConfigError
from storage.layout import block_owners

from .checks import swap_epsilons, sweep_effects
from .grids import positions_of
from .memory import TaskMemory, cache_budget, task_memory, worker_memory
from .task_size import AUTO, auto_pairs_per_task, with_task_size
from jobs.units import format_bytes

__all__ = ["GridShape", "grid_shape", "fit_problem", "WorkerFit", "worker_fit", "check_fit", "sweep_effects",
           "pair_arrays", "resolve_task_size", "check_local_fit"]


@dataclass
class GridShape:
    """Counts of a sweep's tasks and files, and the most examples one task touches."""

    n_tasks: int
    n_files: int
    local_examples: int
    block: int


def _examples_per_task(positions: np.ndarray, per_task: int) -> np.ndarray:
    """Distinct example positions in each task's pairs (tasks: ``per_task`` consecutive pairs)."""
    n_tasks = -(-len(positions) // per_task)
    padded = np.full((n_tasks * per_task, 2), -1, dtype=np.int64)
    padded[:len(positions)] = positions
    rows = np.sort(padded.reshape(n_tasks, 2 * per_task), axis=1)
    distinct = (np.diff(rows, axis=1) != 0).sum(axis=1) + 1
    return distinct - (rows[:, 0] < 0)  # the padding's -1 is not an example


def pair_arrays(cfg: Any) -> tuple[int, int]:
    """(parameter-sized arrays per pair, of them the swaps' K) of the sweep's effects: the bracket (effect
    bracket), order1 and order2 (effect order), one per swap step size (effect swap; one where the step size is
    the checkpoints' own)."""
    effects = sweep_effects(cfg)
    k = max(1, len(swap_epsilons(cfg.swap_epsilon))) if "swap" in effects else 0
    own = sum(len(EFFECTS[e].arrays) for e in effects)  # a registered effect's own arrays
    return ("bracket" in effects) + (2 if "order" in effects else 0) + k + own, k


def grid_shape(cfg: Any, grid: Any, n_checkpoints: int, n_stored: int) -> GridShape:
    """Tasks, files (shards, chunks, table parts, completion marks) and examples per task of a grid."""
    positions = positions_of(grid.examples, grid.pairs)
    per_task = int(cfg.pairs.per_task)
    n_examples = len(grid.examples)
    block = min(int(cfg.pairs.block), n_examples)
    owners = block_owners(n_examples, block, len(positions), per_task)
    per_ckpt = -(-len(positions) // per_task)
    owned = np.bincount(np.asarray(owners), minlength=per_ckpt)
    local = _examples_per_task(positions, per_task) + block * (owned > 0)  # owned blocks: one at a time
    logits = bool(grid.eval_examples) and cfg.derived.eval_count > 0
    arrays, swaps = pair_arrays(cfg)
    shards = arrays if n_stored else 0                                       # brackets (order1, order2, swaps)
    chunks = (1 + (1 if swaps else 0)) if logits else 0                      # logit deltas (of the swaps too)
    per_task_files = 1 + 2 + shards + chunks                                 # mark, 2 table parts, shards, chunks
    per_block_files = (1 if n_stored else 0) + 1                            # gradients shard, losses chunk
    writers = int((owned > 0).sum())                                         # tasks with example table parts
    files = n_checkpoints * (per_ckpt * per_task_files + len(owners) * per_block_files + 2 * writers)
    return GridShape(n_tasks=n_checkpoints * per_ckpt, n_files=files, local_examples=int(min(local.max(), n_examples)),
                     block=block)


def worker_need(cfg: Any, grid: Any, local_examples: int, n_params: int, device: torch.device,
                dtype: torch.dtype, chunk: int) -> TaskMemory:
    """A local worker's peak memory for this grid (see :func:`jobs.planning.memory.task_memory`)."""
    item = torch.empty((), dtype=dtype).element_size()
    n_eval, n_out = len(grid.eval_examples), len(grid.output_names)
    effects = sweep_effects(cfg)
    expansion = "bracket" in effects or "order" in effects  # logit deltas of an expansion: J_f times a vector
    jac = n_eval * n_out * n_params * item if (expansion and n_eval and
                                              jacobian_fits(n_eval, n_out, n_params, dtype, device)) else 0
    arrays, swaps = pair_arrays(cfg)
    return task_memory(n_params=n_params, n_examples=len(grid.examples), local_examples=local_examples,
                       pairs_per_task=int(cfg.pairs.per_task), chunk_size=chunk, dtype=dtype, device=device,
                       cache_bytes=cache_budget(device, cfg.cluster), jacobian_bytes=jac,
                       pair_arrays=arrays, swaps=swaps > 0, bracket="bracket" in effects)


def fit_problem(cfg: Any, need: TaskMemory, n_params: int, item: int, share: int) -> str | None:
    """None when ``need`` fits ``share`` bytes; else what does not fit and a ``pairs.per_task`` /
    ``chunk_size`` that would (each pair costs about 6·D·item: 2 examples' rows, its bracket and copy)."""
    if need.total <= share:
        return None
    room = share - need.cache - need.jacobian
    per_pair = 6 * n_params * item
    chunk = max(1, min(need.chunk_size, room // max(1, 2 * 8 * n_params * item)))
    per_task = (room - 8 * chunk * n_params * item) // per_pair
    found = f"~{format_bytes(need.total)} per worker, {format_bytes(share)} available"
    if per_task < 1:
        return (f"{found}; even one pair per task does not fit: use a device with more memory, "
                f"cluster.cache_gib smaller, or fewer evaluation examples (derived.eval_count)")
    return f"{found}; set pairs.per_task={int(min(per_task, cfg.pairs.per_task))} chunk_size={int(chunk)}"


@dataclass
class WorkerFit:
    """A grid's shape, a worker's peak by part, the memory it has, and why it does not fit (None: it fits)."""

    shape: GridShape
    need: TaskMemory
    share: int
    problem: str | None


def worker_fit(cfg: Any, grid: Any, n_params: int, n_stored: int, device: torch.device, dtype: torch.dtype,
               n_checkpoints: int = 1) -> WorkerFit:
    """Whether a task of this grid fits a worker on ``device``: what ``plan`` prints and ``run`` checks."""
    shape = grid_shape(cfg, grid, n_checkpoints, n_stored)
    chunk = min(cfg.chunk_size or default_chunk_size(n_params, dtype, device), int(cfg.pairs.per_task))
    need = worker_need(cfg, grid, shape.local_examples, n_params, device, dtype, chunk)
    share = worker_memory(device, cfg.cluster)
    item = torch.empty((), dtype=dtype).element_size()
    return WorkerFit(shape, need, share, fit_problem(cfg, need, n_params, item, share))


def check_fit(cfg: Any, grid: Any, n_params: int, n_stored: int, device: torch.device,
              dtype: torch.dtype) -> None:
    """Refuse (one :class:`ConfigError` line) a sweep whose task cannot fit a worker on ``device``."""
    problem = worker_fit(cfg, grid, n_params, n_stored, device, dtype).problem
    if problem is not None:
        found, fix = problem.split("; ", 1)
        raise ConfigError("a task does not fit a worker's memory", expected="a worker's peak within its memory "
                          "(lie-sweep plan itemises it)", found=found, fix=fix)


def resolve_task_size(cfg: DictConfig, grid: Any, n_checkpoints: int) -> DictConfig:
    """``cfg`` with ``pairs.per_task`` a number: itself where one was given, else :func:`auto_pairs_per_task` for
    ``grid`` (memory checked against a local worker; a cluster's workers are not known here)."""
    if cfg.pairs.per_task != AUTO:
        return cfg
    from lie_sweep.devices import DTYPES, resolve_device

    n_params, stored = parameter_counts(grid)
    device, dtype = resolve_device(cfg.cluster.device), DTYPES[cfg.precision]

    def fits(n: int) -> bool:
        if cfg.cluster.address is not None:
            return True
        return worker_fit(with_task_size(cfg, n), grid, n_params, stored, device, dtype).problem is None

    n_pairs = len(grid.pairs)
    size = auto_pairs_per_task(n_params=n_params, pairs_per_checkpoint=max(1, n_pairs),
                               n_checkpoints=max(1, n_checkpoints), block=min(int(cfg.pairs.block),
                                                                             len(grid.examples)),
                               device_type=torch.device(device).type, fits=fits)
    return with_task_size(cfg, size)


def parameter_counts(grid: Any) -> tuple[int, int]:
    """(D: all of the grid's model's parameters, the stored ones: its kept tensors')."""
    from lie_sweep import ParamSpec

    spec = ParamSpec.from_tensors(grid.params)
    return spec.size, spec.size if grid.kept_names is None else spec.subset(grid.kept_names)[0].size


def check_local_fit(cfg: DictConfig, grid: Any) -> None:
    """Refuse, before anything is trained, a sweep whose task cannot fit a local worker (:func:`check_fit`)."""
    from lie_sweep.devices import DTYPES, resolve_device

    n_params, stored = parameter_counts(grid)
    check_fit(cfg, grid, n_params, stored, resolve_device(cfg.cluster.device), DTYPES[cfg.precision])
