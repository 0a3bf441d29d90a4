"""``lie-sweep run``: config → prepared sweep → store → plan → Ray execution → account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from storage.store import SweepStore

from .config import load_config
from .driver import RunReport, execute
from .plan import make_plan
from .sweep import SweepSpec, prepare_sweep

__all__ = ["run_sweep", "RunResult", "format_summary"]


@dataclass
class RunResult:
    spec: SweepSpec
    store: SweepStore
    report: RunReport
    n_tasks: int


def run_sweep(overrides: Sequence[str] = (), *, log: Callable[[str], None] = print, progress_stream=None) -> RunResult:
    """Run a new sweep from config overrides; the store must not exist unless storage.overwrite=true."""
    cfg = load_config(overrides)
    spec = prepare_sweep(cfg, log=log)
    layout = spec.layout()
    tasks = make_plan(layout.n_checkpoints, layout.n_pairs, layout.pairs_per_task)
    store = SweepStore.create(spec.store_path, layout=layout, meta=spec.store_meta(len(tasks)),
                              pairs=np.asarray(spec.pairs, dtype=np.int64).reshape(-1, 2), examples=spec.examples,
                              steps=[c["step"] for c in spec.checkpoints], dtype=cfg.precision,
                              codec=cfg.storage.codec, level=cfg.storage.level, overwrite=cfg.storage.overwrite)
    log(f"store: {spec.store_path} ({layout.n_checkpoints} checkpoints × {layout.n_pairs} pairs × "
        f"{layout.n_params} parameters; {len(tasks)} tasks of ≤ {layout.pairs_per_task} pairs)")
    report = execute(spec, store, tasks, log=log, progress_stream=progress_stream)
    return RunResult(spec=spec, store=store, report=report, n_tasks=len(tasks))


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def format_summary(result: RunResult, top: int = 8) -> str:
    """The run's account and a results table (per checkpoint, then the most order-sensitive pairs)."""
    spec, store, report = result.spec, result.store, result.report
    on_disk, raw = store.bytes_on_disk(), store.raw_bytes()
    rate = report.pairs_computed / report.seconds if report.seconds > 0 else float("nan")
    lines = [
        "",
        f"store        {spec.store_path}",
        f"tasks        {len(report.completed)} computed now, {report.skipped} already done, "
        f"{len(report.failures)} failed, of {result.n_tasks}",
        f"pairs        {report.pairs_computed} computed in {report.seconds:.1f} s ({rate:.1f} pairs/s, "
        f"{report.workers} worker(s))",
        f"disk         {_human(on_disk)} on disk for {_human(raw)} of raw brackets and gradients "
        f"(compression ratio {raw / max(on_disk, 1):.2f}x)",
    ]
    if report.completed:
        steps = [c["step"] for c in spec.checkpoints]
        losses = np.asarray(store.group["losses"][:], dtype=np.float64)
        by_ckpt: dict[int, list[float]] = {}
        for r in report.completed:
            by_ckpt.setdefault(r["checkpoint"], []).extend(r["norms"])
        lines += ["", "per checkpoint (BatchNorm in eval mode)",
                  f"{'step':>8} {'mean loss':>10} {'mean |[u_i,u_j]|':>17} {'max |[u_i,u_j]|':>16}"]
        for c in sorted(by_ckpt):
            norms = np.asarray(by_ckpt[c])
            lines.append(f"{steps[c]:>8} {losses[c].mean():>10.4f} {norms.mean():>17.4e} {norms.max():>16.4e}")
        last = max(by_ckpt)
        rows = sorted(((n, p) for r in report.completed if r["checkpoint"] == last
                       for p, n in zip(range(r["start"], r["stop"]), r["norms"])), reverse=True)[:top]
        lines += ["", f"most order-sensitive pairs at step {steps[last]} "
                      f"(theta_ij - theta_ji ~ lr^2 [u_i,u_j])", f"{'i':>6} {'j':>6} {'|[u_i,u_j]|':>12}"]
        for n, p in rows:
            i, j = spec.pairs[p]
            lines.append(f"{i:>6} {j:>6} {n:>12.4e}")
    for f in report.failures:
        lines.append(f"FAILED task {f['task_id']} (checkpoint {f['checkpoint']}, pairs {f['start']}-{f['stop']}, "
                     f"{f['attempts']} attempt(s)): {f['error']}")
    lines += ["", f"read it: python -c \"import lie_sweep; s = lie_sweep.open_sweep('{spec.store_path}'); print(s)\""]
    return "\n".join(lines)
