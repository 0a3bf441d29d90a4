import pytest

from jobs.planning.grids import canonical_pairs, example_indices
from lie_sweep.errors import ConfigError, ExampleIndexError


def test_canonical_pairs():
    assert canonical_pairs([4, 7, 9]) == [(4, 7), (4, 9), (7, 9)]
    assert canonical_pairs([4, 7, 9], "list", [[9, 4], [7, 9]]) == [(9, 4), (7, 9)]
    with pytest.raises(ConfigError, match="outside the sweep"):
        canonical_pairs([4, 7], "list", [[4, 5]])
    with pytest.raises(ConfigError, match="listed twice"):
        canonical_pairs([4, 7], "list", [[4, 7], [7, 4]])


def test_examples_and_range_checks():
    assert example_indices("first", count=3, start=5) == [5, 6, 7]
    assert example_indices("list", indices=[9, 2]) == [9, 2]
    with pytest.raises(ExampleIndexError, match="found 10"):
        example_indices("first", count=3, start=8, dataset_length=10)


def test_messages_show_a_long_example_list_as_a_range():
    with pytest.raises(ConfigError) as info:
        canonical_pairs(list(range(32)), "list", [[0, 99]])
    assert "0..31 (32 values)" in str(info.value) and "15, 16" not in str(info.value)


# -- the grids of large sweeps ---------------------------------------------------------------------------
import itertools  # noqa: E402

import numpy as np  # noqa: E402

from jobs.planning.grids import (all_pairs, cross_pairs, partner_counts, tile_order, top_pairs,  # noqa: E402
                       tournament_pairs)
from storage.layout import StoreLayout  # noqa: E402


def _unordered(pairs):
    return [tuple(sorted(p)) for p in np.asarray(pairs).tolist()]


@pytest.mark.parametrize("n,block", [(1, 4), (7, 3), (16, 4), (33, 8)])
def test_all_pairs_are_every_pair_once_tile_major(n, block):
    pos = all_pairs(n, block)
    assert sorted(map(tuple, pos.tolist())) == list(itertools.combinations(range(n), 2))
    tiles = [(p // block, q // block) for p, q in pos.tolist()]
    assert tiles == sorted(tiles)                                  # tile by tile, row-major over tiles
    assert canonical_pairs(list(range(100, 100 + n)), "all", block=block) == [(100 + p, 100 + q) for p, q in
                                                                               pos.tolist()]


def test_tournament_pair_count_determinism_no_duplicates_and_partners():
    n, r, b = 256, 3, 16
    pos = tournament_pairs(n, r, b, seed=7)
    assert np.array_equal(pos, tournament_pairs(n, r, b, seed=7))              # pure in the seed
    assert not np.array_equal(pos, tournament_pairs(n, r, b, seed=8))
    keys = _unordered(pos)
    assert len(set(keys)) == len(keys) and all(p < q for p, q in pos.tolist())  # each pair once, no diagonal
    drawn = r * (n // b) * b * (b - 1) // 2                                    # before duplicates are dropped
    # a pair meets again in a later round with probability ~(b-1)/(n-1) per round: ~6% of draws here
    assert 0.9 * drawn < len(pos) < drawn
    partners = partner_counts(pos, n)
    assert partners.max() <= r * (b - 1) and partners.mean() == 2 * len(pos) / n > 0.9 * r * (b - 1)
    # every group of every round is a dense tile: re-drawing the permutations gives exactly these pairs
    rng, expect = np.random.default_rng(7), set()
    for _ in range(r):
        perm = rng.permutation(n)
        for g in range(0, n, b):
            expect |= set(itertools.combinations(sorted(perm[g:g + b].tolist()), 2))
    assert set(keys) == expect


def test_tournament_of_an_uneven_count_keeps_the_last_small_group():
    pos = tournament_pairs(10, 1, 4, seed=0)
    assert len(pos) == 6 + 6 + 1                                               # groups of 4, 4 and 2


def test_cross_pairs_are_probes_times_pool_without_self_or_repeat():
    pos = cross_pairs(3, list(range(3, 23)), block=8)
    assert len(pos) == 3 * 20 and sorted(map(tuple, pos.tolist())) == [(a, b) for a in range(3) for b in range(3, 23)]
    assert [q // 8 for q in (pos[:, 1] - 3).tolist()] == sorted(q // 8 for q in (pos[:, 1] - 3).tolist())
    overlap = cross_pairs(3, [1, 2, 3, 4], block=8)                           # probes 1, 2 are also in the pool
    assert len(set(_unordered(overlap))) == len(overlap) and (1, 1) not in map(tuple, overlap.tolist())
    assert len(overlap) == 3 * 4 - 2 - 1                                      # no (1,1), (2,2); (1,2) xor (2,1)


def test_top_pairs_rank_by_largest_score_over_checkpoints():
    table = {"step": np.array([1, 1, 1, 2, 2, 2]), "pair": np.array([0, 1, 2, 0, 1, 2]),
             "i": np.array([5, 5, 6] * 2), "j": np.array([6, 7, 7] * 2),
             "norm": np.array([1.0, 3.0, 2.0, 5.0, 0.5, 2.5]), "c": np.array([1.0, 9.0, 2.0, 1.0, 1.0, 2.0]),
             "log_c": np.log(np.array([1.0, 9.0, 2.0, 1.0, 1.0, 2.0])),
             "logit_rms": np.array([np.nan] * 6)}
    assert top_pairs(table, 2, "norm") == [(5, 6), (5, 7)]                     # max over steps: 5.0, 3.0, 2.5
    assert top_pairs(table, 1, "c") == [(5, 7)]
    with pytest.raises(ConfigError, match="no logit_rms values"):
        top_pairs(table, 1, "logit_rms")
    ranked = top_pairs(table, 3, "norm")
    examples = sorted({k for p in ranked for k in p})
    assert sorted(canonical_pairs(examples, "top", ranked, block=2)) == sorted(ranked)


def test_tile_order_keeps_orientation():
    pos = np.array([[5, 0], [1, 2], [0, 5], [3, 1]])
    assert tile_order(pos, 2).tolist() == [[1, 2], [0, 5], [3, 1], [5, 0]]


@pytest.mark.parametrize("mode", ["all", "tournament"])
def test_tiled_tasks_cover_each_pair_once_and_own_each_block_once(mode):
    n, block, per_task = 64, 8, 24
    pos = all_pairs(n, block) if mode == "all" else tournament_pairs(n, 2, 16, seed=1)
    layout = StoreLayout(n_checkpoints=3, n_pairs=len(pos), n_examples=n, n_params=10, pairs_per_task=per_task,
                         example_block=block, keeps_gram=False)
    tasks = layout.tasks()
    assert tasks == layout.tasks()                                             # deterministic
    for c in range(3):
        mine = [t for t in tasks if t.checkpoint == c]
        covered = [p for t in mine for p in range(t.start, t.stop)]
        assert covered == list(range(len(pos)))                                # each pair exactly once
        blocks = [b for t in mine for b in t.example_blocks]
        assert sorted(blocks) == list(range(n // block))                       # each block written once
        most = -(-layout.n_blocks // len(mine))                                # spread evenly over the tasks
        assert max(len(t.example_blocks) for t in mine) == most
    if mode == "all":                                                          # tasks touch a few blocks, not E
        for t in tasks:
            touched = np.unique(pos[t.start:t.stop] // block)
            assert len(touched) <= 4
