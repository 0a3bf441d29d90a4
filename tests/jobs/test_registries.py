"""A grid and an update field are each one registry entry: a toy grid and a toy field, registered here and
nowhere else, run end to end through config, plan, local Ray workers and the store."""

import numpy as np
import pytest

import lie_sweep as ls
from jobs.execution.runs import run_sweep
from jobs.planning.config import load_config
from jobs.planning.grids import GRIDS, GridKind
from lie_sweep.errors import ConfigError
from lie_sweep.field_kinds import FIELDS, FieldKind
from lie_sweep.fields import UpdateField

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
