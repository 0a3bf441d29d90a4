"""pairs.unit=batch: a sweep whose items are disjoint seeded minibatches (float64): stored brackets are the means
of the members' pairwise brackets, stored swaps two real mean-gradient steps, and the store says what each item
holds."""

import itertools

import numpy as np
import pytest

from jobs.execution.runs import run_sweep
from jobs.results.show import show_store
from jobs.results.verify import verify_store
from lie_sweep import SGDField, apply_checkpoint, compute_brackets, load_checkpoint, open_sweep
from lie_sweep.data import Minibatches, seeded_minibatches, stack_examples
from lie_sweep.fields import FunctionalModel
from lie_sweep.verify import real_swap

from .cli_runner import run_cli
from .sweeps import glob_overrides, model_and_data

pytestmark = pytest.mark.slow
EPS = 0.01


def test_a_minibatch_sweep_stores_mean_field_brackets_and_mean_gradient_swaps(reference, local_ray, tmp_path):
    store = tmp_path / "b"
    run_sweep(glob_overrides(reference, store, "precision=float64", "examples.count=6", "pairs.unit=batch",
                             "pairs.batch_size=2", "effects=[bracket,swap]", f"swap_epsilon={EPS}"),
              log=lambda m: None)
    sweep = open_sweep(str(store))
    assert sweep.unit == "batch" and sweep.examples == [0, 1, 2] and len(sweep.pairs) == 3
    assert sweep.batches == seeded_minibatches(list(range(6)), 2, seed=sweep.config["seed"])
    g, names = sweep.store.group, sweep.param_names
    for c, step in enumerate(sweep.steps):
        model, data = model_and_data(sweep)
        model = model.double().eval()
        apply_checkpoint(model, load_checkpoint(sweep.meta.checkpoints[c]["path"]))
        fm = FunctionalModel(model, batched_items=True)
        items = Minibatches(data, sweep.batches)
        for p, (a, b) in enumerate(sweep.pairs.tolist()):
            members = sweep.batches[a] + sweep.batches[b]
            x, y = (t.double() for t in stack_examples(data, members))
            pairs = list(itertools.product(range(2), range(2, 4)))       # every member of a with every one of b
            each = compute_brackets(model, x, y, pairs)
            want = np.concatenate([each[n].mean(dim=0).numpy().reshape(-1) for n in names])
            got = np.asarray(g["brackets"][c, p])
            assert np.linalg.norm(got - want) <= 1e-10 * np.linalg.norm(want), (step, a, b)
            (xa, ya), (xb, yb) = ((t.double() for t in items[k]) for k in (a, b))
            ij, ji = real_swap(fm, SGDField(), fm.params(), (xa, ya), (xb, yb), EPS)
            ref = np.concatenate([(ij[n] - ji[n]).numpy().reshape(-1) for n in names])
            # the loop subtracts two parameter vectors: its round-off is ~u·max|θ|
            assert np.abs(np.asarray(g["swaps"][c, 0, p]) - ref).max() <= 1e-9 * np.abs(ref).max() + 1e-14
    ranking = sweep.example_ranking()
    assert sorted(ranking["example"]) == [0, 1, 2] and (ranking["partners"] == 2 * len(sweep.steps)).all()
    text = show_store(str(store))
    assert "3 pairs of 3 minibatches of 2 examples" in text
    checked = verify_store(str(store), pairs=1, log=lambda m: None).verify_swaps()
    assert (checked["swap_rel_err"] * checked["norm_ref"] <= 1e-9 * checked["norm_ref"] + 1e-14).all()


def test_minibatch_settings_are_checked_before_anything_runs(tmp_path):
    for args, needle in ((["pairs.unit=batch"], "missing value for pairs.batch_size"),
                         (["pairs.batch_size=4"], "pairs.batch_size without minibatches"),
                         (["pairs.unit=batch", "pairs.batch_size=3"], "the examples do not make minibatches"),
                         (["pairs.unit=batch", "pairs.batch_size=2", "pairs=cross"], "cannot pair minibatches")):
        proc = run_cli("run", *args, f"storage.path={tmp_path / 's'}", f"checkpoints.dir={tmp_path / 'ck'}",
                       cwd=tmp_path)
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
    assert not (tmp_path / "ck").exists() and not (tmp_path / "s").exists()
