import pytest

# Ray's loopback/auth/usage settings come from tests/conftest.py (inherited by subprocesses too)

# a sweep small enough for a 2-core CI machine: 2 checkpoints x 10 pairs of a tiny convnet
SMALL = [
    "model.width=4", "data.length=64", "data.image_size=16", "checkpoints.steps=4", "checkpoints.save_every=2",
    "checkpoints.batch_size=8", "examples.count=5",
]

# the fault tests' grid: 2 checkpoints x 15 pairs, one pair per task (30 tasks, slow enough to interrupt)
GRID = ["examples.count=6", "pairs.per_task=1", "cluster.workers=2"]


@pytest.fixture(scope="session")
def local_ray():
    """A real Ray runtime on 127.0.0.1 with 2 CPUs, started for these tests and stopped after them."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def small(tmp_path):
    """Overrides for a small sweep writing under tmp_path."""
    def make(*extra, store="s.zarr"):
        return [*SMALL, f"checkpoints.dir={tmp_path / 'ck'}", f"storage.path={tmp_path / store}", *extra]
    return make


@pytest.fixture(scope="session")
def small_factory():
    def for_root(root):
        def make(*extra, store="s.zarr"):
            return [*SMALL, f"checkpoints.dir={root / 'ck'}", f"storage.path={root / store}", *extra]
        return make
    return for_root


@pytest.fixture(scope="session")
def reference(tmp_path_factory, local_ray, small_factory):
    """Checkpoints trained once (by an uninterrupted sweep) that the fault tests sweep again."""
    from jobs.run import run_sweep

    root = tmp_path_factory.mktemp("reference")
    result = run_sweep(small_factory(root)(*GRID), log=lambda m: None)
    assert not result.report.failures
    return root
