"""Shared helpers for sweep tests over the session's reference checkpoints."""


import numpy as np

from jobs.execution.runs import run_sweep
from lie_sweep import open_sweep

# a sweep small enough for a 2-core CI machine: 2 checkpoints x 10 pairs of a tiny convnet, examples in blocks of 2
# (so tasks own example blocks, as in a large sweep)
SMALL = [
    "model.width=4", "data.length=64", "data.image_size=16", "checkpoints.steps=4", "checkpoints.save_every=2",
    "checkpoints.batch_size=8", "examples.count=5", "pairs.block=2",
]
# the fault tests' grid: 2 checkpoints x 15 pairs, one pair per task (30 tasks, slow enough to interrupt)
GRID = ["examples.count=6", "pairs.per_task=1", "cluster.workers=2"]


def glob_overrides(reference, store, *extra):
    """The reference sweep's grid over its checkpoints (no training), into ``store``; ``extra`` replaces keys."""
    replaced = {o.split("=", 1)[0] for o in extra}
    keep = [o for o in [*SMALL, *GRID] if not o.startswith("checkpoints.") and o.split("=", 1)[0] not in replaced]
    return [*keep, "checkpoints=glob", f"checkpoints.glob={reference / 'ck'}", f"storage.path={store}", *extra]


def brackets_of(store):
    g = open_sweep(str(store)).store.group
    return np.asarray(g["brackets"][:]), np.asarray(g["gradients"][:]), np.asarray(g["losses"][:])


def reference_arrays(reference, tmp_path, *extra):
    """The reference grid computed in one uninterrupted run: the session's reference sweep itself (the same
    grid over the same checkpoint files), or with ``extra`` overrides a run of its own on the glob'd
    checkpoints."""
    if not extra:
        return brackets_of(reference / "s.zarr")
    store = tmp_path / "ref.zarr"
    run_sweep(glob_overrides(reference, store, *extra), log=lambda m: None)
    return brackets_of(store)


def copy_of_reference(reference, store):
    """A complete store of the reference grid at ``store``: a copy of the session's reference sweep (its
    checkpoints stay where they are, so check and resume work on the copy)."""
    import shutil

    shutil.copytree(reference / "s.zarr", store)
    return store


def assert_bitwise_equal(a, b):
    for x, y in zip(a, b):
        assert x.shape == y.shape and np.array_equal(x, y)


def marks_of(store):
    """{task id: mark}, loose or in segments (through the ledger, as the driver and check read them)."""
    return open_sweep(str(store)).store.ledger.done_tasks()


def model_and_data(sweep):
    """The sweep's model (initialised as its config says) and dataset, rebuilt from its stored config."""
    import torch

    from jobs.planning.build import build_dataset, build_model
    from jobs.planning.config import config_from_stored

    cfg = config_from_stored(sweep.config)
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model), build_dataset(cfg.data)
