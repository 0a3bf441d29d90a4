"""Choosing an HVP mode by measurement: each candidate runs the kernel on the same pairs, is timed, and is
compared with the reference (``forward``, what every other mode must reproduce).

A mode agrees when max |B_mode − B_forward| / max |B_forward| over the whole bracket matrix is at most
``tolerance`` (1e-6 in float32, 1e-12 in float64). The choice is the fastest agreeing mode; ``forward``
always agrees with itself, so there is always one. ``compile`` is never a candidate unless asked for:
it compiles once per batch shape (tens of seconds on a CPU), which a few calibration calls cannot amortise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .kernel import ExampleFields, bracket_kernel, compute_example_fields
from .fields import FunctionalModel, Params, UpdateField
from .hvp import HVP_MODES

__all__ = ["ModeTiming", "time_hvp_modes", "fastest_agreeing", "tolerance_of", "AUTO_MODES"]

AUTO_MODES = ("forward", "reverse")


@dataclass(frozen=True)
class ModeTiming:
    """One mode's calibration: seconds per kernel call (best of the timed calls), per ordered HVP, and its
    maximum deviation from ``forward`` relative to the largest bracket entry; ``error`` holds why a mode
    could not run (then it is never chosen)."""

    mode: str
    seconds: float
    s_per_hvp: float
    deviation: float
    agrees: bool
    error: str = ""


def tolerance_of(dtype: torch.dtype) -> float:
    """The agreement a mode must reach with ``forward``: 1e-6 in float32, 1e-12 in float64."""
    return 1e-12 if dtype == torch.float64 else 1e-6


def _best_seconds(fn: Callable[[], torch.Tensor], repeats: int, sync: Callable[[], None]) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up: dispatch, allocator growth, compilation
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, out


def time_hvp_modes(fmodel: FunctionalModel, params: Params, inputs: torch.Tensor, targets: torch.Tensor,
                   pairs: Sequence[Sequence[int]], *, field: UpdateField, chunk_size: int | None = None,
                   groups: Sequence[Sequence[int]] | None = None, modes: Sequence[str] = AUTO_MODES,
                   repeats: int = 2) -> tuple[list[ModeTiming], float]:
    """Time the kernel on ``pairs`` with each of ``modes`` (``forward`` first, as the reference); returns
    the timings and seconds per example gradient (all examples' gradients in one vmapped call). The
    examples' fields are computed once, outside the timed calls, so a call's time is its HVPs and
    their accumulation."""
    device = next(iter(params.values())).device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    n_grad = inputs.shape[0]
    # the examples' gradients batched like the HVPs (one vmapped call), so that the ratio compares like with like
    s_grads, fields = _best_seconds(lambda: compute_example_fields(fmodel, params, inputs, targets, field=field,
                                                                   chunk_size=max(n_grad, 1)), 1, sync)
    example_fields = ExampleFields(fields.gradients, fields.losses, fields.fields)
    pair_t = torch.as_tensor(pairs, dtype=torch.long)
    n_hvps = 2 * pair_t.shape[0]
    ordered = ["forward", *[m for m in modes if m != "forward"]]
    timings: list[ModeTiming] = []
    reference = None
    tol = tolerance_of(next(iter(params.values())).dtype)
    for mode in ordered:
        if mode not in HVP_MODES:
            raise ValueError(f"unknown HVP mode {mode!r}")
        if mode != "forward" and not field.linear:
            timings.append(ModeTiming(mode, float("nan"), float("nan"), float("nan"), False,
                                      f"needs a field linear in the gradient; {field.name!r} is not"))
            continue

        def call(mode: str = mode) -> torch.Tensor:
            return bracket_kernel(fmodel, params, inputs, targets, pair_t, field=field, chunk_size=chunk_size,
                                  example_fields=example_fields, groups=groups, hvp=mode).brackets
        try:
            seconds, out = _best_seconds(call, repeats, sync)
        except Exception as exc:  # noqa: BLE001 - a mode this torch cannot run is reported, never chosen
            if mode == "forward":  # the reference: its failure is the caller's error
                raise
            timings.append(ModeTiming(mode, float("nan"), float("nan"), float("nan"), False,
                                      (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]))
            continue
        if reference is None:
            reference = out.clone()
        scale = float(reference.abs().max()) or 1.0
        deviation = float((out - reference).abs().max()) / scale
        timings.append(ModeTiming(mode, seconds, seconds / max(n_hvps, 1), deviation, deviation <= tol))
    return timings, s_grads / max(n_grad, 1)


def fastest_agreeing(timings: Sequence[ModeTiming]) -> str:
    """The mode with the fewest seconds among those that agree with ``forward`` (``forward`` itself if none)."""
    agreeing = [t for t in timings if t.agrees]
    return min(agreeing, key=lambda t: t.seconds).mode if agreeing else "forward"
