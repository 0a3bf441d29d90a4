"""A node removed mid-sweep from a two-node ray.cluster_utils.Cluster: the sweep completes, same results."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lie_sweep import open_sweep

from .sweeps import brackets_of, glob_overrides, reference_arrays

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SCRIPT = r"""
import json, os, sys, threading, time
import ray
from ray.cluster_utils import Cluster

overrides, store = json.loads(sys.argv[1]), sys.argv[2]
# two nodes of one CPU each: one worker lands on each
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
extra = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
removed = []
try:
    from jobs.execution.runs import run_sweep

    def remove_the_other_node():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            where = os.path.join(store, "ledger", "marks")   # loose marks: the run folds them only every 1000
            marks = [json.load(open(os.path.join(where, f))) for f in os.listdir(where)
                     if f.startswith("task-") and f.endswith(".json")] if os.path.isdir(where) else []
            if len(marks) >= 3 and any(m["node"] == extra.node_id for m in marks):
                cluster.remove_node(extra)
                removed.append(extra.node_id)
                return
            time.sleep(0.01)

    t = threading.Thread(target=remove_the_other_node)
    t.start()
    result = run_sweep(overrides + [f"cluster.address={cluster.address}", "cluster.replace_timeout=2"],
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    t.join()
    nodes = sorted({r["node"] for r in result.report.completed})
    print(json.dumps({"removed": removed, "replaced": result.report.workers_replaced,
                      "failures": len(result.report.failures), "completed": len(result.report.completed),
                      "nodes": len(nodes)}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_a_node_removed_mid_sweep(reference, tmp_path):
    want = reference_arrays(reference, tmp_path)
    store = tmp_path / "s.zarr"
    overrides = glob_overrides(reference, store)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(overrides), str(store)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["removed"] and out["replaced"] >= 1 and out["failures"] == 0 and out["nodes"] == 2
    assert open_sweep(str(store)).complete
    for x, y in zip(brackets_of(store), want):
        assert np.array_equal(x, y)
