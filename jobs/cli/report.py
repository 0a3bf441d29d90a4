"""``lie-sweep report``: one self-contained HTML page of a sweep."""

from __future__ import annotations

import argparse

from lie_sweep.errors import LieSweepError
from storage.scores import SCORES

from .table import TRUST_STORE, Arg, Command

__all__ = ["COMMAND"]

DESCRIPTION = ("Write one HTML file showing a sweep: the loss over checkpoints with a checkpoint slider, the signed "
               "pair matrix (click a pair), the selected pair's logit-delta heatmap and per-tensor RMS scatter with "
               "its slope-1 fit, per-checkpoint statistics and rankings. Plotly is embedded: the file opens from disk "
               "or any static host, with no network. Reads only what it shows; on a store still being written, only "
               "completed tasks.")
EPILOG = ("examples:\n  lie-sweep report lie-sweep-out/sweep\n"
          "  lie-sweep report out/sgd out/adam          (one page comparing the two stores)\n"
          "  lie-sweep report lie-sweep-out/multirun/2026-12-03_10-00-00   (compares the multirun's stores)\n"
          "  lie-sweep report s3://bucket/exp1 -o exp1.html --top 24 --max-mb 10\n"
          "  lie-sweep report out/sweep --examples 3,8,21,40")


def _examples_arg(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise LieSweepError("--examples takes dataset indices", expected="comma-separated integers, e.g. 3,8,21",
                            found=repr(text), fix="--examples 3,8,21") from None


def _report(args: argparse.Namespace) -> int:
    from jobs.planning.multirun import read_index

    stores, multirun = list(args.stores), None
    index = read_index(stores[0]) if len(stores) == 1 else None
    if index is not None:  # a multirun directory: compare its stores, each checked against the index
        from jobs.planning.multirun import check_job_store
        from storage.store import SweepStore

        multirun, stores = stores[0], [job["path"] for job in index["jobs"]]
        for job in index["jobs"]:
            check_job_store(multirun, job, SweepStore.open(job["path"]).meta.identity)
    if len(stores) > 1:
        from jobs.report.write import write_comparison

        if args.examples is not None or args.no_images:
            raise LieSweepError("--examples and --no-images are options of a one-store page", expected="report STORE "
                                "with them, or report A B … without", found=f"{len(stores)} stores",
                                fix="drop them to compare the stores")
        print(write_comparison(stores, args.output, top=min(args.top, 24), by=args.by, multirun=multirun))
        return 0
    from jobs.planning.targets import TargetTrust
    from jobs.report import write_report

    result = write_report(stores[0], args.output, top=args.top, examples=_examples_arg(args.examples), by=args.by,
                          max_mb=args.max_mb, images=not args.no_images,
                          trust=TargetTrust(trust_store=args.trust_store, log=print))
    print(result.summary())
    return 0


COMMAND = Command(
    "report", "write a self-contained results page (HTML, works offline)", _report, description=DESCRIPTION,
    epilog=EPILOG,
    arguments=(Arg(("stores",), dict(nargs="+", metavar="STORE", help="the store's path or fsspec URL; two or more "
                                                                      "stores, or a multirun directory: one page "
                                                                      "comparing them")),
               Arg(("-o", "--output"), dict(default=None, metavar="PATH",
                                            help="the HTML file to write (default: STORE-report.html beside a local "
                                                 "store)")),
               Arg(("--top",), dict(type=int, default=16, metavar="K", help="show the K most order-sensitive examples "
                                                                            "and the pairs among them (default: "
                                                                            "%(default)s)")),
               Arg(("--examples",), dict(default=None, metavar="I,J,...", help="show these examples (dataset indices) "
                                                                               "instead of the top K")),
               Arg(("--by",), dict(default=None, choices=list(SCORES), help="score ranking examples and pairs: "
                                   + "; ".join(f"{s.name}: {s.help}" for s in SCORES.values())
                                   + " (default: norm, or swap for a sweep without the bracket)")),
               Arg(("--max-mb",), dict(type=float, default=20.0, metavar="N", help="size budget in MiB: precision, "
                                       "then examples shown, are lowered to fit (default: %(default)s)")),
               Arg(("--no-images",), dict(action="store_true", help="leave the example thumbnails out")),
               TRUST_STORE))
