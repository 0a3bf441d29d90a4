"""What a task stores, computed and ready to write, and the writing of it (its arrays, then its table parts,
then the digests its completion mark records)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from storage.layout import Task
from storage.store import SweepStore

from .phase_clock import PhaseClock

__all__ = ["Computed", "write_task"]


@dataclass
class Computed:
    """A task's results, computed and ready to write (numpy; parameter-sized arrays on the kept tensors)."""

    values: np.ndarray | None
    pair_values: dict[str, np.ndarray]       # order1, order2 and a registered effect's arrays (kept tensors)
    logits: np.ndarray | None
    tables: dict[str, dict]
    norms: list[float]
    examples: int
    loads: int
    swaps: tuple[np.ndarray | None, np.ndarray | None] | None = None   # (swaps, swap logit deltas): effect swap
    sketches: dict[str, np.ndarray] = field(default_factory=dict)   # storage.sketch: S·v of each result (all D)


def write_task(store: SweepStore, task: Task, out: Computed, clock: PhaseClock) -> dict[str, str]:
    """Write a task's arrays and table parts; the SHA-256 of every file written."""
    if out.values is not None:
        store.write_brackets(task.checkpoint, task.start, out.values)
    for name, array in out.pair_values.items():
        store.write_brackets(task.checkpoint, task.start, array, name)
    if out.swaps is not None:
        store.write_swaps(task.checkpoint, task.start, *out.swaps)
    if out.sketches:
        store.write_sketches(task, out.sketches, {})
    clock.lap("write_arrays_s")
    if out.logits is not None:
        store.write_logit_deltas(task.checkpoint, task.start, out.logits)
    for name, columns in out.tables.items():
        store.write_table_part(name, task.checkpoint, task.task_id, columns)
    clock.lap("write_tables_s")
    files = store.digests(list(store.files_of(task).values()))
    clock.lap("digests_s")
    return files
