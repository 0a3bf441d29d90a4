"""A sweep's grid: its examples (dataset indices) and its pairs in the canonical order. Pure.

Canonical pair order: for ``pairs.mode=all``, all (examples[a], examples[b]) with a < b in
row-major order of example positions; for ``pairs.mode=list``, the list as given. The store's
layout cuts that order into tasks (:meth:`storage.layout.StoreLayout.tasks`).
"""

from __future__ import annotations

import itertools
from typing import Sequence

from lie_sweep.errors import ConfigError, require_indices
from storage.errors import brief

__all__ = ["canonical_pairs", "example_indices"]


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
