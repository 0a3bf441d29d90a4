"""Joining Ray: an existing cluster by its address, or an embedded Ray of this process's own, bound to
127.0.0.1, watched by a reaper (:mod:`jobs.cluster.reaper`) so that nothing of it outlives this process."""

from __future__ import annotations

import os
import socket
import time
from typing import Sequence
from urllib.parse import urlsplit

from lie_sweep.errors import ConfigError

from .reaper import start_reaper

__all__ = ["RAY_LOCAL_DEFAULTS", "apply_ray_defaults", "init_ray", "require_reachable"]

DEFAULT_PORTS = {"ray": 10001, "http": 8265, "https": 8265, "": 6379}  # Ray Client, dashboard, GCS

_REAPER = None  # the watchdog of the embedded Ray this process started; lives as long as we do

# Ray on one machine: bound to 127.0.0.1, no auth prompt, no usage reporting (a user's own setting wins)
RAY_LOCAL_DEFAULTS = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                      "RAY_AUTH_MODE": "disabled"}


def apply_ray_defaults() -> None:
    """Set :data:`RAY_LOCAL_DEFAULTS` in this process's environment where they are unset (before Ray starts;
    processes started from here inherit them)."""
    for key, value in RAY_LOCAL_DEFAULTS.items():
        os.environ.setdefault(key, value)


def require_reachable(address: str | None, timeout: float = 30.0) -> None:
    """Reach ``address`` (``host:port`` of a Ray head's GCS, or ``ray://host:port``) by TCP within ``timeout``
    seconds, retrying; one error line naming it and how to run locally instead when nothing answers there (Ray
    itself would retry for minutes). Nothing to check for a local Ray (null, "local") or ``auto``."""
    if not address or address in ("local", "auto"):
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    host, port = parts.hostname, parts.port or DEFAULT_PORTS.get(parts.scheme, 6379)
    deadline, error = time.monotonic() + timeout, None
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(5.0, deadline - time.monotonic()))):
                return
        except OSError as exc:
            error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    raise ConfigError(f"cannot reach the Ray cluster at {address}",
                      expected=f"a Ray head listening on {host}:{port}",
                      found=f"{type(error).__name__}: {error.strerror or error} after {timeout:g} s",
                      fix="start it (ray start --head), correct cluster.address, or run on this machine with "
                          "cluster.address=null")


def init_ray(address: str | None, num_cpus: int | None = None, py_modules: Sequence[str] = ()) -> None:
    """Join ``address`` (uploading ``py_modules``, the user's own modules, with the job: its nodes may not share
    this filesystem), or start Ray on this machine bound to 127.0.0.1."""
    import ray

    if ray.is_initialized():
        return
    apply_ray_defaults()
    if address:
        from jobs.planning.user_code import job_runtime_env

        # "auto": this node is the cluster's (a submitted job's driver, whose job carries the code already)
        ray.init(address=address, log_to_driver=True, configure_logging=False,
                 runtime_env=(job_runtime_env(py_modules) or None) if address != "auto" else None)
    else:  # "local": a new Ray of our own, never a cluster that `ray start` left running here
        global _REAPER
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 configure_logging=False, log_to_driver=True)
        _REAPER = start_reaper()  # nothing of this Ray outlives this process, even after kill -9
