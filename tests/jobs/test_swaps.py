"""Effect swap (issue 23): exact θ_ij − θ_ji stored beside the brackets, equal to independent two-step loops
(torch.optim for the checkpoint's own Adam), with the leading order's error per pair, rankings and show."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from jobs.execution.runs import resume_sweep, run_sweep
from jobs.results.show import show_store
from jobs.results.status import sweep_status
from jobs.results.verify import verify_store
from lie_sweep import SGDField, apply_checkpoint, load_checkpoint, open_sweep
from lie_sweep.data import stack_examples
from lie_sweep.fields import FunctionalModel, bce_per_example
from lie_sweep.verify import real_swap as field_steps
from storage.errors import StoreKeyError

from .cli_runner import run_cli
from .sweeps import glob_overrides, model_and_data

pytestmark = pytest.mark.slow
QUIET = {"log": lambda m: None}
LADDER = (0.005, 0.0005)


def _flat(named, names):
    return np.concatenate([named[n].detach().numpy().reshape(-1) for n in names])


def _checkpoint_model(sweep, c):
    model, data = model_and_data(sweep)
    model = model.double()
    apply_checkpoint(model, load_checkpoint(sweep.meta.checkpoints[c]["path"]))
    return model.eval(), data


def _adam_swap(model, saved, x_i, y_i, x_j, y_j, eps):
    """θ_ij − θ_ji with torch.optim.Adam loaded from the checkpoint's state, its learning rate set to ``eps``."""
    ends = []
    for first, second in (((x_i, y_i), (x_j, y_j)), ((x_j, y_j), (x_i, y_i))):
        m = copy.deepcopy(model)
        opt = torch.optim.Adam(m.parameters())
        opt.load_state_dict(copy.deepcopy(saved))
        for group in opt.param_groups:
            group["lr"] = eps
        for x, y in (first, second):
            opt.zero_grad()
            bce_per_example(m(x[None]), y[None]).sum().backward()
            opt.step()
        ends.append(torch.cat([p.detach().reshape(-1) for p in m.parameters()]))
    return (ends[0] - ends[1]).numpy()


