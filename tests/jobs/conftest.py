import pytest

from .sweeps import GRID, SMALL

# Ray's loopback/auth/usage settings come from tests/conftest.py (inherited by subprocesses too)


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
    from jobs.execution.runs import run_sweep

    root = tmp_path_factory.mktemp("reference")
    result = run_sweep(small_factory(root)(*GRID), log=lambda m: None)
    assert not result.report.failures
    return root


@pytest.fixture(scope="session")
def demo(tmp_path_factory, local_ray):
    """The README's demo (`lie-sweep run`, then `lie-sweep report lie-sweep-out/sweep`) in a fresh folder (the
    run's paths absolute: the session's Ray workers do not share this folder as their working directory);
    (store, report page)."""
    import os

    from jobs.cli import main

    root = tmp_path_factory.mktemp("demo")
    out = root / "lie-sweep-out"
    assert main(["run", f"storage.path={out / 'sweep'}", f"checkpoints.dir={out / 'checkpoints'}"]) == 0
    here = os.getcwd()
    os.chdir(root)
    try:
        assert main(["report", "lie-sweep-out/sweep"]) == 0
    finally:
        os.chdir(here)
    return out / "sweep", out / "sweep-report.html"


@pytest.fixture(scope="session")
def demo_swaps(demo):
    """The README's second sweep on the demo's checkpoints: the exact swaps beside the leading order, sketched
    (`lie-sweep run 'effects=[bracket,swap]' storage.sketch=1024 checkpoints=glob …
    storage.path=lie-sweep-out/swaps`)."""
    from jobs.cli import main

    out = demo[0].parent
    assert main(["run", "effects=[bracket,swap]", "storage.sketch=1024", "checkpoints=glob",
                 f"checkpoints.glob={out / 'checkpoints'}", f"storage.path={out / 'swaps'}"]) == 0
    return out / "swaps"
