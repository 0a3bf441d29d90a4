"""The driver: Ray workers, task hand-out, retries, completion marks, and the run's account.

A worker stays on one checkpoint until its tasks run out (:mod:`jobs.dispatch`: idle workers fan out
over checkpoints, so each is loaded about once), with at most ``cluster.max_in_flight`` queued. A
task's completion mark is written only after its worker returned, i.e. after its shards were
written. A failed task is retried ``cluster.retries`` times with backoff; a worker that died is
replaced and its tasks requeued (tasks go only to workers that answered a ping, and a replacement
the cluster cannot place within ``cluster.replace_timeout`` is dropped, so a lost node shrinks the
pool instead of stalling it); a task that still fails is recorded in the store. Ray starts embedded
on 127.0.0.1 unless ``cluster.address`` names a running cluster.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from lie_sweep.errors import LieSweepError, first_line
from storage.layout import Task
from storage.store import SweepStore

from .dispatch import Queued, TaskQueue, next_assignment
from .pool import WorkerPool, WorkerSlot, task_error
from .progress import Progress
from .reaper import start_reaper
from .schema import ClusterConfig
from .sweep import SweepSpec

__all__ = ["RunReport", "execute", "init_ray", "worker_resources", "apply_ray_defaults", "RAY_LOCAL_DEFAULTS"]

_REAPER = None  # the watchdog of the embedded Ray this process started (see jobs.reaper); lives as long as we do

# Ray on one machine: bound to 127.0.0.1, no auth prompt, no usage reporting (a user's own setting wins)
RAY_LOCAL_DEFAULTS = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                      "RAY_AUTH_MODE": "disabled"}


def apply_ray_defaults() -> None:
    """Set :data:`RAY_LOCAL_DEFAULTS` in this process's environment where they are unset (before Ray starts;
    processes started from here inherit them)."""
    for key, value in RAY_LOCAL_DEFAULTS.items():
        os.environ.setdefault(key, value)


@dataclass
class RunReport:
    """What a run did: tasks completed now and before, failures, timings, per-task results (timings, norms, digests)."""

    completed: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    startup_s: float = 0.0      # until every worker was ready (Ray start, worker processes, model, data)
    workers: int = 0
    workers_replaced: int = 0

    @property
    def pairs_computed(self) -> int:
        """Pairs computed by this run (tasks completed now, not before)."""
        return sum(r["stop"] - r["start"] for r in self.completed)


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


def worker_resources(cluster: ClusterConfig) -> tuple[int, dict[str, float], int]:
    """(number of workers, Ray resources of each, torch threads of each) for the cluster at hand."""
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


def _error_line(exc: BaseException) -> str:
    """The line a failure is recorded with: ours whole (they are one line by construction), others' first line."""
    return str(exc) if isinstance(exc, LieSweepError) else first_line(exc)


def _retry(task: Task, attempt: int, cause: BaseException, died: bool, retries: int,
           last_error: dict[int, str]) -> bool:
    """Whether a failed attempt is tried again: not past ``retries``, never for a user's error, and not
    when it failed with the same error as the attempt before (deterministic), unless its worker died."""
    line = _error_line(cause)
    repeated = not died and last_error.get(task.task_id) == line
    last_error[task.task_id] = line
    return attempt < retries and not isinstance(cause, LieSweepError) and not repeated


def _dispatch(pool: WorkerPool, todo: TaskQueue, inflight: dict, max_in_flight: int) -> None:
    """Queue tasks on the workers that are up, as :func:`jobs.dispatch.next_assignment` picks them."""
    ready = pool.ready()
    while (pick := next_assignment(todo, [s.holds for s in ready], [s.load for s in ready], max_in_flight,
                                   time.monotonic())) is not None:
        k, item = pick
        inflight[pool.run(ready[k], item.task)] = (item.task, item.attempt, ready[k])


def _failure(task: Task, attempts: int, error: str, tb: str) -> dict[str, Any]:
    return {"task_id": task.task_id, "checkpoint": task.checkpoint, "start": task.start, "stop": task.stop,
            "attempts": attempts, "error": error, "traceback": tb, "time": time.time()}


