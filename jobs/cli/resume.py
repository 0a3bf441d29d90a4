"""``lie-sweep resume``: finish a store, here or as a Ray job on a cluster."""

from __future__ import annotations

import argparse

from .run import emit
from .submit import follow_job
from .table import STORE, TRUST_STORE, Arg, Command, top_arg

__all__ = ["COMMAND"]

DESCRIPTION = ("Re-plan the sweep from the store's own config and run only the tasks without a completion mark "
               "(failed ones included). Execution settings may change (cluster.*, chunk_size); a change to anything "
               "that defines the results is refused with a key-by-key diff unless --restart.")
EPILOG = ("examples:\n  lie-sweep resume lie-sweep-out/sweep\n"
          "  lie-sweep resume out/exp1.zarr cluster.workers=4 chunk_size=8\n"
          "  lie-sweep resume lie-sweep-out/multirun/2026-12-03_10-00-00   (every store of a `run -m`)")


def _resume(args: argparse.Namespace) -> int:
    if args.address:
        from jobs.cluster.submit import submit_resume

        job_id = submit_resume(args.store, args.overrides, args.address, restart=args.restart,
                               trust_store=args.trust_store)
        return follow_job(args, job_id)
    from jobs.execution.account import format_account
    from jobs.execution.runs import resume_sweep
    from jobs.planning.multirun import read_index

    if read_index(args.store) is not None:
        from jobs.execution.multirun import multirun_summary, resume_multirun

        multirun = resume_multirun(args.store, args.overrides, restart=args.restart, log=emit,
                                   trust_store=args.trust_store)
        print(multirun_summary(multirun))
        return 1 if multirun.failed else 0
    result = resume_sweep(args.store, args.overrides, restart=args.restart, log=emit, trust_store=args.trust_store)
    print(format_account(result, top=args.top))
    return 1 if result.report.failures else 0


COMMAND = Command(
    "resume", "finish a sweep: run only the tasks without a completion mark", _resume, computes=True,
    description=DESCRIPTION,
    epilog=EPILOG,
    arguments=(STORE,
               Arg(("overrides",), dict(nargs="*", metavar="OVERRIDE", help="execution settings: cluster.*, "
                                                                            "chunk_size")),
               Arg(("--restart",), dict(action="store_true", help="start the store over with the (changed) config: "
                                                                  "deletes its results")),
               top_arg(8),
               Arg(("--address",), dict(default=None, help="resume as a Ray job on the cluster whose dashboard is "
                                                           "here (e.g. http://HEAD:8265)")),
               Arg(("--wait",), dict(action="store_true", help="with --address: follow the job until it ends")),
               TRUST_STORE))
