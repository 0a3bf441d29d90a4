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

    resume = sub.add_parser("resume", help="finish a sweep: run only the tasks without a completion mark",
                            description="Re-plan the sweep from the store's own config and run only the tasks "
                                        "without a completion mark (failed ones included). Execution settings may "
                                        "change (cluster.*, chunk_size); a change to anything that defines the "
                                        "results is refused with a key-by-key diff unless --restart.",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="examples:\n  lie-sweep resume lie-sweep-out/sweep.zarr\n"
                                   "  lie-sweep resume out/exp1.zarr cluster.workers=4 chunk_size=8")
    resume.add_argument("store", help="the store's path or fsspec URL")
    resume.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="execution settings: cluster.*, chunk_size")
    resume.add_argument("--restart", action="store_true",
                        help="start the store over with the (changed) config: deletes its results")
    resume.add_argument("--top", type=int, default=8, help="pairs to list in the summary (default: %(default)s)")

    status = sub.add_parser("status", help="tasks done / failed / pending, failures, disk, throughput, ETA")
    status.add_argument("store", help="the store's path or fsspec URL")
    status.add_argument("--json", action="store_true", help="print JSON")

    check = sub.add_parser("check", help="verify stored data; clear the marks of damaged tasks",
                           description="Read every completed task's shards: missing, truncated or corrupt shards "
                                       "(CRC32C checksums) and NaN/Inf values are reported, their files removed and "
                                       "their completion marks cleared, so the next `resume` recomputes exactly "
                                       "those tasks. Exit status 1 when something was damaged.")
    check.add_argument("store", help="the store's path or fsspec URL")
    return parser


def _resume(args: argparse.Namespace) -> int:
    from .run import format_summary, resume_sweep

    result = resume_sweep(args.store, args.overrides, restart=args.restart, log=lambda m: print(m, flush=True))
    print(format_summary(result, top=args.top))
    return 1 if result.report.failures else 0


def _status(args: argparse.Namespace) -> int:
    import json

    from .status import format_status, sweep_status

    st = sweep_status(args.store)
    print(json.dumps(st, indent=2, default=str) if args.json else format_status(st))
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check_store

    out = check_store(args.store)
    n = len(out["damaged"])
    print(f"checked {out['checked']} completed task(s): " +
          (f"{n} damaged, marks cleared; recompute them with: lie-sweep resume {args.store}" if n else "all intact"))
    return 1 if n else 0


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
        return {"run": _run, "resume": _resume, "status": _status, "check": _check}[args.command](args)
    except LieSweepError as exc:
        print(f"lie-sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lie-sweep: interrupted; completed tasks are kept in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
