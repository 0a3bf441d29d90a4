"""``lie-sweep status``: tasks done / failed / pending per checkpoint, failures, disk, throughput, ETA."""

from __future__ import annotations

from typing import Any

from storage.accounting import compression, throughput
from storage.store import SweepStore

from jobs.units import format_bytes, format_seconds

__all__ = ["sweep_status", "format_status"]


def sweep_status(path: str, index: tuple[str, dict] | None = None) -> dict[str, Any]:
    """A JSON-ready account of a store (reads marks, failures and run records; no array data); ``index``: the
    multirun directory and the job of its index the store is checked against
    (:func:`jobs.planning.multirun.check_job_store`)."""
    store = SweepStore.open(path, mode="r")
    if index is not None:
        from jobs.planning.multirun import check_job_store

        check_job_store(index[0], index[1], store.meta.identity)
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
    packed = compression(store)
    speed = throughput(store)
    rate = speed.pairs_per_second
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
        "array_bytes_on_disk": packed.bytes_on_disk,   # parameter-sized arrays and losses (storage.accounting)
        "raw_bytes_written": packed.raw_bytes,
        "compression_ratio": packed.ratio,
        "runs": speed.runs,
        "pairs_per_second": rate,
        "eta_seconds": (pairs_total - pairs_done) / rate if rate else None,
    }


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
