"""``lie-sweep check``: read back every completed task; with ``--repair``, clear the marks of damaged ones."""

from __future__ import annotations

import argparse

from .table import STORE, Arg, Command

__all__ = ["COMMAND"]

DESCRIPTION = ("Read every completed task's shards: missing, truncated or corrupt shards (CRC32C checksums), files "
               "changed after completion and NaN/Inf values are reported; nothing is changed. With --repair their "
               "files are removed and their completion marks cleared, so the next `resume` recomputes exactly those "
               "tasks. Exit status 1 when something was damaged.")


def _check(args: argparse.Namespace) -> int:
    from jobs.results.check import check_store

    out = check_store(args.store, repair=args.repair)
    n = len(out["damaged"])
    fix = (f"marks cleared; recompute them with: lie-sweep resume {args.store}" if args.repair else
           f"nothing changed; clear their marks with: lie-sweep check {args.store} --repair, then resume")
    print(f"checked {out['checked']} completed task(s): " + (f"{n} damaged, {fix}" if n else "all intact"))
    return 1 if n else 0


COMMAND = Command("check", "verify stored data (--repair: clear the marks of damaged tasks)", _check,
                  description=DESCRIPTION,
                  arguments=(STORE, Arg(("--repair",), dict(action="store_true", help="remove damaged tasks' files and "
                                                             "clear their completion marks for resume"))))
