import pytest

from jobs.plan import canonical_pairs, example_indices, make_plan
from lie_sweep.errors import ConfigError, ExampleIndexError


def test_plan_is_deterministic_contiguous_and_covers_every_pair_once():
    tasks = make_plan(n_checkpoints=3, n_pairs=28, per_task=8)
    assert tasks == make_plan(3, 28, 8)
    assert [t.task_id for t in tasks] == list(range(12))
    assert [(t.checkpoint, t.start, t.stop) for t in tasks[:4]] == [(0, 0, 8), (0, 8, 16), (0, 16, 24), (0, 24, 28)]
    for c in range(3):
        covered = [p for t in tasks if t.checkpoint == c for p in range(t.start, t.stop)]
        assert covered == list(range(28))
    assert [t.checkpoint for t in tasks] == sorted(t.checkpoint for t in tasks)  # checkpoint by checkpoint
    assert [t.writes_examples for t in tasks].count(True) == 3


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
    with pytest.raises(ConfigError, match="pairs.per_task"):
        make_plan(1, 5, -1)


def test_messages_show_a_long_example_list_as_a_range():
    with pytest.raises(ConfigError) as info:
        canonical_pairs(list(range(32)), "list", [[0, 99]])
    assert "0..31 (32 values)" in str(info.value) and "15, 16" not in str(info.value)
