"""The one definition of a sweep's throughput and compression, used by ``run``'s and ``resume``'s account,
``status``, ``show`` and the page. Reads marks, run records and file sizes; no array data, no torch.

* **throughput** = pairs computed ÷ seconds of computing them: per run, its pairs over its seconds after its
  workers were ready (Ray's start, worker processes, model and data excluded: ``startup_s`` of its record);
  over a store, the sums over its runs;
* **compression** = the bytes the parameter-sized arrays and losses hold, uncompressed, in the files present
  (each pair-array shard: its task's pairs × D values; each example block: its gradients and losses) ÷ those
  files' bytes on disk. Tables, the ledger and metadata are not in it (``bytes_on_disk`` counts them), nor are
  the sketches (``storage.sketch``: :func:`sketch_bytes`, reported beside it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .store import SweepStore

__all__ = ["Throughput", "Compression", "pairs_per_second", "throughput", "compression", "sketch_bytes", "sketch_note"]


def pairs_per_second(pairs: int, seconds: float, startup_s: float = 0.0) -> float | None:
    """``pairs`` over ``seconds`` less ``startup_s`` (None when nothing was computed or no time passed)."""
    busy = seconds - startup_s
    return pairs / busy if pairs and busy > 0 else None


@dataclass
class Throughput:
    """A store's computed pairs, the seconds spent computing them (over its runs), and their ratio."""

    pairs: int
    seconds: float
    runs: int

    @property
    def pairs_per_second(self) -> float | None:
        """pairs ÷ seconds (None: nothing computed yet)."""
        return pairs_per_second(self.pairs, self.seconds)


@dataclass
class Compression:
    """The uncompressed bytes of the parameter-sized arrays and losses in the files present, their bytes on
    disk, and the ratio."""

    raw_bytes: int
    bytes_on_disk: int

    @property
    def ratio(self) -> float | None:
        """raw ÷ on disk (None: nothing written yet)."""
        return self.raw_bytes / self.bytes_on_disk if self.raw_bytes and self.bytes_on_disk else None


def throughput(store: "SweepStore") -> Throughput:
    """Pairs of completed tasks per run record, over the runs' seconds after start-up (a run still going: its
    seconds so far)."""
    tasks, done, runs, now = store.layout.tasks(), store.ledger.done_tasks(), store.ledger.runs(), time.time()
    by_run: dict[int, int] = {}
    for tid, mark in done.items():
        by_run[mark.get("run", 0)] = by_run.get(mark.get("run", 0), 0) + tasks[tid].n_pairs
    seconds = sum(r.get("seconds", now - r.get("started", now)) - r.get("startup_s", 0.0) for r in runs.values())
    return Throughput(sum(by_run.get(k, 0) for k in runs), max(seconds, 0.0), len(runs))


def compression(store: "SweepStore") -> Compression:
    """See the module docstring."""
    layout = store.layout
    item = np.dtype(store.meta.dtype).itemsize
    store.fs.invalidate_cache(store.root)
    files = set(store.fs.find(store.root))
    values = 0
    for task in layout.tasks():
        for key, path in store.files_of(task).items():
            if path not in files:
                continue
            kind, _, block = key.partition(" ")
            if kind in store.pair_arrays or kind == "swaps":       # one shard: the task's pairs (one step size)
                values += task.n_pairs * layout.n_params
            elif kind == "gradients":                              # an example block's gradients and losses
                start, stop = layout.block_range(int(block or 0))
                values += (stop - start) * (layout.n_params + 1)
    arrays = [*store.pair_arrays, *(["swaps"] if layout.keeps_swaps else []), "gradients", "losses"]
    return Compression(values * item, store.array_bytes_on_disk(arrays))


def sketch_bytes(store: "SweepStore") -> int:
    """The bytes on disk of the store's sketch arrays (``sketch_*``; 0 without storage.sketch)."""
    names = [f"sketch_{n}" for n in store.layout.sketched]
    return store.array_bytes_on_disk(names) if names else 0


def sketch_note(store: "SweepStore") -> str:
    """``"; sketches (k=256) 1.2 MiB"`` for a sketched store, ``""`` otherwise: what accounts add to their disk line."""
    from .units import format_bytes

    if not store.layout.sketch_k:
        return ""
    return f"; sketches (k={store.layout.sketch_k}) {format_bytes(sketch_bytes(store))}"
