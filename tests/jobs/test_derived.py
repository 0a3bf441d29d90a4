"""Derived quantities end to end: keep modes, codecs in a sweep, tables, logit deltas, lazy views, plan, show."""

import warnings

import numpy as np
import pandas as pd
import pytest
import zarr

from jobs.results.check import check_store
from jobs.cli import main
from jobs.execution.runs import resume_sweep, run_sweep
from lie_sweep import (FunctionalModel, SmallConvNet, SyntheticShapes, apply_checkpoint, bracket_kernel,
                       load_checkpoint, stack_examples)
from lie_sweep.analysis import logit_deltas
from storage.codecs import error_bound
from storage.errors import StoreKeyError
from storage.reader import open_sweep

pytestmark = pytest.mark.slow

BASE = ["pairs.per_task=4", "derived.eval_count=6", "storage.inner_chunk=128"]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, local_ray, small_factory):
    """The same grid stored three ways: everything (lossless), summaries only, head tensors with bitround."""
    root = tmp_path_factory.mktemp("derived")
    make = small_factory(root)
    out = {}
    for name, extra in {"full": [], "summary": ["storage.keep=summary"],
                        "head": ["storage.keep=[head.*]", "storage.codec=bitround", "storage.keepbits=8"]}.items():
        overrides = make(*BASE, *extra, store=f"{name}.zarr")
        if name != "full":  # sweep the checkpoints the first run trained
            overrides = [o for o in overrides if not o.startswith("checkpoints.")]
            overrides += ["checkpoints=glob", f"checkpoints.glob={root / 'ck'}"]
        result = run_sweep(overrides, log=lambda m: None)
        assert not result.report.failures
        out[name] = str(root / f"{name}.zarr")
    return out


def test_summary_store_keeps_no_parameter_sized_array_yet_every_table(sweeps):
    full, summary = open_sweep(sweeps["full"]), open_sweep(sweeps["summary"])
    assert "brackets" in full.store.group and "gradients" in full.store.group
    assert "brackets" not in summary.store.group and "gradients" not in summary.store.group
    assert summary.stored_names == [] and summary.complete
    with warnings.catch_warnings():  # the group holds only Zarr: listing it warns about nothing
        warnings.simplefilter("error")
        arrays = dict(summary.store.group.arrays())
    assert {"losses", "logit_deltas", "pairs", "example", "checkpoint", "eval_example", "output"} <= set(arrays)
    assert "gram" not in arrays                     # schema 4: g_i·g_j of each pair is the pairs table's grad_dot
    big = [name for name, arr in arrays.items() if full.store.layout.n_params in arr.shape]
    assert big == []
    for table in ("pairs", "pair_rms", "examples", "example_rms"):
        a, b = full.table(table), summary.table(table)
        assert len(a) == len(b) > 0
        for col in a.columns:
            if a[col].dtype.kind == "f":
                np.testing.assert_allclose(b[col], a[col], rtol=1e-6, equal_nan=True)
            else:
                assert (a[col] == b[col]).all()
    np.testing.assert_allclose(summary.logit_deltas().values, full.logit_deltas().values, rtol=1e-5, atol=1e-12)
    pd.testing.assert_frame_equal(summary.checkpoint_table(), full.checkpoint_table(), rtol=1e-6)
    with pytest.raises(StoreKeyError, match="keeps no brackets"):
        summary.bracket(summary.steps[0], 0, 1)
    with pytest.raises(StoreKeyError, match="was not kept"):
        summary.bracket(summary.steps[0], 0, 1, ["head.weight"])
    with pytest.raises(StoreKeyError, match="keeps no brackets|has no brackets"):
        summary.brackets_xr()


