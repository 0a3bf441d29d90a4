"""The account a run or resume ends with: tasks, pairs and rate, bytes on disk, the per-checkpoint table
and the most order-sensitive pairs, and where to look next."""

from __future__ import annotations

import numpy as np

from storage.accounting import compression, pairs_per_second, sketch_note

from jobs.report.write import default_report_path
from jobs.units import format_bytes

from .driver import RunReport
from .runs import RunResult

__all__ = ["format_account", "pairs_line"]


def pairs_line(report: RunReport, rate: float) -> str:
    """The account's line of pairs computed: how many, how fast; or why none were (done before, or all failed)."""
    if rate:
        return (f"pairs        {report.pairs_computed} computed in {report.seconds:.1f} s, {report.startup_s:.1f} s "
                f"of it starting workers ({rate:.1f} pairs/s once they were ready, {report.workers} worker(s))")
    if report.failures:
        return (f"pairs        none computed now: every task to run failed ({len(report.failures)}; the first: "
                f"{report.failures[0]['error']})")
    return "pairs        none computed now: every task was done already"


def format_account(result: RunResult, top: int = 8) -> str:
    """The run's account and a results table (per checkpoint, then the most order-sensitive pairs)."""
    spec, store, report = result.spec, result.store, result.report
    packed = compression(store)  # the one definition of status, show and the page (storage.accounting)
    rate = pairs_per_second(report.pairs_computed, report.seconds, report.startup_s)
    lines = [
        "",
        f"store        {spec.store_path}",
        f"tasks        {len(report.completed)} computed now, {report.skipped} already done, "
        f"{len(report.failures)} failed, of {result.n_tasks}",
        pairs_line(report, rate),
        (f"disk         {format_bytes(store.bytes_on_disk())} in all; parameter-sized arrays and losses "
         f"{format_bytes(packed.bytes_on_disk)} for {format_bytes(packed.raw_bytes)} raw (compression ratio "
         f"{packed.ratio:.2f}x){sketch_note(store)}" if packed.ratio else
         f"disk         {format_bytes(store.bytes_on_disk())} on disk "
         f"(storage.keep=summary: tables, logit deltas, losses{sketch_note(store)})"),
    ]
    if report.completed:
        steps = [c["step"] for c in spec.checkpoints]
        losses = np.asarray(store.array("losses")[:], dtype=np.float64)
        by_ckpt: dict[int, list[float]] = {}
        for r in report.completed:
            by_ckpt.setdefault(r["checkpoint"], []).extend(r["norms"])
        # the norms each task reports: its brackets', or without the bracket its exact swaps' (first step size)
        what = "|[u_i,u_j]|" if "bracket" in spec.effects else "|swap|"
        lines += ["", "per checkpoint, pairs computed in this run (BatchNorm in eval mode)",
                  f"{'step':>8} {'mean loss':>10} {'mean ' + what:>17} {'max ' + what:>16}"]
        for c in sorted(by_ckpt):
            norms = np.asarray(by_ckpt[c])
            lines.append(f"{steps[c]:>8} {losses[c].mean():>10.4f} {norms.mean():>17.4e} {norms.max():>16.4e}")
        last = max(by_ckpt)
        rows = sorted(((n, p) for r in report.completed if r["checkpoint"] == last
                       for p, n in zip(range(r["start"], r["stop"]), r["norms"])), reverse=True)[:top]
        meaning = ("theta_ij - theta_ji ~ lr^2 [u_i,u_j]" if "bracket" in spec.effects else
                   f"|theta_ij - theta_ji| at epsilon = {spec.swap_epsilons[0]:g}")
        lines += ["", f"most order-sensitive pairs at step {steps[last]} ({meaning})",
                  f"{'i':>6} {'j':>6} {what:>12}"]
        for n, p in rows:
            i, j = spec.pairs[p]
            lines.append(f"{i:>6} {j:>6} {n:>12.4e}")
    for f in report.failures:
        lines.append(f"FAILED task {f['task_id']} (checkpoint {f['checkpoint']}, pairs {f['start']}-{f['stop']}, "
                     f"{f['attempts']} attempt(s)): {f['error']}")
    if report.failures:
        lines.append(f"tracebacks: {store.tree.ledger}/failures/; finish with: lie-sweep resume {spec.store_path}")
    lines += ["", f"more: lie-sweep show {spec.store_path}",
              f"page: lie-sweep report {spec.store_path}   (writes {default_report_path(spec.store_path)}, "
              "one HTML file that opens offline)",
              f"read it: python -c \"import lie_sweep; s = lie_sweep.open_sweep('{spec.store_path}'); "
              "print(s.top_pairs(5))\""]
    return "\n".join(lines)
