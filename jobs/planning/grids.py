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
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from lie_sweep.errors import ConfigError, require_indices
from storage.errors import brief
from storage.registry import Registry
from storage.scores import SCORES

__all__ = ["GridInput", "GridContext", "GridKind", "GRIDS", "canonical_pairs", "pairs_of", "positions_of",
           "example_indices", "all_pairs", "cross_pairs", "tournament_pairs", "tile_order", "listed_pairs",
           "top_pairs", "partner_counts"]


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
    column = SCORES[by].pair_column
    values = np.asarray(table[column], dtype=np.float64)
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


@dataclass(frozen=True)
class GridInput:
    """What a grid's pairs are built from: the sweep's examples (dataset indices; for ``cross`` the
    ``n_probes`` probes first, then the pool members that are not probes) and the ``pairs.*`` settings
    (``pool``: the pool's positions; ``explicit``: the pairs of ``list`` and ``top`` as dataset indices)."""

    examples: list[int]
    block: int = 8
    rounds: int = 2
    group: int = 16
    seed: int = 0
    n_probes: int = 0
    pool: list[int] = field(default_factory=list)
    explicit: list = field(default_factory=list)


def _as_given(grid: GridInput, pairs_cfg: Any, context: "GridContext") -> GridInput:
    return grid


@dataclass(frozen=True)
class GridContext:
    """What a grid's ``prepare`` may consult: the dataset's length and the sweep's storage options (to read
    another store)."""

    dataset_length: int
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridKind:
    """A pair grid (``pairs.mode``): ``positions(grid)`` gives its pairs as (P, 2) positions into
    ``grid.examples`` in the canonical order; ``prepare(grid, pairs_cfg, context)`` may change the examples
    first (``cross`` appends the pool, ``top`` takes another store's examples); ``check(pairs_cfg)`` refuses
    settings that only make sense together (one error line)."""

    name: str
    help: str
    positions: Callable[[GridInput], np.ndarray]
    prepare: Callable[[GridInput, Any, GridContext], GridInput] = _as_given
    check: Callable[[Any], None] = lambda pairs_cfg: None


