"""Workers fit the resources a cluster offers: one per GPU, fractional GPUs, CPU-only clusters."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cluster

SCRIPT = r"""
import json, os, sys
import ray
from jobs.driver import worker_resources
from jobs.schema import ClusterConfig
gpus = float(sys.argv[1])
# a node that declares GPUs (Ray schedules by declared resources; no device is touched here)
ray.init(address="local", num_cpus=8, num_gpus=gpus, include_dashboard=False, _node_ip_address="127.0.0.1")
out = []
for cluster in json.loads(sys.argv[2]):
    base = {"workers": None, "gpus_per_worker": 1.0, "cpus_per_worker": 1, "threads_per_worker": None, "device": "auto"}
    out.append(worker_resources(ClusterConfig(**{**base, **cluster})))
ray.shutdown()
print(json.dumps(out))
"""


def sizes(gpus, clusters):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(gpus), json.dumps(clusters)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_worker_sizes_follow_the_cluster():
    gpu = sizes(2, [{}, {"gpus_per_worker": 0.5}, {"gpus_per_worker": 0.25, "cpus_per_worker": 2},
                    {"device": "cpu", "cpus_per_worker": 2, "threads_per_worker": 3}, {"workers": 3}])
    assert gpu[0] == [2, {"num_gpus": 1.0, "num_cpus": 1}, 1]          # one worker per GPU
    assert gpu[1] == [4, {"num_gpus": 0.5, "num_cpus": 1}, 1]          # small models share a GPU
    assert gpu[2] == [8, {"num_gpus": 0.25, "num_cpus": 2}, 2]
    assert gpu[3] == [4, {"num_gpus": 0, "num_cpus": 2}, 3]            # device=cpu on a GPU cluster
    assert gpu[4][0] == 3
    cpu = sizes(0, [{}, {"cpus_per_worker": 4}])
    assert cpu[0] == [8, {"num_gpus": 0, "num_cpus": 1}, 1]            # CPU-only: one per CPU slot
    assert cpu[1] == [2, {"num_gpus": 0, "num_cpus": 4}, 4]
