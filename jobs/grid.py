"""A sweep's grid: its examples (dataset indices) and its pairs in the canonical order. Pure and seeded.

Pairs are built over example *positions* (0..E−1 in the sweep's example list) and returned as
dataset indices. Examples are cut into blocks of ``pairs.block`` positions; a *tile* is the pairs
of one block A × one block B. The canonical order is tile-major wherever the grid allows, so that
the ``pairs.per_task`` consecutive pairs of one task touch a few blocks, never all E examples:

==============  ===========================================  ===================================
grid            pairs (E examples)                           canonical order
==============  ===========================================  ===================================
``all``         every i < j: E(E−1)/2                        tiles (A ≤ B) row-major; inside a
                                                             tile, i then j ascending
``cross``       every (a, b), a a probe (``examples.*``), b  pool blocks in order; inside one,
                in the pool (``pairs.pool.*``), a ≠ b:       probe then pool member
                about probes × pool
``tournament``  ``rounds`` r seeded permutations cut into    round, group, then i < j inside the
                groups of ``group`` b, all pairs inside a    group; a pair drawn twice is kept
                group: about E·r·(b−1)/2                     where it was drawn first
``top``         the K pairs of another store with the        tile-major over the examples they
                largest norm, c or logit RMS                 involve
``list``        as given                                     as given
==============  ===========================================  ===================================
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from lie_sweep.errors import ConfigError, require_indices
from storage.errors import brief

__all__ = ["canonical_pairs", "example_indices", "all_pairs", "cross_pairs", "tournament_pairs", "tile_order",
           "listed_pairs", "top_pairs", "partner_counts", "TOP_SCORES"]

# what `pairs=top` ranks another store's pairs by (columns of its `pairs` table); c = exp(log_c)
TOP_SCORES = ("norm", "c", "logit_rms")


def example_indices(mode: str, *, count: int = 0, start: int = 0, indices: Sequence[int] = (),
                    dataset_length: int | None = None, what: str = "examples") -> list[int]:
    """The sweep's examples as dataset indices (``first``: start..start+count-1; ``list``: as given)."""
    out = list(range(start, start + count)) if mode == "first" else [int(i) for i in indices]
    if dataset_length is not None:
        require_indices(out, dataset_length, fix=f"pick examples within the dataset ({what}.*)")
    return out


def all_pairs(n: int, block: int) -> np.ndarray:
    """Every (p, q), p < q < n, tile-major (see the module docstring); (n(n−1)/2, 2) positions."""
    out = []
    for a in range(0, n, block):
        rows = np.arange(a, min(a + block, n))
        for b in range(a, n, block):
            cols = np.arange(b, min(b + block, n))
            p, q = np.meshgrid(rows, cols, indexing="ij")
            keep = p < q
            out.append(np.stack([p[keep], q[keep]], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), dtype=np.int64)


def cross_pairs(n_probes: int, pool: Sequence[int], block: int) -> np.ndarray:
    """(probe position, pool position) for every probe and pool member, pool block by pool block.

    ``pool`` are positions (a probe may also be in the pool: its pair with itself is dropped, and of
    (a, b) and (b, a) between two probes only the first is kept).
    """
    out, seen = [], set()
    for start in range(0, len(pool), block):
        for a in range(n_probes):
            for b in pool[start:start + block]:
                key = (min(a, b), max(a, b))
                if a != b and key not in seen:
                    seen.add(key)
                    out.append((a, b))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def tournament_pairs(n: int, rounds: int, group: int, seed: int) -> np.ndarray:
    """All pairs inside the groups of ``rounds`` seeded permutations of n positions cut into groups of
    ``group`` (the last group of a round may be smaller); each unordered pair once, where first drawn."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for _ in range(rounds):
        perm = rng.permutation(n)
        for start in range(0, n, group):
            for p, q in itertools.combinations(sorted(int(x) for x in perm[start:start + group]), 2):
                if (p, q) not in seen:
                    seen.add((p, q))
                    out.append((p, q))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def tile_order(pairs: np.ndarray, block: int) -> np.ndarray:
    """``pairs`` (positions) sorted tile-major: by (block of p, block of q, p, q); orientation kept."""
    if not len(pairs):
        return pairs
    p, q = pairs[:, 0], pairs[:, 1]
    return pairs[np.lexsort((q, p, q // block, p // block))]


def partner_counts(pairs: np.ndarray, n: int) -> np.ndarray:
    """How many pairs each of n positions is in."""
    return np.bincount(pairs.reshape(-1), minlength=n) if len(pairs) else np.zeros(n, dtype=np.int64)


def listed_pairs(examples: Sequence[int], explicit: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """An explicit list of dataset-index pairs, checked: each among the examples, each unordered pair once."""
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


def top_pairs(table: "dict[str, np.ndarray]", k: int, by: str) -> list[tuple[int, int]]:
    """The ``k`` pairs (i, j) of a store's ``pairs`` table with the largest score ``by`` (its largest over
    the store's checkpoints), best first; ties broken by the source's pair order."""
    if by not in TOP_SCORES:
        raise ConfigError("bad value for pairs.top.by", expected=" | ".join(TOP_SCORES), found=repr(by),
                          fix="set pairs.top.by=norm")
    column = "log_c" if by == "c" else by
    values = np.asarray(table[column], dtype=np.float64)
    if by == "c":
        values = np.exp(values)
    if np.isnan(values).all():
        raise ConfigError(f"the source store has no {by} values", expected=f"a store whose pairs table has {column}",
                          found="only missing values", fix="rank by norm (pairs.top.by=norm)")
    pair_ids = np.asarray(table["pair"], dtype=np.int64)
    best: dict[int, float] = {}
    ij: dict[int, tuple[int, int]] = {}
    for pid, i, j, v in zip(pair_ids.tolist(), table["i"].tolist(), table["j"].tolist(), values.tolist()):
        if not np.isnan(v) and v > best.get(pid, -np.inf):
            best[pid] = v
            ij[pid] = (int(i), int(j))
    order = sorted(best, key=lambda pid: (-best[pid], pid))[:k]
    return [ij[pid] for pid in order]


def canonical_pairs(examples: Sequence[int], mode: str = "all", explicit: Sequence[Sequence[int]] = (), *,
                    block: int = 8, rounds: int = 2, group: int = 16, seed: int = 0, n_probes: int = 0,
                    pool: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Pairs of dataset indices in the canonical order of grid ``mode`` (see the module docstring).

    ``examples``: the sweep's examples (for ``cross``, the ``n_probes`` probes first, then the pool
    members that are not probes; ``pool`` holds the pool's positions);
    ``explicit``: the pairs of ``list`` and of ``top`` (already ranked), as dataset indices.
    """
    if mode == "list":
        return listed_pairs(examples, explicit)
    n = len(examples)
    if mode == "all":
        pos = all_pairs(n, block)
    elif mode == "cross":
        pos = cross_pairs(n_probes, list(pool), block)
    elif mode == "tournament":
        pos = tournament_pairs(n, rounds, group, seed)
    elif mode == "top":
        where = {e: k for k, e in enumerate(examples)}
        pos = tile_order(np.asarray([(where[i], where[j]) for i, j in explicit], dtype=np.int64).reshape(-1, 2), block)
    else:
        raise ConfigError("bad value for pairs.mode", expected="all | cross | tournament | top | list",
                          found=repr(mode), fix="set pairs.mode=all")
    ex = np.asarray(examples, dtype=np.int64)
    return [(int(i), int(j)) for i, j in ex[pos].tolist()] if len(pos) else []
