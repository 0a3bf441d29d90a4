"""Bytes on disk and error of each codec preset, in real sweeps, against raw float32 n×n storage.

For each case, runs one real sweep per preset (embedded Ray, on-disk store) over the same trained
checkpoints, examples and pairs, then prints, for the ``brackets`` array:

* bytes/pair: bytes on disk of the array / (checkpoints × pairs stored, i<j only);
* vs raw n×n: bytes on disk / (checkpoints × n² × D × 4): what storing the full n×n matrix of
  brackets (both orders and the zero diagonal, as published nested-vmap code returns it) raw in
  float32 would take;
* L2 rel. err: ‖x̂ − x‖₂ / ‖x‖₂ over all brackets, x from the lossless store;
* max rel. err: the largest elementwise |x̂ − x| / |x| (x ≠ 0), against the preset's stated bound;

and the whole store's bytes on disk (gradients, tables, logit deltas, metadata included).

Usage: python benchmarks/bench_codecs.py [--case convnet resnet] [--keepbits 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

CASES = {
    # the demo: 5 checkpoints of the small convnet, all 28 pairs of 8 examples
    "convnet": ["experiment=demo"],
    # 2 checkpoints × 120 pairs of a narrow MXResNet (ResNet-18 layout with BatchNorm, widths 16..128)
    "resnet": ["model=mxresnet", "model.num_outputs=12", "model.widths=[16,32,64,128]", "model.stem_widths=[8,8,16]",
               "examples.count=16", "pairs.per_task=30", "checkpoints.steps=40", "checkpoints.save_every=20",
               "checkpoints.batch_size=16"],
}
PRESETS = ("lossless", "bitround", "float16")


def run_case(name: str, overrides: list[str], out: Path, keepbits: int) -> list[dict]:
    from jobs.execution.runs import run_sweep
    from storage.codecs import error_bound
    from storage.reader import open_sweep

    rows = []
    reference = None
    for preset in PRESETS:
        path = out / f"{name}-{preset}.zarr"
        extra = [f"storage.path={path}", f"storage.codec={preset}", f"storage.keepbits={keepbits}",
                 "storage.overwrite=true"]
        if preset == PRESETS[0]:
            given = [*overrides, f"checkpoints.dir={out / (name + '-ck')}"]
        else:  # the checkpoints the first sweep trained, for every preset
            given = [o for o in overrides if not o.startswith("checkpoints.")]
            given += ["checkpoints=glob", f"checkpoints.glob={out / (name + '-ck')}"]
        result = run_sweep([*given, *extra], log=lambda m: None)
        assert not result.report.failures, result.report.failures
        sweep = open_sweep(str(path))
        values = np.asarray(sweep.store.group["brackets"][:], dtype=np.float64)
        if reference is None:
            reference = values
        c, p, d = values.shape
        n = len(sweep.examples)
        on_disk = sweep.store.array_bytes_on_disk(["brackets"])
        nonzero = reference != 0
        rel = np.abs(values - reference)[nonzero] / np.abs(reference)[nonzero]
        rows.append({"case": name, "codec": preset, "D": d, "n": n, "pairs": c * p,
                     "bytes_per_pair": on_disk / (c * p), "vs_raw_nxn": on_disk / (c * n * n * d * 4),
                     "vs_raw_pairs": on_disk / (c * p * d * 4),
                     "l2": float(np.linalg.norm(values - reference) / np.linalg.norm(reference)),
                     "max_rel": float(rel.max()), "bound": error_bound(preset, keepbits)["rel"],
                     "store_bytes": sweep.store.bytes_on_disk()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--keepbits", type=int, default=10)
    ap.add_argument("--out", default=None, help="where the stores go (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        rows = [r for case in args.case for r in run_case(case, CASES[case], out, args.keepbits)]
    print(f"{'case':<8} {'codec':<9} {'D':>7} {'n':>3} {'pairs':>5} {'bytes/pair':>11} {'vs raw n×n':>10} "
          f"{'vs raw i<j':>10} {'L2 rel err':>10} {'max rel err':>11} {'bound':>8} {'store MiB':>9}")
    for r in rows:
        print(f"{r['case']:<8} {r['codec']:<9} {r['D']:>7} {r['n']:>3} {r['pairs']:>5} {r['bytes_per_pair']:>11.0f} "
              f"{r['vs_raw_nxn']:>9.3f}x {r['vs_raw_pairs']:>9.3f}x {r['l2']:>10.1e} {r['max_rel']:>11.1e} "
              f"{r['bound']:>8.1e} {r['store_bytes'] / 2**20:>9.2f}")


if __name__ == "__main__":
    main()
