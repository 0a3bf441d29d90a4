"""``pairs.per_task=auto`` (the default): a task size chosen for the grid, so that a task's compute stays well above
its fixed cost and a large grid makes few files.

A task costs its pairs' compute plus a fixed system cost (hand-out, its shard and table parts, digests, its mark,
about 10 ms on a 2-core CPU: ``benchmarks/bench_overhead.py``), and every task writes ~5 files. The rule, from the
grid alone (never from a timing, so the same config always makes the same store):

    per_task = W / max(D, D₀)            W = 2²⁶ parameter·pairs on a CPU worker, 2³¹ on a GPU;
                                         D₀ = 2¹⁴ (below it a pair costs about the same whatever D:
                                         the calls' own fixed costs dominate)
    rounded down to whole tiles (block² pairs: a task holds whole tiles of the grid's order),
    at most 4,096 pairs and at most ⌈all pairs / 16⌉ (rounded up to a tile: a sweep keeps ≥ ~16 tasks to
    spread over its workers), at most a checkpoint's pairs,
    then the largest that fits a worker's memory (whole tiles where one fits; else fewer pairs).

On this CPU W is about 0.3–1 s of compute a task (the narrow MXResNet, D = 703,268: 64 pairs, 0.7 s; a
400-parameter MLP: 4,096 pairs, ~0.5 s); on a GPU anchored at 786 pairs/s for a ResNet-18 (D = 11.2 M) W
gives 191 → 128 pairs, ~160 ms. A number given as ``pairs.per_task=N`` is used as it is. The resolved number is
what the store records: resume keeps a store's own task size whatever the default becomes.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from lie_sweep.errors import ConfigError

__all__ = ["AUTO", "auto_pairs_per_task", "check_per_task", "with_task_size", "TASK_SIZE_HELP"]

AUTO = "auto"
WORK = {"cpu": 1 << 26, "cuda": 1 << 31}   # parameter·pairs of one task, by device type
FLOOR_PARAMS = 1 << 14
MAX_PAIRS = 4096
MIN_TASKS = 16
TASK_SIZE_HELP = ("pairs per task and per store shard (consecutive in the tile-major order); auto: "
                  "2^26 (CPU) or 2^31 (GPU) / max(D, 2^14) pairs in whole block² tiles, ≤ 4096, ≤ all pairs / 16, "
                  "what fits a worker (jobs/planning/task_size.py)")


def check_per_task(value: Any) -> None:
    """``auto`` or an integer ≥ 1; else one error line."""
    if value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return
    raise ConfigError("bad value for pairs.per_task", expected="auto or an integer >= 1", found=repr(value),
                      fix="e.g. pairs.per_task=auto or pairs.per_task=256")


def auto_pairs_per_task(*, n_params: int, pairs_per_checkpoint: int, n_checkpoints: int, block: int,
                        device_type: str, fits: Callable[[int], bool]) -> int:
    """The task size of the module docstring for a grid of ``pairs_per_checkpoint`` pairs at each of
    ``n_checkpoints`` checkpoints, D = ``n_params`` (all parameters: what a pair's compute scales with), tiles of
    ``block``² pairs; ``fits(n)``: whether tasks of n pairs fit a worker."""
    tile = max(1, block * block)
    work = WORK.get(device_type, WORK["cpu"])
    wanted = work // max(n_params, FLOOR_PARAMS)
    spread = math.ceil(math.ceil(pairs_per_checkpoint * n_checkpoints / MIN_TASKS) / tile) * tile
    size = max(tile, min(wanted // tile * tile, MAX_PAIRS // tile * tile, spread))
    size = min(size, pairs_per_checkpoint)
    while size > tile and not fits(size):
        size = max(tile, (size // 2) // tile * tile)
    if not fits(size):  # not even a tile: the largest size that fits (memory only grows with the size)
        low, high = 1, size
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fits(mid) else (low, mid - 1)
        size = low
    return int(size)


def with_task_size(cfg: DictConfig, per_task: int) -> DictConfig:
    """``cfg`` (read-only, as :func:`jobs.planning.config.finalize` makes it) with ``pairs.per_task`` set."""
    out = copy.deepcopy(cfg)
    OmegaConf.set_readonly(out, False)
    out.pairs.per_task = int(per_task)
    OmegaConf.set_readonly(out, True)
    return out

