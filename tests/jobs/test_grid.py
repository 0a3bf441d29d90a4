import pytest

from jobs.grid import canonical_pairs, example_indices
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
