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


def _job(args: argparse.Namespace) -> int:
    import json

    from jobs.cluster.submit import job_logs, job_status, job_stop

    if args.action == "status":
        st = job_status(args.address, args.job_id)
        print(json.dumps(st, indent=2, default=str) if args.json else f"{st['job_id']}: {st['status']}"
              + (f" ({st['message']})" if st["message"] else ""))
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
