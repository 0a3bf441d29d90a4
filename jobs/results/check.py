"""``lie-sweep check``: verify every completed task's data; clear the marks of what is damaged.

For each task with a completion mark:

1. every file it wrote still has the bytes it had when the task completed: the SHA-256 recorded in
   the mark (schema ≥ 3) is compared with the file's, so any change after completion is found,
   also one made through zarr that rewrote a chunk with a valid checksum;
2. its shard, chunk and table files exist; a file whose digest no longer matches, or that has none (marks from
   before schema 3), is decoded in full (CRC32C checksums catch truncated and flipped bytes; Parquet its own
   footer and page checks);
3. in those, every value is finite (NaN is allowed in tables, where it marks an undefined fit).

A file whose SHA-256 still matches its mark holds exactly the bytes its task wrote after checking them finite,
so it is not decoded again: hashing reads ~1 GB/s, decoding and scanning a third of that (a 10⁶-pair store's
613 MiB: 7.0 s decoded, ~1.5 s hashed; benchmarks/README.md, *Commands on large stores*).

A damaged task's files are removed and its mark cleared, so the next ``resume`` recomputes exactly
those tasks (deterministically: to the same bytes on the same machine and software).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from storage.errors import first_line
from storage.layout import Task
from storage.store import SweepStore


__all__ = ["check_store"]


def _read_problem(read: Callable[[], Any]) -> str | None:
    try:
        values = np.asarray(read())
    except Exception as exc:  # noqa: BLE001 - any decode failure is damage
        return f"unreadable ({first_line(exc, 80)})"
    if not np.isfinite(values).all():
        return f"{int((~np.isfinite(values)).sum())} NaN/Inf value(s)"
    return None


def _task_problems(store: SweepStore, task: Task, mark: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, files) of one task: every file it owns read back in full, then its digests compared with
    its mark's (a file already found damaged is reported once)."""
    g, c, rows = store.group, task.checkpoint, slice(task.start, task.stop)
    reads: dict[str, Callable[[], Any]] = {
        "brackets": lambda: g["brackets"][c, rows, :], "logit_deltas": lambda: g["logit_deltas"][c, rows],
        "gram": lambda: g["gram"][c], "swap_logit_deltas": lambda: g["swap_logit_deltas"][c, :, rows]}
    for name in ("order1", "order2", *store.layout.effect_arrays):      # per-pair arrays sharded like brackets
        reads[name] = lambda name=name: g[name][c, rows, :]
    for name in store.layout.sketched:                                   # storage.sketch: S·v of each result
        reads[f"sketch {name}"] = (lambda name=name: g[f"sketch_{name}"][c, :, rows]) if name == "swaps" else \
            (lambda name=name: g[f"sketch_{name}"][c, rows])
    for k in range(len(store.layout.swap_epsilons)):                   # effect swap: a shard per step size
        reads[f"swaps {k}"] = lambda k=k: g["swaps"][c, k, rows, :]
    for block in task.example_blocks:
        start, stop = store.layout.block_range(block)
        reads[store.layout.block_key("gradients", block)] = lambda s=slice(start, stop): g["gradients"][c, s]
        reads[store.layout.block_key("losses", block)] = lambda s=slice(start, stop): g["losses"][c, s]
        reads[f"sketch gradients {block}"] = lambda s=slice(start, stop): g["sketch_gradients"][c, s]
    files = store.files_of(task)
    recorded = dict(mark.get("files") or {})
    changed = set(store.changed_files(recorded))
    problems, damaged = [], set()
    for what, path in files.items():
        rel = store.tree.relative(path)
        if not store.exists(path):
            p = "missing"
        elif rel in recorded and rel not in changed:
            continue  # the bytes its task wrote and checked
        else:
            p = _read_problem(reads.get(what) or (lambda path=path: _numeric_columns(store, path)))
        if p:
            problems.append(f"{what} {p}")
            damaged.add(rel)
    problems += [f"{rel} changed after completion" for rel in sorted(changed - damaged)]
    return problems, list(files.values())


def _numeric_columns(store: SweepStore, path: str) -> np.ndarray:
    """A table part's float columns, concatenated (NaN is a legitimate value there: undefined fits)."""
    from storage.tables import read_parts

    table = read_parts(store.fs, [path])
    cols = [np.asarray(table[name]) for name in table.column_names if table[name].type == "double"]
    return np.nan_to_num(np.concatenate(cols) if cols else np.zeros(0), nan=0.0)


def check_store(path: str, *, repair: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check every completed task of the store at ``path``; returns {checked, damaged: [...], repaired}. Only
    reads, unless ``repair``: then (holding the store's lock) each damaged task's files are removed and its
    completion mark cleared, so that the next ``resume`` recomputes exactly those tasks."""
    store = SweepStore.open(path, mode="r+" if repair else "r")
    if repair:
        store.ledger.acquire_lock("check")
    try:
        tasks = store.layout.tasks()
        done = store.ledger.done_tasks()
        steps = store.steps
        damaged = []
        for task in tasks:
            if task.task_id not in done:
                continue
            problems, files = _task_problems(store, task, done[task.task_id])
            if problems:
                if repair:
                    store.discard_files(files)
                    store.ledger.clear_mark(task.task_id)
                damaged.append({"task_id": task.task_id, "step": steps[task.checkpoint],
                                "pairs": [task.start, task.stop], "problems": problems})
                log(f"damaged task {task.task_id} (step {steps[task.checkpoint]}, pairs {task.start}-{task.stop}): "
                    f"{'; '.join(problems)}" + ("; mark cleared" if repair else ""))
        return {"checked": len(done), "damaged": damaged, "repaired": repair}
    finally:
        if repair:
            store.ledger.release()
