"""The sweep's HVP mode: the configured one, or with ``hvp=auto`` the fastest that agrees with ``forward``,
measured once when the store is created and recorded in it (``hvp_mode`` in the store's metadata), so
that every task of the sweep, resumed or not, uses the same mode and a resumed store stays bit-identical.

The measurement runs the kernel on the first task's pairs (at most :data:`CALIBRATION_PAIRS`) at the
first checkpoint, with the worker's thread count, on this machine's device (see
:mod:`lie_sweep.hvp_calibration`). A cluster whose workers differ from the machine that starts the
sweep (GPUs there, none here) should set ``hvp`` explicitly, from ``lie-sweep plan`` run on a worker.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from lie_sweep.data import Minibatches
from lie_sweep import stack_examples
from lie_sweep.devices import DTYPES, resolve_device
from lie_sweep.fields import on_device
from lie_sweep.hvp_calibration import ModeTiming, fastest_agreeing, time_hvp_modes
from lie_sweep.kernel import tile_groups
from lie_sweep.task_kinds import task_of

from .build import build_dataset, build_model
from .loader import load_into
from .schema import SweepConfig

__all__ = ["CALIBRATION_PAIRS", "calibrate_modes", "choose_hvp_mode"]

CALIBRATION_PAIRS = 256


def calibrate_modes(cfg: SweepConfig, checkpoint: str, examples: Sequence[int], pairs: Sequence[tuple[int, int]],
                    modes: tuple[str, ...] = ("forward", "reverse"), max_pairs: int = CALIBRATION_PAIRS,
                    batches: Sequence[Sequence[int]] | None = None) -> tuple[list[ModeTiming], float]:
    """Timings of ``modes`` on the first task's pairs (``pairs``: positions into ``examples``, the sweep's
    canonical order) at ``checkpoint``, with the worker's threads; and seconds per example gradient
    (``batches``: the items' dataset indices of a minibatch sweep)."""
    device, dtype = resolve_device(cfg.cluster.device), DTYPES[cfg.precision]
    task = task_of(cfg.task.name)
    loaded = load_into(build_model(cfg.model).to(device=device, dtype=dtype), checkpoint, cfg.field,
                       batched_items=batches is not None, task=task)
    first = list(pairs)[:min(cfg.pairs.per_task, max_pairs)]
    positions = list(dict.fromkeys(k for p in first for k in p))
    row = {p: k for k, p in enumerate(positions)}
    local = torch.tensor([[row[i], row[j]] for i, j in first], dtype=torch.long)
    data = build_dataset(cfg.data)
    items = data if batches is None else Minibatches(data, batches, task)
    inputs, targets = stack_examples(items, [examples[p] for p in positions], task)
    inputs, targets = on_device(inputs, device, dtype), on_device(targets, device, dtype)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(int(cfg.cluster.threads_per_worker or cfg.cluster.cpus_per_worker))
    try:
        return time_hvp_modes(loaded.fmodel, loaded.params, inputs, targets, local, field=loaded.field,
                              chunk_size=cfg.chunk_size,
                              groups=tile_groups(local.numpy(), positions), modes=modes)
    finally:
        torch.set_num_threads(threads)


def choose_hvp_mode(cfg: SweepConfig, checkpoint: str, examples: Sequence[int], pairs: Sequence[tuple[int, int]],
                    log: Callable[[str], None] = print, batches: Sequence[Sequence[int]] | None = None) -> str:
    """The mode a new sweep's tasks use: ``cfg.hvp``, or for ``auto`` the fastest agreeing one (timed as
    :func:`calibrate_modes` says)."""
    mode = str(cfg.hvp)
    if mode != "auto":
        return mode
    timings, s_grad = calibrate_modes(cfg, checkpoint, examples, pairs, batches=batches)
    chosen = fastest_agreeing(timings)
    by = ", ".join(f"{t.mode} {t.s_per_hvp * 1e3:.2f}" for t in timings if not t.error)
    log(f"hvp: {chosen} (ms per HVP on the first task's pairs: {by}; a gradient {s_grad * 1e3:.2f} ms)")
    return chosen
