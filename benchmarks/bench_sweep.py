"""Sweep throughput against the kernel alone: same tasks, same total threads, fresh processes, interleaved.

For each case (model) and logit-delta setting, checkpoints are trained once; then, ``--repeats`` times,
in this order (A B A B …), each in a fresh process:

* **sweep**: ``run_sweep`` on those checkpoints (embedded Ray, 2 workers × 1 thread by default, an
  on-disk store);
* **kernel**: one process with as many threads as the sweep's workers have in all, computing the same
  tasks the way a worker does (per checkpoint: the examples' fields and, with logits on, the output
  Jacobian; per task the bracket kernel with the sweep's HVP mode and the logit deltas), without Ray
  or the store.

Steady pairs/s, both: pairs finished after the warm-up / the time after it. The sweep's warm-up ends
when every worker has finished its first task (which pays the process's first allocations, lazy
imports and the checkpoint's first load, on cores that Ray's own start-up also uses); the kernel's
when its first task is done. Later checkpoints' loads count in both. Also printed: the sweep from
"all workers ready" (``ready``), which includes that warm-up.

Both run with the workers' allocator settings (``jobs.execution.worker_env``; ``--malloc system`` for glibc's
defaults). Prints per run pairs/s, OS-time share and page faults, then median [min–max] of
sweep ÷ kernel, and where a worker's time went (phases summed over tasks, from each task's result).

Usage: python benchmarks/bench_sweep.py [--case convnet resnet] [--logits on off] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    # 3 checkpoints x 2016 pairs of the demo convnet
    "convnet": ["examples.count=64", "pairs.per_task=224", "checkpoints.steps=60", "checkpoints.save_every=20"],
    # 2 checkpoints x 496 pairs of a narrow MXResNet (ResNet-18 layout, widths 16..128)
    "resnet": ["model=mxresnet", "model.num_outputs=12", "model.widths=[16,32,64,128]", "model.stem_widths=[8,8,16]",
               "examples.count=32", "pairs.per_task=62", "checkpoints.steps=40", "checkpoints.save_every=20",
               "checkpoints.batch_size=16"],
}


def _overrides(case: str, root: Path, logits: str, source: str) -> list[str]:
    ck = root / case / "ck"
    out = [*CASES[case], f"checkpoints.dir={ck}", "storage.overwrite=true"]
    if source == "glob":
        out += ["checkpoints.source=glob", f"checkpoints.glob={ck}"]
    if logits == "off":
        out.append("derived.eval_count=0")
    return out


def _usage() -> dict[str, float]:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"user": own.ru_utime + kids.ru_utime, "os": own.ru_stime + kids.ru_stime,
            "faults": own.ru_minflt + kids.ru_minflt}


def run_sweep_once(case: str, root: Path, logits: str, workers: int | None, malloc: str,
                   extra: list[str] = ()) -> dict:
    """One sweep in this process; its steady throughput and the workers' phases summed over tasks."""
    from jobs.execution.runs import run_sweep

    overrides = [*_overrides(case, root, logits, "glob"), f"storage.path={root / case / f's-{os.getpid()}.zarr'}",
                 f"cluster.malloc={malloc}", *extra]
    if workers:
        overrides.append(f"cluster.workers={workers}")
    result = run_sweep(overrides, log=lambda m: None, progress_stream=open(os.devnull, "w"))
    report = result.report
    assert len(result.store.ledger.done_tasks()) == result.n_tasks
    phases: dict[str, float] = {}
    for r in report.completed:
        for k, v in r.get("phases", {}).items():
            phases[k] = phases.get(k, 0.0) + v
    pairs = report.pairs_computed
    # warm: from the moment every worker finished its first task (which pays the process's warm-up: first
    # allocations, lazy imports, Ray's own start-up on the same cores) to the last task
    first_done = {}
    for r in sorted(report.completed, key=lambda r: r["finished"]):
        first_done.setdefault(r["pid"], r["finished"])
    t_warm = max(first_done.values())
    warm_pairs = sum(r["stop"] - r["start"] for r in report.completed if r["finished"] > t_warm)
    t_end = max(r["finished"] for r in report.completed)
    return {"pairs": pairs, "wall": report.seconds, "startup": report.startup_s,
            "ready_pps": pairs / max(report.seconds - report.startup_s, 1e-9),
            "pps": warm_pairs / max(t_end - t_warm, 1e-9), "phases": phases,
            "threads": report.workers * int(result.spec.config.cluster.cpus_per_worker), "hvp": result.spec.hvp_mode}


