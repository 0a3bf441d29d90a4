"""A store any tool understands (issue 24, item 6): the demo store read with xarray, pandas, pyarrow.dataset,
polars and duckdb, labelled and in step order without lie-sweep; the README's block for that runs as written;
the marker is checked on open; a schema-4 store (unpadded table folders, index arrays named steps/examples)
still reads and resumes."""

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pytest
import xarray as xr

from jobs.execution.runs import resume_sweep
from storage.errors import StoreError
from storage.reader import open_sweep
from storage.tables import TABLES

from .sweeps import assert_bitwise_equal, brackets_of, copy_of_reference, marks_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_xarray_labels_the_raw_store_and_sel_by_step_selects_that_step(demo):
    store, _ = demo
    sweep = open_sweep(str(store))
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no warning about consolidated metadata, or anything else
        ds = xr.open_zarr(store / "arrays.zarr")
    assert ds["checkpoint"].values.tolist() == sweep.steps == [20, 40, 60, 80, 100]
    assert ds["example"].values.tolist() == sweep.examples
    assert ds["eval_example"].values.tolist() == sweep.eval_examples
    assert ds["output"].values.tolist() == sweep.output_names
    assert {"i", "j"} <= set(ds.coords) and ds["i"].dims == ("pair",)
    assert np.array_equal(np.stack([ds["i"].values, ds["j"].values], 1), sweep.pairs)
    # .sel(checkpoint=100) is step 100 (position 4), not position 100 or 2
    i, j = (int(v) for v in sweep.pairs[3])
    got = ds["brackets"].sel(checkpoint=100).isel(pair=3).values
    want = np.concatenate([v.ravel() for v in sweep.bracket(100, i, j).values()])
    assert np.array_equal(got, want)
    by_label = ds.set_index(pair=["i", "j"])["logit_deltas"].sel(checkpoint=60, i=i, j=j, output="Large")
    assert np.array_equal(by_label.values, sweep.logit_deltas().sel(step=60, i=i, j=j, output="Large").values)
    # each parameter-sized array maps its own flat axis to tensors
    for name in ("brackets", "gradients"):
        tensors = ds[name].attrs["flat_axis"]["tensors"]
        assert [t["name"] for t in tensors] == sweep.stored_names
    head = next(t for t in ds["brackets"].attrs["flat_axis"]["tensors"] if t["name"] == "head.weight")
    flat = ds["brackets"].sel(checkpoint=100).isel(pair=3).values
    rows = flat[head["offset"]:head["offset"] + int(np.prod(head["shape"]))].reshape(head["shape"])
    assert np.array_equal(rows, sweep.bracket(100, i, j, names=["head.weight"])["head.weight"])
    assert json.loads((store / "arrays.zarr" / "zarr.json").read_text()).get("consolidated_metadata")


def test_every_tool_reads_the_tables_in_step_order(demo):
    store, _ = demo
    sweep = open_sweep(str(store))
    for name in TABLES:
        folder = store / "tables" / name
        readers = {
            "pandas": lambda: pd.read_parquet(folder),
            "pyarrow.dataset": lambda: pads.dataset(folder, format="parquet").to_table().to_pandas(),
            "polars": lambda: pl.read_parquet(f"{folder}/*/*.parquet").to_pandas(),
            "duckdb": lambda: duckdb.sql(f"select * from read_parquet('{folder}/*/*.parquet')").df(),
        }
        ours = sweep.table(name)
        for tool, read in readers.items():
            got = read()
            steps = got["step"].to_numpy()
            assert (np.diff(steps) >= 0).all(), (name, tool, "rows not in step order")   # 100 after 20
            assert sorted(set(steps.tolist())) == sweep.steps and len(got) == len(ours), (name, tool)


def _readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S).group(1)


def test_the_readmes_reading_without_lie_sweep_runs_as_written(demo, demo_swaps, capsys):
    store, _ = demo
    here = os.getcwd()
    os.chdir(store.parent.parent)       # where `lie-sweep run` made lie-sweep-out/
    names = {}
    try:
        exec(compile(_readme_block("reading-without-lie-sweep"), "README.md", "exec"), names)
    finally:
        os.chdir(here)
    from storage.sketch import SketchSpec

    sweep = open_sweep(str(demo_swaps))                 # its numpy S is the store's S
    np.testing.assert_allclose(names["S"](names["g"]), sweep.sketch_spec().apply(names["g"]), rtol=0, atol=1e-12)
    assert sweep.sketch_spec() == SketchSpec.from_attrs(names["sk"].attrs)


def test_a_marker_that_disagrees_with_the_store_is_refused_on_open(reference, tmp_path):
    store = copy_of_reference(reference, tmp_path / "s.zarr")
    marker = store / "lie-sweep.json"
    record = json.loads(marker.read_text())
    for change, found in (({"tables": "parquet"}, "names tables 'parquet'"), ({"schema_version": 4}, "says schema 4")):
        marker.write_text(json.dumps({**record, **change}))
        with pytest.raises(StoreError, match=found) as err:
            open_sweep(str(store))
        assert "\n" not in str(err.value)
    marker.write_text(json.dumps(record))
    assert open_sweep(str(store)).complete


def as_schema_4(store: Path) -> None:
    """Rewrite a schema-5 store as lie-sweep wrote schema 4: index arrays steps/examples/eval_examples, no
    output/epsilon/i/j coordinates, no consolidated metadata or flat-axis attributes, unpadded table folders."""
    arrays = store / "arrays.zarr"
    for new, old in (("checkpoint", "steps"), ("example", "examples"), ("eval_example", "eval_examples")):
        (arrays / new).rename(arrays / old)
    for name in ("output", "epsilon", "i", "j"):
        shutil.rmtree(arrays / name, ignore_errors=True)
    for meta_file in arrays.glob("*/zarr.json"):
        meta = json.loads(meta_file.read_text())
        meta.get("attributes", {}).pop("flat_axis", None)
        meta.get("attributes", {}).pop("coordinates", None)
        meta_file.write_text(json.dumps(meta))
    root = json.loads((arrays / "zarr.json").read_text())
    root.pop("consolidated_metadata", None)
    root["attributes"]["lie_sweep"]["schema_version"] = 4
    (arrays / "zarr.json").write_text(json.dumps(root))
    (store / "lie-sweep.json").write_text(json.dumps({**json.loads((store / "lie-sweep.json").read_text()),
                                                      "schema_version": 4}))
    for folder in (store / "tables").glob("*/step-*"):
        folder.rename(folder.parent / f"step-{int(folder.name[5:])}")


def test_a_schema_4_store_still_reads_and_resumes(reference, tmp_path):
    new = open_sweep(str(reference / "s.zarr"))
    store = copy_of_reference(reference, tmp_path / "old.zarr")
    as_schema_4(store)
    old = open_sweep(str(store))
    assert old.meta.schema_version == 4 and old.steps == new.steps and old.examples == new.examples
    pd.testing.assert_frame_equal(old.fits(), new.fits())
    marks = marks_of(store)
    ledger = open_sweep(str(store)).store.ledger
    for task in sorted(marks)[::3]:                              # a third of the tasks to redo
        ledger.clear_mark(task)
    resume_sweep(str(store), log=lambda m: None)
    assert len(marks_of(store)) == len(marks)
    assert_bitwise_equal(brackets_of(store), brackets_of(reference / "s.zarr"))
    assert sorted(p.name for p in (store / "tables" / "pairs").iterdir()) == [f"step-{s}" for s in sorted(
        new.steps, key=str)]
