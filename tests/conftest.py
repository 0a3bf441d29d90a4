import pytest
import torch

from jobs.cluster.session import apply_ray_defaults

# Tests start Ray themselves (and in subprocesses, which inherit this environment): the same loopback-only,
# no-auth, no-usage-reporting settings as lie-sweep's own embedded Ray, from their one definition.
apply_ray_defaults()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
