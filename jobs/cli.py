"""The ``lie-sweep`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from lie_sweep.errors import LieSweepError

DESCRIPTION = """\
lie-sweep computes Lie brackets of training examples, [u_i, u_j] = J_{u_j} u_i - J_{u_i} u_j,
the leading-order difference between training on example i then j and on j then i
(theta_ij - theta_ji = lr^2 [u_i, u_j] + O(lr^3)), over grids of checkpoints x example pairs."""

RUN_DESCRIPTION = """\
Run a sweep over checkpoints x example pairs on Ray workers, stored in a Zarr v3 store.
With no overrides it runs the demo: train the small convnet on synthetic shapes (5 checkpoints)
and bracket all 28 pairs among 8 examples.

Overrides are Hydra-style: group=option picks a config group option, key=value sets a key.
Unknown keys and +key=value additions are refused."""

COMMON = """\
common overrides:
  experiment=celeba_mxresnet data.root=/data/celeba   the reference experiment (local CelebA copy)
  model=mxresnet model.widths=[16,32,64,128]          another model, or its settings
  checkpoints=glob checkpoints.glob='runs/*.pt'       sweep existing checkpoints
  examples.count=16 | examples=list examples.indices=[3,8,21]
  pairs=list pairs.list=[[3,8],[8,21]]                explicit pairs (dataset indices)
  pairs.per_task=16                                   pairs per task (= per store shard)
  field=adam                                          Adam-preconditioned field from each checkpoint's state
  precision=float64  chunk_size=8                     dtype; pairs per vmapped call
  storage.path=out/sweep.zarr storage.overwrite=true  where the store goes
  cluster.workers=2 cluster.address=ray://head:10001  workers; an existing Ray cluster"""


def _groups_help() -> str:
    from .config import config_dir

    root = config_dir()
    lines = ["config groups (group=option; the default first):"]
    defaults = {"model": "convnet", "data": "synthetic", "checkpoints": "train", "examples": "first", "pairs": "all",
                "field": "sgd", "storage": "local", "cluster": "local", "experiment": "demo"}
    for group, default in defaults.items():
        options = sorted(p.stem for p in (root / group).glob("*.yaml"))
        options.sort(key=lambda o: o != default)
        lines.append(f"  {group:<12} {', '.join(options)}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lie-sweep", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="`lie-sweep run --help` lists the config groups and common overrides.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run a sweep (the demo by default)", description=RUN_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog=_groups_help() + "\n\n" + COMMON)
    run.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="key=value or group=option")
    run.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    run.add_argument("--top", type=int, default=8, help="pairs to list in the summary (default: %(default)s)")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.print_config:
        from omegaconf import OmegaConf

        from .config import load_config

        print(OmegaConf.to_yaml(load_config(args.overrides)), end="")
        return 0
    from .run import format_summary, run_sweep

    result = run_sweep(args.overrides, log=lambda m: print(m, flush=True))
    print(format_summary(result, top=args.top))
    return 1 if result.report.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return {"run": _run}[args.command](args)
    except LieSweepError as exc:
        print(f"lie-sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lie-sweep: interrupted; completed tasks are kept in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
