"""``lie-sweep check``: read back every completed task; clear the marks of damaged ones."""

from __future__ import annotations

import argparse

from .table import STORE, Command

__all__ = ["COMMAND"]

DESCRIPTION = ("Read every completed task's shards: missing, truncated or corrupt shards (CRC32C checksums) and "
               "NaN/Inf values are reported, their files removed and their completion marks cleared, so the next "
               "`resume` recomputes exactly those tasks. Exit status 1 when something was damaged.")


def _check(args: argparse.Namespace) -> int:
    from jobs.results.check import check_store

    out = check_store(args.store)
    n = len(out["damaged"])
    print(f"checked {out['checked']} completed task(s): " +
          (f"{n} damaged, marks cleared; recompute them with: lie-sweep resume {args.store}" if n else "all intact"))
    return 1 if n else 0


COMMAND = Command("check", "verify stored data; clear the marks of damaged tasks", _check, description=DESCRIPTION,
                  arguments=(STORE,))
