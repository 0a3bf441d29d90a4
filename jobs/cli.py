"""The ``lie-sweep`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

try:
    from lie_sweep.errors import LieSweepError, first_line
    _CLASH: str | None = None
except ImportError as exc:  # lie_sweep._origin.PackageClashError: another distribution's `storage` came first
    if type(exc).__name__ != "PackageClashError":
        raise
    _CLASH = str(exc)

DESCRIPTION = """\
lie-sweep computes Lie brackets of training examples, [u_i, u_j] = J_{u_j} u_i - J_{u_i} u_j,
the leading-order difference between training on example i then j and on j then i
(theta_ij - theta_ji = lr^2 [u_i, u_j] + O(lr^3)), over grids of checkpoints x example pairs."""

RUN_DESCRIPTION = """\
Run a sweep over checkpoints x example pairs on Ray workers, stored in a Zarr v3 store.
With no overrides it runs the demo: train the small convnet on synthetic shapes (5 checkpoints)
and bracket all 28 pairs among 8 examples.

Overrides are Hydra-style: group=option picks a config group option, key=value sets a key.
Unknown keys and +key=value additions are refused."""

COMMON = """\
common overrides:
  experiment=celeba_mxresnet data.root=/data/celeba   the reference experiment (local CelebA copy)
  model=mxresnet model.widths=[16,32,64,128]          another model, or its settings
  checkpoints=glob checkpoints.glob='runs/*.pt'       sweep existing checkpoints
  examples.count=16 | examples=list examples.indices=[3,8,21]
  pairs=list pairs.list=[[3,8],[8,21]]                explicit pairs (dataset indices)
  pairs.per_task=16                                   pairs per task (= per store shard)
  field=adam                                          Adam-preconditioned field from each checkpoint's state
  precision=float64  chunk_size=8                     dtype; pairs per vmapped call
  storage.path=out/sweep storage.overwrite=true       where the store goes
  storage.codec=bitround storage.keepbits=10          lossy codec, |error| <= 2^-11 |x|
  storage.keep=summary | storage.keep='[fc.*]'        store tables only, or only these tensors
  derived.eval_count=32 derived.epsilon=0.01          logit deltas' evaluation batch and epsilon
  cluster.workers=2 cluster.address=ray://head:10001  workers; an existing Ray cluster"""


