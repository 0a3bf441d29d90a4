"""The sweep's HVP mode: the configured one, or with ``hvp=auto`` the fastest that agrees with ``forward``,
measured once when the store is created and recorded in it (``hvp_mode`` in the store's metadata), so
that every task of the sweep, resumed or not, uses the same mode and a resumed store stays bit-identical.

The measurement runs the kernel on the first task's pairs (at most :data:`CALIBRATION_PAIRS`) at the
first checkpoint, with the worker's thread count, on this machine's device (see
:mod:`lie_sweep.hvp_calibration`). A cluster whose workers differ from the machine that starts the
sweep (GPUs there, none here) should set ``hvp`` explicitly, from ``lie-sweep plan`` run on a worker.
"""

from __future__ import annotations

from typing import Callable

import torch

from lie_sweep import FunctionalModel, apply_checkpoint, load_checkpoint, stack_examples
from lie_sweep.hvp_calibration import ModeTiming, fastest_agreeing, time_hvp_modes

from .sweep import SweepSpec, build_dataset, build_model, update_field
from .worker import DTYPES, resolve_device, tile_groups

__all__ = ["CALIBRATION_PAIRS", "calibrate_modes", "choose_hvp_mode"]

CALIBRATION_PAIRS = 256


def calibrate_modes(spec: SweepSpec, modes: tuple[str, ...] = ("forward", "reverse"),
                    max_pairs: int = CALIBRATION_PAIRS) -> tuple[list[ModeTiming], float]:
    """Timings of ``modes`` on the first task's pairs at the first checkpoint, with the worker's threads;
    and seconds per example gradient."""
    cfg = spec.config
    device, dtype = resolve_device(cfg.cluster.device), DTYPES[cfg.precision]
    model = build_model(cfg.model).to(device=device, dtype=dtype)
    prov = spec.checkpoints[0]
    ckpt = load_checkpoint(prov["path"])
    apply_checkpoint(model, ckpt)
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    names = [n for n, _ in model.named_parameters()]
    field = update_field(cfg.field, ckpt.optimizer_state, names, prov["path"]).bind(params)
    first = spec.pair_positions[:min(cfg.pairs.per_task, max_pairs)]
    positions = list(dict.fromkeys(k for p in first for k in p))
    row = {p: k for k, p in enumerate(positions)}
    local = torch.tensor([[row[i], row[j]] for i, j in first], dtype=torch.long)
    inputs, targets = stack_examples(build_dataset(cfg.data), [spec.examples[p] for p in positions])
    inputs, targets = inputs.to(device, dtype), targets.to(device, dtype)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(int(cfg.cluster.threads_per_worker or cfg.cluster.cpus_per_worker))
    try:
        return time_hvp_modes(fmodel, params, inputs, targets, local, field=field, chunk_size=cfg.chunk_size,
                              groups=tile_groups(local.numpy(), positions), modes=modes)
    finally:
        torch.set_num_threads(threads)


def choose_hvp_mode(spec: SweepSpec, log: Callable[[str], None] = print) -> str:
    """The mode a new sweep's tasks use: ``spec.config.hvp``, or for ``auto`` the fastest agreeing one."""
    mode = str(spec.config.hvp)
    if mode != "auto":
        return mode
    timings, s_grad = calibrate_modes(spec)
    chosen = fastest_agreeing(timings)
    by = ", ".join(f"{t.mode} {t.s_per_hvp * 1e3:.2f}" for t in timings if not t.error)
    log(f"hvp: {chosen} (ms per HVP on the first task's pairs: {by}; a gradient {s_grad * 1e3:.2f} ms)")
    return chosen