def test_kept_tensors_with_bitround_are_within_the_bound_and_others_refused(sweeps):
    full, head = open_sweep(sweeps["full"]), open_sweep(sweeps["head"])
    assert head.stored_names == ["head.weight", "head.bias"] and head.meta.codec == "bitround"
    bound = error_bound("bitround", 8)
    for step in head.steps:
        for i, j in head.pairs[:5]:
            got, want = head.bracket(step, int(i), int(j)), full.bracket(step, int(i), int(j), head.stored_names)
            for name in head.stored_names:
                assert (np.abs(got[name] - want[name]) <= bound["rel"] * np.abs(want[name])).all()
            assert not all(np.array_equal(got[n], want[n]) for n in head.stored_names)
    with pytest.raises(StoreKeyError, match="was not kept"):
        head.bracket(head.steps[0], 0, 1, ["features.0.0.weight"])
    assert head.store.layout.n_params == 12 * 8 + 12


def test_with_kept_globs_tables_gram_and_logits_say_they_cover_all_parameters(sweeps):
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    full, head = open_sweep(sweeps["full"]), open_sweep(sweeps["head"])
    n_all = sum(int(np.prod(e["shape"])) for e in head.param_spec)
    for name in ("pairs", "pair_rms", "examples", "example_rms"):
        part = next((Path(head.store.tree.tables) / name).rglob("*.parquet"))
        meta = json.loads(pq.read_schema(part).metadata[b"lie_sweep"])
        assert meta["computed_over"] == "all parameters" and meta["n_params"] == n_all
        assert meta["n_params_stored"] == 12 * 8 + 12 and meta["keep"] == ["head.*"]
    assert head.store.group["logit_deltas"].attrs["computed_over"].startswith("all parameters")
    np.testing.assert_allclose(head.fits()["grad_dot"], full.fits()["grad_dot"], rtol=1e-6)
    # and they are: the head store's norms equal the full store's, computed over every tensor
    np.testing.assert_allclose(head.fits()["norm"], full.fits()["norm"], rtol=1e-6)


def test_tables_agree_with_the_stored_brackets_and_gradients(sweeps):
    sweep = open_sweep(sweeps["full"])
    step = sweep.steps[-1]
    fits, rms = sweep.fits(step), sweep.rms_table(step)
    for row in fits.itertuples():
        b = sweep.bracket(step, row.i, row.j)
        gi, gj = sweep.gradient(step, row.i), sweep.gradient(step, row.j)
        flat = np.concatenate([b[n].ravel() for n in sweep.param_names]).astype(np.float64)
        assert row.norm == pytest.approx(np.linalg.norm(flat), rel=1e-5)
        rb = np.array([np.sqrt(np.mean(b[n].astype(np.float64) ** 2)) for n in sweep.param_names])
        rg = np.array([np.sqrt(np.sqrt(np.mean(gi[n].astype(np.float64) ** 2) * np.mean(gj[n].astype(np.float64) ** 2)))
                       for n in sweep.param_names])
        mine = rms[rms["pair"] == row.pair]
        np.testing.assert_allclose(mine["rms_bracket"], rb, rtol=1e-5)
        np.testing.assert_allclose(mine["rms_grad"], rg, rtol=1e-5)
        y, x = np.log(rb), np.log(rg)
        log_c = np.mean(y - x)
        r2 = 1 - np.sum((y - x - log_c) ** 2) / np.sum((y - y.mean()) ** 2)
        assert row.c == pytest.approx(np.exp(log_c), rel=1e-5) and row.r2 == pytest.approx(r2, rel=1e-5, abs=1e-8)
    top = sweep.top_pairs(3, ckpt=step)
    assert top["norm"].tolist() == sorted(fits["norm"], reverse=True)[:3]
    scores = sweep.example_scores(ckpt=step).set_index("example")["score"]
    for e in sweep.examples:
        assert scores[e] == pytest.approx(fits.loc[(fits["i"] == e) | (fits["j"] == e), "norm"].sum())
    over_all = sweep.top_pairs(100)
    assert len(over_all) == len(sweep.pairs) and (over_all["n_checkpoints"] == len(sweep.steps)).all()
    g = {e: np.concatenate([sweep.gradient(step, e)[n].ravel() for n in sweep.param_names]).astype(np.float64)
         for e in sweep.examples}
    np.testing.assert_allclose(fits["grad_dot"], [g[i] @ g[j] for i, j in zip(fits["i"], fits["j"])],
                               rtol=1e-5, atol=1e-10)
    ck = sweep.checkpoint_table().set_index("step")
    examples = sweep.example_table()
    assert ck.index.tolist() == sweep.steps and (ck["n_examples"] == len(sweep.examples)).all()
    np.testing.assert_allclose(ck["mean_loss"], examples.groupby("step")["loss"].mean())
    with pytest.raises(StoreKeyError, match="grad_dot"):
        sweep.gram()


