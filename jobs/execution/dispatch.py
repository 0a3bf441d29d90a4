"""Which queued task goes to which worker: checkpoint affinity, so a worker loads each checkpoint once.

A worker holds one checkpoint at a time (its parameters, every example's gradient and field, the
output Jacobian), and loading another costs a pass over all examples. Ray starts the calls queued
on a threaded actor in no guaranteed order, so a worker handed tasks of two checkpoints at once may
alternate between them and load each several times. The dispatcher therefore hands a worker a task
of another checkpoint only when none of its tasks is in flight, and, when it is free to choose,
prefers in this order:

1. the checkpoint the worker already holds;
2. the first checkpoint (in plan order) that no worker holds, so workers fan out over checkpoints
   and each checkpoint is loaded about once instead of once per worker;
3. the checkpoint with the most ready tasks left, so workers share the tail.

Without failures a worker therefore never returns to a checkpoint it left. A failed task is queued
again at the front of its checkpoint, not before its backoff has passed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

from storage.layout import Task


__all__ = ["Queued", "TaskQueue", "choose_task", "next_assignment"]


@dataclass(frozen=True)
class Queued:
    """A task waiting to run: its attempt number (0 for the first) and the earliest time it may start."""

    task: Task
    attempt: int = 0
    not_before: float = 0.0


class TaskQueue:
    """Tasks waiting to run, grouped by checkpoint in plan order; each group keeps its tasks' order."""

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self._groups: dict[int, deque[Queued]] = {}
        for task in tasks:
            self.push(Queued(task))

    def push(self, item: Queued, *, front: bool = False) -> None:
        """Queue ``item`` at the end of its checkpoint's group, or at its front (a retry)."""
        group = self._groups.setdefault(item.task.checkpoint, deque())
        group.appendleft(item) if front else group.append(item)

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups.values())

    def __bool__(self) -> bool:
        return bool(self._groups)

    def checkpoints(self) -> list[int]:
        """Checkpoints with queued tasks, in the order their first task was queued."""
        return list(self._groups)

    def ready(self, checkpoint: int, now: float) -> int:
        """How many of ``checkpoint``'s queued tasks may start at ``now``."""
        return sum(item.not_before <= now for item in self._groups.get(checkpoint, ()))

    def take(self, checkpoint: int, now: float) -> Queued | None:
        """Remove and return the first task of ``checkpoint`` that may start at ``now``, if any."""
        group = self._groups.get(checkpoint)
        if not group:
            return None
        for k, item in enumerate(group):
            if item.not_before <= now:
                del group[k]
                if not group:
                    del self._groups[checkpoint]
                return item
        return None

    def drain(self) -> list[Queued]:
        """Remove and return every queued task."""
        out = [item for group in self._groups.values() for item in group]
        self._groups.clear()
        return out


def choose_task(queue: TaskQueue, *, holds: int | None, busy: bool, held_elsewhere: set[int],
                now: float) -> Queued | None:
    """The next task for a worker that holds checkpoint ``holds`` (None: none yet) and has tasks in
    flight when ``busy``; ``held_elsewhere`` are the checkpoints the other workers hold. Removes it
    from ``queue``. None when the worker should get nothing now (see the module docstring)."""
    if holds is not None:
        item = queue.take(holds, now)
        if item is not None or busy:
            return item
    ready = {c: n for c in queue.checkpoints() if (n := queue.ready(c, now))}
    if not ready:
        return None
    unheld = [c for c in ready if c not in held_elsewhere]
    checkpoint = unheld[0] if unheld else max(ready, key=ready.__getitem__)
    return queue.take(checkpoint, now)


def next_assignment(queue: TaskQueue, holds: Sequence[int | None], loads: Sequence[int], max_in_flight: int,
                    now: float) -> tuple[int, Queued] | None:
    """The next hand-out as (worker position, task), removed from ``queue``: workers with fewer than
    ``max_in_flight`` tasks in flight are offered :func:`choose_task` least loaded first; worker k
    holds checkpoint ``holds[k]`` with ``loads[k]`` tasks in flight. None when no worker should get
    a task now."""
    for k in sorted((k for k in range(len(loads)) if loads[k] < max_in_flight), key=loads.__getitem__):
        elsewhere = {h for m, h in enumerate(holds) if m != k and h is not None}
        item = choose_task(queue, holds=holds[k], busy=loads[k] > 0, held_elsewhere=elsewhere, now=now)
        if item is not None:
            return k, item
    return None