def test_sgd_swaps_are_two_real_steps_and_the_tables_measure_the_leading_order(reference, local_ray, tmp_path):
    store = tmp_path / "s"
    run_sweep(glob_overrides(reference, store, "precision=float64", "effects=[bracket,swap]",
                             f"swap_epsilon=[{LADDER[0]},{LADDER[1]}]", "pairs.per_task=4"), **QUIET)
    sweep = open_sweep(str(store))
    g = sweep.store.group
    assert sweep.swap_epsilons == list(LADDER) and g["swaps"].shape[:3] == (2, 2, len(sweep.pairs))
    assert dict(g["swaps"].attrs)["epsilon"] == list(LADDER) and dict(g["swaps"].attrs)["rule"] == "field sgd"
    names = sweep.param_names
    fits = sweep.fits()
    for c, step in enumerate(sweep.steps):
        model, data = _checkpoint_model(sweep, c)
        fm = FunctionalModel(model)
        params = fm.params()
        roundoff = 64 * np.finfo(np.float64).eps * max(float(t.abs().max()) for t in params.values())
        eval_x = stack_examples(data, sweep.eval_examples)[0].double()
        for p, (i, j) in enumerate(sweep.pairs.tolist()):
            (xi, yi), (xj, yj) = (tuple(t[0].double() for t in stack_examples(data, [k])) for k in (i, j))
            for k, eps in enumerate(LADDER):
                a, b = field_steps(fm, SGDField(), params, (xi, yi), (xj, yj), eps)
                want = _flat(a, names) - _flat(b, names)
                got = np.asarray(g["swaps"][c, k, p])
                # the loop subtracts two parameter vectors: its own round-off is ~u·max|θ|
                assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max() + roundoff, (step, i, j, eps)
                with torch.no_grad():
                    f_a, f_b = fm.outputs(a, eval_x), fm.outputs(b, eval_x)
                logits = (f_a - f_b).numpy()
                # a difference of two outputs: its round-off is ~u·max|f| (batched and single forward passes differ)
                np.testing.assert_allclose(g["swap_logit_deltas"][c, k, p], logits, rtol=1e-7,
                                           atol=64 * np.finfo(np.float64).eps * float(f_a.abs().max()))
            row = fits[(fits.step == step) & (fits.i == i) & (fits.j == j)].iloc[0]
            swap0, bracket = np.asarray(g["swaps"][c, 0, p]), np.asarray(g["brackets"][c, p])
            assert row.swap_norm == pytest.approx(np.linalg.norm(swap0))
            assert row.lead_rel_err == pytest.approx(np.linalg.norm(swap0 - LADDER[0] ** 2 * bracket)
                                                     / np.linalg.norm(swap0))
    # the leading order's error falls like ε where it holds: 10× smaller ε, ~10× smaller error (median)
    small = [np.linalg.norm(np.asarray(g["swaps"][c, 1, p]) - LADDER[1] ** 2 * np.asarray(g["brackets"][c, p]))
             / np.linalg.norm(np.asarray(g["swaps"][c, 1, p])) for c in range(2) for p in range(len(sweep.pairs))]
    assert np.median(small) < 0.3 * fits["lead_rel_err"].median()
    i, j = (int(v) for v in sweep.pairs[3])
    swapped = sweep.swap(sweep.steps[1], j, i, epsilon=LADDER[1])
    assert all(np.array_equal(swapped[n], -sweep.swap(sweep.steps[1], i, j, epsilon=LADDER[1])[n]) for n in names)
    ranking = sweep.example_ranking(sweep.steps[-1], by="swap")
    assert ranking["score"].is_monotonic_decreasing and ranking["score"].iloc[0] == \
        sweep.example_stats(sweep.steps[-1])["mean_swap_norm"].max()
    view = sweep.swaps_xr([names[0]]).sel(step=sweep.steps[1], epsilon=LADDER[1], i=i, j=j)[names[0]].values
    assert np.array_equal(view, -swapped[names[0]])
    assert sweep.swap_logit_deltas().sel(epsilon=LADDER[1]).shape == (2, len(sweep.pairs), len(sweep.eval_examples),
                                                                      len(sweep.output_names))
    text = show_store(str(store))
    assert "exact swaps theta_ij - theta_ji at epsilon = 0.005" in text and "top 10 pairs by exact swap" in text
    # check reads the swap files back; resume recomputes a task's swaps bit for bit (same calls, same batches)
    before = np.asarray(g["swaps"][:]), np.asarray(g["swap_logit_deltas"][:])
    assert run_cli("check", str(store), cwd=tmp_path).stdout.strip().endswith("all intact")
    shard = Path(sweep.store.files_of(sweep.store.layout.tasks()[1])["swaps 1"])
    shard.write_bytes(shard.read_bytes()[:50])
    proc = run_cli("check", str(store), "--repair", cwd=tmp_path)
    assert proc.returncode == 1 and "damaged task 1 " in proc.stdout and "swaps 1 unreadable" in proc.stdout
    sweep.store.ledger.clear_mark(5)
    sweep.store.discard_files(list(sweep.store.files_of(sweep.store.layout.tasks()[5]).values()))
    result = resume_sweep(str(store), log=lambda m: None)
    assert sorted(r["task_id"] for r in result.report.completed) == [1, 5]
    g = open_sweep(str(store)).store.group
    assert np.array_equal(g["swaps"][:], before[0]) and np.array_equal(g["swap_logit_deltas"][:], before[1])

    # effects=[swap] alone: the same swaps bit for bit, without the bracket's arrays, tables keyed on the swap
    alone = tmp_path / "alone"
    run_sweep(glob_overrides(reference, alone, "precision=float64", "effects=[swap]",
                             f"swap_epsilon=[{LADDER[0]},{LADDER[1]}]", "pairs.per_task=4"), **QUIET)
    only = open_sweep(str(alone))
    h = only.store.group
    assert np.array_equal(h["swaps"][:], before[0]) and np.array_equal(h["swap_logit_deltas"][:], before[1])
    assert "brackets" not in h and "logit_deltas" not in h and "gradients" in h
    table = only.fits()
    assert "norm" not in table.columns and "lead_rel_err" not in table.columns
    both = fits.set_index(["step", "pair"])
    for column in ("swap_norm", "swap_logit_rms", "grad_dot"):
        assert np.array_equal(table.set_index(["step", "pair"])[column], both[column]), column
    rms = only.rms_table(only.steps[0])
    assert {"rms_swap", "rms_grad"} <= set(rms.columns) and "rms_bracket" not in rms.columns
    row = rms[(rms["pair"] == 0)].set_index("tensor")["rms_swap"]
    swap0 = only.swap(only.steps[0], *(int(v) for v in only.pairs[0]))
    assert all(row[n] == pytest.approx(np.sqrt(np.mean(swap0[n].astype(np.float64) ** 2))) for n in names)
    ranking = only.example_ranking()                                   # the default score: the exact swap
    assert ranking["score"].equals(ranking["mean_swap_norm"]) and ranking["se"].notna().all()
    with pytest.raises(StoreKeyError, match="this store has no brackets"):
        only.bracket(only.steps[0], *(int(v) for v in only.pairs[0]))
    with pytest.raises(StoreKeyError, match="this store has no norm scores"):
        only.top_pairs(by="norm")
    text = show_store(str(alone))
    assert "mean |swap_ej|" in text and "top 10 pairs by exact swap" in text and "|[u_i,u_j]|" not in text
    assert "tensors with the largest exact swap RMS" in text
    assert sweep_status(str(alone))["compression_ratio"] > 0
    # verify checks the stored swaps against independent float64 steps; with no expansion stored, only that
    checked = verify_store(str(alone), pairs=2, log=lambda m: None)
    rows = checked.verify_swaps()
    assert len(rows) == 2 * 2 * len(LADDER) and set(rows["reference"]) == {"field steps"}
    # the reference subtracts two parameter vectors: its own round-off, ~u·|θ| ≈ 1e-16, is the floor at small ε
    assert (rows["swap_rel_err"] * rows["norm_ref"] <= 1e-9 * rows["norm_ref"] + 1e-14).all()
    assert rows["logit_rel_err"].max() < 1e-6 and checked.verify_table().empty


