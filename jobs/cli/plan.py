"""``lie-sweep plan``: the dry run (tasks, HVPs, memory, disk per codec, time); writes nothing."""

from __future__ import annotations

import argparse

from .table import OVERRIDES, Arg, Command
from .texts import plan_epilog

__all__ = ["COMMAND"]

DESCRIPTION = ("Print what `lie-sweep run` with the same overrides would do: tasks, Hessian-vector products, memory "
               "per task, bytes on disk per codec and an estimated time, calibrated on a few real brackets (at the "
               "first checkpoint, or the initial weights when run would train). Trains and writes nothing.")


def _plan(args: argparse.Namespace) -> int:
    from jobs.planning.config import load_config
    from jobs.planning.dry_run import plan_sweep
    from jobs.planning.plan_text import format_plan

    print(format_plan(plan_sweep(load_config(args.overrides), calibration_pairs=args.calibration_pairs)))
    return 0


COMMAND = Command(
    "plan", "dry run: tasks, HVPs, memory, bytes on disk per codec, time; writes nothing", _plan, computes=True,
    description=DESCRIPTION, epilog=plan_epilog,
    arguments=(OVERRIDES, Arg(("--calibration-pairs",), dict(type=int, default=8, help="pairs to calibrate on "
                                                                                       "(default: %(default)s)"))))
