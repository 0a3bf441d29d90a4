"""Sweeps as Ray jobs: ``lie-sweep submit``, ``lie-sweep resume --address``, ``lie-sweep job ...``.

The driver runs on the cluster. ``submit`` validates the config here (errors are one line, before
anything is sent; a credential never travels with a job: :mod:`jobs.cluster.credentials`), resolves
relative local paths against this directory (the cluster must see them: a shared filesystem, or use
fsspec URLs), and submits ``lie-sweep run --config config.json``
with a runtime environment that carries the resolved config (``working_dir``) and this checkout's
packages ``lie_sweep``, ``storage`` and ``jobs`` (``py_modules``), so the cluster runs exactly
this code; its image must provide the dependencies (torch, ray, zarr, …; see ``docker/``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import OmegaConf

from lie_sweep.errors import LieSweepError, first_line

from jobs.planning.config import load_config, storage_options_of
from jobs.planning.user_code import code_dirs, job_runtime_env, user_modules

from .credentials import forwarded_env, refuse_credential_options

__all__ = ["submit_run", "submit_resume", "follow", "job_client", "job_status", "job_logs", "job_stop", "JobError"]


class JobError(LieSweepError):
    """A Ray job could not be submitted, found or followed."""


def job_client(address: str):
    """A Ray Jobs API client for the dashboard at ``address`` (e.g. http://head:8265)."""
    from ray.job_submission import JobSubmissionClient

    if "://" not in address:  # HOST:6379 is the GCS address `run --address` takes, not the dashboard's URL
        raise JobError("--address of submit, resume and job is the Ray dashboard's URL",
                       expected="http://HEAD:8265", found=f"{address} (a GCS address?)",
                       fix="pass http://HEAD:8265 here; HEAD:6379 is for `lie-sweep run --address`, which runs the "
                           "driver on this machine")

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        raise JobError(f"cannot reach the Ray Jobs API at {address}", expected="a Ray dashboard address such as "
                       "http://HEAD:8265", found=first_line(exc, 160),
                       fix="check --address and that the head runs the dashboard (ray[default])") from None


def _runtime_env(workdir: str | None, env_vars: dict[str, str], user: Sequence[str] = ()) -> dict[str, Any]:
    """This checkout's packages and ``user``'s modules (jobs.planning.user_code), the forwarded variables and the
    working directory, for a job."""
    import jobs
    import lie_sweep
    import storage

    code = job_runtime_env(user, workdir) if user else {}
    env: dict[str, Any] = {"py_modules": [str(Path(m.__file__).parent) for m in (lie_sweep, storage, jobs)]
                           + code.get("py_modules", []), "env_vars": dict(env_vars)}
    if workdir or "working_dir" in code:
        env["working_dir"] = code.get("working_dir", workdir)
    return env


def _submit(client, **kwargs: Any) -> str:
    """``client.submit_job`` that waits out a head whose job agent is still starting (up to a minute)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.submit_job(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the SDK raises RuntimeError with the HTTP answer
            line = first_line(exc)
            if "try again later" in line and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise JobError("the cluster refused the job", expected="a Ray head accepting jobs", found=line,
                           fix="check the head's dashboard and its logs") from None


def _absolute(path: str) -> str:
    return path if "://" in path else str(Path(path).expanduser().resolve())


def submit_run(overrides: Sequence[str], address: str, *, log: Callable[[str], None] = print,
               env: Sequence[str] = (), allow_secret_env: bool = False) -> str:
    """Submit the sweep that ``overrides`` describe, its runtime environment carrying :func:`forwarded_env`
    (``env``: more variables by name); returns the job id."""
    env_vars = forwarded_env(env, allow_secret_env, log=log)
    cfg = OmegaConf.to_container(load_config(overrides), resolve=True)
    refuse_credential_options(cfg["storage"]["options"])  # config.json travels with the job
    cfg["storage"]["path"] = _absolute(cfg["storage"]["path"])
    cfg["checkpoints"]["dir"] = _absolute(cfg["checkpoints"]["dir"])
    if cfg["checkpoints"]["source"] == "glob":
        cfg["checkpoints"]["glob"] = _absolute(cfg["checkpoints"]["glob"])
    cfg["checkpoints"]["paths"] = [_absolute(p) for p in cfg["checkpoints"]["paths"]]
    cfg["cluster"]["address"] = "auto"  # the job's driver joins the cluster it runs on
    client = job_client(address)
    with tempfile.TemporaryDirectory(prefix="lie-sweep-job-") as workdir:
        Path(workdir, "config.json").write_text(json.dumps(cfg, indent=1))
        user = user_modules(cfg, code_dirs(cfg["cluster"]["code_dirs"]))  # the user's own _target_ modules travel
        job_id = _submit(client, entrypoint="python -m jobs.cli run --config config.json",
                         runtime_env=_runtime_env(workdir, env_vars, user),
                         metadata={"lie_sweep": "run", "store": cfg["storage"]["path"]})
    log(f"submitted {job_id}: sweep into {cfg['storage']['path']}")
    return job_id


def submit_resume(store: str, overrides: Sequence[str], address: str, *, restart: bool = False,
                  trust_store: bool = False, log: Callable[[str], None] = print) -> str:
    """Submit ``lie-sweep resume STORE [overrides]`` as a job; returns the job id."""
    import shlex

    refuse_credential_options(storage_options_of(overrides))  # the entrypoint is on the dashboard
    store = _absolute(store)
    args = ["python", "-m", "jobs.cli", "resume", store, *overrides, "cluster.address=auto"]
    if restart:
        args.append("--restart")
    if trust_store:
        args.append("--trust-store")
    client = job_client(address)
    job_id = _submit(client, entrypoint=" ".join(shlex.quote(a) for a in args),
                     runtime_env=_runtime_env(None, forwarded_env(log=log), _stored_user_modules(store)),
                     metadata={"lie_sweep": "resume", "store": store})
    log(f"submitted {job_id}: resume of {store}")
    return job_id


def _stored_user_modules(store: str) -> list[str]:
    """The user's own modules a store's config names, where this machine can read the store and finds them in its
    code folders (else none: the cluster's image must provide them)."""
    from storage.errors import LieSweepError as StoreLieSweepError
    from storage.reader import open_sweep

    try:
        config = open_sweep(store).config
    except (StoreLieSweepError, OSError):
        return []
    return user_modules(config, code_dirs())


def follow(address: str, job_id: str, *, poll: float = 1.0, out=None) -> str:
    """Print the job's log as it grows until it ends; returns its final status (SUCCEEDED, FAILED, STOPPED)."""
    import sys

    out = out or sys.stdout
    client = job_client(address)
    seen = 0
    while True:
        raw = _call(client.get_job_status, job_id)
        status = str(getattr(raw, "value", raw))
        logs = _call(client.get_job_logs, job_id)
        if len(logs) > seen:
            out.write(logs[seen:])
            out.flush()
            seen = len(logs)
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
        time.sleep(poll)


def _call(fn, job_id: str):
    try:
        return fn(job_id)
    except Exception as exc:  # noqa: BLE001
        raise JobError(f"job {job_id} not found", expected="a job id printed by `lie-sweep submit`",
                       found=first_line(exc, 160),
                       fix="list jobs with `ray job list --address ...`") from None


def job_status(address: str, job_id: str) -> dict[str, Any]:
    """A submitted job's status, message, times and entrypoint."""
    client = job_client(address)
    info = _call(client.get_job_info, job_id)
    return {"job_id": job_id, "status": str(getattr(info.status, "value", info.status)), "message": info.message,
            "entrypoint": info.entrypoint, "metadata": info.metadata, "start_time": info.start_time,
            "end_time": info.end_time}


def job_logs(address: str, job_id: str) -> str:
    """A submitted job's output so far."""
    return _call(job_client(address).get_job_logs, job_id)


def job_stop(address: str, job_id: str) -> bool:
    """Ask a job to stop; False when it had already ended. Completed tasks stay in the store."""
    return bool(_call(job_client(address).stop_job, job_id))

