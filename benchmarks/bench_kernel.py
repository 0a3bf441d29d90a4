"""Kernel throughput: lie-sweep's packed i<j kernel (per HVP mode) against the published nested-vmap method.

The published method computes M[a, b] = J_{u_b} u_a for all n² ordered (example, tangent) combinations,
diagonal included, with vmap over tangents of vmap over examples, then forms [u_i, u_j] = M[i, j] − M[j, i];
it holds n²·D outputs at once.

Every measurement runs in a fresh process (its peak RSS is its own), methods interleaved (A B C A B C …),
``--repeats`` times; a process makes one warm-up call and then ``--calls`` timed calls. Printed per
method: median [min–max] over processes of seconds per call, pairs/s, the OS share of the call's CPU
time and its page faults (``getrusage``), peak memory, and the largest deviation from the first method
(brackets projected on a fixed random vector). ``--malloc`` runs each method in a process started with
the default environment (``system``: lie-sweep's kernels still set glibc's ``mallopt`` on their first call, as
documented in :mod:`lie_sweep.allocator`; the published method runs with glibc's defaults), with that opted out
(``off``: ``LIE_SWEEP_MALLOC=system``, the library before it set anything) and with the workers' settings
(``retain``, :mod:`jobs.execution.worker_env`). For an n
whose published method would not fit in memory (4× its n/2 peak, or more than this machine has), it is
skipped with the reason.

Usage: python benchmarks/bench_kernel.py [--model resnet convnet] [--n 16 32 64] [--modes forward reverse]
       [--malloc off system retain] [--repeats 3] [--calls 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.func import jvp, vmap

from lie_sweep import FunctionalModel, MXResNet, SGDField, SmallConvNet, SyntheticShapes, bracket_kernel, stack_examples
from lie_sweep.fields import eval_mode
from lie_sweep.params import ParamSpec

MODELS = {
    # the narrow MXResNet keeps ResNet-18's structure (stem, 4 stages, BatchNorm) at a CPU-friendly width
    "resnet": lambda: MXResNet(num_outputs=12, widths=(16, 32, 64, 128), stem_widths=(8, 8, 16)),
    "convnet": lambda: SmallConvNet(num_outputs=12, width=16),
}


def published_method(fmodel: FunctionalModel, params, x, y) -> torch.Tensor:
    """Brackets of all i<j from the full n×n matrix of ordered HVPs (nested vmap); flat (pairs, D)."""
    field = SGDField()
    spec = ParamSpec.from_tensors(params)
    u = vmap(lambda xe, ye: field.value(fmodel, params, xe, ye))(x, y)  # n × params

    def hvp(xb, yb, tangent):
        return jvp(lambda p: field.value(fmodel, p, xb, yb), (params,), (tangent,))[1]

    # outer vmap over tangents a, inner over examples b: M[a, b] = J_{u_b} u_a
    full = vmap(lambda t: vmap(hvp, in_dims=(0, 0, None))(x, y, t))(u)
    m = spec.flatten(full, batch_dims=2)
    i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    return m[i, j] - m[j, i]


def measure(model_name: str, n: int, method: str, calls: int, threads: int) -> dict:
    """One process's measurement: warm-up, then ``calls`` timed calls with their CPU, OS time and faults."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)  # before building: every process must build the same model
    model = MODELS[model_name]()
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    x, y = stack_examples(SyntheticShapes(length=n, image_size=32), range(n))
    pairs = list(itertools.combinations(range(n), 2))
    with eval_mode(model):
        if method == "published":
            def fn():
                return published_method(fmodel, params, x, y)
        else:
            # older lie-sweep (for "before" figures from an earlier checkout) has one mode and no hvp argument
            kw = {"hvp": method} if "hvp" in bracket_kernel.__code__.co_varnames else {}

            def fn():
                return bracket_kernel(fmodel, params, x, y, pairs, **kw).brackets
        fn()
        rows = []
        for _ in range(calls):
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            out = fn()
            seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
            rows.append({"seconds": seconds, "user": after.ru_utime - before.ru_utime,
                         "os": after.ru_stime - before.ru_stime, "faults": after.ru_minflt - before.ru_minflt})
    probe = torch.randn(out.shape[1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    projection = (out.double() @ probe).tolist()
    best = min(rows, key=lambda r: r["seconds"])
    return {"D": sum(p.numel() for p in params.values()), "pairs": len(pairs), **best,
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "projection": projection}


def _fresh(model: str, n: int, method: str, calls: int, threads: int, env: dict[str, str]) -> dict:
    cmd = [sys.executable, __file__, "--calls", str(calls), "--threads", str(threads),
           "--single", model, str(n), method]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode} (killed: out of memory?)"])[-1]
        return {"failed": last[:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mr(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}–{max(values):{fmt}}]"


def _total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["resnet", "convnet"], choices=list(MODELS))
    ap.add_argument("--n", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--modes", nargs="+", default=["forward", "reverse"], choices=["forward", "reverse", "compile"])
    ap.add_argument("--malloc", nargs="+", default=["system", "retain"], choices=["off", "system", "retain"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calls", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--no-published", action="store_true", help="time the kernel's modes only")
    ap.add_argument("--single", nargs=3, metavar=("MODEL", "N", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        name, n, method = args.single
        print(json.dumps(measure(name, int(n), method, args.calls, args.threads)))
        return
    # the workers' allocator settings (jobs.execution.worker_env.RETAIN_FREED_MEMORY), spelled out so that this script
    # also measures an earlier checkout (PYTHONPATH=that checkout) that does not have them
    RETAIN_FREED_MEMORY = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}

    print(f"torch={torch.__version__} threads={args.threads} repeats={args.repeats} (fresh processes, interleaved) "
          f"calls={args.calls} per process; median [min–max] over processes")
    print(f"{'model':<8} {'n':>3} {'malloc':<7} {'method':<9} {'s/call':>20} {'pairs/s':>8} {'OS %':>5} "
          f"{'faults/call':>12} {'peak GiB':>8}  vs first")
    for name in args.model:
        published_peak: dict[str, float] = {}
        for n in sorted(args.n):
            for malloc in args.malloc:
                env = {**os.environ, **(RETAIN_FREED_MEMORY if malloc == "retain" else {}),
                       **({"LIE_SWEEP_MALLOC": "system"} if malloc == "off" else {})}
                methods = list(args.modes) + ([] if args.no_published else ["published"])
                skip = {}
                if "published" in methods:
                    if malloc in published_peak:
                        was = published_peak[malloc + "_n"]
                        need = published_peak[malloc] * (n / was) ** 2
                        how = f"its n={was:.0f} peak × ({n}/{was:.0f})²"
                    else:  # measured at n = 32: peak 3.8–5.9× its n²·D outputs
                        need = 4 * n * n * sum(p.numel() for p in MODELS[name]().parameters()) * 4
                        how = "4 × its n²·D float32 outputs"
                    if need > 0.9 * _total_memory():
                        skip["published"] = (f"skipped: needs ≈ {need / 2**30:.0f} GiB ({how}), this machine has "
                                             f"{_total_memory() / 2**30:.0f} GiB")
                runs: dict[str, list[dict]] = {m: [] for m in methods if m not in skip}
                for _ in range(args.repeats):
                    for method in runs:
                        runs[method].append(_fresh(name, n, method, args.calls, args.threads, env))
                first = None
                for method in methods:
                    if method in skip:
                        print(f"{name:<8} {n:>3} {malloc:<7} {method:<9} {skip[method]}")
                        continue
                    ok = [r for r in runs[method] if "failed" in r] or None
                    good = [r for r in runs[method] if "failed" not in r]
                    if not good:
                        print(f"{name:<8} {n:>3} {malloc:<7} {method:<9} failed: {ok[0]['failed']}")
                        continue
                    secs = [r["seconds"] for r in good]
                    share = [r["os"] / max(r["user"] + r["os"], 1e-9) for r in good]
                    peak = [r["peak"] / 2**30 for r in good]
                    proj = torch.tensor(good[0]["projection"], dtype=torch.float64)
                    if first is None:
                        first, dev = proj, ""
                    else:
                        dev = f"{float((proj - first).abs().max() / first.abs().max()):.1e}"
                    if method == "published":
                        published_peak[malloc], published_peak[malloc + "_n"] = max(r["peak"] for r in good), n
                    print(f"{name:<8} {n:>3} {malloc:<7} {method:<9} {_mr(secs, '.2f'):>20} "
                          f"{good[0]['pairs'] / statistics.median(secs):>8.1f} {statistics.median(share):>5.0%} "
                          f"{statistics.median([r['faults'] for r in good]):>12,.0f} {statistics.median(peak):>8.1f}  "
                          f"{dev}{'  (' + str(len(ok)) + ' failed)' if ok else ''}", flush=True)
                if "published" in runs and first is not None:
                    k = statistics.median([r["seconds"] for r in runs[args.modes[0]] if "failed" not in r] or [0])
                    p = [r["seconds"] for r in runs["published"] if "failed" not in r]
                    best = min((statistics.median([r["seconds"] for r in runs[m] if "failed" not in r] or [1e9]), m)
                               for m in args.modes)
                    if p and k:
                        print(f"  {name} n={n} {malloc}: published ÷ kernel ({best[1]}, the fastest mode) = "
                              f"{statistics.median(p) / best[0]:.2f}×  (per process: "
                              f"{_mr([x / best[0] for x in p], '.2f')})", flush=True)


if __name__ == "__main__":
    main()
