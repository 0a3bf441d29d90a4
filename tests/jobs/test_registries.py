"""A grid, an update field, a task and an effect are each one registry entry: a toy grid, field, task and effect,
registered here and nowhere else, run end to end through config, plan, local Ray workers and the store."""

import numpy as np
import pytest
import torch

import lie_sweep as ls
from jobs.execution.runs import run_sweep
from jobs.planning.config import load_config
from jobs.planning.grids import GRIDS, GridKind
from lie_sweep.effects import EFFECTS, Effect
from lie_sweep.errors import ConfigError
from lie_sweep.field_kinds import FIELDS, FieldKind
from lie_sweep.fields import UpdateField
from lie_sweep.task_kinds import TASKS, TaskKind
from lie_sweep.tasks import Task

pytestmark = pytest.mark.slow


def ring_positions(grid):
    """Each example with the next one, the last with the first: E pairs."""
    n = len(grid.examples)
    return np.asarray([(k, (k + 1) % n) for k in range(n)], dtype=np.int64)


class DoubledField(UpdateField):
    """u = -2 grad L: every bracket is 4 times the SGD bracket (exactly, in binary floating point)."""

    name = "doubled"
    linear = True

    def direction(self, params, grads):
        return {n: -2.0 * g for n, g in grads.items()}


def doubled(state, names, options):
    return DoubledField()


# registered at import: the Ray workers import this module when they unpickle the spec's field entry
RING = GridKind("ring", "each example with the next (a toy grid of the tests)", ring_positions)
DOUBLED = FieldKind("doubled", "u = -2 grad L (a toy field of the tests)", doubled)
for registry, entry in ((GRIDS, RING), (FIELDS, DOUBLED)):
    if entry.name not in registry:
        registry.register(entry)


def test_registered_choices_are_config_options_with_their_help():
    cfg = load_config(["pairs=ring", "field=doubled"])
    assert (cfg.pairs.mode, cfg.field.name) == ("ring", "doubled")
    from jobs.planning.schema import help_text

    text = help_text()
    assert "ring: each example with the next" in text and "doubled: u = -2 grad L" in text
    with pytest.raises(ConfigError, match="unknown pair grid; expected all | cross | tournament | top | list | ring"):
        load_config(["pairs.mode=rings"])


def test_a_toy_grid_and_field_run_end_to_end_through_the_workers(local_ray, small, tmp_path):
    result = run_sweep(small("pairs=ring", "field=doubled", "derived.eval_count=0"), log=lambda m: None)
    assert not result.report.failures
    sweep = ls.open_sweep(str(tmp_path / "s.zarr"))
    ex = sweep.examples
    assert [tuple(map(int, p)) for p in sweep.pairs] == [(ex[k], ex[(k + 1) % len(ex)]) for k in range(len(ex))]
    cfg = sweep.config
    model = ls.SmallConvNet(num_outputs=12, width=cfg["model"]["width"])
    data = ls.SyntheticShapes(length=cfg["data"]["length"], image_size=cfg["data"]["image_size"])
    x, y = ls.stack_examples(data, ex)
    pos = {e: k for k, e in enumerate(ex)}
    pairs = [(pos[int(i)], pos[int(j)]) for i, j in sweep.pairs]
    for prov in sweep.meta.checkpoints:
        ls.apply_checkpoint(model, ls.load_checkpoint(prov["path"]))
        sgd = ls.compute_brackets(model, x, y, pairs)
        for p, (i, j) in enumerate(sweep.pairs):
            got = sweep.bracket(prov["step"], int(i), int(j))
            for name, t in sgd.items():
                want = 4.0 * t[p].numpy()
                scale = max(float(np.abs(want).max()), 1e-30)
                assert np.abs(np.asarray(got[name]) - want).max() <= 1e-5 * scale, (prov["step"], i, j, name)


class SquaredHinge(Task):
    """A toy task of the tests: L = mean over attributes of max(0, 1 − (2y − 1) f)², measuring the margins."""

    name = "squared_hinge"

    def loss(self, out, y):
        return torch.relu(1 - (2 * y.to(out.dtype) - 1) * out).pow(2).reshape(out.shape[0], -1).mean(dim=1)

    def measure(self, out, y):
        return out.reshape(out.shape[0], -1)


HINGE = TaskKind("squared_hinge", "mean squared hinge over attributes (a toy task of the tests)", SquaredHinge)
if HINGE.name not in TASKS:
    TASKS.register(HINGE)


