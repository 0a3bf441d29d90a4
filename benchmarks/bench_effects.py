"""Cost per pair of each effect, as a worker computes a task: the exact swap, the bracket, the optimizer expansion.

For each model (the demo's SmallConvNet, the narrow MXResNet of the reference experiment), briefly trained with
Adam (lr 5e-3, betas (0.8, 0.999)) so that its checkpoint holds a real optimizer state, in one process, on
n examples and all their n(n−1)/2 pairs (one tile), with the examples' gradients already computed (a worker
computes them once per checkpoint and caches them):

* ``bracket``: ``bracket_kernel`` (two HVPs a pair, forward-over-reverse);
* ``swap``: ``swap_kernel`` with the SGD field at ε = 5e-3 (two gradients a pair at shifted weights);
* ``swap+logits``: the same with the exact logit deltas on a 16-example evaluation batch (two forward passes a
  pair);
* ``swap (adam)``: ``swap_kernel`` stepping the checkpoint's own Adam (its state carried to the second step);
* ``order (adam)``: the optimizer expansion (Δ₁, Δ₂) of that Adam, on ``--order-pairs`` pairs (it costs far
  more; timed on fewer).

Methods are interleaved (A B C … A B C …) over ``--repeats`` rounds after one warm-up round; printed per
method: median [min–max] ms per pair and pairs/s, and the swap's cost relative to the bracket's. ``--sweep``
also times whole sweeps of the demo grid (``lie-sweep run`` in-process, warm workers) with ``effects=[bracket]``
and ``effects=[swap]``, interleaved, from the workers' own compute seconds per pair.

Usage: python benchmarks/bench_effects.py [--model convnet resnet] [--n 16] [--repeats 5] [--threads 2] [--sweep]
       [--sweep-args derived.eval_count=0]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from lie_sweep import MXResNet, SGDField, SmallConvNet, SyntheticShapes, bracket_kernel, stack_examples
from lie_sweep.fields import FunctionalModel, eval_mode
from lie_sweep.kernel import ExampleFields, compute_example_fields
from lie_sweep.optim import from_state_dict
from lie_sweep.order import order_expansion
from lie_sweep.swap import FieldRule, OptimizerRule, swap_kernel

MODELS = {
    "convnet": lambda: SmallConvNet(num_outputs=12, width=16),
    # ResNet-18's structure (stem, 4 stages, BatchNorm) at a CPU-friendly width, as in bench_kernel.py
    "resnet": lambda: MXResNet(num_outputs=12, widths=(16, 32, 64, 128), stem_widths=(8, 8, 16)),
}


def trained(name: str, steps: int = 5, device: str = "cpu") -> tuple[FunctionalModel, dict, torch.optim.Optimizer,
                                                                     SyntheticShapes]:
    """The model on ``device`` after ``steps`` Adam steps on batches of 16 (so that it has an optimizer state)."""
    torch.manual_seed(0)
    model = MODELS[name]().to(device)
    data = SyntheticShapes(length=256, image_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, betas=(0.8, 0.999))
    fm = FunctionalModel(model)
    for k in range(steps):
        x, y = (t.to(device) for t in stack_examples(data, range(16 * k, 16 * k + 16)))
        opt.zero_grad()
        fm.loss_fn(model(x), y).mean().backward()
        opt.step()
    return fm, fm.params(), opt, data


def methods(name: str, n: int, order_pairs: int, device: str = "cpu") -> dict:
    """{method: (function, pairs per call)} on ``name``'s trained model (see the module docstring)."""
    fm, params, opt, data = trained(name, device=device)
    x, y = (t.to(device) for t in stack_examples(data, range(100, 100 + n)))
    x_eval = stack_examples(data, range(200, 216))[0].to(device)
    pairs = list(itertools.combinations(range(n), 2))
    step, state = from_state_dict(opt.state_dict(), fm.param_names)
    with eval_mode(fm.module):
        fields = compute_example_fields(fm, params, x, y)
    cached = ExampleFields(fields.gradients, fields.losses, fields.fields)
    sgd, adam = FieldRule(SGDField(), 5e-3), OptimizerRule(step, 5e-3)

    def order():
        for i, j in pairs[:order_pairs]:
            order_expansion(fm, step, params, state, (x[i], y[i]), (x[j], y[j]))

    return {
        "bracket": (lambda: bracket_kernel(fm, params, x, y, pairs, example_fields=cached), len(pairs)),
        "swap": (lambda: swap_kernel(fm, params, x, y, pairs, sgd, gradients=fields.gradients), len(pairs)),
        "swap+logits": (lambda: swap_kernel(fm, params, x, y, pairs, sgd, gradients=fields.gradients,
                                            eval_inputs=x_eval), len(pairs)),
        "swap (adam)": (lambda: swap_kernel(fm, params, x, y, pairs, adam, state=state, gradients=fields.gradients),
                        len(pairs)),
        "order (adam)": (order, min(order_pairs, len(pairs))),
    }


