"""``lie-sweep query``: what the stored order effects do to the losses of test items chosen after the sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

from lie_sweep.errors import ConfigError

from .run import emit
from .table import OVERRIDES, STORE, TRUST_STORE, Arg, Command, top_arg

__all__ = ["COMMAND", "format_query"]

DESCRIPTION = ("For test items chosen now (dataset indices of the sweep's data, or of another dataset of the same task "
               "named by data.* overrides), the first-order change of each item's loss caused by each stored order "
               "effect, L_t(theta_ij) - L_t(theta_ji) ~ <grad L_t(theta), theta_ij - theta_ji>, per checkpoint, with "
               "the pairs ranked for each item. The test gradients are taken here (float64, CPU) at every "
               "checkpoint; the inner products use the full stored vectors where the store keeps them, else its "
               "sketches (storage.sketch=k), whose error's standard deviation is printed beside each value.")
EPILOG = ("examples:\n  lie-sweep query lie-sweep-out/sweep --examples 0:4\n"
          "  lie-sweep query out/sweep --examples 3,8 --effect bracket --top 5\n"
          "  lie-sweep query out/sweep --examples 0:100 data.seed=7 --out effects.parquet   (items of another "
          "dataset)")


def format_query(table, top: int) -> str:
    """Per checkpoint and test item: its loss, then its ``top`` pairs by |change| (± the sketch's error sd)."""
    attrs = table.attrs
    source = f"sketches (k={attrs['sketch_k']})" if attrs.get("source") == "sketch" else "full vectors"
    what = ("theta_ij - theta_ji" if attrs.get("effect") == "swap" else "eps^2 [u_i,u_j]") + \
        f" at epsilon = {attrs.get('epsilon'):g}"
    lines = [f"change of each test item's loss, L_t(theta_ij) - L_t(theta_ji) to first order, from {what}; "
             f"from {source}"]
    sketched = attrs.get("source") == "sketch"
    for (step, test), rows in table.groupby(["step", "test"], sort=True):
        rows = rows.sort_values("rank").head(top)
        lines += ["", f"step {step}, test item {test} (loss {rows['loss'].iloc[0]:.4f})",
                  f"{'rank':>6} {'i':>6} {'j':>6} {'change':>12}" + (f" {'+- sd':>10}" if sketched else "")]
        for r in rows.itertuples():
            lines.append(f"{r.rank:>6} {r.i:>6} {r.j:>6} {r.change:>12.4e}" + (f" {r.error_sd:>10.2e}" if sketched
                                                                               else ""))
    if table.empty:
        lines.append("no completed pair to rank yet")
    return "\n".join(lines)


def _write(table, path: str) -> str:
    """Write the whole table to ``path`` (.parquet or .csv)."""
    suffix = Path(path).suffix
    if suffix not in (".parquet", ".csv"):
        raise ConfigError("bad value for --out", expected="a .parquet or .csv file", found=repr(path),
                          fix="--out effects.parquet")
    frame = table.copy()
    frame.attrs = {}
    frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
    return path


def _query(args: argparse.Namespace) -> int:
    from jobs.results.query import parse_items, query_store

    table = query_store(args.store, parse_items(args.examples), args.overrides, effect=args.effect,
                        epsilon=args.epsilon, use=args.use, trust_store=args.trust_store, log=emit)
    print(format_query(table, args.top))
    if args.out:
        print(f"\nall {len(table)} rows: {_write(table, args.out)}")
    return 0


COMMAND = Command(
    "query", "what each stored swap does to the loss of test items chosen after the sweep", _query, computes=True,
    description=DESCRIPTION, epilog=EPILOG,
    arguments=(STORE, OVERRIDES,
               Arg(("--examples",), dict(required=True, metavar="ITEMS",
                                         help="test items: dataset indices, e.g. 3,8,21 or 0:16")),
               Arg(("--effect",), dict(choices=("swap", "bracket"), default="swap",
                                       help="the exact swap, or the leading order eps^2 [u_i,u_j] (default: "
                                            "%(default)s)")),
               Arg(("--epsilon",), dict(type=float, default=None, help="the swaps' step size (default: the first)")),
               Arg(("--use",), dict(choices=("auto", "sketch", "full"), default="auto",
                                    help="full stored vectors or sketches (default: full where stored)")),
               top_arg(8, "pairs to list per test item and checkpoint"),
               Arg(("--out",), dict(default=None, metavar="FILE", help="write every row (.parquet or .csv)")),
               TRUST_STORE))
