"""Warm workers: the same small sweep run several times in one Python session (jobs/README.md: several
sweeps from one Python session).

Each run is the tests' fault grid (2 checkpoints × 15 pairs of a tiny convnet, one pair per task, 2 CPU
workers) over checkpoints trained once by the first run. It prints, per run, the seconds until the
workers were ready (``startup_s``: Ray, worker processes, model, data) and in all. The first run pays for
the worker processes; the later ones start in the processes the previous run handed back.

Usage: python benchmarks/bench_warm.py [--runs 4] [--out /tmp/bench-warm]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from jobs.cluster.session import apply_ray_defaults
from jobs.execution.runs import run_sweep

SMALL = ["model.width=4", "data.length=64", "data.image_size=16", "checkpoints.steps=4", "checkpoints.save_every=2",
         "checkpoints.batch_size=8", "examples.count=6", "pairs.block=2", "pairs.per_task=1", "cluster.workers=2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-warm"))
    args = parser.parse_args()
    apply_ray_defaults()
    shutil.rmtree(args.out, ignore_errors=True)
    ck = args.out / "ck"
    print(f"{'run':>4} {'startup_s':>10} {'total_s':>8}")
    for k in range(args.runs):
        source = [f"checkpoints.dir={ck}"] if k == 0 else ["checkpoints=glob", f"checkpoints.glob={ck}"]
        overrides = [o for o in SMALL if k == 0 or not o.startswith("checkpoints.")]
        t = time.perf_counter()
        result = run_sweep([*overrides, *source, f"storage.path={args.out / f's{k}'}"], log=lambda m: None)
        print(f"{k + 1:>4} {result.report.startup_s:>10.2f} {time.perf_counter() - t:>8.2f}")


if __name__ == "__main__":
    main()