def execute(spec: SweepSpec, store: SweepStore, tasks: list[Task], *, log: Callable[[str], None] = print,
            progress_stream=None, command: str = "run", done: dict[int, Any] | None = None) -> RunReport:
    """Run every task of ``tasks`` without a completion mark in ``store``; returns the account.

    The caller holds the store's lock. A task that fails is retried ``cluster.retries`` times with
    exponential backoff (others keep running meanwhile); one that still fails is recorded in the
    store (``failures/``: error line, checkpoint, pair range, traceback log) and left without a mark,
    so ``resume`` retries it. Errors a user caused (a changed checkpoint, a non-finite result, …) are
    not retried, and neither is a task whose retry raised the same error as the attempt before
    (a deterministic failure); a worker's death is always retried. A task's mark records the SHA-256
    of every file it wrote, which ``check`` verifies. ``done``: the store's marks, when the caller has
    just read them (100,000 marks take ~0.7 s to read).
    """
    import ray

    cluster = spec.config.cluster
    report = RunReport()
    done = store.ledger.done_tasks() if done is None else done  # the caller's, when it just read them
    failed_before = set(store.ledger.failures())   # records to clear when these tasks complete
    todo = TaskQueue(t for t in tasks if t.task_id not in done)
    report.skipped = len(tasks) - len(todo)
    total_pairs = sum(t.n_pairs for t in tasks)
    progress = Progress(total_pairs, done=sum(t.n_pairs for t in tasks if t.task_id in done), stream=progress_stream)
    start = time.perf_counter()
    if not todo:
        return report
    run_id = max(store.ledger.runs(), default=0) + 1
    run_record = {"command": command, "started": time.time(), "tasks_to_run": len(todo), "pid": os.getpid()}
    store.ledger.record_run(run_id, run_record)

    init_ray(cluster.address)
    hosts = {n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive")}
    if len(hosts) > 1 and "://" not in spec.store_path:
        log(f"warning: the store {spec.store_path} is a local path but the cluster spans {len(hosts)} hosts: every "
            f"node must see it at that path (a shared filesystem), or use an fsspec URL such as s3://bucket/sweep")
    n_workers, resources, threads = worker_resources(cluster)
    pool = WorkerPool(spec, min(n_workers, len(todo)), resources, threads, float(cluster.replace_timeout), log,
                      malloc=cluster.malloc)
    pool.wait_ready()
    report.startup_s = time.perf_counter() - start
    progress.start = time.perf_counter()  # rates and ETA from here: start-up is not throughput
    report.workers = len(pool)
    log(f"{len(pool)} worker(s) ({'GPU' if resources['num_gpus'] else 'CPU'}, {threads} thread(s) each); "
        f"{len(todo)} task(s) to run, {report.skipped} already done")
    inflight: dict[Any, tuple[Task, int, WorkerSlot]] = {}   # ref -> (task, attempt, its worker)
    last_error: dict[int, str] = {}                           # task id -> its previous attempt's error line

    def fail(task: Task, attempt: int, cause: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        report.failures.append(_failure(task, attempt + 1, _error_line(cause), tb))
        store.ledger.record_failure(task.task_id, {k: v for k, v in report.failures[-1].items()
                                                   if k != "traceback"}, tb)
        progress.failed += 1

    try:
        while todo or inflight:
            pool.poll_starting()
            if not len(pool):
                for item in todo.drain():
                    fail(item.task, item.attempt, RuntimeError("no worker left: the cluster has no room for one"))
                break
            _dispatch(pool, todo, inflight, int(cluster.max_in_flight))
            if not inflight:
                time.sleep(0.05)  # tasks waiting out a retry backoff, or workers starting
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                task, attempt, slot = inflight.pop(ref)
                slot.load -= 1
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - every failure is accounted for below
                    cause, died = task_error(exc), isinstance(exc, ray.exceptions.RayActorError)
                    if died:  # the worker (or its node) died: its other queued tasks fail alike
                        pool.replace(slot, type(exc).__name__)
                    if _retry(task, attempt, cause, died, int(cluster.retries), last_error):
                        todo.push(Queued(task, attempt + 1, time.monotonic() + min(0.5 * 2 ** attempt, 30.0)),
                                  front=True)
                    else:
                        fail(task, attempt, cause)
                    continue
                store.ledger.mark_done(task.task_id, {**{k: v for k, v in result.items() if k != "norms"},
                                                      "run": run_id, "attempts": attempt + 1, "finished": time.time()})
                if task.task_id in failed_before or attempt:  # no failure record otherwise: no deletes per task
                    store.ledger.clear_failure(task.task_id)
                report.completed.append(result)
                progress.update(task.n_pairs)
    finally:
        progress.close()
        pool.kill()
        store.ledger.fold_marks()
        report.workers_replaced = pool.replaced
        report.seconds = time.perf_counter() - start
        store.ledger.record_run(run_id, {**run_record, "ended": time.time(), "seconds": report.seconds,
                                         "startup_s": report.startup_s, "workers": report.workers,
                                         "pairs": report.pairs_computed, "tasks_done": len(report.completed),
                                         "tasks_failed": len(report.failures)})
    return report
