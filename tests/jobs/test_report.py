"""`lie-sweep report`: what the page embeds equals the store, the size budget, stores in progress, safety."""

import io
import shutil
import zlib

import numpy as np
import pytest

from jobs.cli import main
from jobs.report import write_report
from jobs.report.encode import decode, encode
from jobs.report.images import png_bytes
from lie_sweep import open_sweep

from .reports import logit_tolerance, page_data, page_pairs


@pytest.fixture(scope="module")
def store(reference):
    """The reference sweep (2 checkpoints × 15 pairs of 6 examples, 30 one-pair tasks, logit deltas)."""
    return reference / "s.zarr"


def test_encodings_round_trip_within_their_stated_precision():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 4, 5, 6)) * np.logspace(-9, 2, 3)[:, None, None, None]
    v[1, 2, 0, 0] = np.nan
    f16 = decode(encode(v, "f16s", block_dims=2))
    peak = np.nanmax(np.abs(v), axis=(2, 3), keepdims=True)
    assert np.isnan(f16[1, 2, 0, 0])
    ok = ~np.isnan(v)
    assert np.all(np.abs(f16 - v)[ok] <= (2.0**-11 * np.abs(v) + 2.0**-24 * peak)[ok])
    i8 = decode(encode(v, "i8s", block_dims=2))
    assert np.isnan(i8[1, 2, 0, 0])
    assert np.all(np.abs(i8 - v)[ok] <= (peak / 254 * (1 + 1e-6) + 0 * v)[ok])
    assert np.array_equal(decode(encode(v, "f32")), v.astype(np.float32), equal_nan=True)


def test_png_thumbnails_decode_to_their_pixels():
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(rgb)))), rgb)
    grey = rgb[..., 0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(grey)))), grey)
    assert zlib.crc32(png_bytes(grey)) == zlib.crc32(png_bytes(grey.copy()))  # deterministic bytes


def test_page_embeds_the_stores_values(store, tmp_path):
    out = tmp_path / "r.html"
    result = write_report(str(store), str(out))
    assert result.path == str(out) and out.stat().st_size == result.n_bytes
    sweep = open_sweep(str(store))
    data = page_data(out)
    assert data["shown"] == sorted(sweep.examples) and data["info"]["complete"]
    cols = page_pairs(data)
    assert set(cols) == {tuple(map(int, p)) for p in sweep.pairs}
    logits, done = decode(data["logits"]), decode(data["done"])
    assert done.all()
    stored = sweep.logit_deltas()
    for c, step in enumerate(sweep.steps):
        for (i, j), p in cols.items():
            want = stored.sel(step=step, i=i, j=j).values.astype(np.float64)
            assert np.all(np.abs(logits[c, p] - want) <= logit_tolerance(want))
    # per-tensor RMS: the pair_rms table's rows, float32 exact
    rms = sweep.rms_table()
    bracket, grad = decode(data["rms_bracket"]), decode(data["rms_grad"])
    tensors = data["tensors"]
    for r in rms.itertuples():
        c, p, t = sweep.steps.index(r.step), cols[(r.i, r.j)], tensors.index(r.tensor)
        assert bracket[c, p, t] == np.float32(r.rms_bracket) and grad[c, p, t] == np.float32(r.rms_grad)
    fits = sweep.fits()
    norm, cfit = decode(data["scores"]["norm"]), decode(data["scores"]["c"])
    for r in fits.itertuples():
        c, p = sweep.steps.index(r.step), cols[(r.i, r.j)]
        assert norm[c, p] == np.float32(r.norm) and cfit[c, p] == np.float32(r.c)
    # losses of the shown examples, and the mean over all
    losses = sweep.example_table()
    values = decode(data["loss"]["values"])
    for k, e in enumerate(data["loss"]["examples"]):
        want = losses[losses.example == e].sort_values("step")["loss"].to_numpy()
        assert np.array_equal(values[k], want.astype(np.float32))
    assert np.allclose(decode(data["loss"]["mean"]), losses.groupby("step")["loss"].mean().to_numpy(), rtol=1e-6)
    # outputs moving most: mean |delta| over all completed pairs and eval examples, per checkpoint
    moved = decode(data["outputs"])
    all_deltas = np.abs(np.asarray(sweep.store.group["logit_deltas"][:], dtype=np.float64)).mean(axis=(1, 2))
    assert np.allclose(moved, all_deltas, rtol=1e-5)
    # thumbnails of the shown and the evaluation examples; conventions' values
    assert set(map(int, data["images"]["examples"])) >= set(sweep.examples) | set(sweep.eval_examples)
    assert data["info"]["epsilon"] == sweep.epsilon and data["info"]["field"] == "sgd"
    rank = decode(data["ckpt"]["effective_rank"])
    assert np.all((rank > 1) & (rank <= len(sweep.examples)))


