"""The store's metadata: one dataclass both written and read, older and newer stores included."""

from storage.meta import StoreMeta


def test_round_trip_older_stores_and_unknown_keys():
    meta = StoreMeta(schema_version=3, layout={"n_pairs": 1}, codec="bitround", keepbits=8, n_tasks=2,
                     param_spec=[{"name": "w", "offset": 0, "shape": [2]}], checkpoints=[{"step": 1}])
    assert StoreMeta.from_dict(meta.to_dict()) == meta
    assert meta.stored_spec == meta.param_spec                         # all tensors stored unless keep says
    old = StoreMeta.from_dict({"schema_version": 1, "layout": {}, "dtype": "float64", "param_spec": [],
                               "epsilon": None, "attribute_names": None})
    assert old.epsilon == 0.0 and old.attribute_names == [] and old.output_names == [] and old.checkpoint_base == ""
    newer = {**meta.to_dict(), "verify": {"rows": 3}}
    parsed = StoreMeta.from_dict(newer)
    assert parsed.extra == {"verify": {"rows": 3}} and parsed.to_dict() == newer    # kept and written back
    moved = meta.replace(checkpoint_base="/new")
    assert moved.checkpoint_base == "/new" and meta.checkpoint_base == ""
