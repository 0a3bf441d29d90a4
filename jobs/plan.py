"""The plan: a pure, deterministic function from a sweep's grid to an ordered list of tasks.

Canonical pair order: for ``pairs.mode=all``, all (examples[a], examples[b]) with a < b in
row-major order of example positions; for ``pairs.mode=list``, the list as given. A task is one
checkpoint × one contiguous range of ``per_task`` pairs of that order (the last range may be
shorter), so the range size fixes the store's shard shape. Tasks are ordered checkpoint by
checkpoint; task ids are their positions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

from lie_sweep.errors import ConfigError, require_indices
from storage.errors import brief

__all__ = ["Task", "canonical_pairs", "make_plan", "example_indices"]


@dataclass(frozen=True)
class Task:
    """Checkpoint ``checkpoint`` (position in the sweep's list) × pairs [start, stop) of the canonical order."""

    task_id: int
    checkpoint: int
    start: int
    stop: int

    @property
    def n_pairs(self) -> int:
        """Pairs in this task."""
        return self.stop - self.start

    @property
    def writes_examples(self) -> bool:
        """The first task of a checkpoint also stores that checkpoint's gradients and losses."""
        return self.start == 0


def example_indices(mode: str, *, count: int = 0, start: int = 0, indices: Sequence[int] = (),
                    dataset_length: int | None = None) -> list[int]:
    """The sweep's examples as dataset indices (``first``: start..start+count-1; ``list``: as given)."""
    out = list(range(start, start + count)) if mode == "first" else [int(i) for i in indices]
    if dataset_length is not None:
        require_indices(out, dataset_length, fix="pick examples within the dataset (examples.*)")
    return out


def canonical_pairs(examples: Sequence[int], mode: str = "all",
                    explicit: Sequence[Sequence[int]] = ()) -> list[tuple[int, int]]:
    """Pairs of dataset indices in the canonical order (see the module docstring)."""
    if mode == "all":
        return [(examples[a], examples[b]) for a, b in itertools.combinations(range(len(examples)), 2)]
    members = set(examples)
    out, seen = [], set()
    for i, j in explicit:
        i, j = int(i), int(j)
        for k in (i, j):
            if k not in members:
                raise ConfigError("pair names an example outside the sweep",
                                  expected=f"indices among the sweep's examples ({brief(list(examples))})",
                                  found=str(k), fix="add it to examples.* or drop the pair")
        key = (min(i, j), max(i, j))
        if key in seen:
            raise ConfigError("pair listed twice", expected="each unordered pair once", found=str([i, j]),
                              fix="deduplicate pairs.list; [u_j,u_i] = -[u_i,u_j]")
        seen.add(key)
        out.append((i, j))
    return out


def make_plan(n_checkpoints: int, n_pairs: int, per_task: int) -> list[Task]:
    """Tasks checkpoint by checkpoint, each ``per_task`` consecutive pairs (the last may be fewer)."""
    if per_task < 1:
        raise ConfigError("bad value for pairs.per_task", expected="a positive integer", found=str(per_task),
                          fix="set pairs.per_task to 1 or more")
    tasks = []
    for c in range(n_checkpoints):
        for start in range(0, n_pairs, per_task):
            tasks.append(Task(len(tasks), c, start, min(start + per_task, n_pairs)))
    return tasks
