"""The driver's worker pool: Ray actors running :class:`jobs.execution.worker.BracketWorker`, one per slot.

A slot is started (an actor with two concurrent calls: one computes while the previous one
compresses and writes), becomes ready when it answers a ping, is replaced when its actor dies, and
is dropped when a replacement cannot be placed within ``replace_timeout`` seconds (the cluster lost
capacity), so a lost node shrinks the pool instead of stalling it. Tasks go only to ready slots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from lie_sweep.errors import LieSweepError
from storage.layout import Task

from jobs.planning.schema import ClusterConfig
from jobs.planning.spec import SweepSpec

from .worker import BracketWorker
from .worker_env import worker_env

__all__ = ["WorkerSlot", "WorkerPool", "task_error", "worker_resources"]


def worker_resources(cluster: ClusterConfig,
                     total: dict[str, float] | None = None) -> tuple[int, dict[str, float], int]:
    """(number of workers, Ray resources of each, torch threads of each) for a cluster offering ``total``
    resources (Ray's ``cluster_resources()`` when None): one worker per ``gpus_per_worker`` GPUs where there
    are GPUs and the device is not forced to the CPU, else one per ``cpus_per_worker`` CPUs; ``workers``
    caps the count."""
    if total is None:
        import ray

        total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0.0))
    use_gpu = gpus > 0 and cluster.device != "cpu"
    cpus = int(cluster.cpus_per_worker)
    if use_gpu:
        per = float(cluster.gpus_per_worker)
        n = cluster.workers or max(1, int(gpus // per))
        res = {"num_gpus": per, "num_cpus": cpus}
    else:
        n = cluster.workers or max(1, int(float(total.get("CPU", 1.0)) // cpus))
        res = {"num_gpus": 0, "num_cpus": cpus}
    threads = int(cluster.threads_per_worker or cpus)
    return int(n), res, threads



def task_error(exc: BaseException) -> BaseException:
    """The exception a worker raised, unwrapped from Ray's ``RayTaskError``."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError) and getattr(exc, "cause", None) is not None:
        return exc.cause
    return exc


@dataclass(eq=False)
class WorkerSlot:
    """One worker: its actor, its readiness probe, and what the dispatcher needs to know of it."""

    handle: Any                    # the Ray actor
    ping: Any | None               # the pending readiness probe; None once the worker answered
    since: float                   # when the probe was sent (monotonic)
    load: int = 0                  # tasks in flight
    holds: int | None = None       # checkpoint of its latest task: the one it has loaded, or will

    @property
    def ready(self) -> bool:
        """Whether the worker answered its ping (tasks go only to ready workers)."""
        return self.ping is None


class WorkerPool:
    """Start, ping, replace, drop and kill the sweep's workers."""

    def __init__(self, spec: SweepSpec, n_workers: int, resources: dict[str, float], threads: int,
                 replace_timeout: float, log: Callable[[str], None] = print, malloc: str = "retain") -> None:
        import ray

        env = worker_env(threads, malloc)  # thread pools and allocator of the worker's process (worker_env)
        self._actor = ray.remote(BracketWorker).options(**resources, max_concurrency=2,
                                                        runtime_env={"env_vars": env})
        self.spec, self.threads, self.replace_timeout, self.log = spec, threads, replace_timeout, log
        self.slots = [self._new_slot() for _ in range(n_workers)]
        self.replaced = 0

    def _new_slot(self) -> WorkerSlot:
        handle = self._actor.remote(self.spec, self.threads)
        return WorkerSlot(handle=handle, ping=handle.ping.remote(), since=time.monotonic())

    def __len__(self) -> int:
        return len(self.slots)

    def wait_ready(self) -> None:
        """Block until every first worker is up; a worker that cannot start (a user's error in the
        config or checkpoints, raised in its constructor) ends the run with that error."""
        import ray

        try:
            ray.get([slot.ping for slot in self.slots])
        except ray.exceptions.RayTaskError as exc:
            self.kill()
            cause = task_error(exc)
            if isinstance(cause, LieSweepError):
                raise cause from None
            raise
        for slot in self.slots:
            slot.ping = None

    def ready(self) -> list[WorkerSlot]:
        """The workers that answered their ping."""
        return [slot for slot in self.slots if slot.ready]

    def poll_starting(self) -> None:
        """Mark replacements that came up as ready; probe again one that died starting; drop one the
        cluster could not place within ``replace_timeout``."""
        import ray

        for slot in [s for s in self.slots if not s.ready]:
            answered, _ = ray.wait([slot.ping], timeout=0)
            if answered:
                try:
                    ray.get(slot.ping)
                    slot.ping = None
                except Exception:  # noqa: BLE001 - it died before starting
                    slot.ping, slot.since = slot.handle.ping.remote(), time.monotonic()
            elif time.monotonic() - slot.since > self.replace_timeout:
                ray.kill(slot.handle)
                self.slots.remove(slot)
                self.log(f"a replacement worker was not placed within {self.replace_timeout:.0f} s (the cluster "
                         f"lost capacity); continuing with {len(self.slots)} worker(s)")

    def run(self, slot: WorkerSlot, task: Task) -> Any:
        """Queue ``task`` on ``slot``'s worker; returns the call's Ray reference."""
        slot.load += 1
        slot.holds = task.checkpoint
        return slot.handle.run.remote(task)

    def replace(self, slot: WorkerSlot, why: str) -> None:
        """Start a new worker in place of ``slot``'s dead one (its queued tasks fail and are retried)."""
        if slot not in self.slots:
            return
        k = self.slots.index(slot)
        self.slots[k] = self._new_slot()
        self.replaced += 1
        self.log(f"worker {k} died ({why}); starting a replacement, retrying its tasks")

    def kill(self) -> None:
        """Stop every worker (already dead ones included)."""
        import ray

        for slot in self.slots:
            try:
                ray.kill(slot.handle)
            except Exception:  # noqa: BLE001 - already gone
                pass
