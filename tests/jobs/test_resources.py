"""Workers fit the resources a cluster offers: one per GPU, fractional GPUs, CPU-only clusters."""

from jobs.execution.pool import worker_resources
from jobs.planning.schema import ClusterConfig

BASE = {"workers": None, "gpus_per_worker": 1.0, "cpus_per_worker": 1, "threads_per_worker": None, "device": "auto"}


def sizes(total, cluster):
    return worker_resources(ClusterConfig(**{**BASE, **cluster}), total)


def test_worker_sizes_follow_the_cluster():
    gpus = {"CPU": 8.0, "GPU": 2.0}  # a node that declares GPUs (Ray schedules by declared resources)
    assert sizes(gpus, {}) == (2, {"num_gpus": 1.0, "num_cpus": 1}, 1)          # one worker per GPU
    assert sizes(gpus, {"gpus_per_worker": 0.5}) == (4, {"num_gpus": 0.5, "num_cpus": 1}, 1)  # GPUs shared
    assert sizes(gpus, {"gpus_per_worker": 0.25, "cpus_per_worker": 2}) == (8, {"num_gpus": 0.25, "num_cpus": 2}, 2)
    assert sizes(gpus, {"device": "cpu", "cpus_per_worker": 2, "threads_per_worker": 3}) == (
        4, {"num_gpus": 0, "num_cpus": 2}, 3)                                   # device=cpu on a GPU cluster
    assert sizes(gpus, {"workers": 3})[0] == 3
    cpus = {"CPU": 8.0}
    assert sizes(cpus, {}) == (8, {"num_gpus": 0, "num_cpus": 1}, 1)             # CPU-only: one per CPU slot
    assert sizes(cpus, {"cpus_per_worker": 4}) == (2, {"num_gpus": 0, "num_cpus": 4}, 4)


def test_without_totals_the_running_rays_resources_count(local_ray):
    cpus = int(local_ray.cluster_resources()["CPU"])
    assert worker_resources(ClusterConfig(**BASE)) == (cpus, {"num_gpus": 0, "num_cpus": 1}, 1)
