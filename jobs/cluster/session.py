"""Joining Ray: an existing cluster by its address, or an embedded Ray of this process's own, bound to
127.0.0.1, watched by a reaper (:mod:`jobs.cluster.reaper`) so that nothing of it outlives this process."""

from __future__ import annotations

import os

from .reaper import start_reaper

__all__ = ["RAY_LOCAL_DEFAULTS", "apply_ray_defaults", "init_ray"]

_REAPER = None  # the watchdog of the embedded Ray this process started; lives as long as we do

# Ray on one machine: bound to 127.0.0.1, no auth prompt, no usage reporting (a user's own setting wins)
RAY_LOCAL_DEFAULTS = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                      "RAY_AUTH_MODE": "disabled"}


def apply_ray_defaults() -> None:
    """Set :data:`RAY_LOCAL_DEFAULTS` in this process's environment where they are unset (before Ray starts;
    processes started from here inherit them)."""
    for key, value in RAY_LOCAL_DEFAULTS.items():
        os.environ.setdefault(key, value)


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address``, or start Ray on this machine bound to 127.0.0.1."""
    import ray

    if ray.is_initialized():
        return
    apply_ray_defaults()
    if address:
        ray.init(address=address, log_to_driver=True, configure_logging=False)
    else:  # "local": a new Ray of our own, never a cluster that `ray start` left running here
        global _REAPER
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 configure_logging=False, log_to_driver=True)
        _REAPER = start_reaper()  # nothing of this Ray outlives this process, even after kill -9
