"""The driver's worker pool: Ray actors (:class:`WorkerProcess`) each running the sweep's
:class:`jobs.execution.worker.BracketWorker`, one per slot.

A slot is started (an actor with two concurrent calls: one computes while the previous one
compresses and writes), becomes ready when its worker has started, is replaced when its actor dies,
and is dropped when a replacement cannot be placed within ``replace_timeout`` seconds (the cluster lost
capacity), so a lost node shrinks the pool instead of stalling it. Tasks go only to ready slots.

Warm workers: a run that ends with every task accounted for hands its idle, live worker processes
back instead of killing them, and the next sweep of the same Python session asking for workers of
the same resources and environment starts its workers in them: a notebook, a multirun or a test suite
pays for processes, imports and torch's first calls once, not per sweep (~3–5 s a sweep on a 2-core
CPU). Each sweep still builds its own worker (model, data, store, caches) and reports its own peak
memory. Until then the warm processes hold their CPUs/GPUs; :func:`release_workers` stops them, and
they end with the session. A run that fails or is interrupted kills its workers.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lie_sweep.errors import LieSweepError
from storage.layout import Task

from jobs.planning.schema import ClusterConfig
from jobs.planning.spec import SweepSpec
from jobs.planning.user_code import add_code_dirs

from .worker import BracketWorker
from .worker_env import reset_peak_rss, worker_env
from .warm_up import warm_up

__all__ = ["WorkerProcess", "WorkerSlot", "WorkerPool", "release_workers", "task_error", "worker_resources"]


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


class WorkerProcess:
    """A worker's process (the Ray actor): runs one sweep's :class:`BracketWorker` at a time."""

    def __init__(self) -> None:
        self.worker: BracketWorker | None = None

    def start(self, spec: SweepSpec, threads: int) -> int:
        """Drop the previous sweep's worker and start ``spec``'s (model, data, store); the process id. A
        user's error in the config or the checkpoints is raised here."""
        self.worker = None
        gc.collect()
        reset_peak_rss()
        add_code_dirs(spec.code_dirs)  # the user's own modules, where this node shares the driver's filesystem
        self.worker = BracketWorker(spec, threads)
        if spec.config.cluster.warm_up:
            warm_up(self.worker)
        return os.getpid()

    def run(self, task: Task) -> dict[str, Any]:
        """:meth:`BracketWorker.run` of the started sweep's worker."""
        return self.worker.run(task)

    def stop(self) -> None:
        """Drop the sweep's worker (its model, caches and store), keeping the process warm."""
        self.worker = None
        gc.collect()


def _kill(handles: list[Any]) -> None:
    import ray

    for handle in handles:
        try:
            ray.kill(handle)
        except Exception:  # noqa: BLE001 - already gone, or its Ray session ended
            pass


@dataclass
class _Idle:
    """This Python session's warm worker processes and what they were started with: (Ray job id, resources,
    environment); a new ``ray.init`` is a new job, whose workers never meet the old ones."""

    key: tuple | None = None
    handles: list[Any] = field(default_factory=list)

    def take(self, key: tuple, n: int) -> list[Any]:
        """Up to ``n`` warm processes started like ``key``; the others are stopped (they hold resources)."""
        same_session = self.key is not None and self.key[0] == key[0]
        match = self.handles if self.key == key else []
        if same_session:
            _kill(match[n:] if self.key == key else self.handles)
        self.key, self.handles = None, []
        return match[:n]

    def keep(self, key: tuple, handles: list[Any]) -> None:
        self.key, self.handles = key, list(handles)


_IDLE = _Idle()


def release_workers() -> int:
    """Stop the warm worker processes this Python session keeps from its last sweep; how many there were."""
    handles = _IDLE.handles
    _kill(handles)
    _IDLE.key, _IDLE.handles = None, []
    return len(handles)


@dataclass(eq=False)
class WorkerSlot:
    """One worker: its actor, its start-up call, and what the dispatcher needs to know of it."""

    handle: Any                    # the Ray actor
    ping: Any | None               # the pending start-up call; None once the worker started
    since: float                   # when it was sent (monotonic)
    warm: bool = False             # a process kept from an earlier sweep
    load: int = 0                  # tasks in flight
    holds: int | None = None       # checkpoint of its latest task: the one it has loaded, or will

    @property
    def ready(self) -> bool:
        """Whether the worker started (tasks go only to ready workers)."""
        return self.ping is None


class WorkerPool:
    """Start, replace, drop, kill or hand back the sweep's workers."""

    def __init__(self, spec: SweepSpec, n_workers: int, resources: dict[str, float], threads: int,
                 replace_timeout: float, log: Callable[[str], None] = print, malloc: str = "retain") -> None:
        import ray

        env = worker_env(threads, malloc)  # thread pools and allocator of the worker's process (worker_env)
        self._actor = ray.remote(WorkerProcess).options(**resources, max_concurrency=2,
                                                        runtime_env={"env_vars": env})
        self.key = (ray.get_runtime_context().get_job_id(), tuple(sorted(resources.items())),
                    tuple(sorted(env.items())))
        self.spec, self.threads, self.replace_timeout, self.log = spec, threads, replace_timeout, log
        warm = _IDLE.take(self.key, n_workers)
        self.slots = [self._new_slot(h) for h in warm] + [self._new_slot() for _ in range(n_workers - len(warm))]
        self.replaced = 0

    def _new_slot(self, warm: Any = None) -> WorkerSlot:
        handle = warm if warm is not None else self._actor.remote()
        return WorkerSlot(handle=handle, ping=handle.start.remote(self.spec, self.threads), since=time.monotonic(),
                          warm=warm is not None)

    def __len__(self) -> int:
        return len(self.slots)

    def wait_ready(self) -> None:
        """Block until every first worker has started; a worker that cannot start (a user's error in the
        config or checkpoints, raised in its constructor) ends the run with that error. A warm process
        that died meanwhile is replaced by a new one."""
        import ray

        for k, slot in enumerate(self.slots):
            try:
                try:
                    ray.get(slot.ping)
                except ray.exceptions.RayActorError:
                    if not slot.warm:
                        raise
                    self.slots[k] = slot = self._new_slot()
                    ray.get(slot.ping)
            except ray.exceptions.RayTaskError as exc:
                self.kill()
                cause = task_error(exc)
                if isinstance(cause, LieSweepError):
                    raise cause from None
                raise
            slot.ping = None

    def ready(self) -> list[WorkerSlot]:
        """The workers that started."""
        return [slot for slot in self.slots if slot.ready]

    def poll_starting(self) -> None:
        """Mark replacements that started as ready; start again one that failed starting; drop one the
        cluster could not place within ``replace_timeout``."""
        import ray

        for slot in [s for s in self.slots if not s.ready]:
            answered, _ = ray.wait([slot.ping], timeout=0)
            if answered:
                try:
                    ray.get(slot.ping)
                    slot.ping = None
                except Exception:  # noqa: BLE001 - it died before starting
                    slot.ping, slot.since = slot.handle.start.remote(self.spec, self.threads), time.monotonic()
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
        _kill([slot.handle for slot in self.slots])

    def release(self) -> None:
        """Hand the started, idle workers back to the session for its next sweep (each drops this sweep's
        worker); kill the others. Only for a run with no task in flight."""
        keep = [slot for slot in self.slots if slot.ready and not slot.load]
        _kill([slot.handle for slot in self.slots if slot not in keep])
        for slot in keep:
            slot.handle.stop.remote()
        _IDLE.keep(self.key, [slot.handle for slot in keep])
