"""Parquet summary tables: task-owned parts, one folder per checkpoint, only completed tasks read."""

import numpy as np
import pytest

from storage.errors import StoreError
from storage.tables import part_path

from .stores import make_store


def rows(step, pairs):
    return {"step": np.full(len(pairs), step), "pair": np.asarray(pairs), "i": np.asarray(pairs),
            "j": np.asarray(pairs) + 1,
            "norm": np.asarray(pairs, dtype=float), "rms": np.ones(len(pairs)), "c": np.ones(len(pairs)),
            "log_c": np.zeros(len(pairs)), "r2": np.full(len(pairs), np.nan), "n_tensors": np.full(len(pairs), 2),
            "logit_rms": np.ones(len(pairs))}


def test_parts_are_per_task_per_checkpoint_and_only_completed_tasks_are_read(tmp_path):
    store, _, layout = make_store(tmp_path / "s.zarr")  # 2 checkpoints (steps 100, 200) × 6 pairs, 2 per task
    store.write_table_part("pairs", 0, 0, rows(100, [0, 1]))
    store.write_table_part("pairs", 0, 1, rows(100, [2, 3]))
    store.write_table_part("pairs", 1, 3, rows(200, [0, 1]))
    assert (tmp_path / "s.zarr" / "tables" / "pairs" / "step-0000000100" / "part-000001.parquet").is_file()
    assert part_path("/r/tables", "pairs", 200, 3) == "/r/tables/pairs/step-0000000200/part-000003.parquet"
    assert store.read_table("pairs") is None  # no task is marked done yet
    for task in (0, 1, 3):
        store.ledger.mark_done(task, {})
    everything = store.read_table("pairs").to_pandas()
    assert sorted(zip(everything["step"], everything["pair"])) == [(100, 0), (100, 1), (100, 2), (100, 3), (200, 0),
                                                                   (200, 1)]
    one = store.read_table("pairs", [200]).to_pandas()
    assert one["step"].tolist() == [200, 200] and np.isnan(one["r2"]).all()
    store.write_table_part("pairs", 0, 1, rows(100, [2, 3]) | {"norm": np.array([7.0, 8.0])})  # a retry replaces
    again = store.read_table("pairs", [100]).to_pandas()
    assert again.loc[again["pair"] == 3, "norm"].item() == 8.0 and len(again) == 4
    assert store.table_steps("pairs") == [100, 200]
    with pytest.raises(StoreError, match="unknown table"):
        store.read_table("nope")