def test_a_toy_task_runs_end_to_end_through_its_registry_entry_alone(local_ray, small, tmp_path):
    from jobs.report import write_report
    from jobs.results.show import show_store

    result = run_sweep(small("task=squared_hinge", "derived.eval_count=2"), log=lambda m: None)
    assert not result.report.failures
    store = tmp_path / "s.zarr"
    sweep = ls.open_sweep(str(store))
    cfg = sweep.config
    model = ls.SmallConvNet(num_outputs=12, width=cfg["model"]["width"])
    data = ls.SyntheticShapes(length=cfg["data"]["length"], image_size=cfg["data"]["image_size"])
    x, y = ls.stack_examples(data, sweep.examples)
    pos = {e: k for k, e in enumerate(sweep.examples)}
    prov = sweep.meta.checkpoints[-1]
    ls.apply_checkpoint(model, ls.load_checkpoint(prov["path"]))
    want = ls.compute_brackets(model, x, y, [(pos[int(i)], pos[int(j)]) for i, j in sweep.pairs],
                               loss_fn=SquaredHinge().loss)
    for p, (i, j) in enumerate(sweep.pairs):
        got = sweep.bracket(prov["step"], int(i), int(j))
        for name, t in want.items():
            scale = max(float(t[p].abs().max()), 1e-30)
            assert np.abs(np.asarray(got[name]) - t[p].numpy()).max() <= 1e-5 * scale, (i, j, name)
    sweep.store.ledger.clear_mark(1)
    from jobs.execution.runs import resume_sweep

    assert [r["task_id"] for r in resume_sweep(str(store), log=lambda m: None).report.completed] == [1]
    assert "task         squared_hinge: mean squared hinge" in show_store(str(store))
    assert write_report(str(store), str(tmp_path / "r.html")).n_bytes > 0


def _grad_gap(worker, inputs, out):
    """g_i − g_j per pair, and the cosine of g_i and g_j (a toy effect of the tests)."""
    g = inputs.ex.gradients
    i, j = torch.from_numpy(inputs.local[:, 0]), torch.from_numpy(inputs.local[:, 1])
    out.arrays["grad_gap"] = g[i] - g[j]
    out.columns["grad_cos"] = torch.nn.functional.cosine_similarity(g[i].double(), g[j].double(), dim=1).numpy()


def _show_grad_gap(sweep):
    return [f"gradient cosines of the pairs: median {sweep.fits()['grad_cos'].median():.3f}"]


GRAD_GAP = Effect("grad_gap", "g_i - g_j and the cosine of g_i, g_j (a toy effect of the tests)", compute=_grad_gap,
                  arrays=("grad_gap",), columns=("grad_cos",), show=_show_grad_gap)
if GRAD_GAP.name not in EFFECTS:
    EFFECTS.register(GRAD_GAP)


def test_a_toy_effect_stores_its_array_and_column_through_its_registry_entry_alone(local_ray, small, tmp_path):
    from jobs.execution.runs import resume_sweep
    from jobs.results.show import show_store

    result = run_sweep(small("effects=[bracket,grad_gap]", "derived.eval_count=0", "storage.sketch=16"),
                       log=lambda m: None)
    assert not result.report.failures
    store = tmp_path / "s.zarr"
    sweep = ls.open_sweep(str(store))
    assert sweep.store.layout.effect_arrays == ("grad_gap",) and "grad_cos" in sweep.fits().columns
    grads = np.asarray(sweep.store.group["gradients"][:], dtype=np.float64)
    pos = {e: k for k, e in enumerate(sweep.examples)}
    for c, step in enumerate(sweep.steps):
        for i, j in sweep.pairs:
            gap = np.concatenate([v.reshape(-1) for v in sweep.pair_array("grad_gap", step, int(i), int(j)).values()])
            np.testing.assert_allclose(gap, grads[c, pos[int(i)]] - grads[c, pos[int(j)]], rtol=1e-6, atol=1e-7)
            back = sweep.pair_array("grad_gap", step, int(j), int(i))     # antisymmetric: the reversed pair negates
            assert np.array_equal(np.concatenate([v.reshape(-1) for v in back.values()]), -gap)
    full = np.asarray(sweep.store.group["grad_gap"][:], dtype=np.float64)   # the sketch takes its array too
    sketch = sweep.sketch("grad_gap")
    assert sketch.shape == full.shape[:-1] + (16,)
    np.testing.assert_allclose(sketch, sweep.sketch_spec().apply(full), rtol=0, atol=1e-5 * np.abs(sketch).max())
    sweep.store.ledger.clear_mark(0)
    assert [r["task_id"] for r in resume_sweep(str(store), log=lambda m: None).report.completed] == [0]
    assert "gradient cosines of the pairs: median" in show_store(str(store))
    from jobs.results.check import check_store

    assert check_store(str(store))["damaged"] == []                 # check reads and digests its shards too
