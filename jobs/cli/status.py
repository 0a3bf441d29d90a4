"""``lie-sweep status``: tasks done, failed and pending; disk; throughput; ETA."""

from __future__ import annotations

import argparse

from .table import Arg, Command

__all__ = ["COMMAND"]


def _status(args: argparse.Namespace) -> int:
    import json
    import os

    from jobs.planning.multirun import describe, read_index
    from jobs.results.status import format_status, sweep_status

    index = read_index(args.store)
    if index is not None:  # a multirun directory: each job's store, in job order, checked against the index
        statuses = [{**(sweep_status(job["path"], index=(args.store, job)) if os.path.exists(job["path"]) else
                        {"store": job["path"], "state": "not started"}), "job": job["job"], "values": job["values"]}
                    for job in index["jobs"]]
        if args.json:
            print(json.dumps({"multirun": args.store, "varies": index["varies"], "jobs": statuses}, indent=2,
                             default=str))
        else:
            print("\n\n".join(f"job {st['job']}: {describe(st['values'])}\n"
                              + (f"{st['store']}: not started" if st["state"] == "not started" else format_status(st))
                              for st in statuses))
        return 0
    st = sweep_status(args.store)
    print(json.dumps(st, indent=2, default=str) if args.json else format_status(st))
    return 0


COMMAND = Command("status", "tasks done / failed / pending, failures, disk, throughput, ETA", _status,
                  arguments=(Arg(("store",), dict(help="the store's path or fsspec URL, or a multirun directory")),
                             Arg(("--json",), dict(action="store_true", help="print JSON"))))
