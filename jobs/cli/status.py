"""``lie-sweep status``: tasks done, failed and pending; disk; throughput; ETA."""

from __future__ import annotations

import argparse

from .table import STORE, Arg, Command

__all__ = ["COMMAND"]


def _status(args: argparse.Namespace) -> int:
    import json

    from jobs.results.status import format_status, sweep_status

    st = sweep_status(args.store)
    print(json.dumps(st, indent=2, default=str) if args.json else format_status(st))
    return 0


COMMAND = Command("status", "tasks done / failed / pending, failures, disk, throughput, ETA", _status,
                  arguments=(STORE, Arg(("--json",), dict(action="store_true", help="print JSON"))))
