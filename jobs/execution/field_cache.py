"""A worker's example cache: per example of the current checkpoint, its input, target, loss, gradient
g_x, field u_x and per-tensor gradient RMS, kept least-recently-used within a byte budget.

A task needs only the examples of its own pairs (a few blocks), so a worker never holds all E
examples' fields: peak memory grows with the tile and D, not with E. Consecutive tasks of a
tile-major order share blocks, so most lookups hit. The budget counts the two parameter-sized rows
(gradient and field) of each entry; the default is a quarter of the worker's memory share
(:func:`jobs.planning.memory.worker_memory`), ``cluster.cache_gib`` overrides it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

__all__ = ["ExampleRows", "FieldCache"]


@dataclass
class ExampleRows:
    """Stacked rows of some examples (positions), in the order asked for."""

    positions: list[int]
    inputs: torch.Tensor
    targets: torch.Tensor
    losses: torch.Tensor
    gradients: torch.Tensor
    fields: torch.Tensor
    grad_rms: torch.Tensor


class FieldCache:
    """LRU cache of example rows at one checkpoint; ``compute(positions)`` fills misses in one batch."""

    def __init__(self, budget_bytes: int, compute: Callable[[list[int]], ExampleRows]) -> None:
        self.budget = int(budget_bytes)
        self.compute = compute
        self.entries: "OrderedDict[int, tuple[torch.Tensor, ...]]" = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget every entry (a new checkpoint)."""
        self.entries.clear()
        self.bytes = 0

    @staticmethod
    def _size(entry: tuple[torch.Tensor, ...]) -> int:
        return entry[3].numel() * entry[3].element_size() * 2  # gradient and field rows

    def rows(self, positions: Sequence[int]) -> ExampleRows:
        """Rows of ``positions`` (computing the missing ones); entries past the budget are evicted after
        the rows are stacked, least recently used first, so one task's rows are always complete."""
        positions = [int(p) for p in positions]
        missing = [p for p in positions if p not in self.entries]
        self.hits += len(positions) - len(missing)
        self.misses += len(missing)
        if missing:
            new = self.compute(missing)
            for k, p in enumerate(missing):
                entry = (new.inputs[k], new.targets[k], new.losses[k], new.gradients[k].clone(),
                         new.fields[k].clone(), new.grad_rms[k])
                self.entries[p] = entry
                self.bytes += self._size(entry)
            del new
        for p in positions:
            self.entries.move_to_end(p)
        got = [self.entries[p] for p in positions]
        out = ExampleRows(positions, *(torch.stack([e[k] for e in got]) for k in range(6)))
        keep = set(positions)
        for p in list(self.entries):
            if self.bytes <= self.budget:
                break
            if p not in keep:
                self.bytes -= self._size(self.entries.pop(p))
        return out