def test_effective_rank_from_grad_dot_equals_the_gradients_gram(store, tmp_path):
    from lie_sweep.analysis import effective_rank
    import torch

    sweep = open_sweep(str(store))
    data = page_data(write_report_to(store, tmp_path / "r.html"))
    for c, step in enumerate(sweep.steps):
        g = np.asarray(sweep.store.group["gradients"][c], dtype=np.float64)
        want = effective_rank(torch.from_numpy(g @ g.T))
        assert decode(data["ckpt"]["effective_rank"])[c] == pytest.approx(want, rel=1e-4)


def write_report_to(store, out, **kw):
    write_report(str(store), str(out), **kw)
    return out


def test_top_k_shows_the_most_order_sensitive_examples_and_says_what_it_left_out(store, tmp_path):
    sweep = open_sweep(str(store))
    out = tmp_path / "top.html"
    result = write_report(str(store), str(out), top=3)
    data = page_data(out)
    top3 = sweep.example_ranking(by="norm", top=3)["example"].tolist()
    assert result.shown == 3 and data["shown"] == sorted(top3)
    assert "top 3 of 6 examples" in data["selection"]["text"] and "left out: 3 examples" in data["selection"]["text"]
    cols = page_pairs(data)
    among = {(int(i), int(j)) for i, j in sweep.pairs if int(i) in top3 and int(j) in top3}
    tops = {(int(r.i), int(r.j)) for s in sweep.steps for r in sweep.top_pairs(10, ckpt=s).itertuples()}
    assert set(cols) == among | tops
    # explicit examples
    data = page_data(write_report_to(store, tmp_path / "ex.html", examples=[sweep.examples[0], sweep.examples[-1]]))
    assert data["shown"] == [sweep.examples[0], sweep.examples[-1]]


def test_size_budget_lowers_precision_then_examples_then_refuses(store, tmp_path):
    full = write_report(str(store), str(tmp_path / "a.html"))
    plotly_mb = (full.n_bytes - 200_000) / 2**20
    out = tmp_path / "b.html"
    # a budget just under the full page: 8-bit logit deltas first
    tight = write_report(str(store), str(out), max_mb=(full.n_bytes - 1) / 2**20)
    assert tight.n_bytes <= full.n_bytes - 1 and tight.logit_encoding == "i8s" and tight.shown == 6
    assert "fitted to the size budget" in page_data(out)["selection"]["budget_note"]
    with pytest.raises(Exception, match="does not fit its size budget"):
        write_report(str(store), str(tmp_path / "c.html"), max_mb=plotly_mb / 2)
    assert not (tmp_path / "c.html").exists()


def test_store_in_progress_shows_completed_tasks_only(store, tmp_path):
    partial = tmp_path / "partial.zarr"
    shutil.copytree(store, partial)
    sweep = open_sweep(str(partial))
    pending = [3, 4, 20]  # their files stay (as after a kill before the mark): the page must not show them
    for t in pending:
        sweep.store.ledger.clear_mark(t)
    data = page_data(write_report_to(partial, tmp_path / "partial.html"))
    info = data["info"]
    assert not info["complete"] and info["tasks_done"] == 30 - len(pending)
    layout = sweep.store.layout
    done, logits, norm = decode(data["done"]), decode(data["logits"]), decode(data["scores"]["norm"])
    positions = decode(data["positions"]).astype(int)
    for c in range(len(sweep.steps)):
        for p, pos in enumerate(positions):
            task = c * layout.n_tasks_per_checkpoint + pos // layout.pairs_per_task
            assert bool(done[c, p]) == (task not in pending)
            assert np.isnan(logits[c, p]).all() == (task in pending)
            assert np.isnan(norm[c, p]) == (task in pending)
    n_pairs = decode(data["ckpt"]["n_pairs"])
    assert n_pairs.tolist() == [15 - 2, 15 - 1]
    assert data["outputs_pairs"] == [13, 14]


def test_cli_report_and_its_one_line_errors(store, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(store), "-o", str(out), "--top", "4"]) == 0
    assert "4 of 6 examples" in capsys.readouterr().out and out.is_file()
    assert main(["report", str(store), "-o", str(out)]) == 0  # an earlier report is replaced
    mine = tmp_path / "notes.html"
    mine.write_text("my notes")
    cases = [
        (["-o", str(mine)], "exists and is not a lie-sweep report"),
        (["-o", str(tmp_path)], "output is a directory"),
        (["-o", str(store / "r.html")], "inside the store"),
        (["--examples", "1,x"], "--examples takes dataset indices"),
        (["--examples", "0,999"], "outside this sweep"),
        (["--max-mb", "0"], "--max-mb must be positive"),
    ]
    for extra, message in cases:
        assert main(["report", str(store), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert mine.read_text() == "my notes"
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_default_output_sits_beside_a_local_store(store, tmp_path):
    from jobs.report import default_report_path

    assert default_report_path("out/sweep") == "out/sweep-report.html"
    assert default_report_path("out/sweep/") == "out/sweep-report.html"
    assert default_report_path("s3://bucket/exp1") == "exp1-report.html"
