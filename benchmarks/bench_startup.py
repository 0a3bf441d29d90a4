"""Import time of each command that does not compute: ``python -X importtime`` of ``lie-sweep ARGS`` in a fresh
process, summed over every module imported, and which heavy packages were among them.

Usage: python benchmarks/bench_startup.py STORE [--repeats 3]   (STORE: a finished store, e.g. the demo's)
Prints per command the median [min–max] seconds of imports over the repeats, and torch's and Ray's share.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile

HEAVY = ("torch", "ray", "pandas", "xarray", "zarr", "pyarrow", "hydra", "numpy", "plotly")
CODE = ("import sys\nfrom jobs.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n")


def import_seconds(argv: list[str]) -> tuple[float, dict[str, float]]:
    """(seconds of imports in all, {heavy package: its own seconds}) of one fresh ``lie-sweep argv``."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", CODE, *argv], capture_output=True, text=True)
    total, heavy = 0.0, {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            seconds, top = int(m[1]) / 1e6, m[2].split(".")[0]
            total += seconds
            if top in HEAVY:
                heavy[top] = heavy.get(top, 0.0) + seconds
    return total, heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="bench-startup-")
    commands = [["--help"], ["run", "--help"], ["plan", "--help"], ["status", args.store], ["show", args.store],
                ["check", args.store], ["report", args.store, "--no-images", "-o", f"{out}/a.html"],
                ["report", args.store, "-o", f"{out}/b.html"]]
    print(f"{'command':<44} {'imports s':>20}  torch  ray  (others > 0.05 s)")
    for argv in commands:
        runs = [import_seconds(argv) for _ in range(args.repeats)]
        totals = [t for t, _ in runs]
        heavy = runs[-1][1]
        name = " ".join(a if a != args.store else "STORE" for a in argv if not a.startswith(out))
        others = ", ".join(f"{k} {v:.2f}" for k, v in sorted(heavy.items(), key=lambda kv: -kv[1])
                           if k not in ("torch", "ray") and v > 0.05)
        print(f"{name:<44} {statistics.median(totals):6.2f} [{min(totals):.2f}-{max(totals):.2f}]"
              f"  {'yes' if 'torch' in heavy else 'no ':>5}  {'yes' if 'ray' in heavy else 'no':>3}  {others}")


if __name__ == "__main__":
    main()
