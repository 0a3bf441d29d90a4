"""The store and its reader, on a real on-disk Zarr v3 store (numpy only, no torch)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from storage.errors import NotASweepError, StoreExistsError, StoreKeyError, StoreError
from storage.identity import identity_diff, identity_hash
from storage.layout import StoreLayout
from storage.reader import open_sweep
from storage.store import SweepStore

from .stores import SPEC, fill, make_legacy_store, make_store


def test_round_trip_through_the_lazy_reader(tmp_path):
    store, pairs, layout = make_store(tmp_path / "s.zarr")
    data, grads, losses = fill(store, layout, np.random.default_rng(0))
    sweep = open_sweep(str(tmp_path / "s.zarr"))
    assert sweep.steps == [100, 200] and sweep.examples == [10, 11, 12, 13]
    assert sweep.param_names == ["w", "b"] and len(sweep.pairs) == 6
    p = [tuple(x) for x in sweep.pairs.tolist()].index((11, 13))
    got = sweep.bracket(200, 11, 13)
    np.testing.assert_array_equal(got["w"], data[1, p, :12].reshape(3, 4))
    np.testing.assert_array_equal(got["b"], data[1, p, 12:])
    flipped = sweep.bracket(200, 13, 11, names=["b"])
    assert list(flipped) == ["b"]
    np.testing.assert_array_equal(flipped["b"], -data[1, p, 12:])
    assert not np.any(sweep.bracket(100, 12, 12)["w"]) and sweep.bracket(100, 12, 12)["w"].shape == (3, 4)
    np.testing.assert_array_equal(sweep.gradient(100, 12)["w"], grads[0, 2, :12].reshape(3, 4))
    np.testing.assert_array_equal(sweep.losses, losses)


def test_reader_touches_only_the_shards_it_needs(tmp_path):
    store, pairs, layout = make_store(tmp_path / "s.zarr")
    data, _, _ = fill(store, layout, np.random.default_rng(1))
    shards = sorted((tmp_path / "s.zarr" / "arrays.zarr" / "brackets" / "c").rglob("*"))
    shard_files = [p for p in shards if p.is_file()]
    assert len(shard_files) == layout.n_checkpoints * layout.n_tasks_per_checkpoint
    keep = tmp_path / "s.zarr" / "arrays.zarr" / "brackets" / "c" / "1" / "2" / "0"   # checkpoint 1, pairs 4..5
    for p in shard_files:
        if p != keep:
            p.unlink()
    sweep = open_sweep(str(tmp_path / "s.zarr"))
    i, j = pairs[5]
    np.testing.assert_array_equal(sweep.bracket(200, int(i), int(j), names=["b"])["b"], data[1, 5, 12:])


def test_reopens_from_another_process(tmp_path):
    store, pairs, layout = make_store(tmp_path / "s.zarr")
    data, _, _ = fill(store, layout, np.random.default_rng(2))
    code = ("import sys, json; from storage.reader import open_sweep; s = open_sweep(sys.argv[1]); "
            "print(json.dumps(s.bracket(100, 10, 12)['b'].tolist()))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.zarr")], capture_output=True, text=True,
                         check=True).stdout
    np.testing.assert_allclose(json.loads(out), data[0, 1, 12:], rtol=0, atol=0)


def test_marks_are_written_by_name_and_torn_marks_do_not_count(tmp_path):
    store, _, _ = make_store(tmp_path / "s.zarr")
    assert store.ledger.done_tasks() == {}
    store.ledger.mark_done(3, {"seconds": 1.5})
    store.ledger.mark_done(0, {"seconds": 0.5})
    (tmp_path / "s.zarr" / "ledger" / "marks" / "task-000007.json").write_text('{"trunc')
    assert store.ledger.done_tasks() == {0: {"seconds": 0.5}, 3: {"seconds": 1.5}}
    assert not list((tmp_path / "s.zarr").rglob("*.tmp"))


def test_tasks_are_deterministic_contiguous_and_cover_every_pair_once():
    layout = StoreLayout(n_checkpoints=3, n_pairs=28, n_examples=8, n_params=10, pairs_per_task=8)
    tasks = layout.tasks()
    assert tasks == StoreLayout(**layout.to_dict()).tasks()                # re-derived from the stored layout
    assert [t.task_id for t in tasks] == list(range(12)) and len(tasks) == 3 * layout.n_tasks_per_checkpoint
    assert [(t.checkpoint, t.start, t.stop) for t in tasks[:4]] == [(0, 0, 8), (0, 8, 16), (0, 16, 24), (0, 24, 28)]
    for c in range(3):
        covered = [p for t in tasks if t.checkpoint == c for p in range(t.start, t.stop)]
        assert covered == list(range(28))
    assert [t.checkpoint for t in tasks] == sorted(t.checkpoint for t in tasks)  # checkpoint by checkpoint
    assert [t.writes_examples for t in tasks].count(True) == 3
    with pytest.raises(ValueError, match="pairs_per_task must be positive"):
        StoreLayout(n_checkpoints=1, n_pairs=5, n_examples=2, n_params=1, pairs_per_task=0)


def test_each_task_owns_whole_shards():
    layout = StoreLayout(n_checkpoints=3, n_pairs=10, n_examples=5, n_params=1000, pairs_per_task=4, inner_chunk=64)
    spec = layout.brackets()
    assert spec["shards"][1] == 4 and spec["shards"][2] % spec["chunks"][2] == 0 and spec["shards"][2] >= 1000
    owners = {}
    for c in range(3):
        for start in range(0, 10, 4):
            shard = layout.bracket_shard_of(c, start)
            assert shard not in owners
            owners[shard] = (c, start)
    with pytest.raises(ValueError):
        layout.bracket_shard_of(0, 3)


def test_not_a_sweep_existing_store_and_newer_schema_are_one_line(tmp_path):
    with pytest.raises(NotASweepError) as info:
        open_sweep(str(tmp_path / "missing"))
    assert "\n" not in str(info.value) and "no such path" in str(info.value)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("hi")
    with pytest.raises(NotASweepError, match="no lie-sweep metadata"):
        open_sweep(str(tmp_path / "plain"))
    make_store(tmp_path / "s.zarr")
    with pytest.raises(StoreExistsError) as info:
        make_store(tmp_path / "s.zarr")
    assert "already holds a sweep store" in str(info.value)
    with pytest.raises(StoreExistsError, match="non-empty directory"):
        make_store(tmp_path / "plain")
    assert (tmp_path / "plain" / "x.txt").read_text() == "hi"
    meta = json.loads((tmp_path / "s.zarr" / "arrays.zarr" / "zarr.json").read_text())
    meta["attributes"]["lie_sweep"]["schema_version"] = 99
    (tmp_path / "s.zarr" / "arrays.zarr" / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="newer schema"):
        open_sweep(str(tmp_path / "s.zarr"))


def test_unknown_keys_are_store_key_errors(tmp_path):
    store, _, layout = make_store(tmp_path / "s.zarr")
    fill(store, layout, np.random.default_rng(3))
    sweep = open_sweep(str(tmp_path / "s.zarr"))
    for call, needle in ((lambda: sweep.bracket(150, 10, 11), "step among 100, 200"),
                         (lambda: sweep.bracket(100, 10, 99), "found 99"),
                         (lambda: sweep.gradient(100, 10, names=["nope"]), "'nope'")):
        with pytest.raises(StoreKeyError) as info:
            call()
        assert needle in str(info.value) and "\n" not in str(info.value)


def test_identity_hash_and_diff():
    a = {"model": {"width": 16, "name": "c"}, "precision": "float32"}
    b = {"model": {"width": 32, "name": "c"}, "precision": "float32"}
    assert identity_hash(a) == identity_hash(json.loads(json.dumps(a)))
    assert identity_hash(a) != identity_hash(b)
    assert identity_diff(a, b) == ["model.width: 16 -> 32"]


def test_first_line_of_an_error():
    from storage.errors import first_line

    assert first_line(ValueError("\n  bad thing\nmore detail")) == "bad thing"
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(OSError("x" * 500), 10) == "x" * 10


def test_plain_zarr_lists_the_group_without_warnings_and_unwritten_cells_are_nan(tmp_path):
    import warnings

    import zarr
    from zarr.codecs import Crc32cCodec

    store, pairs, layout = make_store(tmp_path / "s")
    store.write_brackets(0, 0, np.ones((2, 15), dtype=np.float32))           # one task of six written
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                      # a ZarrUserWarning fails the test
        group = zarr.open_group(str(tmp_path / "s" / "arrays.zarr"), mode="r")
        members = dict(group.members())
    assert set(members) == {"brackets", "gradients", "losses", "pairs", "example", "checkpoint", "eval_example",
                            "i", "j"}
    brackets = group["brackets"][:]
    assert (brackets[0, :2] == 1).all() and np.isnan(brackets[0, 2:]).all() and np.isnan(brackets[1]).all()
    assert np.isnan(group["losses"][:]).all()
    assert group["checkpoint"][:].tolist() == [100, 200] and group["pairs"][:].tolist() == pairs.tolist()
    for name, arr in group.arrays():                                        # every chunk carries a CRC32C
        assert any(isinstance(c, Crc32cCodec) for c in arr.metadata.codecs) or \
            any(isinstance(c, Crc32cCodec) for c in arr.metadata.codecs[0].codecs), name
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["arrays.zarr", "ledger", "lie-sweep.json"]


def test_stores_of_schema_2_stay_readable(tmp_path):
    make_legacy_store(tmp_path / "old.zarr")
    sweep = open_sweep(str(tmp_path / "old.zarr"))
    assert sweep.store.tree.legacy and sweep.complete
    np.testing.assert_array_equal(sweep.bracket(100, 11, 10)["b"], -np.arange(12, 15, dtype=np.float32))
    assert sweep.table("pairs")["norm"].tolist() == [1.5]


def test_small_rows_pack_into_inner_chunks_and_read_back_the_same(tmp_path):
    from storage.layout import packed_rows

    # D = 15 with inner_chunk 64: 4 rows fit a chunk; a 6-pair shard takes the largest divisor of 6 not above 4
    layout = StoreLayout(n_checkpoints=1, n_pairs=12, n_examples=5, n_params=15, pairs_per_task=6, inner_chunk=64,
                         example_block=5, inner_rows=packed_rows(15, 64))
    assert layout.inner_rows == 4 and layout.brackets()["chunks"] == (1, 3, 15)
    assert layout.gradients()["chunks"] == (1, 1, 15)  # a block of 5 examples: no divisor of 5 in 2..4
    # a row longer than the chunk: one row per chunk, as before packing existed
    assert packed_rows(703_268, 1 << 18) == 1 and StoreLayout(**{**layout.to_dict(), "inner_rows": 1}).brackets()[
        "chunks"] == (1, 1, 15)
    # a layout recorded without the key (older stores) reads as one row per chunk
    old = {k: v for k, v in layout.to_dict().items() if k != "inner_rows"}
    assert StoreLayout(**old).inner_rows == 1 and "inner_rows" in layout.to_dict()
    rng = np.random.default_rng(0)
    values = rng.standard_normal((12, 15)).astype(np.float32)
    stores = []
    for name, rows in (("packed", layout.inner_rows), ("one", 1)):
        lay = StoreLayout(**{**layout.to_dict(), "inner_rows": rows})
        meta = {"param_spec": SPEC, "config": {"x": 1}, "identity": {"x": 1}, "n_tasks": lay.n_tasks_per_checkpoint}
        store = SweepStore.create(str(tmp_path / name), layout=lay, meta=meta, pairs=np.arange(24).reshape(12, 2),
                                  examples=list(range(5)), steps=[100], dtype="float32")
        store.ledger.release()
        for start in (0, 6):
            store.write_brackets(0, start, values[start:start + 6])
        stores.append(SweepStore.open(str(tmp_path / name)))
    packed, one = (np.asarray(s.group["brackets"][0]) for s in stores)
    assert np.array_equal(packed, values) and np.array_equal(one, values)
    assert stores[0].group["brackets"].chunks == (1, 3, 15) and stores[1].group["brackets"].chunks == (1, 1, 15)
    # each task still owns exactly one shard file
    shards = tmp_path / "packed" / "arrays.zarr" / "brackets" / "c" / "0"
    assert sorted(p.name for p in shards.iterdir()) == ["0", "1"]
