"""``cluster.warm_up``: a worker's first task computed once, unstored, before the worker is ready."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage.layout import Task

from .phase_clock import PhaseClock

__all__ = ["warm_up"]


def warm_up(worker: Any) -> None:
    """``cluster.warm_up``: the first task of the first checkpoint, computed in full (every effect, the tables)
    and thrown away before the worker is ready, outside every task's timed phases. The first calls' page
    faults and lazy initialisation, which made a worker's first task 2.6-6x its steady ones (4.0-10 s against
    1.5 s on the narrow MXResNet in tasks of 30 pairs, mostly the OS supplying ~1 GB of fresh pages), happen
    at start-up instead; they are moved, not avoided, so a sweep is no shorter (benchmarks/README.md:
    warm-up). Nothing is written or kept (the first task loads its checkpoint as before). Best effort: what
    fails here fails again, and is reported, in the task that meets it."""
    loads = worker.loads
    try:
        pairs = min(worker.layout.pairs_per_task, worker.layout.n_pairs)  # a whole task: the same buffers
        computed = worker._compute_task(Task(-1, 0, 0, pairs, ()), PhaseClock())
        for columns in computed.tables.values():
            pq.write_table(pa.table(dict(columns)), io.BytesIO(), compression="snappy")
        if worker._workspace is not None:
            worker._workspace.zero_()
    except Exception:  # noqa: BLE001 - best effort, see the docstring
        pass
    finally:
        worker.loaded, worker.state, worker.loads = None, None, loads
        worker.cache.clear()
