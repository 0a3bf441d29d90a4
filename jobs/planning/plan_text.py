"""``lie-sweep plan``'s account for the terminal, from a :class:`jobs.planning.dry_run.PlanReport`."""

from __future__ import annotations

from jobs.units import format_bytes, format_seconds

from .dry_run import PlanReport

__all__ = ["format_plan"]


def _duration(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _task_size_lines(r: PlanReport) -> list[str]:
    """Why the task size is what it is (pairs.per_task=auto), and a task's compute at the calibrated rate."""
    cal = r.calibration
    per_pair = cal["s_per_pair"] + cal["s_per_logit_pair"] + cal["s_per_swap_pair"] + cal["s_per_order_pair"]
    how = ("pairs.per_task=auto chose it for D and the grid (jobs/planning/task_size.py)" if r.per_task_auto else
           "pairs.per_task as given (auto would choose one for the grid)")
    t = per_pair * r.pairs_per_task
    took = f"{t * 1000:.0f} ms" if t < 1 else f"{t:.1f} s" if t < 60 else format_seconds(t)
    return [f"             {how}: ~{took} of compute a task on {r.device} (calibrated)"]


def format_plan(r: PlanReport) -> str:
    """The dry run's account, for the terminal."""
    cal = r.calibration
    per_ckpt = -(-r.n_pairs // r.pairs_per_task)
    stored = ("summaries only (storage.keep=summary)" if r.n_stored == 0 else
              f"{r.n_stored:,} of {r.n_params:,} ({'all' if r.keep == 'all' else r.keep})")
    lines = [
        "plan (dry run: nothing trained, nothing written)",
        f"grid         pairs={r.grid}: {r.n_checkpoints} checkpoints ({r.checkpoints_note}) × {r.n_pairs:,} pairs of "
        f"{r.n_examples:,} " + ("examples" if r.batch_size is None else
                                f"minibatches of {r.batch_size} examples (pairs.unit=batch)"),
        f"task         {r.task}: the field is minus the gradient of its loss; it measures {r.n_outputs:,} "
        f"{r.measured} value(s) per evaluation item" + (f" on {r.n_eval:,} of them" if r.n_eval else " (no evaluation "
                                                          "batch)"),
        f"tasks        {r.n_tasks:,} tasks of ≤ {r.pairs_per_task} consecutive pairs of the grid's order "
        f"({per_ckpt:,} per checkpoint); blocks of {r.block} examples' gradients and losses are spread over them",
        *_task_size_lines(r),
        f"files        {r.n_files:,} (shards, chunks, table parts and completion marks)",
        f"work         {_work(r)}",
        f"parameters   D = {r.n_params:,} in {r.n_tensors} tensors ({r.dtype}); stored: {stored}",
        f"memory       ~{format_bytes(sum(r.memory.values()))} per worker of parameter-sized buffers on {r.device} "
        f"(activations extra), of {format_bytes(r.worker_memory)} a worker has: "
        + (f"DOES NOT FIT: {r.fit}" if r.fit else "fits"),
    ]
    lines += [f"               {format_bytes(v):>10}  {k}" for k, v in r.memory.items()]
    if cal["peak_bytes"]:
        lines.append(f"               {format_bytes(cal['peak_bytes']):>10}  measured peak of the calibration "
                     f"on {r.device}")
    effects = cal["effects"]
    parts = [f"{cal[key] * 1e3:.1f} ms/pair ({what})" for effect, key, what in (
        ("bracket", "s_per_pair", "brackets"), ("order", "s_per_order_pair", "optimizer expansion"),
        ("swap", "s_per_swap_pair", "exact swaps" + (", their logit deltas included" if r.n_eval else "")))
        if effect in effects and (effect != "order" or cal[key])]
    if cal["s_per_logit_pair"]:
        parts.append(f"{cal['s_per_logit_pair'] * 1e3:.1f} ms/pair (expansion logit deltas)")
    lines += [
        f"calibration  {cal['pairs']} pairs at the {cal['where']} on {r.device}: " + ", ".join(parts)
        + f", {cal['s_per_example'] * 1e3:.1f} ms/example (gradients)"
        + (f", {cal['s_per_checkpoint']:.2f} s/checkpoint (output Jacobian)" if cal["s_per_checkpoint"] else ""),
    ]
    lines += _mode_lines(r)
    workers = r.workers or 1
    time_line = f"time         ~{_duration(r.seconds(1))} with one worker like this machine's {r.device}"
    if workers > 1:
        time_line += f", ~{_duration(r.seconds(workers))} with cluster.workers={workers}"
    lines.append(time_line + " (excluding start-up; GPU workers are faster)")
    if "order" in effects and not cal["s_per_order_pair"]:
        lines.append("             the order expansion (Δ₁, Δ₂) is not in this estimate (no optimizer state before "
                     "training); it costs about 5-20x a bracket per pair (benchmarks/bench_order.py)")
    return "\n".join(lines + _disk_lines(r))


def _work(r: PlanReport) -> str:
    """What the sweep computes, by effect: HVPs, expansions, swaps, gradients, logit deltas."""
    effects, cells = r.calibration["effects"], r.n_checkpoints * r.n_pairs
    parts = ([f"{cells:,} brackets = {r.hvps:,} Hessian-vector products"] if "bracket" in effects else []) + (
        [f"{cells:,} optimizer expansions (Δ₁, Δ₂)"] if "order" in effects else []) + (
        [f"{cells:,} × {r.swap_steps} exact swaps = {2 * cells * r.swap_steps:,} gradients at shifted weights"
         + (f" and {2 * cells * r.swap_steps:,} forward passes (exact logit deltas)" if r.n_eval else "")]
        if "swap" in effects else [])
    parts.append(f"{r.n_checkpoints * r.n_examples:,} example gradients")
    if "bracket" in effects or "order" in effects:
        parts.append((f"logit deltas from the output Jacobian ({r.n_eval} × {r.n_outputs} reverse passes per "
                      "checkpoint, then one matrix product per task)" if r.calibration["s_per_checkpoint"] else
                      f"{cells:,} × {r.n_eval} output jvps (logit deltas; the {r.n_eval} × {r.n_outputs} output "
                      "Jacobian exceeds the memory budget)") if r.n_eval else "no logit deltas (derived.eval_count=0)")
    return ", ".join(parts)


def _mode_lines(r: PlanReport) -> list[str]:
    """Each HVP mode's ms per HVP, cost in gradients and deviation from forward."""
    if not r.hvp_modes:
        return []
    lines = [f"hvp modes    on the calibration pairs (hvp={r.hvp}; the fastest agreeing with forward: "
             f"{r.hvp_choice}, which hvp=auto would take):"]
    for m in r.hvp_modes:
        if m["error"]:
            lines.append(f"               {m['mode']:<8} not available: {m['error']}")
            continue
        lines.append(f"               {m['mode']:<8} {m['s_per_hvp'] * 1e3:8.2f} ms/HVP  "
                     f"{m['per_gradient']:5.2f}× a gradient  max deviation from forward {m['deviation']:.1e}"
                     + ("" if m["agrees"] else " (does not agree: never chosen)"))
    return lines


def _disk_lines(r: PlanReport) -> list[str]:
    """Bytes on disk per codec preset, from the calibration brackets."""
    lines: list[str] = []
    raw_nxn = r.n_checkpoints * r.n_examples ** 2 * r.n_params * (4 if r.dtype == "float32" else 8)
    summary = r.keep == "summary"
    if summary:
        lines.append("disk         no parameter-sized arrays (storage.keep=summary): tables, logit deltas"
                     + (" and the sketches below" if r.sketch else "") + "; storage.keep=all would store:")
    if r.codecs:
        what = "brackets" if "bracket" in r.calibration["effects"] else "exact swaps (one step size)"
        lines += [f"{'             ' if summary else 'disk        '} {what} on disk, estimated from the calibration "
                  f"pairs (raw n×n: the full n×n matrix of every checkpoint, {format_bytes(raw_nxn)}):",
                  f"               {'codec':<14} {'bytes/pair':>11} {'sweep total':>12} {'vs raw n×n':>11} "
                  f"{'L2 rel. err':>12}"]
        for c in r.codecs:
            mark = "*" if c["codec"] == r.codec else " "
            if "error_text" in c:
                lines.append(f"               {c['codec'] + mark:<14} cannot store these values: {c['error_text']}")
                continue
            total = c["bytes_per_pair"] * r.n_checkpoints * r.n_pairs
            lines.append(f"               {c['codec'] + mark:<14} {format_bytes(c['bytes_per_pair']):>11} "
                         f"{format_bytes(total):>12} {total / raw_nxn:>10.3f}x {c['l2_rel_error']:>12.1e}")
        lines.append("               (* storage.codec; gradients add about E/P of this, tables a few KiB per task)")
    return lines + _sketch_lines(r)


def _sketch_lines(r: PlanReport) -> list[str]:
    """The bytes of the sweep's sketches (storage.sketch) per codec: every pair result and example gradient."""
    if not r.sketch:
        return []
    sk = r.sketch
    rows = r.n_checkpoints * (r.n_pairs * sk["per_pair"] + r.n_examples)
    lines = [f"sketches     storage.sketch={sk['k']}: S·v of every parameter-sized result ({sk['per_pair']} per pair, "
             f"one per example gradient), {rows:,} rows of {sk['k']:,} numbers:",
             f"               {'codec':<14} {'bytes/row':>11} {'sweep total':>12}"]
    for codec, per_row in sk["bytes_per_row"].items():
        mark = "*" if codec == r.codec else " "
        sizes = "cannot store these values" if per_row is None else \
            f"{format_bytes(per_row):>11} {format_bytes(per_row * rows):>12}"
        lines.append(f"               {codec + mark:<14} {sizes}")
    return lines
