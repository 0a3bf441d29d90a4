"""Large sweeps: tiled tasks over example blocks, the cross / tournament / top grids, example rankings,
and the memory fit check (issue 13). Values are checked against compute_brackets and an all-pairs store."""


import numpy as np
import pytest
import torch

from jobs.planning.grids import partner_counts
from jobs.execution.runs import run_sweep
from lie_sweep import FunctionalModel, apply_checkpoint, compute_brackets, load_checkpoint, open_sweep
from lie_sweep.data import stack_examples
from lie_sweep.params import ParamSpec

from .cli_runner import run_cli as _cli
from .sweeps import glob_overrides, model_and_data

QUIET = {"log": lambda m: None}


def _expected_brackets(sweep, step_index, pairs, dtype):
    """compute_brackets on ``pairs`` (dataset indices) at the sweep's checkpoint, independently of the worker."""
    model, data = model_and_data(sweep)
    model = model.to(dtype)
    apply_checkpoint(model, load_checkpoint(sweep.meta.checkpoints[step_index]["path"]))
    examples = sorted({k for p in pairs for k in p})
    x, y = stack_examples(data, examples)
    where = {e: k for k, e in enumerate(examples)}
    named = compute_brackets(model, x.to(dtype), y.to(dtype), [(where[i], where[j]) for i, j in pairs])
    spec = ParamSpec.from_tensors(FunctionalModel(model).params())
    return spec.flatten(named, batch_dims=1).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("precision,tol", [("float64", 1e-10), ("float32", 1e-6)])
def test_tiled_tournament_equals_compute_brackets(reference, tmp_path, precision, tol):
    store = tmp_path / "t"
    run_sweep(glob_overrides(reference, store, "examples.count=24", "pairs=tournament", "pairs.rounds=2",
                             "pairs.group=6", "pairs.block=4", "pairs.per_task=10", f"precision={precision}",
                             "derived.eval_count=0"), **QUIET)
    sweep = open_sweep(str(store))
    layout = sweep.store.layout
    assert layout.n_blocks == 6 and sum(len(t.example_blocks) for t in layout.tasks()) == 6 * len(sweep.steps)
    assert len(sweep.pairs) > 100 and sweep.complete
    owned = [p for t in layout.tasks() for p in sweep.store.files_of(t).values()]
    assert len(owned) == len(set(owned))                                       # tasks' files are disjoint
    written = {str(p) for p in (store / "arrays.zarr").rglob("c/*/*/*") if p.is_file()}
    assert written <= set(owned)                                               # and nothing else was written
    for c in range(len(sweep.steps)):
        got = np.asarray(sweep.store.group["brackets"][c], dtype=np.float64)
        want = _expected_brackets(sweep, c, [tuple(p) for p in sweep.pairs.tolist()],
                                  torch.float64 if precision == "float64" else torch.float32)
        assert np.abs(got - want).max() <= tol * np.abs(want).max()
        grads = np.asarray(sweep.store.group["gradients"][c])
        assert np.isfinite(grads).all() and np.isfinite(np.asarray(sweep.store.group["losses"][c])).all()
    # every example's gradient stored exactly once per checkpoint, by block owners
    assert sorted(sweep.example_table()["example"].tolist()) == sorted(sweep.examples * len(sweep.steps))