def test_optimizer_swaps_are_the_checkpoints_own_adam_steps(reference, local_ray, tmp_path):
    store = tmp_path / "o"
    run_sweep(glob_overrides(reference, store, "precision=float64", "field=optimizer",
                             "effects=[bracket,swap,order]", "examples.count=4", "pairs.per_task=6"), **QUIET)
    sweep = open_sweep(str(store))
    g = sweep.store.group
    lr = load_checkpoint(sweep.meta.checkpoints[0]["path"]).optimizer_state["param_groups"][0]["lr"]
    assert sweep.swap_epsilons == [lr]                          # the default: the checkpoint's own learning rate
    for c in range(len(sweep.steps)):
        model, data = _checkpoint_model(sweep, c)
        saved = load_checkpoint(sweep.meta.checkpoints[c]["path"]).optimizer_state
        for p, (i, j) in enumerate(sweep.pairs.tolist()):
            (xi, yi), (xj, yj) = (tuple(t[0].double() for t in stack_examples(data, [k])) for k in (i, j))
            want = _adam_swap(model, saved, xi, yi, xj, yj, lr)
            got = np.asarray(g["swaps"][c, 0, p])
            assert np.abs(got - want).max() <= 1e-8 * np.abs(want).max(), (c, i, j)
    fits = sweep.fits()
    # under Adam the order effect is first order: the SGD bracket is no approximation of it
    assert (fits["first_order_share"] > 0.5).all() and (fits["lead_rel_err"] > 0.9).all()
    assert fits["order_rel_err"].median() < 0.5               # the expansion does better, not exactly
    # verify: the stored swaps against torch.optim's own (float64), the expansion against real swaps
    proc = run_cli("verify", str(store), "--pairs", "2", cwd=tmp_path)
    assert proc.returncode == 0 and "against torch.optim on 2 pairs" in proc.stdout, proc.stderr
    rows = open_sweep(str(store)).verify_swaps()
    assert set(rows["reference"]) == {"torch.optim"} and rows["swap_rel_err"].max() < 1e-9
    assert rows["norm_rel_err"].max() < 1e-9 and not open_sweep(str(store)).verify_table().empty


