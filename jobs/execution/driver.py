"""The driver: Ray workers, task hand-out, retries, completion marks, and the run's account.

A worker stays on one checkpoint until its tasks run out (:mod:`jobs.execution.dispatch`: idle workers fan out
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
from storage.space import NoSpaceError, is_no_space, no_space_error
from storage.store import SweepStore

from jobs.cluster.session import init_ray
from jobs.planning.spec import SweepSpec
from jobs.planning.user_code import user_modules

from .dispatch import Queued, TaskQueue, next_assignment
from .pool import WorkerPool, WorkerSlot, task_error, worker_resources
from .progress import Progress

__all__ = ["RunReport", "execute"]


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
    driver_s: dict[str, float] = field(default_factory=dict)  # the driver's own seconds: dispatch, marks, progress

    @property
    def pairs_computed(self) -> int:
        """Pairs computed by this run (tasks completed now, not before)."""
        return sum(r["stop"] - r["start"] for r in self.completed)


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
    done = store.ledger.done_tasks() if done is None else done  # the caller's, when it just read them
    todo = TaskQueue(t for t in tasks if t.task_id not in done)
    report = RunReport(skipped=len(tasks) - len(todo))
    if not todo:
        return report
    progress = Progress(sum(t.n_pairs for t in tasks),
                        done=sum(t.n_pairs for t in tasks if t.task_id in done), stream=progress_stream)
    return _Run(spec, store, todo, report, progress, log).go(command)


class _Run:
    """One ``execute``: the workers, the tasks in flight, retries and marks, and the run's record."""

    def __init__(self, spec: SweepSpec, store: SweepStore, todo: TaskQueue, report: RunReport, progress: Progress,
                 log: Callable[[str], None]) -> None:
        self.spec, self.store, self.todo, self.report, self.progress = spec, store, todo, report, progress
        self.log = log
        self.cluster = spec.config.cluster
        self.failed_before = set(store.ledger.failures())   # records to clear when these tasks complete
        self.inflight: dict[Any, tuple[Task, int, WorkerSlot]] = {}   # ref -> (task, attempt, its worker)
        self.last_error: dict[int, str] = {}                           # task id -> its previous attempt's error
        self.run_id = max(store.ledger.runs(), default=0) + 1

    def go(self, command: str) -> RunReport:
        """Start the workers, run every queued task, and record the run whatever happens."""
        start = time.perf_counter()
        record = {"command": command, "started": time.time(), "tasks_to_run": len(self.todo), "pid": os.getpid()}
        self.store.ledger.record_run(self.run_id, record)
        self.pool = self._start_pool()
        report = self.report
        report.startup_s = time.perf_counter() - start
        self.progress.start = time.perf_counter()  # rates and ETA from here: start-up is not throughput
        clean, failure = False, None
        try:
            self._loop()
            clean = not self.inflight
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self.progress.close()
            # workers go back to the session warm only after a run with nothing left running on them
            if clean:
                self.pool.release()
            else:
                self.pool.kill()
                self._forget_inflight()
            report.workers_replaced = self.pool.replaced
            report.seconds = time.perf_counter() - start
            try:
                self.store.ledger.fold_marks()
                self.store.ledger.record_run(self.run_id, {
                    **record, "ended": time.time(), "seconds": report.seconds, "startup_s": report.startup_s,
                    "workers": report.workers, "pairs": report.pairs_computed, "tasks_done": len(report.completed),
                    "tasks_failed": len(report.failures), "driver_s": report.driver_s})
            except OSError as exc:  # a full disk: the marks written stand, and so does the error already raised
                if not is_no_space(exc):
                    raise
                if failure is None:
                    raise self._no_space() from None
        return report

    def _forget_inflight(self) -> None:
        """Collect the calls still in flight on killed workers (their errors are this run's end, not news: Ray
        would print each one it was never asked for)."""
        import ray

        for ref in list(self.inflight):
            try:
                ray.get(ref, timeout=10)
            except Exception:  # noqa: BLE001 - the worker was killed, or its task failed: both expected here
                pass
        self.inflight.clear()

    def _no_space(self) -> NoSpaceError:
        """The run's one line for a full disk: the store, the space free, and about how much the tasks without a
        mark need (from the bytes the completed tasks take)."""
        done = len(self.store.ledger.done_tasks())
        total = self.store.meta.n_tasks
        try:
            needed = int(self.store.bytes_on_disk() / done * (total - done)) if done else None
        except OSError:
            needed = None
        return no_space_error(self.store.path, needed=needed, written=f"{done} of {total} tasks are stored and "
                              "marked; the rest are recomputed by resume")

    def _start_pool(self) -> WorkerPool:
        import ray

        config = self.spec.config
        init_ray(self.cluster.address, py_modules=user_modules({"model": config.model, "data": config.data},
                                                               self.spec.code_dirs))
        hosts = {n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive")}
        if len(hosts) > 1 and "://" not in self.spec.store_path:
            self.log(f"warning: the store {self.spec.store_path} is a local path but the cluster spans {len(hosts)} "
                     "hosts: every node must see it at that path (a shared filesystem), or use an fsspec URL such "
                     "as s3://bucket/sweep")
        n_workers, resources, threads = worker_resources(self.cluster)
        pool = WorkerPool(self.spec, min(n_workers, len(self.todo)), resources, threads,
                          float(self.cluster.replace_timeout), self.log, malloc=self.cluster.malloc)
        pool.wait_ready()
        self.report.workers = len(pool)
        self.log(f"{len(pool)} worker(s) ({'GPU' if resources['num_gpus'] else 'CPU'}, {threads} thread(s) each); "
                 f"{len(self.todo)} task(s) to run, {self.report.skipped} already done")
        return pool

    def _loop(self) -> None:
        import ray

        while self.todo or self.inflight:
            self.pool.poll_starting()
            if not len(self.pool):
                for item in self.todo.drain():
                    self._fail(item.task, item.attempt, RuntimeError("no worker left: the cluster has no room for one"))
                break
            t0 = time.perf_counter()
            self._dispatch()
            self._spent("dispatch_s", t0)
            if not self.inflight:
                time.sleep(0.05)  # tasks waiting out a retry backoff, or workers starting
                continue
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=1.0)
            for ref in ready:
                self._finished(ref)

    def _spent(self, phase: str, since: float) -> float:
        """Add the seconds since ``since`` to the driver's ``phase``; returns now."""
        now = time.perf_counter()
        self.report.driver_s[phase] = self.report.driver_s.get(phase, 0.0) + now - since
        return now

    def _dispatch(self) -> None:
        """Queue tasks on the workers that are up, as :func:`jobs.execution.dispatch.next_assignment` picks them."""
        ready = self.pool.ready()
        while (pick := next_assignment(self.todo, [s.holds for s in ready], [s.load for s in ready],
                                       int(self.cluster.max_in_flight), time.monotonic())) is not None:
            k, item = pick
            self.inflight[self.pool.run(ready[k], item.task)] = (item.task, item.attempt, ready[k])

    def _finished(self, ref: Any) -> None:
        """Account for one returned call: a mark after a success, a retry or a failure record otherwise."""
        import ray

        task, attempt, slot = self.inflight.pop(ref)
        slot.load -= 1
        try:
            result = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - every failure is accounted for below
            cause, died = task_error(exc), isinstance(exc, ray.exceptions.RayActorError)
            if is_no_space(cause):  # every other task would fail alike: the run stops, resumable
                raise self._no_space() from None
            if died:  # the worker (or its node) died: its other queued tasks fail alike
                self.pool.replace(slot, type(exc).__name__)
            if _retry(task, attempt, cause, died, int(self.cluster.retries), self.last_error):
                self.todo.push(Queued(task, attempt + 1, time.monotonic() + min(0.5 * 2 ** attempt, 30.0)), front=True)
            else:
                self._fail(task, attempt, cause)
            return
        t0 = time.perf_counter()
        try:
            self.store.ledger.mark_done(task.task_id, {**{k: v for k, v in result.items() if k != "norms"},
                                                       "run": self.run_id, "attempts": attempt + 1,
                                                       "finished": time.time()})
        except OSError as exc:  # its data is written, its mark is not: resume recomputes it
            if is_no_space(exc):
                raise self._no_space() from None
            raise
        if task.task_id in self.failed_before or attempt:  # no failure record otherwise: no deletes per task
            self.store.ledger.clear_failure(task.task_id)
        t0 = self._spent("marks_s", t0)
        self.report.completed.append(result)
        self.progress.update(task.n_pairs)
        self._spent("progress_s", t0)

    def _fail(self, task: Task, attempt: int, cause: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        self.report.failures.append(_failure(task, attempt + 1, _error_line(cause), tb))
        try:
            self.store.ledger.record_failure(task.task_id, {k: v for k, v in self.report.failures[-1].items()
                                                            if k != "traceback"}, tb)
        except OSError as exc:
            if is_no_space(exc):
                raise self._no_space() from None
            raise
        self.progress.failed += 1
