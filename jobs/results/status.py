"""``lie-sweep status``: tasks done / failed / pending per checkpoint, failures, disk, throughput, ETA."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from storage.store import SweepStore

from jobs.units import format_bytes, format_seconds

__all__ = ["sweep_status", "format_status"]


def sweep_status(path: str) -> dict[str, Any]:
    """A JSON-ready account of a store (reads marks, failures and run records; no array data)."""
    store = SweepStore.open(path, mode="r")
    layout = store.layout
    tasks = layout.tasks()
    done, failures = store.ledger.done_tasks(), store.ledger.failures()
    steps = store.steps
    per_ckpt = []
    for c, step in enumerate(steps):
        mine = [t for t in tasks if t.checkpoint == c]
        n_done = sum(t.task_id in done for t in mine)
        n_failed = sum(t.task_id in failures and t.task_id not in done for t in mine)
        per_ckpt.append({"step": step, "tasks": len(mine), "done": n_done, "failed": n_failed,
                         "pending": len(mine) - n_done - n_failed})
    pairs_done = sum(t.n_pairs for t in tasks if t.task_id in done)
    pairs_total = layout.n_checkpoints * layout.n_pairs
    item = np.dtype(store.meta.dtype).itemsize
    store.fs.invalidate_cache(store.root)
    raw_written = _values_written(store, tasks) * item
    on_disk = store.array_bytes_on_disk([*store.pair_arrays, *(["swaps"] if layout.keeps_swaps else []),
                                         "gradients", "losses"])
    now = time.time()
    runs = store.ledger.runs()
    pairs_by_run: dict[int, int] = {}
    for tid, mark in done.items():
        pairs_by_run[mark.get("run", 0)] = pairs_by_run.get(mark.get("run", 0), 0) + tasks[tid].n_pairs
    seconds = sum(r.get("seconds", now - r.get("started", now)) - r.get("startup_s", 0.0) for r in runs.values())
    computed = sum(pairs_by_run.get(k, 0) for k in runs)
    rate = computed / seconds if seconds > 0 else None
    holder = store.ledger.lock_holder()
    return {
        "store": path,
        "state": "running" if holder else ("complete" if len(done) == len(tasks) else
                                           ("failed" if failures else "incomplete")),
        "driver": holder,
        "tasks": {"total": len(tasks), "done": len(done), "failed": sum(1 for k in failures if k not in done),
                  "pending": len(tasks) - len(done) - sum(1 for k in failures if k not in done)},
        "pairs": {"total": pairs_total, "done": pairs_done},
        "checkpoints": per_ckpt,
        "failures": [{"task_id": k, "step": steps[f["checkpoint"]], "pairs": [f["start"], f["stop"]],
                      "attempts": f.get("attempts"), "error": f.get("error"), "log": f.get("log")}
                     for k, f in sorted(failures.items()) if k not in done],
        "bytes_on_disk": store.bytes_on_disk(),   # the whole store: arrays, tables, ledger
        "array_bytes_on_disk": on_disk,           # parameter-sized arrays and losses: what the ratio is about
        "raw_bytes_written": raw_written,
        "compression_ratio": raw_written / on_disk if on_disk and raw_written else None,
        "runs": len(runs),
        "pairs_per_second": rate,
        "eta_seconds": (pairs_total - pairs_done) / rate if rate else None,
    }


def _values_written(store: SweepStore, tasks: list) -> int:
    """Values held by the array files present (done or not): each pair-array shard its task's pairs × D, each
    example block's gradients and losses; the compression ratio is this over their bytes on disk."""
    layout = store.layout
    files = set(store.fs.find(store.root))
    written = 0
    for t in tasks:
        for key, path in store.files_of(t).items():
            if path not in files:
                continue
            kind, _, block = key.partition(" ")
            if kind in store.pair_arrays or kind == "swaps":       # one shard: the task's pairs (one step size)
                written += t.n_pairs * layout.n_params
            elif kind == "gradients":                              # an example block's gradients and losses
                start, stop = layout.block_range(int(block or 0))
                written += (stop - start) * (layout.n_params + 1)
    return written


def format_status(st: dict[str, Any]) -> str:
    """The human-readable form of :func:`sweep_status`'s account."""
    t, p = st["tasks"], st["pairs"]
    lines = [f"store      {st['store']}  [{st['state']}]"]
    if st["driver"]:
        d = st["driver"]
        lines.append(f"driver     `{d.get('command')}` pid {d.get('pid')} on {d.get('host')}")
    lines.append(f"tasks      {t['done']} done, {t['failed']} failed, {t['pending']} pending, of {t['total']}")
    lines.append(f"pairs      {p['done']} of {p['total']} computed")
    ratio = (f"; parameter-sized arrays and losses {format_bytes(st['array_bytes_on_disk'])} (compression ratio "
             f"{st['compression_ratio']:.2f}x)" if st["compression_ratio"] else "")
    lines.append(f"disk       {format_bytes(st['bytes_on_disk'])} in all{ratio}")
    rate = st["pairs_per_second"]
    if rate:
        eta = "done" if st["eta_seconds"] == 0 else format_seconds(st["eta_seconds"])
        lines.append(f"throughput {rate:.1f} pairs/s over {st['runs']} run(s); time left {eta}")
    lines += ["", f"{'step':>8} {'done':>6} {'failed':>7} {'pending':>8}"]
    for c in st["checkpoints"]:
        lines.append(f"{c['step']:>8} {c['done']:>6} {c['failed']:>7} {c['pending']:>8}")
    for f in st["failures"]:
        lines.append(f"FAILED task {f['task_id']} (step {f['step']}, pairs {f['pairs'][0]}-{f['pairs'][1]}): "
                     f"{f['error']}  [{f['log']}]")
    return "\n".join(lines)