def test_stored_logit_deltas_equal_a_direct_computation(sweeps):
    sweep = open_sweep(sweeps["full"])
    cfg = sweep.config
    model = SmallConvNet(num_outputs=12, width=cfg["model"]["width"])
    data = SyntheticShapes(length=cfg["data"]["length"], image_size=cfg["data"]["image_size"])
    x, y = stack_examples(data, sweep.examples)
    x_eval, _ = stack_examples(data, sweep.eval_examples)
    assert sweep.eval_examples == list(range(58, 64)) and sweep.epsilon == cfg["checkpoints"]["lr"]
    view = sweep.logit_deltas()
    assert list(view.coords["output"].values[:2]) == ["Circle", "Square"]
    for prov in sweep.meta.checkpoints:
        apply_checkpoint(model, load_checkpoint(prov["path"]))
        fm = FunctionalModel(model)
        pos = {e: k for k, e in enumerate(sweep.examples)}
        pairs = [(pos[int(i)], pos[int(j)]) for i, j in sweep.pairs]
        b = bracket_kernel(fm, fm.params(), x, y, pairs).brackets
        want = logit_deltas(fm, fm.params(), x_eval, b, epsilon=sweep.epsilon).numpy()
        got = view.sel(step=prov["step"]).values
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
        i, j = (int(v) for v in sweep.pairs[3])
        np.testing.assert_allclose(view.sel(step=prov["step"], i=i, j=j).values, want[3], rtol=1e-4,
                                   atol=1e-6 * np.abs(want).max())


class Recording(zarr.storage.WrapperStore):
    """Records every read (key, bytes returned) of the wrapped store."""

    def __init__(self, store):
        super().__init__(store)
        self.reads = []

    async def get(self, key, prototype, byte_range=None):
        out = await self._store.get(key, prototype, byte_range)
        self.reads.append((key, 0 if out is None else len(out)))
        return out

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        out = await self._store.get_partial_values(prototype, key_ranges)
        self.reads += [(k, 0 if o is None else len(o)) for (k, _), o in zip(key_ranges, out)]
        return out


def test_xarray_views_stay_lazy_and_a_pair_reads_only_its_chunks(sweeps):
    sweep = open_sweep(sweeps["full"])
    recording = Recording(zarr.storage.LocalStore(f"{sweeps['full']}/arrays.zarr", read_only=True))
    sweep.store.group = zarr.open_group(store=recording, mode="r")
    ds = sweep.brackets_xr()
    view = ds["head.weight"].sel(step=sweep.steps[1], i=1, j=3)
    assert view.dims == ("head.weight.d0", "head.weight.d1") and not [r for r in recording.reads if "/c/" in r[0]]
    values = view.values
    np.testing.assert_array_equal(values, sweep.bracket(sweep.steps[1], 1, 3, ["head.weight"])["head.weight"])
    p = [tuple(x) for x in sweep.pairs.tolist()].index((1, 3))
    shard_key = f"brackets/c/1/{p // 4}/0"
    touched = [r for r in recording.reads if "/c/" in r[0]]
    assert {k for k, _ in touched} == {shard_key}
    shard_size = (sweep.store.fs.size(f"{sweep.store.tree.arrays}/{shard_key}"))
    assert sum(n for _, n in touched) < shard_size / 4  # the shard index and head.weight's inner chunk(s) only
    recording.reads.clear()
    sweep.logit_deltas().sel(step=sweep.steps[0]).isel(eval_example=0).values
    assert {k for k, _ in recording.reads if "/c/" in k} <= {f"logit_deltas/c/0/{t}/0/0" for t in range(3)}


