"""``lie-sweep check``: verify every completed task's data; clear the marks of what is damaged.

For each task with a completion mark: its shard files exist, every chunk decodes (CRC32C checksums
catch truncated and flipped bytes), and every value is finite. A damaged task's files are removed
and its mark cleared, so the next ``resume`` recomputes exactly those tasks.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from storage.errors import first_line
from storage.store import SweepStore

from .plan import Task, make_plan

__all__ = ["check_store"]


def _read_problem(read: Callable[[], Any]) -> str | None:
    try:
        values = np.asarray(read())
    except Exception as exc:  # noqa: BLE001 - any decode failure is damage
        return f"unreadable ({first_line(exc, 80)})"
    if not np.isfinite(values).all():
        return f"{int((~np.isfinite(values)).sum())} NaN/Inf value(s)"
    return None


def _task_problems(store: SweepStore, task: Task) -> tuple[list[str], list[str]]:
    g = store.group
    problems, files = [], [store.bracket_shard_path(task.checkpoint, task.start)]
    if not store.exists(files[0]):
        problems.append("brackets shard missing")
    else:
        p = _read_problem(lambda: g["brackets"][task.checkpoint, task.start:task.stop, :])
        if p:
            problems.append(f"brackets shard {p}")
    if task.writes_examples:
        ex_files = store.example_paths(task.checkpoint)
        files += ex_files
        for name, path, read in (("gradients", ex_files[0], lambda: g["gradients"][task.checkpoint]),
                                 ("losses", ex_files[1], lambda: g["losses"][task.checkpoint])):
            if not store.exists(path):
                problems.append(f"{name} missing")
            else:
                p = _read_problem(read)
                if p:
                    problems.append(f"{name} {p}")
    return problems, files


def check_store(path: str, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check every completed task of the store at ``path``; returns {checked, damaged: [...]}."""
    store = SweepStore.open(path, mode="r+")
    store.acquire_lock("check")
    try:
        layout = store.layout
        tasks = make_plan(layout.n_checkpoints, layout.n_pairs, layout.pairs_per_task)
        done = store.done_tasks()
        steps = [int(s) for s in store.group["steps"][:]]
        damaged = []
        for task in tasks:
            if task.task_id not in done:
                continue
            problems, files = _task_problems(store, task)
            if problems:
                store.discard_files(files)
                store.clear_mark(task.task_id)
                damaged.append({"task_id": task.task_id, "step": steps[task.checkpoint],
                                "pairs": [task.start, task.stop], "problems": problems})
                log(f"damaged task {task.task_id} (step {steps[task.checkpoint]}, pairs {task.start}-{task.stop}): "
                    f"{'; '.join(problems)}; mark cleared")
        return {"checked": len(done), "damaged": damaged}
    finally:
        store.release()