@pytest.mark.slow
def test_cross_and_top_grids_equal_the_same_pairs_of_an_all_pairs_store(reference, tmp_path):
    common = ["precision=float64", "derived.eval_count=4", "pairs.block=2", "pairs.per_task=3"]
    full = tmp_path / "all"
    run_sweep(glob_overrides(reference, full, "examples.count=8", *common), **QUIET)
    cross = tmp_path / "cross"
    run_sweep(glob_overrides(reference, cross, "examples.count=2", "pairs=cross", "pairs.pool.start=1",
                             "pairs.pool.count=7", *common), **QUIET)
    top = tmp_path / "top"
    run_sweep(glob_overrides(reference, top, "pairs=top", f"pairs.top.store={full}", "pairs.top.k=5",
                             "pairs.top.by=norm", *common), **QUIET)
    a, x, t = (open_sweep(str(p)) for p in (full, cross, top))
    # cross: 2 probes x a pool of 7 that holds probe 1: (0,1..7) and (1,2..7), 13 pairs
    assert len(x.pairs) == 13 and {tuple(p) for p in x.pairs.tolist()} == \
        {(0, b) for b in range(1, 8)} | {(1, b) for b in range(2, 8)}
    best = a.top_pairs(5, by="norm").sort_values("pair")
    scores = a.fits().groupby("pair")["norm"].max().sort_values(ascending=False)
    assert {tuple(p) for p in t.pairs.tolist()} == {tuple(a.pairs[p]) for p in scores.index[:5]}
    assert len(best) == 5
    for other in (x, t):
        for p, (i, j) in enumerate(other.pairs.tolist()):
            q, sign = a._oriented_pair(i, j)
            assert sign == 1
            for c in range(len(a.steps)):
                np.testing.assert_allclose(other.store.group["brackets"][c, p], a.store.group["brackets"][c, q],
                                           rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(other.store.group["logit_deltas"][c, p],
                                           a.store.group["logit_deltas"][c, q], rtol=1e-9, atol=1e-14)
        fx = other.fits().set_index(["step", "i", "j"])["grad_dot"]
        fa = a.fits().set_index(["step", "i", "j"])["grad_dot"].loc[fx.index]
        np.testing.assert_allclose(fx.to_numpy(), fa.to_numpy(), rtol=1e-10)


@pytest.mark.slow
def test_example_ranking_of_a_tournament(reference, tmp_path):
    store = tmp_path / "r"
    run_sweep(glob_overrides(reference, store, "storage.keep=summary", "examples.count=32", "pairs=tournament",
                             "pairs.group=8", "pairs.rounds=2", "pairs.block=8", "pairs.per_task=16",
                             "derived.eval_count=0"), **QUIET)
    sweep = open_sweep(str(store))
    step = sweep.steps[-1]
    stats = sweep.example_stats(step)
    where = {e: k for k, e in enumerate(sweep.examples)}
    pos = np.asarray([(where[i], where[j]) for i, j in sweep.pairs.tolist()])
    counts = partner_counts(pos, len(sweep.examples))
    assert stats.set_index("example")["partners"].to_dict() == {e: counts[k] for e, k in where.items()}
    fits = sweep.fits(step)
    e = int(stats["example"].iloc[0])
    norms = fits.loc[(fits.i == e) | (fits.j == e), "norm"].to_numpy()
    row = stats.iloc[0]
    assert row.mean_norm == pytest.approx(norms.mean()) and row.rms_norm == pytest.approx(np.sqrt((norms ** 2).mean()))
    assert row.se_norm == pytest.approx(norms.std(ddof=1) / np.sqrt(len(norms)))
    ranking = sweep.example_ranking(step, by="norm", top=5)
    assert len(ranking) == 5 and ranking["score"].is_monotonic_decreasing
    assert ranking["score"].iloc[0] == stats["mean_norm"].max()
    keep = set(sweep.example_ranking(step).example[5:].tolist())             # what a data loader filters by
    assert len(keep) == 27 and not keep & set(ranking.example.tolist())
    from jobs.results.show import show_store
    assert "examples ranked by order sensitivity" in show_store(str(store))
    assert "effective_rank" not in sweep.checkpoint_table().columns
    assert (sweep.checkpoint_table()["n_examples"] == 32).all()


# an MLP of ~2M parameters in float64: a task of 2,000 pairs needs ~100 GiB, more than any worker here
HUGE = ["model=mlp", "model.hidden=[640]", "data.length=64", "examples.count=64", "precision=float64",
        "pairs.per_task=2000", "derived.eval_count=0"]


@pytest.mark.slow
def test_plan_and_run_refuse_a_task_that_cannot_fit_and_suggest_one_that_does(tmp_path):
    run = _cli("run", *HUGE, f"storage.path={tmp_path / 's'}", f"checkpoints.dir={tmp_path / 'ck'}", cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    err = run.stderr.strip()
    assert len(err.splitlines()) == 1 and "does not fit a worker's memory" in err, err
    assert not (tmp_path / "ck").exists() and not (tmp_path / "s").exists()      # refused before training
    fix = err.split("set ", 1)[1].rstrip(")").split()                           # pairs.per_task=N chunk_size=M
    assert fix[0].startswith("pairs.per_task=") and fix[1].startswith("chunk_size=")
    # two calibration pairs: what fits does not depend on them, and each costs HVPs and four codecs' encodes
    # of 2M float64 values
    plan = _cli("plan", *HUGE, *fix, "--calibration-pairs", "2", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    assert "files" in out and "2,016 pairs" in out and "fits" in out and "DOES NOT FIT" not in out
    too_big = _cli("plan", *HUGE, "--calibration-pairs", "2", cwd=tmp_path)
    assert too_big.returncode == 0 and "DOES NOT FIT" in too_big.stdout


# an MLP of D ≈ 0.6M parameters in a tournament (r = 2, b = 16) over E examples, summaries only, a 0.2 GiB cache
MEMORY = ["model=mlp", "model.hidden=[192]", "data.length=4096", "pairs=tournament", "pairs.rounds=2",
          "pairs.group=16", "pairs.per_task=32", "pairs.block=16", "storage.keep=summary", "derived.eval_count=0",
          "checkpoints.steps=1", "checkpoints.save_every=1", "cluster.workers=1", "cluster.threads_per_worker=2",
          "cluster.cache_gib=0.2"]


@pytest.mark.slow
def test_peak_worker_rss_does_not_grow_with_the_number_of_examples(tmp_path):
    import threading

    from .faults import kill_when, start_cli
    from .sweeps import marks_of

    n_params = 3 * 32 * 32 * 192 + 192 + 192 * 12 + 12
    stores = {count: tmp_path / f"e{count}" for count in (256, 4096)}
    # both sweeps at once, each its own driver, Ray and worker (memory is per process; start-up overlaps)
    procs = {count: start_cli("run", *MEMORY, f"examples.count={count}", f"storage.path={store}",
                              f"checkpoints.dir={tmp_path / f'ck{count}'}", cwd=tmp_path)
             for count, store in stores.items()}
    errors = []

    def stop(count):
        try:
            kill_when(procs[count], stores[count], 5, timeout=400)  # past the cache's filling (~3 tasks)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=stop, args=(count,)) for count in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    peak = {}
    for count, store in stores.items():
        marks = marks_of(store)
        assert len(marks) >= 5 and all(m["examples"] <= 64 for m in marks.values())
        rows = max(m["cache_misses"] for m in marks.values())                # example rows computed so far
        assert rows * 2 * n_params * 4 > 0.2 * 2 ** 30                       # more than the 0.2 GiB cache holds
        peak[count] = max(m["peak_rss"] for m in marks.values())
    print(f"peak worker RSS: E=256 {peak[256] / 2**30:.2f} GiB, E=4096 {peak[4096] / 2**30:.2f} GiB")
    assert peak[4096] <= 1.3 * peak[256]
    # the design before tiles held every example's gradient and field, 2·E·D floats: 19 GB at E = 4096
    assert 2 * 4096 * n_params * 4 > 5 * peak[4096]