def _groups_help() -> str:
    from omegaconf import OmegaConf

    from .config import config_dir

    root = config_dir()
    lines = ["config groups (group=option; the default first):"]
    defaults = {k: v for entry in OmegaConf.load(root / "config.yaml").defaults if not isinstance(entry, str)
                for k, v in entry.items()}  # conf/config.yaml's defaults list: the one place they are chosen
    for group, default in defaults.items():
        options = sorted(p.stem for p in (root / group).glob("*.yaml"))
        options.sort(key=lambda o: o != default)
        lines.append(f"  {group:<12} {', '.join(options)}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``lie-sweep`` command."""
    parser = argparse.ArgumentParser(prog="lie-sweep", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="`lie-sweep run --help` lists the config groups and common overrides.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .schema import help_text

    run = sub.add_parser("run", help="run a sweep (the demo by default)", description=RUN_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog=_groups_help() + "\n\n" + COMMON + "\n\n" + help_text())
    run.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="key=value or group=option")
    run.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    run.add_argument("--address", default=None,
                     help="join a running Ray cluster (its GCS address, e.g. HEAD:6379); same as cluster.address=")
    run.add_argument("--config", default=None, metavar="FILE",
                     help="run a resolved config (JSON, as `submit` ships it) instead of composing conf/")
    run.add_argument("--top", type=int, default=8, help="pairs to list in the summary (default: %(default)s)")

    resume = sub.add_parser("resume", help="finish a sweep: run only the tasks without a completion mark",
                            description="Re-plan the sweep from the store's own config and run only the tasks "
                                        "without a completion mark (failed ones included). Execution settings may "
                                        "change (cluster.*, chunk_size); a change to anything that defines the "
                                        "results is refused with a key-by-key diff unless --restart.",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="examples:\n  lie-sweep resume lie-sweep-out/sweep\n"
                                   "  lie-sweep resume out/exp1.zarr cluster.workers=4 chunk_size=8")
    resume.add_argument("store", help="the store's path or fsspec URL")
    resume.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="execution settings: cluster.*, chunk_size")
    resume.add_argument("--restart", action="store_true",
                        help="start the store over with the (changed) config: deletes its results")
    resume.add_argument("--top", type=int, default=8, help="pairs to list in the summary (default: %(default)s)")
    resume.add_argument("--address", default=None, help="resume as a Ray job on the cluster whose dashboard is here "
                                                         "(e.g. http://HEAD:8265)")
    resume.add_argument("--wait", action="store_true", help="with --address: follow the job until it ends")

    submit = sub.add_parser("submit", help="submit a sweep to a Ray cluster as a job (the driver runs there)",
                            description="Validate the config here, then submit `lie-sweep run` as a Ray job through "
                                        "the Jobs API, carrying the resolved config and this checkout's packages. "
                                        "Relative local paths are made absolute here: the cluster must see them "
                                        "(shared filesystem), or use fsspec URLs (s3://, gs://).",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="example:\n  lie-sweep submit --address http://head:8265 --wait "
                                   "storage.path=s3://bucket/exp1 model=mxresnet")
    submit.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="key=value or group=option")
    submit.add_argument("--address", required=True, help="the Ray dashboard's address, e.g. http://HEAD:8265")
    submit.add_argument("--wait", action="store_true",
                        help="follow the job's output until it ends; exit with its status")

    job = sub.add_parser("job", help="status, logs or stop of a submitted sweep job")
    job.add_argument("action", choices=["status", "logs", "stop"])
    job.add_argument("job_id")
    job.add_argument("--address", required=True, help="the Ray dashboard's address, e.g. http://HEAD:8265")
    job.add_argument("--json", action="store_true", help="status as JSON")

    plan = sub.add_parser("plan", help="dry run: tasks, HVPs, memory, bytes on disk per codec, time; writes nothing",
                          description="Print what `lie-sweep run` with the same overrides would do: tasks, "
                                      "Hessian-vector products, memory per task, bytes on disk per codec and an "
                                      "estimated time, calibrated on a few real brackets (at the first checkpoint, "
                                      "or the initial weights when run would train). Trains and writes nothing.",
                          epilog=_groups_help() + "\n\n" + COMMON, formatter_class=argparse.RawDescriptionHelpFormatter)
    plan.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="key=value or group=option, as for run")
    plan.add_argument("--calibration-pairs", type=int, default=8, help="pairs to calibrate on (default: %(default)s)")

    show = sub.add_parser("show", help="what a sweep found: top pairs, per-checkpoint RMS and fits, moving logits",
                          description="A terminal summary of a store from its tables and logit deltas (never its "
                                      "parameter-sized arrays): the most order-sensitive pairs, per-checkpoint loss, "
                                      "bracket norms and fit constants, the tensors whose brackets are largest "
                                      "relative to their gradients, the outputs whose logits move most, and the "
                                      "examples ranked by order sensitivity.")
    show.add_argument("store", help="the store's path or fsspec URL")
    show.add_argument("--top", type=int, default=10, help="rows per ranking (default: %(default)s)")

    report = sub.add_parser("report", help="write a self-contained results page (HTML, works offline)",
                            description="Write one HTML file showing a sweep: the loss over checkpoints with a "
                                        "checkpoint slider, the signed pair matrix (click a pair), the selected "
                                        "pair's logit-delta heatmap and per-tensor RMS scatter with its slope-1 "
                                        "fit, per-checkpoint statistics and rankings. Plotly is embedded: the file "
                                        "opens from disk or any static host, with no network. Reads only what it "
                                        "shows; on a store still being written, only completed tasks.",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="examples:\n  lie-sweep report lie-sweep-out/sweep\n"
                                   "  lie-sweep report s3://bucket/exp1 -o exp1.html --top 24 --max-mb 10\n"
                                   "  lie-sweep report out/sweep --examples 3,8,21,40")
    report.add_argument("store", help="the store's path or fsspec URL")
    report.add_argument("-o", "--output", default=None, metavar="PATH",
                        help="the HTML file to write (default: STORE-report.html beside a local store)")
    report.add_argument("--top", type=int, default=16, metavar="K",
                        help="show the K most order-sensitive examples and the pairs among them (default: %(default)s)")
    report.add_argument("--examples", default=None, metavar="I,J,...",
                        help="show these examples (dataset indices) instead of the top K")
    report.add_argument("--by", default="norm", choices=["norm", "rms", "c", "logit"],
                        help="score ranking examples and pairs: mean bracket norm over partners (default), its RMS, "
                             "the fit constant c, or logit-delta RMS")
    report.add_argument("--max-mb", type=float, default=20.0, metavar="N",
                        help="size budget in MiB: precision, then examples shown, are lowered to fit "
                             "(default: %(default)s)")
    report.add_argument("--no-images", action="store_true", help="leave the example thumbnails out")

    verify = sub.add_parser("verify", help="measure the stored prediction against real two-step swaps",
                            description="For K sampled completed pairs per checkpoint, take the real swap (two steps "
                                        "along the sweep's field, both orders) at epsilon = lr x {1, 1/4, 1/16, 1/64, "
                                        "1/256} and compare theta_ij - theta_ji and f(theta_ij) - f(theta_ji) with the "
                                        "stored leading order; writes the store's verify table and prints, per "
                                        "checkpoint, the error at lr and the largest epsilon within 10%.")
    verify.add_argument("store", help="the store's path or fsspec URL")
    verify.add_argument("--pairs", type=int, default=8, metavar="K", help="pairs per checkpoint (default: %(default)s)")
    verify.add_argument("--seed", type=int, default=0, help="seed of the pair sample (default: %(default)s)")

    status = sub.add_parser("status", help="tasks done / failed / pending, failures, disk, throughput, ETA")
    status.add_argument("store", help="the store's path or fsspec URL")
    status.add_argument("--json", action="store_true", help="print JSON")

    check = sub.add_parser("check", help="verify stored data; clear the marks of damaged tasks",
                           description="Read every completed task's shards: missing, truncated or corrupt shards "
                                       "(CRC32C checksums) and NaN/Inf values are reported, their files removed and "
                                       "their completion marks cleared, so the next `resume` recomputes exactly "
                                       "those tasks. Exit status 1 when something was damaged.")
    check.add_argument("store", help="the store's path or fsspec URL")
    return parser


