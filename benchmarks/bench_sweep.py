"""End-to-end sweep throughput (Ray workers + Zarr writes) against the kernel alone.

Runs a real sweep with ``run_sweep`` (embedded Ray, on-disk store), then times the kernel alone
in this process on the same checkpoints and examples: per checkpoint, the example fields once and
every pair in one kernel call per task-sized range. Prints pairs/s of both:

* end to end: all pairs / wall time of the run, from Ray start to the last completion mark;
* steady state: the same, without start-up (pairs / time after every worker was ready).

Usage: python benchmarks/bench_sweep.py [--case convnet resnet] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

CASES = {
    # 3 checkpoints x 2016 pairs of the demo convnet
    "convnet": ["examples.count=64", "pairs.per_task=224", "checkpoints.steps=60", "checkpoints.save_every=20"],
    # 2 checkpoints x 496 pairs of a narrow MXResNet (ResNet-18 layout, widths 16..128)
    "resnet": ["model=mxresnet", "model.num_outputs=12", "model.widths=[16,32,64,128]", "model.stem_widths=[8,8,16]",
               "examples.count=32", "pairs.per_task=62", "checkpoints.steps=40", "checkpoints.save_every=20",
               "checkpoints.batch_size=16"],
}


def kernel_alone(result, threads: int) -> float:
    """Seconds for the kernel alone over every task of the sweep, in this process."""
    import lie_sweep as ls
    from jobs.sweep import build_dataset, build_model

    torch.set_num_threads(threads)
    spec = result.spec
    cfg = spec.config
    model = build_model(cfg.model)
    x, y = ls.stack_examples(build_dataset(cfg.data), spec.examples)
    pairs = torch.tensor(spec.pair_positions)
    per_task = cfg.pairs.per_task
    fm = ls.FunctionalModel(model)
    start = time.perf_counter()
    for prov in spec.checkpoints:
        ls.apply_checkpoint(model, ls.load_checkpoint(prov["path"]))
        params = fm.params()
        fields = ls.compute_example_fields(fm, params, x, y)
        for s in range(0, len(pairs), per_task):
            ls.bracket_kernel(fm, params, x, y, pairs[s:s + per_task], example_fields=fields)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    from jobs.run import run_sweep

    root = args.out or Path(tempfile.mkdtemp(prefix="lie-sweep-bench-"))
    print(f"{'case':<8} {'pairs':>6} {'e2e s':>7} {'e2e p/s':>8} {'steady p/s':>10} {'kernel s':>8} "
          f"{'kernel p/s':>10} {'e2e/kernel':>10} {'steady/kernel':>13}")
    for case in args.case:
        overrides = [*CASES[case], f"checkpoints.dir={root / case / 'ck'}", f"storage.path={root / case / 's.zarr'}",
                     "storage.overwrite=true"]
        if args.workers:
            overrides.append(f"cluster.workers={args.workers}")
        result = run_sweep(overrides, log=lambda m: None, progress_stream=open("/dev/null", "w"))
        report = result.report
        wall = report.seconds
        pairs = report.pairs_computed
        marks = result.store.ledger.done_tasks()
        steady = pairs / max(wall - report.startup_s, 1e-9)
        threads = report.workers * int(result.spec.config.cluster.cpus_per_worker)
        k = kernel_alone(result, threads)
        print(f"{case:<8} {pairs:>6} {wall:>7.1f} {pairs / wall:>8.1f} {steady:>10.1f} {k:>8.1f} {pairs / k:>10.1f} "
              f"{(pairs / wall) / (pairs / k):>10.2f} {steady / (pairs / k):>13.2f}", flush=True)
        assert len(marks) == result.n_tasks


if __name__ == "__main__":
    main()
