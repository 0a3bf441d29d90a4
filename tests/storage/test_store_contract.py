"""The store's contract, run against a local directory and an fsspec ``memory://`` store alike.

Everything here goes through the store's API and fsspec (no pathlib), so any filesystem the store
supports must pass it: data round trip, NaN fill, ledger records, the lock, tables, digests and
overwrite safety.
"""

import uuid

import numpy as np
import pytest

from storage.errors import NotASweepError, StoreExistsError
from storage.lock import StoreLockedError
from storage.reader import open_sweep
from storage.location import filesystem_of
from storage.store import SweepStore

from .stores import fill, make_store


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    """A fresh store location: a local path, or a unique folder of fsspec's in-memory filesystem."""
    path = str(tmp_path / "s") if request.param == "local" else f"memory://bucket/{uuid.uuid4().hex}/s"
    yield path
    fs, where = filesystem_of(path)
    if fs.exists(where):
        fs.rm(where, recursive=True)


def test_data_round_trip_and_unwritten_cells_read_nan(root):
    store, pairs, layout = make_store(root)
    data, grads, losses = fill(store, layout, np.random.default_rng(0))
    sweep = open_sweep(root)
    i, j = (int(x) for x in pairs[3])
    np.testing.assert_array_equal(sweep.bracket(200, i, j)["b"], data[1, 3, 12:])
    np.testing.assert_array_equal(sweep.gradient(100, 11)["w"], grads[0, 1, :12].reshape(3, 4))
    np.testing.assert_array_equal(sweep.losses, losses)
    fresh, _, _ = make_store(root, overwrite=True)                  # replaced: nothing written yet
    assert np.isnan(fresh.group["brackets"][:]).all() and np.isnan(fresh.group["losses"][:]).all()


def test_ledger_marks_failures_and_runs(root):
    store, _, _ = make_store(root)
    ledger = store.ledger
    assert ledger.done_tasks() == {} and ledger.failures() == {} and ledger.runs() == {}
    ledger.mark_done(3, {"files": {"a": "1"}})
    ledger.mark_done(0, {"files": {}})
    ledger.record_failure(5, {"error": "boom"}, "Traceback ...")
    ledger.record_run(1, {"command": "run"})
    ledger.record_run(1, {"command": "run", "ended": 2.0})         # rewritten when it ends
    fs, where = filesystem_of(root)
    fs.pipe_file(f"{where}/ledger/marks/task-000007.json", b'{"torn')
    assert SweepStore.open(root).ledger.done_tasks() == {0: {"files": {}}, 3: {"files": {"a": "1"}}}
    assert ledger.failures()[5]["error"] == "boom" and ledger.runs() == {1: {"command": "run", "ended": 2.0}}
    assert fs.cat_file(ledger.failures()[5]["log"]) == b"Traceback ..."
    ledger.clear_mark(3)
    ledger.clear_failure(5)
    assert list(ledger.done_tasks()) == [0] and ledger.failures() == {}
    assert not [p for p in fs.find(where) if p.endswith(".tmp")]    # no temporary file left anywhere


def test_one_driver_holds_the_lock(root):
    store, _, _ = make_store(root)
    store.ledger.acquire_lock("run")
    assert store.ledger.lock_holder()["command"] == "run"
    with pytest.raises(StoreLockedError, match="in use by another driver"):
        SweepStore.open(root, mode="r+").ledger.acquire_lock("resume")
    with pytest.raises(StoreLockedError):
        make_store(root, overwrite=True)                            # not even overwrite takes a held store
    store.ledger.release()
    assert store.ledger.lock_holder() is None
    SweepStore.open(root, mode="r+").ledger.acquire_lock("check").release()


def test_tables_digests_and_changed_files(root):
    store, _, layout = make_store(root)
    fill(store, layout, np.random.default_rng(1))
    task = layout.tasks()[2]                                        # checkpoint 0 (step 100), pairs 4..5
    store.write_table_part("pairs", 0, 2, {"step": [100, 100], "pair": [4, 5], "norm": [1.0, 2.0]})
    store.write_table_part("pair_rms", 0, 2, {"step": [100], "pair": [4], "tensor": ["w"], "rms_bracket": [1.0]})
    files = store.files_of(task)
    assert sorted(files) == ["brackets", "table pair_rms", "table pairs"]  # 3 tasks, 2 blocks: it owns none
    digests = store.digests(list(files.values()))
    assert sorted(digests) == ["arrays.zarr/brackets/c/0/2/0", "tables/pair_rms/step-0000000100/part-000002.parquet",
                               "tables/pairs/step-0000000100/part-000002.parquet"]    # relative to the store root
    assert store.changed_files(digests) == []
    store.write_brackets(0, 4, np.full((2, 15), 7.0, dtype=np.float32))
    assert store.changed_files(digests) == ["arrays.zarr/brackets/c/0/2/0"]
    assert store.read_table("pairs") is None                        # no completed task yet
    store.ledger.mark_done(2, {"files": digests})
    assert store.read_table("pairs").to_pandas()["norm"].tolist() == [1.0, 2.0]
    owning = [store.files_of(t) for t in layout.tasks()[:2]]        # block k: task k·3//2 (tasks 0 and 1)
    assert {"gradients 0", "losses 0", "table examples", "table example_rms"} <= set(owning[0])
    assert {"gradients 1", "losses 1"} <= set(owning[1]) and "gradients 0" not in owning[1]
    assert all("gram" not in f and "table checkpoints" not in f for f in owning)   # schema 4: no Gram matrix
    assert owning[1]["gradients 1"].endswith("arrays.zarr/gradients/c/0/1/0")


def test_overwrite_replaces_only_a_store(root):
    fs, where = filesystem_of(root)
    fs.makedirs(where, exist_ok=True)
    fs.pipe_file(f"{where}/notes.txt", b"keep")
    for overwrite in (False, True):
        with pytest.raises(StoreExistsError, match="not a lie-sweep store"):
            make_store(root, overwrite=overwrite)
    with pytest.raises(NotASweepError):
        open_sweep(root)
    fs.rm_file(f"{where}/notes.txt")
    make_store(root)
    with pytest.raises(StoreExistsError, match="already holds a sweep store"):
        make_store(root)
    fs.pipe_file(f"{where}/notes.txt", b"mine")
    with pytest.raises(StoreExistsError, match="did not write"):
        make_store(root, overwrite=True)
    assert fs.cat_file(f"{where}/notes.txt") == b"mine"