def _job_exit(status: str) -> int:
    print(f"job {status.lower()}")
    return 0 if status == "SUCCEEDED" else 1


def _submit(args: argparse.Namespace) -> int:
    from .submit import follow, submit_run

    job_id = submit_run(args.overrides, args.address)
    print(job_id, flush=True)
    return _job_exit(follow(args.address, job_id)) if args.wait else 0


def _job(args: argparse.Namespace) -> int:
    import json

    from .submit import job_logs, job_status, job_stop

    if args.action == "status":
        st = job_status(args.address, args.job_id)
        print(json.dumps(st, indent=2, default=str) if args.json else f"{st['job_id']}: {st['status']}"
              + (f" ({st['message']})" if st["message"] else ""))
    elif args.action == "logs":
        print(job_logs(args.address, args.job_id), end="")
    else:
        print(f"{args.job_id}: {'stop requested' if job_stop(args.address, args.job_id) else 'already ended'}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from .run import format_account, resume_sweep

    if args.address:
        from .submit import follow, submit_resume

        job_id = submit_resume(args.store, args.overrides, args.address, restart=args.restart)
        print(job_id, flush=True)
        return _job_exit(follow(args.address, job_id)) if args.wait else 0

    result = resume_sweep(args.store, args.overrides, restart=args.restart, log=lambda m: print(m, flush=True))
    print(format_account(result, top=args.top))
    return 1 if result.report.failures else 0


def _status(args: argparse.Namespace) -> int:
    import json

    from .status import format_status, sweep_status

    st = sweep_status(args.store)
    print(json.dumps(st, indent=2, default=str) if args.json else format_status(st))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from .config import load_config
    from .plan import format_plan, plan_sweep

    print(format_plan(plan_sweep(load_config(args.overrides), calibration_pairs=args.calibration_pairs)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from .show import show_store

    print(show_store(args.store, top=args.top))
    return 0


def _examples_arg(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise LieSweepError("--examples takes dataset indices", expected="comma-separated integers, e.g. 3,8,21",
                            found=repr(text), fix="--examples 3,8,21") from None


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    result = write_report(args.store, args.output, top=args.top, examples=_examples_arg(args.examples), by=args.by,
                          max_mb=args.max_mb, images=not args.no_images)
    print(result.summary())
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .verify import format_verify_summary, verify_store

    sweep = verify_store(args.store, pairs=args.pairs, seed=args.seed, log=lambda m: print(m, flush=True))
    print("\n".join(["", "the leading order against real swaps (relative error of theta_ij - theta_ji)",
                      *format_verify_summary(sweep), f"rows: {sweep.store.verify_path} (sweep.verify_table())"]))
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check_store

    out = check_store(args.store)
    n = len(out["damaged"])
    print(f"checked {out['checked']} completed task(s): " +
          (f"{n} damaged, marks cleared; recompute them with: lie-sweep resume {args.store}" if n else "all intact"))
    return 1 if n else 0


def _run(args: argparse.Namespace) -> int:
    if args.print_config:
        from omegaconf import OmegaConf

        from .config import load_config

        print(OmegaConf.to_yaml(load_config(args.overrides)), end="")
        return 0
    from .run import format_account, run_config, run_sweep

    if args.address and args.address.startswith(("http://", "https://")):
        raise LieSweepError("run --address joins a cluster by its GCS address", expected="HEAD:6379 (or auto)",
                            found=f"{args.address} (a dashboard URL)",
                            fix=f"to run the driver on the cluster, use `lie-sweep submit --address {args.address}`")
    overrides = [*args.overrides, *([f"cluster.address={args.address}"] if args.address else [])]
    if args.config:
        import json

        from .config import config_from_stored

        try:
            stored = json.loads(open(args.config).read())
        except (OSError, ValueError) as exc:
            raise LieSweepError("cannot read --config", expected="a resolved config as JSON",
                                found=first_line(exc), fix="pass the file `submit` wrote") from None
        result = run_config(config_from_stored(stored, overrides), log=lambda m: print(m, flush=True))
    else:
        result = run_sweep(overrides, log=lambda m: print(m, flush=True))
    print(format_account(result, top=args.top))
    return 1 if result.report.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lie-sweep`` command line; returns the exit status (2 for a user's error, printed as one line)."""
    if _CLASH is not None:
        print(f"lie-sweep: error: {_CLASH}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("run", "resume", "plan", "verify"):  # commands that compute here (jobs.worker_env)
        from .worker_env import retain_freed_memory_here

        retain_freed_memory_here()
    try:
        commands = {"run": _run, "resume": _resume, "status": _status, "check": _check, "submit": _submit, "job": _job,
                    "plan": _plan, "show": _show, "report": _report,
                    "verify": _verify}
        return commands[args.command](args)
    except LieSweepError as exc:
        print(f"lie-sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lie-sweep: interrupted; completed tasks are kept in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
