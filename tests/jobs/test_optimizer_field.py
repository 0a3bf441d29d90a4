"""field=optimizer: each checkpoint's own optimizer's exact order expansion, stored beside the bracket."""

import numpy as np
import pytest
import torch

from jobs.cli import main
from jobs.execution.runs import run_sweep
from lie_sweep import FunctionalModel, apply_checkpoint, compute_brackets, load_checkpoint, open_sweep, stack_examples
from lie_sweep.models import SmallConvNet
from lie_sweep.optim import from_state_dict
from lie_sweep.order import order_expansion

from .sweeps import glob_overrides


@pytest.fixture(scope="module")
def optimizer_store(reference, tmp_path_factory):
    store = tmp_path_factory.mktemp("opt") / "opt.zarr"
    run_sweep(glob_overrides(reference, store, "field=optimizer", "precision=float64"), log=lambda m: None)
    return store


def test_stored_order_terms_equal_an_independent_expansion(optimizer_store):
    sweep = open_sweep(str(optimizer_store))
    cfg = sweep.config
    data = __import__("lie_sweep").SyntheticShapes(**{k: v for k, v in cfg["data"].items() if k != "_target_"})
    fits = sweep.fits()
    eval_x = stack_examples(data, sweep.eval_examples)[0].double()
    for c, step in enumerate(sweep.steps):
        ck = load_checkpoint(sweep.meta.checkpoints[c]["path"])
        model = SmallConvNet(**{k: v for k, v in cfg["model"].items() if k != "_target_"}).double()
        apply_checkpoint(model, ck)
        fm = FunctionalModel(model)
        params = fm.params()
        opt_step, state = from_state_dict(ck.optimizer_state, fm.param_names)
        assert opt_step.kinds == ["adam"]
        for r in fits[fits.step == step].head(3).itertuples():
            x, y = stack_examples(data, [r.i, r.j])
            d1, d2 = order_expansion(fm, opt_step, params, state, (x[0].double(), y[0].double()),
                                     (x[1].double(), y[1].double()))
            s1, s2 = sweep.order_terms(step, r.i, r.j)
            for n in params:
                assert np.allclose(s1[n], d1[n].numpy(), rtol=1e-9, atol=1e-12 * float(d1[n].abs().max()))
                assert np.allclose(s2[n], d2[n].numpy(), rtol=1e-9, atol=1e-12 * float(d2[n].abs().max()))
            # swapping i and j negates both terms
            t1, _ = sweep.order_terms(step, r.j, r.i)
            assert all(np.array_equal(t1[n], -s1[n]) for n in params)
            # the pairs table: their norms, and which term dominates at the configured epsilon
            n1 = float(np.sqrt(sum((v ** 2).sum() for v in s1.values())))
            n2 = float(np.sqrt(sum((v ** 2).sum() for v in s2.values())))
            assert r.order1_norm == pytest.approx(n1, rel=1e-9) and r.order2_norm == pytest.approx(n2, rel=1e-9)
            eps = sweep.epsilon
            assert r.dominant == ("first" if eps * n1 >= eps * eps * n2 else "second")
            # logit deltas are J_f(eps d1 + eps^2 d2)
            tangent = {n: eps * d1[n] + eps * eps * d2[n] for n in params}
            with torch.no_grad():
                model.eval()
                jf = torch.func.jvp(lambda p: fm.outputs(p, eval_x), (params,), (tangent,))[1]
            stored = sweep.logit_deltas().sel(step=step, i=r.i, j=r.j).values
            assert np.allclose(stored, jf.numpy(), rtol=1e-7, atol=1e-12 * float(jf.abs().max()))
            # and the bracket array still holds the SGD bracket
            b = compute_brackets(model, x.double(), y.double(), [(0, 1)])
            got = sweep.bracket(step, r.i, r.j)
            assert all(np.allclose(got[n], b[n][0].numpy(), rtol=1e-8, atol=1e-12) for n in params)


def test_check_reads_the_order_arrays_and_verify_uses_the_optimizer(optimizer_store, capsys):
    assert main(["check", str(optimizer_store)]) == 0
    assert "all intact" in capsys.readouterr().out
    assert main(["show", str(optimizer_store)]) == 0
    shown = capsys.readouterr().out
    assert "the optimizer's order terms" in shown and "first-order dominant" in shown
    assert main(["verify", str(optimizer_store), "--pairs", "2"]) == 0
    rows = open_sweep(str(optimizer_store)).verify_table()
    assert len(rows) == 2 * 2 * 5 and rows["rel_theta"].notna().all()
    median = rows.groupby("epsilon")["rel_theta"].median()
    assert median.iloc[0] < median.iloc[-1]  # smaller steps, closer to the expansion


def test_checkpoints_without_optimizer_state_are_refused_in_one_line(reference, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in sorted((reference / "ck").glob("*.pt")):
        torch.save(load_checkpoint(path).model_state, bare / path.name)  # a plain state dict: no optimizer
    store = tmp_path / "never.zarr"
    args = [o for o in glob_overrides(reference, store, "field=optimizer") if not o.startswith("checkpoints.glob")]
    assert main(["run", *args, f"checkpoints.glob={bare}"]) == 2
    err = capsys.readouterr().err
    assert "field=optimizer needs the optimizer's state" in err and err.count("\n") == 1
    assert not store.exists()
