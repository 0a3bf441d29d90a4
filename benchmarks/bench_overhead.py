"""The system's cost per task: a sweep of a model whose pairs cost almost nothing, against its kernel in-process.

A 422-parameter MLP (3×8×8 inputs, one hidden layer of 2, 12 outputs) on one checkpoint, ``pairs=all`` over E
examples (E chosen for each ``--pairs`` figure: E(E−1)/2 ≥ it), no evaluation batch. For each size, in fresh
processes:

* **sweep**: ``run_sweep`` (embedded Ray, ``--workers`` workers × 1 thread, a real store, the default task size
  unless ``--per-task``);
* **kernel**: one process with 1 thread computing the same tasks as a worker does (the examples' fields once,
  then the bracket kernel per task), without Ray or the store.

Printed: pairs per worker-second of the sweep (pairs ÷ (workers × seconds after the workers were ready)) against
the kernel's pairs per second, and the system's milliseconds per task: what a worker spends outside the kernel
(by phase, from each task's result), the driver's own (hand-out, marks, progress) and the rest (Ray's round trip,
idle workers), the whole being workers × seconds ÷ tasks − the kernel's time for a task.

Usage: python benchmarks/bench_overhead.py [--pairs 1000 10000 100000 1000000] [--per-task auto] [--keep all]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = ["model=mlp", "model.input_shape=[3,8,8]", "model.hidden=[2]", "data.image_size=8", "derived.eval_count=0",
         "checkpoints.steps=10", "checkpoints.save_every=10"]
COMPUTE = ("fields_s", "kernel_s", "swap_s", "order_s", "logits_s")   # the kernel's own work, in a worker
SYSTEM = ("load_s", "tables_s", "write_arrays_s", "write_tables_s", "digests_s")


def examples_for(pairs: int) -> int:
    """The smallest E with E(E−1)/2 ≥ ``pairs``."""
    return math.ceil((1 + math.sqrt(1 + 8 * pairs)) / 2)


EXTRA: list[str] = []  # --device and --set: more overrides of the sweeps (the kernel takes cluster.device)


def overrides(root: Path, n_examples: int, per_task: str, keep: str, length: int) -> list[str]:
    return [*MODEL, f"data.length={length}", f"examples.count={n_examples}", f"pairs.per_task={per_task}",
            f"storage.keep={keep}", f"checkpoints.dir={root / 'ck'}", "checkpoints.source=glob",
            f"checkpoints.glob={root / 'ck'}", *EXTRA]


def sweep_once(root: Path, n_examples: int, per_task: str, keep: str, length: int, workers: int) -> dict:
    """One sweep in this process: its rates, and where the system's time went."""
    from jobs.execution.runs import run_sweep

    path = root / f"s-{n_examples}-{os.getpid()}.zarr"
    result = run_sweep([*overrides(root, n_examples, per_task, keep, length), f"storage.path={path}",
                        f"cluster.workers={workers}", "cluster.threads_per_worker=1"],
                       log=lambda m: None, progress_stream=open(os.devnull, "w"))
    report = result.report
    phases: dict[str, float] = {}
    for r in report.completed:
        for k, v in r.get("phases", {}).items():
            phases[k] = phases.get(k, 0.0) + v
    busy = report.seconds - report.startup_s
    files = sum(len(files) for _, _, files in os.walk(path))
    return {"pairs": report.pairs_computed, "tasks": len(report.completed), "per_task": result.store.layout
            .pairs_per_task, "seconds": busy, "startup": report.startup_s, "workers": report.workers,
            "phases": phases, "driver": getattr(report, "driver_s", {}), "files": files}


def kernel_once(root: Path, n_examples: int, per_task: int, length: int) -> dict:
    """The sweep's tasks computed in one process with one thread: the examples' fields, then each task's kernel."""
    import torch

    import lie_sweep as ls
    from jobs.planning.build import build_dataset, build_model
    from jobs.planning.config import load_config
    from jobs.planning.spec import prepare_sweep
    from lie_sweep.kernel import ExampleFields, tile_groups

    from lie_sweep.devices import resolve_device

    torch.set_num_threads(1)
    cfg = load_config([*overrides(root, n_examples, str(per_task), "all", length),
                       f"storage.path={root / 'unused.zarr'}"])
    spec = prepare_sweep(cfg, log=lambda m: None)
    device = resolve_device(cfg.cluster.device)
    model, data = build_model(cfg.model).to(device), build_dataset(cfg.data)
    x, y = (t.to(device) for t in ls.stack_examples(data, spec.examples))
    fm = ls.FunctionalModel(model)
    pairs = spec.pair_positions
    start = time.perf_counter()
    for prov in spec.checkpoints:
        ls.apply_checkpoint(model, ls.load_checkpoint(prov["path"]))
        params = fm.params()
        fields = ls.compute_example_fields(fm, params, x, y, chunk_size=1)
        for s in range(0, len(pairs), per_task):
            chunk = pairs[s:s + per_task]
            positions = list(dict.fromkeys(k for p in chunk for k in p))
            row = {p: k for k, p in enumerate(positions)}
            local = torch.tensor([[row[i], row[j]] for i, j in chunk], device=device)
            sel = torch.tensor(positions, device=device)
            ls.bracket_kernel(fm, params, x[sel], y[sel], local, groups=tile_groups(local.cpu().numpy(), positions),
                              example_fields=ExampleFields(fields.gradients[sel], fields.losses[sel],
                                                           fields.fields[sel]), hvp=spec.hvp_mode)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {"pairs": len(pairs) * len(spec.checkpoints), "seconds": seconds,
            "tasks": math.ceil(len(pairs) / per_task) * len(spec.checkpoints)}