def interleaved(table: dict, repeats: int, device: str = "cpu") -> dict[str, list[float]]:
    """Seconds per call of each method of ``table``, methods interleaved over ``repeats`` rounds after a
    warm-up round (a CUDA device synchronised around each call)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {m: [] for m in table}
    for r in range(repeats + 1):
        for m, (fn, _) in table.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            if r:  # round 0 warms up
                times[m].append(time.perf_counter() - t)
    return times


def bench_kernels(name: str, n: int, repeats: int, order_pairs: int) -> None:
    table = methods(name, n, order_pairs)
    times = interleaved(table, repeats)
    params = sum(p.numel() for p in MODELS[name]().parameters())
    print(f"\n{name}: D = {params:,}, n = {n} ({n * (n - 1) // 2} pairs; order on {order_pairs}), "
          f"{torch.get_num_threads()} threads, {repeats} rounds")
    print(f"  {'method':<14} {'ms/pair median [min-max]':>28} {'pairs/s':>9} {'/ bracket':>10}")
    bracket = statistics.median(times["bracket"]) / table["bracket"][1]
    for m, (_, per_call) in table.items():
        per = [t / per_call for t in times[m]]
        med = statistics.median(per)
        print(f"  {m:<14} {1e3 * med:>10.2f} [{1e3 * min(per):.2f}-{1e3 * max(per):.2f}]{'':>6} {1 / med:>9.1f} "
              f"{med / bracket:>9.2f}x")


def bench_sweeps(repeats: int, extra: tuple[str, ...] = ()) -> dict[str, list[float]]:
    """The demo grid as whole sweeps, bracket against swap, interleaved; compute seconds per pair from the
    tasks' own records (start-up excluded), and the wall time of each run; ``extra`` overrides (a device, a
    smaller grid). Returns the pairs per worker-second of each run."""
    import os
    import tempfile

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from jobs.execution.runs import run_sweep

    rates: dict[str, list[float]] = {"bracket": [], "swap": []}
    walls: dict[str, list[float]] = {"bracket": [], "swap": []}
    with tempfile.TemporaryDirectory(prefix="bench-effects-") as root:
        base = [f"checkpoints.dir={root}/ck", *extra]
        run_sweep([*base, f"storage.path={root}/warm"], log=lambda m: None)  # trains the checkpoints, starts Ray
        for r in range(repeats):
            for effect in rates:
                t = time.perf_counter()
                result = run_sweep([*base, "checkpoints=glob", f"checkpoints.glob={root}/ck", f"effects=[{effect}]",
                                    f"storage.path={root}/{effect}-{r}"], log=lambda m: None)
                walls[effect].append(time.perf_counter() - t)
                done = result.report.completed
                rates[effect].append(sum(d["stop"] - d["start"] for d in done) / sum(d["compute_s"] for d in done))
    print(f"\ndemo sweep {' '.join(extra)} ({repeats} runs each, interleaved):")
    for effect in rates:
        print(f"  effects=[{effect}]  {statistics.median(rates[effect]):7.1f} pairs per worker-second "
              f"[{min(rates[effect]):.1f}-{max(rates[effect]):.1f}], wall {statistics.median(walls[effect]):.2f} s")
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=["convnet", "resnet"], choices=sorted(MODELS))
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--order-pairs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sweep", action="store_true", help="also time whole demo sweeps, bracket against swap")
    ap.add_argument("--sweep-args", nargs="*", default=[], metavar="OVERRIDE",
                    help="overrides for those sweeps, e.g. derived.eval_count=0")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.model:
        bench_kernels(name, args.n, args.repeats, args.order_pairs)
    if args.sweep:
        bench_sweeps(args.repeats, tuple(args.sweep_args))


if __name__ == "__main__":
    main()
