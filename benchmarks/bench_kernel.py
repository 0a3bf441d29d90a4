"""Kernel throughput: lie-sweep's packed i<j kernel vs the naive nested-vmap full n×n method.

The naive method (what published implementations do) computes M[a, b] = J_{u_b} u_a for all
n² ordered (example, tangent) combinations, diagonal included, with vmap over tangents of vmap
over examples, then forms [u_i, u_j] = M[i, j] − M[j, i]. It holds n²·D outputs at once.

Prints pairs/s (i<j pairs, n(n−1)/2 per pass) and peak memory for each model, n and device; each
measurement runs in its own process (on CPU the peak is that process's maximum resident set).
Usage: python benchmarks/bench_kernel.py [--device cpu|cuda] [--n 6 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time

import torch
from torch.func import jvp, vmap

from lie_sweep import FunctionalModel, MXResNet, SGDField, SmallConvNet, SyntheticShapes, bracket_kernel, stack_examples
from lie_sweep.fields import eval_mode
from lie_sweep.params import ParamSpec


def naive_full_matrix(fmodel: FunctionalModel, params, x, y) -> torch.Tensor:
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


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # process high-water mark


def timed(fn, device, repeats):
    fn()  # warm-up (first-call dispatch and allocator growth)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, out, peak_bytes(device)


def models(device_type: str):
    yield "convnet", SmallConvNet(num_outputs=12, width=16), 32
    if device_type == "cuda":
        yield "resnet18", MXResNet(num_outputs=12), 64
    else:  # the full ResNet-18 at n=32 is hours of CPU time; a narrower MXResNet keeps its structure
        yield "resnet-w16", MXResNet(num_outputs=12, widths=(16, 32, 64, 128), stem_widths=(8, 8, 16)), 32


def measure(name: str, n: int, method: str, device: torch.device, repeats: int, chunk_size: int | None) -> dict:
    """One timed measurement; on CPU run in a fresh process so the peak RSS is this measurement's."""
    torch.manual_seed(0)  # before building: every process must build the same model
    for model_name, model, size in models(device.type):
        if model_name == name:
            break
    model = model.to(device)
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    x, y = stack_examples(SyntheticShapes(length=n, image_size=size), range(n))
    x, y = x.to(device), y.to(device)
    pairs = list(itertools.combinations(range(n), 2))
    with eval_mode(model):
        if method == "kernel":
            def fn():
                return bracket_kernel(fmodel, params, x, y, pairs, chunk_size=chunk_size).brackets
        else:
            def fn():
                return naive_full_matrix(fmodel, params, x, y)
        seconds, out, peak = timed(fn, device, repeats)
    checksum = out.double().abs().sum().item()
    return {"D": sum(p.numel() for p in params.values()), "pairs": len(pairs), "seconds": seconds,
            "peak": peak, "checksum": checksum}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, nargs="+", default=[6, 32])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--skip-naive-above", type=int, default=10**9,
                    help="skip the naive method for n above this (it may not fit)")
    ap.add_argument("--single", nargs=3, metavar=("MODEL", "N", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.single:
        name, n, method = args.single
        print(json.dumps(measure(name, int(n), method, device, args.repeats, args.chunk_size)))
        return
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"{'model':<11} {'D':>9} {'n':>3} {'pairs':>5} {'method':<8} {'s/pass':>8} {'pairs/s':>9} "
          f"{'peak MiB':>9}")
    for name, _, _ in models(device.type):
        for n in args.n:
            results = {}
            for method in ("kernel", "naive"):
                if method == "naive" and n > args.skip_naive_above:
                    print(f"{name:<11} {'':>9} {n:>3} {'':>5} {method:<8} {'skipped':>8}")
                    continue
                cmd = [sys.executable, __file__, "--device", str(device), "--repeats", str(args.repeats),
                       "--single", name, str(n), method]
                if args.chunk_size is not None:
                    cmd += ["--chunk-size", str(args.chunk_size)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                    print(f"{name:<11} {'':>9} {n:>3} {'':>5} {method:<8} {'failed':>8}  {last[:80]}")
                    continue
                r = results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
                extra = ""
                if method == "naive" and "kernel" in results:
                    k = results["kernel"]
                    extra = (f"  kernel speed-up {r['seconds'] / k['seconds']:.2f}x, "
                             f"checksums agree to {abs(k['checksum'] - r['checksum']) / r['checksum']:.1e}")
                print(f"{name:<11} {r['D']:>9} {n:>3} {r['pairs']:>5} {method:<8} {r['seconds']:>8.3f} "
                      f"{r['pairs'] / r['seconds']:>9.1f} {r['peak'] / 2**20:>9.0f}{extra}", flush=True)


if __name__ == "__main__":
    main()