def test_effects_are_checked_before_anything_runs(tmp_path):
    for args, needle in ((["effects=[]"], "no effect chosen"),
                         (["effects=[bracket,order]"], "needs the checkpoint's own optimizer"),
                         (["swap_epsilon=0.1"], "swap_epsilon without the swap effect"),
                         (["effects=[bracket,swap]", "swap_epsilon=[0.1,0.1]"], "bad value for swap_epsilon")):
        proc = run_cli("run", *args, f"storage.path={tmp_path / 's'}", f"checkpoints.dir={tmp_path / 'ck'}",
                       cwd=tmp_path)
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ck").exists() and not (tmp_path / "s").exists()


def test_plan_counts_each_effects_arrays():
    from jobs.planning.config import load_config
    from jobs.planning.sizing import pair_arrays

    assert pair_arrays(load_config()) == (1, 0)
    assert pair_arrays(load_config(["field=optimizer"])) == (3, 0)                      # bracket, order1, order2
    assert pair_arrays(load_config(["effects=[bracket,swap]", "swap_epsilon=[0.01,0.001]"])) == (3, 2)
    assert pair_arrays(load_config(["field=optimizer", "effects=[bracket,swap,order]"])) == (4, 1)


def test_plan_times_the_swap_of_a_sweep_without_the_bracket(tmp_path):
    from jobs.planning.config import load_config
    from jobs.planning.dry_run import plan_sweep
    from jobs.planning.plan_text import format_plan

    report = plan_sweep(load_config(["effects=[swap]", "swap_epsilon=[0.01,0.001]", "examples.count=4",
                                     f"checkpoints.dir={tmp_path / 'ck'}"]), calibration_pairs=3)
    cal = report.calibration
    assert cal["s_per_pair"] == 0 and cal["s_per_swap_pair"] > 0 and not report.hvp_modes and report.hvps == 0
    assert report.seconds() >= report.n_checkpoints * report.n_pairs * cal["s_per_swap_pair"]
    text = format_plan(report)
    work = next(line for line in text.splitlines() if line.startswith("work"))
    assert f"{5 * 6} × 2 exact swaps" in work and "Hessian" not in work and "2 swaps" in text
    assert "exact swaps (one step size) on disk" in text and not (tmp_path / "ck").exists()


def test_non_finite_exact_logit_deltas_name_the_pair_and_step_size():
    from jobs.execution.derive import require_finite_outputs
    from lie_sweep.errors import NonFiniteError

    values = torch.zeros(2, 3, 4, 5)
    require_finite_outputs(values, {"step": 7, "path": "/x/s.pt"}, lambda r: None, [0.1, 0.01])  # finite: nothing
    values[1, 2, 0, 1] = float("inf")
    with pytest.raises(NonFiniteError, match=r"of \(1, 2\) at ε = 0.01"):
        require_finite_outputs(values, {"step": 7, "path": "/x/s.pt"}, lambda r: [(0, 1), (0, 2), (1, 2)][r],
                               [0.1, 0.01])
