"""Sweeps as Ray jobs: ``lie-sweep submit``, ``lie-sweep resume --address``, ``lie-sweep job ...``.

The driver runs on the cluster. ``submit`` validates the config here (errors are one line, before
anything is sent), resolves relative local paths against this directory (the cluster must see
them: a shared filesystem, or use fsspec URLs), and submits ``lie-sweep run --config config.json``
with a runtime environment that carries the resolved config (``working_dir``) and this checkout's
packages ``lie_sweep``, ``storage`` and ``jobs`` (``py_modules``), so the cluster runs exactly
this code; its image must provide the dependencies (torch, ray, zarr, …; see ``docker/``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import OmegaConf

from lie_sweep.errors import ConfigError, LieSweepError, first_line

from jobs.planning.config import load_config

__all__ = ["submit_run", "submit_resume", "follow", "job_client", "job_status", "job_logs", "job_stop", "JobError",
           "PASS_ENV", "SECRET_NAME", "forwarded_env"]

# environment passed on to the job: Ray's local settings and where object stores are, never a credential. A job's
# runtime environment is readable by anyone who can read the Ray dashboard (GET /api/jobs/), so credentials reach
# the workers from the cluster side: the Ray nodes' environment, a Kubernetes Secret (docker/kuberay/), an
# instance role.
PASS_ENV = ("RAY_USAGE_STATS_ENABLED", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL")
# names that look like secrets: never forwarded unless asked for by name with --allow-secret-env
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|PRIVATE|CREDENTIAL|ACCESS_KEY|API_KEY|(^|_)KEY($|_)", re.IGNORECASE)


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


def forwarded_env(names: Sequence[str] = (), allow_secrets: bool = False) -> dict[str, str]:
    """The variables a job's runtime environment carries: :data:`PASS_ENV`, ``FSSPEC_*`` settings and ``names``
    (``submit --env NAME``), those set here; a name that looks like a secret (:data:`SECRET_NAME`) is skipped
    among the automatic ones and refused in one line among ``names`` unless ``allow_secrets``."""
    for name in names:
        if SECRET_NAME.search(name) and not allow_secrets:
            raise ConfigError(f"--env {name} looks like a secret", expected="a variable whose value the Ray "
                              "dashboard may show to anyone who can read it", found=name,
                              fix="give the cluster its credentials (the nodes' environment, a Kubernetes Secret: "
                                  "docker/kuberay/), or pass --allow-secret-env to forward it anyway")
        if name not in os.environ:
            raise ConfigError(f"--env {name} is not set here", expected="a variable of this shell to forward",
                              found="unset", fix=f"export {name}=... first, or drop --env {name}")
    automatic = [k for k in os.environ if k in PASS_ENV or (k.startswith("FSSPEC_") and not SECRET_NAME.search(k))]
    return {k: os.environ[k] for k in [*automatic, *names] if k in os.environ}


def _runtime_env(workdir: str | None, env_vars: dict[str, str]) -> dict[str, Any]:
    import jobs
    import lie_sweep
    import storage

    env: dict[str, Any] = {"py_modules": [str(Path(m.__file__).parent) for m in (lie_sweep, storage, jobs)],
                           "env_vars": dict(env_vars)}
    if workdir:
        env["working_dir"] = workdir
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
    env_vars = forwarded_env(env, allow_secret_env)
    cfg = OmegaConf.to_container(load_config(overrides), resolve=True)
    cfg["storage"]["path"] = _absolute(cfg["storage"]["path"])
    cfg["checkpoints"]["dir"] = _absolute(cfg["checkpoints"]["dir"])
    if cfg["checkpoints"]["source"] == "glob":
        cfg["checkpoints"]["glob"] = _absolute(cfg["checkpoints"]["glob"])
    cfg["checkpoints"]["paths"] = [_absolute(p) for p in cfg["checkpoints"]["paths"]]
    cfg["cluster"]["address"] = "auto"  # the job's driver joins the cluster it runs on
    client = job_client(address)
    with tempfile.TemporaryDirectory(prefix="lie-sweep-job-") as workdir:
        Path(workdir, "config.json").write_text(json.dumps(cfg, indent=1))
        job_id = _submit(client, entrypoint="python -m jobs.cli run --config config.json",
                         runtime_env=_runtime_env(workdir, env_vars),
                         metadata={"lie_sweep": "run", "store": cfg["storage"]["path"]})
    log(f"submitted {job_id}: sweep into {cfg['storage']['path']}")
    return job_id


def submit_resume(store: str, overrides: Sequence[str], address: str, *, restart: bool = False,
                  log: Callable[[str], None] = print) -> str:
    """Submit ``lie-sweep resume STORE [overrides]`` as a job; returns the job id."""
    import shlex

    store = _absolute(store)
    args = ["python", "-m", "jobs.cli", "resume", store, *overrides, "cluster.address=auto"]
    if restart:
        args.append("--restart")
    client = job_client(address)
    job_id = _submit(client, entrypoint=" ".join(shlex.quote(a) for a in args), runtime_env=_runtime_env(None,
                                                                                                   forwarded_env()),
                     metadata={"lie_sweep": "resume", "store": store})
    log(f"submitted {job_id}: resume of {store}")
    return job_id


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

