"""The GPU figures in one table (``benchmarks/gpu.sh`` runs it): on one device, in one process,

* ``kernel``: the bracket kernel per HVP mode against the published nested-vmap method (all n(n−1)/2 pairs);
* ``effect``: each effect's cost per pair as a worker computes a task (``bench_effects.py``'s methods);
* ``sweep``: the demo grid as whole sweeps with ``effects=[bracket]`` and ``effects=[swap]`` (the workers'
  compute seconds per pair; start-up excluded).

Each row: median [min–max] ms per pair over ``--repeats`` interleaved rounds after a warm-up round, pairs/s, and
the ratio to the row's reference (the published method; the bracket). ``--tiny``: small sizes, for the CPU
smoke run (``gpu.sh --cpu``) that keeps this script from rotting; its figures mean nothing.

Usage: python benchmarks/gpu_table.py [--device cuda] [--repeats 3] [--tiny]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_effects import MODELS, bench_sweeps, interleaved, methods  # noqa: E402
from bench_kernel import published_method  # noqa: E402
from lie_sweep import FunctionalModel, SyntheticShapes, bracket_kernel, stack_examples  # noqa: E402


def kernel_table(name: str, n: int, device: str) -> dict:
    """{method: (function, pairs per call)}: the bracket kernel's HVP modes and the published method."""
    torch.manual_seed(0)
    model = MODELS[name]().to(device).eval()
    fm = FunctionalModel(model)
    params = fm.params()
    x, y = (t.to(device) for t in stack_examples(SyntheticShapes(length=n, image_size=32), range(n)))
    pairs = list(itertools.combinations(range(n), 2))
    table = {f"bracket {mode}": (lambda mode=mode: bracket_kernel(fm, params, x, y, pairs, hvp=mode), len(pairs))
             for mode in ("forward", "reverse")}
    table["published"] = (lambda: published_method(fm, params, x, y), len(pairs))
    return table


def rows_of(section: str, name: str, n: int, table: dict, times: dict, reference: str) -> list[tuple]:
    ref = statistics.median(times[reference]) / table[reference][1]
    out = []
    for method, (_, per_call) in table.items():
        per = [t / per_call for t in times[method]]
        med = statistics.median(per)
        out.append((section, name, n, method, 1e3 * med, 1e3 * min(per), 1e3 * max(per), 1 / med, med / ref,
                    reference))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="small sizes: the CPU smoke run of gpu.sh --cpu")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_table: no CUDA device here (torch.cuda.is_available() is False); run gpu.sh --cpu instead")
    repeats = 1 if args.tiny else args.repeats
    models = ["convnet"] if args.tiny else ["convnet", "resnet"]
    sizes = [6] if args.tiny else [32, 64]
    rows: list[tuple] = []
    start = time.perf_counter()
    for name in models:
        for n in sizes:
            table = kernel_table(name, n, args.device)
            rows += rows_of("kernel", name, n, table, interleaved(table, repeats, args.device), "published")
            del table
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
        n = sizes[0]
        table = methods(name, n, order_pairs=2, device=args.device)
        rows += rows_of("effect", name, n, table, interleaved(table, repeats, args.device), "bracket")
    extra = (f"cluster.device={'cuda' if args.device.startswith('cuda') else 'cpu'}",
             *(["examples.count=4", "model.width=4", "data.length=64", "data.image_size=16", "checkpoints.steps=4",
                "checkpoints.save_every=2", "checkpoints.batch_size=8", "cluster.workers=1"] if args.tiny else []))
    rates = bench_sweeps(repeats, extra)
    ref = statistics.median(rates["bracket"])
    for effect, values in rates.items():
        med = statistics.median(values)
        rows.append(("sweep", "convnet", 8 if not args.tiny else 4, f"effects=[{effect}]", 1e3 / med,
                     1e3 / max(values), 1e3 / min(values), med, ref / med, "bracket"))
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"\nlie-sweep GPU table: {device}, torch {torch.__version__}, {repeats} round(s), "
          f"{time.perf_counter() - start:.0f} s" + (" (--tiny: smoke run, figures mean nothing)" if args.tiny else ""))
    print("| section | model | n | method | ms/pair median [min-max] | pairs/s | vs ref |")
    print("|---|---|---|---|---|---|---|")
    for section, name, n, method, med, lo, hi, rate, ratio, reference in rows:
        print(f"| {section} | {name} | {n} | {method} | {med:.3f} [{lo:.3f}-{hi:.3f}] | {rate:.1f} | "
              f"{ratio:.2f}x {reference} |")


if __name__ == "__main__":
    main()