def positions_of(examples: Sequence[int], pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Pairs of dataset indices as (P, 2) positions into ``examples``."""
    where = {e: k for k, e in enumerate(examples)}
    return np.asarray([(where[i], where[j]) for i, j in pairs], dtype=np.int64).reshape(-1, 2)


def _listed_positions(grid: GridInput) -> np.ndarray:
    return positions_of(grid.examples, listed_pairs(grid.examples, grid.explicit))


def _check_list(pc: Any) -> None:
    pairs = [list(p) for p in pc.list]
    if not pairs or any(len(p) != 2 or p[0] == p[1] for p in pairs):
        raise ConfigError("bad value for pairs.list", expected="a non-empty list of [i, j] with i != j",
                          found=str(pairs)[:80], fix="e.g. pairs.list=[[0,1],[2,5]]")


def _prepare_list(grid: GridInput, pc: Any, context: GridContext) -> GridInput:
    return replace(grid, explicit=[list(p) for p in pc.list])


def _prepare_cross(grid: GridInput, pc: Any, context: GridContext) -> GridInput:
    members = example_indices(pc.pool.mode, count=pc.pool.count, start=pc.pool.start, indices=list(pc.pool.indices),
                              dataset_length=context.dataset_length, what="pairs.pool")
    probes = set(grid.examples)
    examples = grid.examples + [m for m in dict.fromkeys(members) if m not in probes]
    where = {e: k for k, e in enumerate(examples)}
    pool = [where[m] for m in dict.fromkeys(members)]
    return replace(grid, examples=examples, n_probes=len(grid.examples), pool=pool)


def _check_cross(pc: Any) -> None:
    if pc.pool.mode == "list" and not list(pc.pool.indices):
        raise ConfigError("missing value for pairs.pool.indices", expected="the pool's dataset indices",
                          found="none", fix="add pairs.pool.indices=[...] or use pairs.pool.count=N")


def _prepare_top(grid: GridInput, pc: Any, context: GridContext) -> GridInput:
    """``pairs.top.k`` pairs of the store ``pairs.top.store`` ranked by ``pairs.top.by`` (see :func:`top_pairs`);
    the examples are those they involve."""
    from storage.reader import open_sweep

    top = pc.top
    frame = open_sweep(str(top.store), storage_options=context.storage_options or None).table("pairs")
    if frame.empty:
        raise ConfigError("the source store has no computed pairs", expected=f"completed tasks in {top.store}",
                          found="an empty pairs table", fix="finish that sweep first (lie-sweep resume)")
    explicit = top_pairs({k: frame[k].to_numpy() for k in frame.columns}, int(top.k), str(top.by))
    examples = sorted({k for pair in explicit for k in pair})
    require_indices(examples, context.dataset_length, fix="the source store's examples must be in this dataset")
    return replace(grid, examples=examples, explicit=explicit)


def _prepare_tournament(grid: GridInput, pairs_cfg: Any, context: GridContext) -> GridInput:
    """Refuse groups as large as the examples: every round would be every pair (the ``all`` grid, not a
    tournament)."""
    if grid.group >= len(grid.examples):
        raise ConfigError("the tournament's groups hold every example",
                          expected=f"pairs.group below the {len(grid.examples)} examples",
                          found=f"pairs.group={grid.group}", fix="use pairs=all for every pair, or lower pairs.group")
    return grid


def _top_positions(grid: GridInput) -> np.ndarray:
    return tile_order(positions_of(grid.examples, grid.explicit), grid.block)


def _check_top(pc: Any) -> None:
    if not pc.top.store:
        raise ConfigError("missing value for pairs.top.store", expected="the store whose top pairs to refine",
                          found="none", fix="add pairs.top.store=PATH (e.g. a storage.keep=summary sweep)")


GRIDS: Registry[GridKind] = Registry("pairs.mode", (
    GridKind("all", "every pair i < j of the examples, tile-major over blocks of pairs.block",
             lambda g: all_pairs(len(g.examples), g.block)),
    GridKind("cross", "every (probe, pool member): probes are examples.*, the pool pairs.pool.*",
             lambda g: cross_pairs(g.n_probes, list(g.pool), g.block), prepare=_prepare_cross, check=_check_cross),
    GridKind("tournament", "pairs.rounds seeded permutations cut into groups of pairs.group, all pairs inside each "
                           "group: about E*rounds*(group-1)/2 pairs",
             lambda g: tournament_pairs(len(g.examples), g.rounds, g.group, g.seed), prepare=_prepare_tournament),
    GridKind("top", "the pairs.top.k pairs of the store pairs.top.store with the largest pairs.top.by",
             _top_positions, prepare=_prepare_top, check=_check_top),
    GridKind("list", "an explicit list of [i, j] pairs of dataset indices (pairs.list)", _listed_positions,
             prepare=_prepare_list, check=_check_list),
), what="pair grid", error=ConfigError)


def canonical_pairs(examples: Sequence[int], mode: str = "all", explicit: Sequence[Sequence[int]] = (), *,
                    block: int = 8, rounds: int = 2, group: int = 16, seed: int = 0, n_probes: int = 0,
                    pool: Sequence[int] = ()) -> list[tuple[int, int]]:
    """Pairs of dataset indices in the canonical order of grid ``mode`` (:data:`GRIDS`; see the module
    docstring), from the fields of :class:`GridInput`."""
    grid = GridInput(list(examples), block=block, rounds=rounds, group=group, seed=seed, n_probes=n_probes,
                     pool=list(pool), explicit=[list(p) for p in explicit])
    return pairs_of(GRIDS[mode], grid)


def pairs_of(kind: GridKind, grid: GridInput) -> list[tuple[int, int]]:
    """``kind``'s pairs over ``grid`` as dataset indices, in its canonical order."""
    pos = kind.positions(grid)
    ex = np.asarray(grid.examples, dtype=np.int64)
    return [(int(i), int(j)) for i, j in ex[pos].tolist()] if len(pos) else []
