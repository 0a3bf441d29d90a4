"""The driver: Ray workers, task hand-out, retries, completion marks, and the run's account.

Tasks go out checkpoint by checkpoint, at most ``cluster.max_in_flight`` queued per worker. A task's
completion mark is written only after its worker returned, i.e. after its shards were written. A
failed task is retried ``cluster.retries`` times; a worker that died is replaced and its tasks
requeued. Ray starts embedded on 127.0.0.1 unless ``cluster.address`` names a running cluster.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from lie_sweep.errors import LieSweepError
from storage.store import SweepStore

from .plan import Task
from .progress import Progress
from .sweep import SweepSpec
from .worker import BracketWorker

__all__ = ["RunReport", "execute", "init_ray", "worker_resources"]

for _key, _value in (("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"), ("RAY_USAGE_STATS_ENABLED", "0"),
                     ("RAY_AUTH_MODE", "disabled")):
    os.environ.setdefault(_key, _value)


@dataclass
class RunReport:
    """What a run did: tasks completed now and before, failures, timings, per-task summaries."""

    completed: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    startup_s: float = 0.0      # until every worker was ready (Ray start, worker processes, model, data)
    workers: int = 0

    @property
    def pairs_computed(self) -> int:
        return sum(r["stop"] - r["start"] for r in self.completed)


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address``, or start Ray on this machine bound to 127.0.0.1."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True, configure_logging=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 configure_logging=False, log_to_driver=True)


def worker_resources(cluster: dict[str, Any]) -> tuple[int, dict[str, float], int]:
    """(number of workers, Ray resources of each, torch threads of each) for the cluster at hand."""
    import ray

    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0.0))
    use_gpu = gpus > 0 and cluster["device"] != "cpu"
    cpus = int(cluster["cpus_per_worker"])
    if use_gpu:
        per = float(cluster["gpus_per_worker"])
        n = cluster["workers"] or max(1, int(gpus // per))
        res = {"num_gpus": per, "num_cpus": cpus}
    else:
        n = cluster["workers"] or max(1, int(float(total.get("CPU", 1.0)) // cpus))
        res = {"num_gpus": 0, "num_cpus": cpus}
    threads = int(cluster["threads_per_worker"] or cpus)
    return int(n), res, threads


def _cause(exc: BaseException) -> BaseException:
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if cause is not None:
            return cause
    return exc


def execute(spec: SweepSpec, store: SweepStore, tasks: list[Task], *, log: Callable[[str], None] = print,
            progress_stream=None) -> RunReport:
    """Run every task of ``tasks`` without a completion mark in ``store``; returns the account."""
    import ray

    cluster = spec.config["cluster"]
    report = RunReport()
    done = store.done_tasks()
    todo = deque((t, 0) for t in tasks if t.task_id not in done)
    report.skipped = len(tasks) - len(todo)
    total_pairs = sum(t.n_pairs for t in tasks)
    progress = Progress(total_pairs, done=sum(t.n_pairs for t in tasks if t.task_id in done), stream=progress_stream)
    start = time.perf_counter()
    if not todo:
        report.seconds = 0.0
        return report

    init_ray(cluster["address"])
    n_workers, resources, threads = worker_resources(cluster)
    n_workers = min(n_workers, len(todo))
    actor_cls = ray.remote(BracketWorker)

    def new_worker():
        # two concurrent calls: one computes while the previous one compresses and writes
        return actor_cls.options(**resources, max_concurrency=2).remote(spec, threads)

    workers = [new_worker() for _ in range(n_workers)]
    ray.get([w.ping.remote() for w in workers])
    report.startup_s = time.perf_counter() - start
    progress.start = time.perf_counter()  # rates and ETA from here: start-up is not throughput
    report.workers = n_workers
    log(f"{n_workers} worker(s) ({'GPU' if resources['num_gpus'] else 'CPU'}, {threads} thread(s) each); "
        f"{len(todo)} task(s) to run, {report.skipped} already done")
    inflight: dict[Any, tuple[Task, int, int]] = {}   # ref -> (task, attempt, worker slot)
    load = [0] * n_workers
    max_q = int(cluster["max_in_flight"])
    retries = int(cluster["retries"])

    try:
        while todo or inflight:
            while todo:
                slot = min(range(n_workers), key=lambda k: load[k])
                if load[slot] >= max_q:
                    break
                task, attempt = todo.popleft()
                ref = workers[slot].run.remote(task)
                inflight[ref] = (task, attempt, slot)
                load[slot] += 1
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                task, attempt, slot = inflight.pop(ref)
                load[slot] -= 1
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - every failure is accounted for below
                    cause = _cause(exc)
                    if isinstance(exc, ray.exceptions.RayActorError):
                        # the worker died: replace it; its other queued tasks fail the same way and are requeued
                        workers[slot] = new_worker()
                    if attempt < retries and not isinstance(cause, LieSweepError):
                        time.sleep(min(2.0 ** attempt * 0.5, 10.0))
                        todo.appendleft((task, attempt + 1))
                        continue
                    line = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
                    report.failures.append({"task_id": task.task_id, "checkpoint": task.checkpoint,
                                            "start": task.start, "stop": task.stop, "attempts": attempt + 1,
                                            "error": line, "traceback": "".join(
                                                traceback.format_exception(type(cause), cause, cause.__traceback__))})
                    progress.failed += 1
                    continue
                if not result["finite"]:
                    report.failures.append({"task_id": task.task_id, "checkpoint": task.checkpoint,
                                            "start": task.start, "stop": task.stop, "attempts": attempt + 1,
                                            "error": "brackets hold NaN or Inf", "traceback": ""})
                    progress.failed += 1
                    continue
                store.mark_done(task.task_id, {k: v for k, v in result.items() if k != "norms"})
                report.completed.append(result)
                progress.update(task.n_pairs)
    finally:
        progress.close()
        for w in workers:
            try:
                ray.kill(w)
            except Exception:  # noqa: BLE001 - already gone
                pass
    report.seconds = time.perf_counter() - start
    return report
