"""``lie-sweep run``: compose the config, run the sweep on Ray workers, print the account."""

from __future__ import annotations

import argparse

from lie_sweep.errors import LieSweepError, first_line

from .table import OVERRIDES, Arg, Command, top_arg
from .texts import run_epilog

__all__ = ["COMMAND", "emit"]

DESCRIPTION = """\
Run a sweep over checkpoints x example pairs on Ray workers, stored in a Zarr v3 store.
With no overrides it runs the demo: train the small convnet on synthetic shapes (5 checkpoints)
and bracket all 28 pairs among 8 examples.

Overrides are Hydra-style: group=option picks a config group option, key=value sets a key.
Unknown keys and +key=value additions are refused."""


def emit(message: str) -> None:
    """A progress line of a computing command, flushed at once."""
    print(message, flush=True)


def _stored_config(path: str, overrides: list[str]):
    import json

    from jobs.planning.config import config_from_stored

    try:
        stored = json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise LieSweepError("cannot read --config", expected="a resolved config as JSON",
                            found=first_line(exc), fix="pass the file `submit` wrote") from None
    return config_from_stored(stored, overrides, users_own=True)  # the user's own file (submit writes it)


def _run(args: argparse.Namespace) -> int:
    if args.print_config:
        from omegaconf import OmegaConf

        from jobs.planning.config import load_config

        print(OmegaConf.to_yaml(load_config(args.overrides)), end="")
        return 0
    from jobs.execution.account import format_account
    from jobs.execution.runs import run_config, run_sweep

    if args.address and args.address.startswith(("http://", "https://")):
        raise LieSweepError("run --address joins a cluster by its GCS address", expected="HEAD:6379 (or auto)",
                            found=f"{args.address} (a dashboard URL)",
                            fix=f"to run the driver on the cluster, use `lie-sweep submit --address {args.address}`")
    overrides = [*args.overrides, *([f"cluster.address={args.address}"] if args.address else [])]
    if args.multirun:
        return _multirun(args, overrides)
    if args.config:
        result = run_config(_stored_config(args.config, overrides), log=emit)
    else:
        result = run_sweep(overrides, log=emit)
    print(format_account(result, top=args.top))
    return 1 if result.report.failures else 0


def _multirun(args: argparse.Namespace, overrides: list[str]) -> int:
    from jobs.execution.account import format_account
    from jobs.execution.multirun import multirun_summary, run_multirun

    if args.config:
        raise LieSweepError("run -m composes its sweeps from conf/", expected="overrides such as field=sgd,adam",
                            found="--config FILE", fix="drop --config, or drop -m to run that one config")
    result = run_multirun(overrides, log=emit)
    for run in result.results:
        print(format_account(run, top=min(args.top, 3)))
    print(multirun_summary(result))
    return 1 if result.failed else 0


COMMAND = Command(
    "run", "run a sweep (the demo by default)", _run, computes=True, description=DESCRIPTION, epilog=run_epilog,
    arguments=(OVERRIDES,
               Arg(("--print-config",), dict(action="store_true", help="print the resolved config and exit")),
               Arg(("--address",), dict(default=None, help="join a running Ray cluster (its GCS address, e.g. "
                                                           "HEAD:6379); same as cluster.address=")),
               Arg(("--config",), dict(default=None, metavar="FILE", help="run a resolved config (JSON, as `submit` "
                                                                          "ships it) instead of composing conf/")),
               Arg(("-m", "--multirun"), dict(action="store_true", help="Hydra multirun: one sweep per combination "
                                                                        "of KEY=a,b values, each its own store under "
                                                                        "storage.path (default lie-sweep-out/multirun/"
                                                                        "DATE_TIME), indexed in multirun.json")),
               top_arg(8)))
