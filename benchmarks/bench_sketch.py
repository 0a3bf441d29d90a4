"""What storage.sketch costs: S·v per vector against the effect it sketches, and a sketch-only sweep's throughput.

1. **Kernels** (one process, CPU, interleaved A B C D … after a warm-up round, as ``bench_effects.py``): for the
   demo's SmallConvNet and the narrow MXResNet, on n examples and their n(n−1)/2 pairs, the bracket kernel, the
   sketch of its P × D brackets, the exact SGD swap, and the sketch of its P × D swaps (``lie_sweep.sketch``, k and
   each s of ``--s``; building S, once per worker, is timed apart). Printed: ms per pair (per vector for the
   sketches) and each sketch's time as a share of the effect it sketches.
2. **Sweeps** (``--sweep``; fresh processes, interleaved, ``bench_sweep.py``'s narrow-MXResNet case): the same grid
   with ``storage.keep=all`` (full arrays), ``storage.keep=all storage.sketch=k`` (both) and
   ``storage.keep=summary storage.sketch=k`` (sketches only), steady pairs/s and bytes on disk.

Usage: python benchmarks/bench_sketch.py [--model convnet resnet] [--n 16] [--k 2048] [--s 1 4] [--repeats 5] [--sweep]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_effects import MODELS, interleaved, trained  # noqa: E402

from lie_sweep import bracket_kernel, stack_examples  # noqa: E402
from lie_sweep.fields import SGDField, eval_mode  # noqa: E402
from lie_sweep.kernel import compute_example_fields  # noqa: E402
from lie_sweep.sketch import Sketcher  # noqa: E402
from storage.sketch import SketchSpec  # noqa: E402
from lie_sweep.swap import FieldRule, swap_kernel  # noqa: E402


def bench_kernels(name: str, n: int, k: int, s: int, repeats: int) -> None:
    fm, params, _, data = trained(name)
    x, y = stack_examples(data, range(100, 100 + n))
    pairs = list(itertools.combinations(range(n), 2))
    with eval_mode(fm.module):
        fields = compute_example_fields(fm, params, x, y)
    d = fields.gradients.shape[1]
    t = time.perf_counter()
    sketcher = Sketcher(SketchSpec(k, d=d, s=s, seed=0))
    build = time.perf_counter() - t
    brackets = bracket_kernel(fm, params, x, y, pairs, example_fields=fields).brackets.clone()
    swaps = swap_kernel(fm, params, x, y, pairs, FieldRule(SGDField(), 5e-3), gradients=fields.gradients).deltas
    table = {
        "bracket": (lambda: bracket_kernel(fm, params, x, y, pairs, example_fields=fields), len(pairs)),
        "sketch of brackets": (lambda: sketcher(brackets), len(pairs)),
        "swap": (lambda: swap_kernel(fm, params, x, y, pairs, FieldRule(SGDField(), 5e-3),
                                     gradients=fields.gradients), len(pairs)),
        "sketch of swaps": (lambda: sketcher(swaps), len(pairs)),
    }
    times = interleaved(table, repeats)
    per = {m: statistics.median(times[m]) / table[m][1] for m in table}
    print(f"\n{name}: D = {d:,}, n = {n} ({len(pairs)} pairs), k = {k}, s = {s}, {torch.get_num_threads()} threads, "
          f"{repeats} rounds; building S: {1e3 * build:.0f} ms (once per worker)")
    print(f"  {'method':<20} {'ms per pair/vector, median [min-max]':>38} {'share of its effect':>20}")
    for m in table:
        row = [1e3 * t / table[m][1] for t in times[m]]
        share = f"{100 * per[m] / per[m.split()[-1].rstrip('s')]:.1f}%" if m.startswith("sketch") else ""
        print(f"  {m:<20} {statistics.median(row):>18.3f} [{min(row):.3f}-{max(row):.3f}]{'':>6} {share:>20}")


def bench_sweeps(k: int, repeats: int) -> None:
    import bench_sweep

    from jobs.execution.worker_env import RETAIN_FREED_MEMORY
    from jobs.planning.config import load_config
    from jobs.planning.spec import prepare_sweep
    from storage.store import SweepStore
    from storage.units import format_bytes

    for key, value in (("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"), ("RAY_AUTH_MODE", "disabled"),
                       ("RAY_USAGE_STATS_ENABLED", "0")):
        os.environ.setdefault(key, value)
    root = Path(tempfile.mkdtemp(prefix="bench-sketch-"))
    case = "resnet"
    prepare_sweep(load_config([*bench_sweep._overrides(case, root, "off", "train"),
                               f"storage.path={root / case / 'x.zarr'}"]), log=lambda m: None)  # trains once
    modes = {"full (keep=all)": [], f"full + sketch k={k}": [f"storage.sketch={k}"],
             f"sketch only k={k} (keep=summary)": [f"storage.sketch={k}", "storage.keep=summary"]}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    disk: dict[str, int] = {}
    env = {**os.environ, **RETAIN_FREED_MEMORY}
    for _ in range(repeats):
        for mode, extra in modes.items():
            out = bench_sweep._fresh(["--single", "sweep", case, str(root), "off", "retain", "--set", *extra], env)
            rates[mode].append(out["pps"])
    for mode, extra in modes.items():  # one more run of each, kept, for its bytes on disk
        store = root / f"disk-{len(disk)}.zarr"
        from jobs.execution.runs import run_sweep

        run_sweep([*bench_sweep._overrides(case, root, "off", "glob"), f"storage.path={store}", *extra],
                  log=lambda m: None, progress_stream=open(os.devnull, "w"))
        disk[mode] = SweepStore.open(str(store)).bytes_on_disk()
    print(f"\nsweeps: bench_sweep.py's {case} case (narrow MXResNet, {' '.join(bench_sweep.CASES[case][4:6])}), "
          f"logits off, fresh processes, {repeats} interleaved runs each")
    print(f"  {'store':<34} {'steady pairs/s, median [min-max]':>34} {'on disk':>10}")
    for mode in modes:
        r = rates[mode]
        print(f"  {mode:<34} {statistics.median(r):>20.2f} [{min(r):.2f}-{max(r):.2f}]{'':>5} "
              f"{format_bytes(disk[mode]):>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=["convnet", "resnet"], choices=sorted(MODELS))
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--k", type=int, default=2048)
    ap.add_argument("--s", type=int, nargs="+", default=[1, 4], help="nonzeros per coordinate (each is timed)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sweep", action="store_true", help="also time sweeps with and without sketches")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.model:
        for s in args.s:
            bench_kernels(name, args.n, args.k, s, args.repeats)
    if args.sweep:
        bench_sweeps(args.k, max(2, args.repeats // 2))


if __name__ == "__main__":
    main()
