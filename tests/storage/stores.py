"""Shared test cases of the store tests: small stores made through the API, and a schema-2 store."""

import numpy as np

from storage.layout import StoreLayout
from storage.store import SweepStore

SPEC = [{"name": "w", "offset": 0, "shape": [3, 4]}, {"name": "b", "offset": 12, "shape": [3]}]


def make_store(path, *, n_ckpt=2, examples=(10, 11, 12, 13), per_task=2, inner=4, dtype="float32", overwrite=False,
               block=2):
    positions = [(a, b) for a in range(len(examples)) for b in range(a + 1, len(examples))]
    pairs = np.array([(examples[a], examples[b]) for a, b in positions])
    layout = StoreLayout(n_checkpoints=n_ckpt, n_pairs=len(pairs), n_examples=len(examples), n_params=15,
                         pairs_per_task=per_task, inner_chunk=inner, example_block=block,
                         keeps_gram=False)
    meta = {"param_spec": SPEC, "config": {"x": 1}, "identity": {"x": 1},
            "n_tasks": n_ckpt * layout.n_tasks_per_checkpoint}
    store = SweepStore.create(str(path), layout=layout, meta=meta, pairs=pairs, examples=list(examples),
                              steps=[100 * (c + 1) for c in range(n_ckpt)], dtype=dtype, overwrite=overwrite)
    store.ledger.release()
    return store, pairs, layout


def fill(store, layout, rng):
    data = rng.standard_normal((layout.n_checkpoints, layout.n_pairs, layout.n_params)).astype(np.float32)
    grads = rng.standard_normal((layout.n_checkpoints, layout.n_examples, layout.n_params)).astype(np.float32)
    losses = rng.random((layout.n_checkpoints, layout.n_examples)).astype(np.float32)
    for c in range(layout.n_checkpoints):
        for b in range(layout.n_blocks):
            start, stop = layout.block_range(b)
            store.write_examples(c, b, grads[c, start:stop], losses[c, start:stop])
        for start in range(0, layout.n_pairs, layout.pairs_per_task):
            store.write_brackets(c, start, data[c, start:start + layout.pairs_per_task])
    return data, grads, losses


def make_legacy_store(path):
    """A store as lie-sweep wrote it with schema 2: one Zarr group holding the arrays, marks/, tables/."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    layout = StoreLayout(n_checkpoints=1, n_pairs=1, n_examples=2, n_params=15, pairs_per_task=1, inner_chunk=16)
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    spec = layout.brackets()
    group.create_array("brackets", shape=spec["shape"], chunks=spec["chunks"], shards=spec["shards"],
                       dtype="float32", fill_value=0.0)
    group["brackets"][0, 0, :] = np.arange(15, dtype=np.float32)
    for name, data in (("pairs", np.array([[10, 11]])), ("examples", np.array([10, 11])), ("steps", np.array([100])),
                       ("eval_examples", np.zeros(0, dtype=np.int64))):
        group.create_array(name, data=data.astype(np.int64))
    group.attrs["lie_sweep"] = {"schema_version": 2, "layout": layout.to_dict(), "dtype": "float32",
                                "codec": "lossless", "param_spec": SPEC, "config": {"storage": {"keep": "all"}},
                                "identity": {}, "n_tasks": 1}
    (path / "marks").mkdir()
    (path / "marks" / "task-000000.json").write_text("{}")
    (path / "tables" / "pairs" / "step=100").mkdir(parents=True)
    pq.write_table(pa.table({"step": [100], "pair": [0], "i": [10], "j": [11], "norm": [1.5]}),
                   path / "tables" / "pairs" / "step=100" / "part-000000.parquet")
