"""``lie-sweep submit`` and ``lie-sweep job``: sweeps as Ray jobs through the Jobs API."""

from __future__ import annotations

import argparse

from .table import DASHBOARD, OVERRIDES, Arg, Command

__all__ = ["SUBMIT", "JOB", "follow_job"]

DESCRIPTION = ("Validate the config here, then submit `lie-sweep run` as a Ray job through the Jobs API, carrying "
               "the resolved config and this checkout's packages. Relative local paths are made absolute here: the "
               "cluster must see them (shared filesystem), or use fsspec URLs (s3://, gs://).")
EPILOG = "example:\n  lie-sweep submit --address http://head:8265 --wait storage.path=s3://bucket/exp1 model=mxresnet"


def follow_job(args: argparse.Namespace, job_id: str) -> int:
    """Print the submitted job's id; with ``--wait`` follow it and return 0 only when it succeeded."""
    print(job_id, flush=True)
    if not args.wait:
        return 0
    from jobs.cluster.submit import follow

    status = follow(args.address, job_id)
    print(f"job {status.lower()}")
    return 0 if status == "SUCCEEDED" else 1


def _submit(args: argparse.Namespace) -> int:
    from jobs.cluster.submit import submit_run

    return follow_job(args, submit_run(args.overrides, args.address, env=args.env or (),
                                       allow_secret_env=args.allow_secret_env))


def _sweep_progress(store: str | None) -> dict | None:
    """The submitted sweep's own progress from its store (tasks, pairs/s, ETA: ``status``'s account), where this
    machine can read the store; None where it cannot (a path only the cluster sees)."""
    if not store:
        return None
    from jobs.results.status import sweep_status
    from storage.errors import LieSweepError

    try:
        st = sweep_status(store)
    except (LieSweepError, OSError):
        return None
    return {"store": store, "tasks": st["tasks"], "pairs": st["pairs"], "pairs_per_second": st["pairs_per_second"],
            "eta_seconds": st["eta_seconds"]}


def _progress_text(sweep: dict | None) -> str:
    if sweep is None:
        return ""
    from jobs.units import format_seconds

    t, rate, eta = sweep["tasks"], sweep["pairs_per_second"], sweep["eta_seconds"]
    return (f"; sweep {sweep['store']}: {t['done']} of {t['total']} tasks done, {t['failed']} failed"
            + (f", {rate:.1f} pairs/s" if rate else "")
            + (f", about {format_seconds(eta)} left" if eta else ""))


def _job(args: argparse.Namespace) -> int:
    import json

    from jobs.cluster.submit import job_logs, job_status, job_stop

    if args.action == "status":
        st = job_status(args.address, args.job_id)
        st["sweep"] = _sweep_progress((st.get("metadata") or {}).get("store"))
        print(json.dumps(st, indent=2, default=str) if args.json else f"{st['job_id']}: {st['status']}"
              + (f" ({st['message']})" if st["message"] else "") + _progress_text(st["sweep"]))
    elif args.action == "logs":
        print(job_logs(args.address, args.job_id), end="")
    else:
        print(f"{args.job_id}: {'stop requested' if job_stop(args.address, args.job_id) else 'already ended'}")
    return 0


SUBMIT = Command(
    "submit", "submit a sweep to a Ray cluster as a job (the driver runs there)", _submit, description=DESCRIPTION,
    epilog=EPILOG,
    arguments=(OVERRIDES, DASHBOARD,
               Arg(("--wait",), dict(action="store_true", help="follow the job's output until it ends; exit with its "
                                                               "status")),
               Arg(("--env",), dict(action="append", metavar="NAME", help="forward this shell's variable NAME to "
                                    "the job (repeatable); the Ray dashboard shows a job's environment to anyone who "
                                    "can read it, so names that look like secrets are refused")),
               Arg(("--allow-secret-env",), dict(action="store_true", help="forward --env names that look like "
                                                 "secrets anyway (they become readable on the dashboard)"))))

JOB = Command(
    "job", "status, logs or stop of a submitted sweep job", _job,
    arguments=(Arg(("action",), dict(choices=["status", "logs", "stop"])), Arg(("job_id",)), DASHBOARD,
               Arg(("--json",), dict(action="store_true", help="status as JSON"))))