def fresh(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(n: int, sweep: dict, kernel: dict) -> None:
    tasks, workers = sweep["tasks"], sweep["workers"]
    per_worker = sweep["pairs"] / (workers * sweep["seconds"])
    kernel_pps = kernel["pairs"] / kernel["seconds"]
    kernel_task = kernel["seconds"] / kernel["tasks"]
    total_ms = 1000 * (workers * sweep["seconds"] / tasks - kernel_task)
    ph, drv = sweep["phases"], sweep["driver"]
    worker_ms = {k: 1000 * ph.get(k, 0.0) / tasks for k in SYSTEM}
    driver_ms = {k: 1000 * v / tasks for k, v in drv.items()}
    rest = total_ms - sum(worker_ms.values()) - sum(driver_ms.values())
    print(f"\n{sweep['pairs']:,} pairs (E = {n}), {tasks:,} tasks of {sweep['per_task']} pairs, {workers} workers, "
          f"{sweep['files']:,} files; start-up {sweep['startup']:.1f} s")
    print(f"  sweep   {per_worker:10.1f} pairs per worker-second ({sweep['seconds']:.1f} s after start-up)")
    print(f"  kernel  {kernel_pps:10.1f} pairs/s in-process, 1 thread ({1000 * kernel_task:.1f} ms a task); "
          f"sweep / kernel = {per_worker / kernel_pps:.2f}x")
    print(f"  system time per task: {total_ms:.1f} ms (workers x seconds / tasks - the kernel's ms a task)")
    for k, v in worker_ms.items():
        print(f"    worker  {k:<16} {v:8.2f} ms")
    for k, v in driver_ms.items():
        print(f"    driver  {k:<16} {v:8.2f} ms")
    print(f"    rest (Ray's round trip, idle workers, compute beyond the kernel's) {rest:8.2f} ms")
    print(json.dumps({"pairs": sweep["pairs"], "per_task": sweep["per_task"], "tasks": tasks,
                      "sweep_per_worker_s": per_worker, "kernel_pps": kernel_pps, "system_ms": total_ms,
                      "worker_ms": worker_ms, "driver_ms": driver_ms, "files": sweep["files"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--per-task", default="auto", help="pairs.per_task of the sweeps (auto: the default)")
    ap.add_argument("--keep", default="all", help="storage.keep of the sweeps")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cluster.device of the sweeps and the kernel's device")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides of the sweeps")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--single", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    EXTRA[:] = [f"cluster.device={args.device}", *args.set]
    root = args.out or Path(tempfile.mkdtemp(prefix="lie-sweep-overhead-"))
    length = examples_for(max(args.pairs))
    if args.single:
        what, n, per_task, _ = args.single
        out = (sweep_once(root, int(n), per_task, args.keep, length, args.workers) if what == "sweep" else
               kernel_once(root, int(n), int(per_task), length))
        print(json.dumps(out))
        return
    from jobs.planning.config import load_config
    from jobs.planning.spec import prepare_sweep

    cfg = [*MODEL, f"data.length={length}", f"examples.count={length}", f"checkpoints.dir={root / 'ck'}",
           f"storage.path={root / 'x.zarr'}"]
    prepare_sweep(load_config(cfg), log=lambda m: None)  # trains the one checkpoint
    print(f"keep={args.keep} per_task={args.per_task} workers={args.workers} device={args.device} "
          f"{' '.join(args.set)} (fresh processes; root {root})")
    for pairs in args.pairs:
        n = examples_for(pairs)
        common = ["--out", str(root), "--keep", args.keep, "--workers", str(args.workers),
                  "--pairs", str(max(args.pairs)), "--device", args.device, "--set", *args.set]
        sweep = fresh(["--single", "sweep", str(n), args.per_task, "-", *common])
        kernel = fresh(["--single", "kernel", str(n), str(sweep["per_task"]), "-", *common])
        report(n, sweep, kernel)


if __name__ == "__main__":
    main()