def test_plan_prints_the_work_and_writes_nothing(tmp_path, small, capsys):
    before = set(tmp_path.iterdir())
    assert main(["plan", *small(*BASE), "cluster.workers=2"]) == 0
    out = capsys.readouterr().out
    assert set(tmp_path.iterdir()) == before  # no checkpoints trained, no store
    assert "2 checkpoints (trained by run: steps 2..4) × 10 pairs of 5 examples" in out
    assert "6 tasks of ≤ 4 consecutive pairs" in out and "20 brackets = 40 Hessian-vector products" in out
    for preset in ("lossless*", "lossless-fast", "bitround", "float16"):
        assert preset in out
    assert "cluster.workers=2" in out and "per worker of parameter-sized buffers" in out and "fits" in out
    assert "files" in out and "pairs=all" in out
    assert "hvp modes" in out and "forward" in out and "reverse" in out and "a gradient" in out


def test_show_and_check_cover_tables(sweeps, capsys):
    assert main(["show", sweeps["summary"], "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "most order-sensitive pairs" in out and "outputs whose logits move most" in out and "summaries only" in out
    sweep = open_sweep(sweeps["summary"])
    before = sweep.fits()
    part = sweep.store.files_of(sweep.store.layout.tasks()[1])["table pairs"]
    with open(part, "r+b") as f:
        f.truncate(20)
    report = check_store(sweeps["summary"], log=lambda m: None)            # reports, changes nothing
    assert [d["task_id"] for d in report["damaged"]] == [1] and "table pairs" in report["damaged"][0]["problems"][0]
    assert open_sweep(sweeps["summary"]).complete
    report = check_store(sweeps["summary"], repair=True, log=lambda m: None)
    assert [d["task_id"] for d in report["damaged"]] == [1] and report["repaired"]
    assert not open_sweep(sweeps["summary"]).complete
    resume_sweep(sweeps["summary"], log=lambda m: None)
    after = open_sweep(sweeps["summary"])
    assert after.complete
    np.testing.assert_allclose(after.fits()["norm"], before["norm"], rtol=1e-6)


def test_bad_codec_keep_and_eval_settings_are_one_line_errors(small):
    from jobs.planning.config import load_config
    from jobs.planning.build import resolve_grid
    from lie_sweep.errors import ConfigError, ExampleIndexError

    with pytest.raises(ConfigError, match="storage.codec"):
        load_config(small("storage.codec=zfp"))
    with pytest.raises(ConfigError, match="storage.keepbits"):
        load_config(small("storage.codec=bitround", "storage.keepbits=24"))
    load_config(small("precision=float64", "storage.keepbits=40"))  # float64 has 52 mantissa bits
    with pytest.raises(ConfigError, match="storage.keep"):
        load_config(small("storage.keep=[]"))
    with pytest.raises(ConfigError, match=r"glob 'nope\.\*' matches no parameter tensor.*storage.keep='\[head\.\*\]'"):
        resolve_grid(load_config(small("storage.keep=[nope.*,head.*]")))
    assert resolve_grid(load_config(small("storage.keep='head.bias,features.0.*'"))).kept_names == [
        "features.0.0.weight", "features.0.1.weight", "features.0.1.bias", "head.bias"]
    with pytest.raises(ExampleIndexError, match="evaluation batch out of range"):
        resolve_grid(load_config(small("derived.eval_count=65")))
    assert resolve_grid(load_config(small("derived.eval_count=0"))).eval_examples == []