def run_kernel_once(case: str, root: Path, logits: str, threads: int, hvp: str) -> dict:
    """The sweep's computation in one process with ``threads`` threads, no Ray, no store."""
    import torch

    import lie_sweep as ls
    from jobs.planning.config import load_config
    from jobs.planning.spec import prepare_sweep
    from lie_sweep.kernel import tile_groups
    from lie_sweep.analysis import jacobian_fits, logit_deltas, output_jacobian
    from lie_sweep.kernel import ExampleFields

    torch.set_num_threads(threads)
    cfg = load_config([*_overrides(case, root, logits, "glob"), f"storage.path={root / case / 'unused.zarr'}"])
    spec = prepare_sweep(cfg, log=lambda m: None)
    from jobs.planning.build import build_dataset, build_model

    model = build_model(cfg.model)
    data = build_dataset(cfg.data)
    x, y = ls.stack_examples(data, spec.examples)
    x_eval = ls.stack_examples(data, spec.eval_examples)[0] if spec.eval_examples else None
    pairs = spec.pair_positions
    per_task = cfg.pairs.per_task
    fm = ls.FunctionalModel(model)
    kw = {"hvp": hvp} if "hvp" in ls.bracket_kernel.__code__.co_varnames else {}
    before, start = _usage(), time.perf_counter()
    warm_from, warm_pairs = None, 0  # like the sweep's warm figure: from the end of the first task on
    for prov in spec.checkpoints:
        ls.apply_checkpoint(model, ls.load_checkpoint(prov["path"]))
        params = fm.params()
        fields = ls.compute_example_fields(fm, params, x, y, chunk_size=1)
        jac = None
        if x_eval is not None and jacobian_fits(len(spec.eval_examples), len(spec.output_names), spec.n_params,
                                                torch.float32, torch.device("cpu")):
            jac = output_jacobian(fm, params, x_eval)
        for s in range(0, len(pairs), per_task):
            chunk = pairs[s:s + per_task]
            positions = list(dict.fromkeys(k for p in chunk for k in p))
            row = {p: k for k, p in enumerate(positions)}
            local = torch.tensor([[row[i], row[j]] for i, j in chunk])
            sel = torch.tensor(positions)
            sub = ExampleFields(fields.gradients[sel], fields.losses[sel], fields.fields[sel])
            out = ls.bracket_kernel(fm, params, x[sel], y[sel], local, example_fields=sub,
                                    groups=tile_groups(local.numpy(), positions), **kw)
            if x_eval is not None:
                logit_deltas(fm, params, x_eval, out.brackets, epsilon=spec.epsilon, jacobian=jac)
            if warm_from is None:
                warm_from = time.perf_counter()
            else:
                warm_pairs += len(chunk)
    end = time.perf_counter()
    after = _usage()
    total = len(pairs) * len(spec.checkpoints)
    return {"pairs": total, "wall": end - start, "all_pps": total / (end - start),
            "pps": warm_pairs / (end - warm_from), **{k: after[k] - before[k] for k in after}}


def _fresh(args: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _range(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}–{max(values):{fmt}}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--logits", nargs="+", default=["on", "off"], choices=["on", "off"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--malloc", default="retain", choices=["retain", "system"])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides of the sweeps")
    ap.add_argument("--single", nargs=5, metavar=("WHAT", "CASE", "ROOT", "LOGITS", "ARG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        what, case, root, logits, arg = args.single
        if what == "sweep":
            out = run_sweep_once(case, Path(root), logits, args.workers, arg, args.set)
        else:
            threads, hvp = arg.split(":")
            out = run_kernel_once(case, Path(root), logits, int(threads), hvp)
        print(json.dumps(out))
        return

    from jobs.planning.config import load_config
    from jobs.planning.spec import prepare_sweep
    from jobs.execution.worker_env import RETAIN_FREED_MEMORY

    root = args.out or Path(tempfile.mkdtemp(prefix="lie-sweep-bench-"))
    env = {**os.environ, **(RETAIN_FREED_MEMORY if args.malloc == "retain" else {})}
    print(f"malloc={args.malloc} repeats={args.repeats} (fresh processes, sweep and kernel interleaved)"
          + (f" overrides: {' '.join(args.set)}" if args.set else ""))
    print(f"{'case':<8} {'logits':<6} {'run':<6} {'pairs':>6} {'pairs/s':>8} {'OS %':>5} {'faults':>9}")
    for case in args.case:
        prepare_sweep(load_config([*_overrides(case, root, "off", "train"), f"storage.path={root / case / 'x.zarr'}"]),
                      log=lambda m: None)  # trains the checkpoints once
        for logits in args.logits:
            ratios, phases = [], []
            for _ in range(args.repeats):
                sweep = _fresh(["--single", "sweep", case, str(root), logits, args.malloc]
                               + (["--workers", str(args.workers)] if args.workers else [])
                               + (["--set", *args.set] if args.set else []), env)
                kernel = _fresh(["--single", "kernel", case, str(root), logits,
                                 f"{sweep['threads']}:{sweep['hvp']}"], env)
                ratios.append(sweep["pps"] / kernel["pps"])
                phases.append(sweep["phases"])
                w = sweep["phases"]
                share = w.get("os_s", 0) / max(w.get("user_s", 0) + w.get("os_s", 0), 1e-9)
                print(f"{case:<8} {logits:<6} {'sweep':<6} {sweep['pairs']:>6} {sweep['pps']:>8.1f} {share:>5.0%} "
                      f"{w.get('page_faults', 0):>9.0f}   hvp={sweep['hvp']}, from ready {sweep['ready_pps']:.1f}",
                      flush=True)
                share = kernel["os"] / max(kernel["user"] + kernel["os"], 1e-9)
                print(f"{case:<8} {logits:<6} {'kernel':<6} {kernel['pairs']:>6} {kernel['pps']:>8.1f} {share:>5.0%} "
                      f"{kernel['faults']:>9.0f}", flush=True)
            keys = [k for k in phases[0] if k.endswith("_s") and k not in ("user_s", "os_s", "wait_s")]
            total = {k: statistics.median(p.get(k, 0.0) for p in phases) for k in keys}
            where = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in sorted(total.items(), key=lambda kv: -kv[1]) if v >= 0.05)
            print(f"  {case} logits {logits}: sweep steady ÷ kernel = {_range(ratios)}; worker seconds summed over "
                  f"tasks (median): {where}", flush=True)


if __name__ == "__main__":
    main()
