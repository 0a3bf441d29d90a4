"""Task hand-out by checkpoint affinity (jobs.execution.dispatch), without Ray: a simulated pool of workers."""

import random

from jobs.execution.dispatch import Queued, TaskQueue, choose_task, next_assignment
from storage.layout import StoreLayout


def make_plan(n_checkpoints, n_pairs, per_task):
    return StoreLayout(n_checkpoints=n_checkpoints, n_pairs=n_pairs, n_examples=2, n_params=1,
                       pairs_per_task=per_task).tasks()


def test_a_busy_worker_gets_only_tasks_of_the_checkpoint_it_holds():
    queue = TaskQueue(make_plan(2, 4, 2))              # checkpoint 0: tasks 0, 1; checkpoint 1: tasks 2, 3
    assert choose_task(queue, holds=0, busy=True, held_elsewhere=set(), now=0.0).task.task_id == 0
    assert choose_task(queue, holds=0, busy=True, held_elsewhere=set(), now=0.0).task.task_id == 1
    assert choose_task(queue, holds=0, busy=True, held_elsewhere=set(), now=0.0) is None   # waits, though 2, 3 wait too
    assert choose_task(queue, holds=0, busy=False, held_elsewhere=set(), now=0.0).task.task_id == 2
    assert len(queue) == 1


def test_idle_workers_fan_out_over_checkpoints_then_share_the_largest_rest():
    queue = TaskQueue(make_plan(3, 6, 2))              # 3 checkpoints x 3 tasks
    first = choose_task(queue, holds=None, busy=False, held_elsewhere=set(), now=0.0)
    second = choose_task(queue, holds=None, busy=False, held_elsewhere={0}, now=0.0)
    assert (first.task.checkpoint, second.task.checkpoint) == (0, 1)
    queue.take(0, 0.0)
    queue.take(2, 0.0)
    queue.take(2, 0.0)                                 # left: checkpoint 0 one task, 1 two, 2 one
    third = choose_task(queue, holds=None, busy=False, held_elsewhere={0, 1, 2}, now=0.0)
    assert third.task.checkpoint == 1


def test_a_retry_goes_first_in_its_checkpoint_but_not_before_its_backoff():
    tasks = make_plan(1, 6, 2)
    queue = TaskQueue(tasks[1:])
    queue.push(Queued(tasks[0], attempt=1, not_before=5.0), front=True)
    assert choose_task(queue, holds=0, busy=True, held_elsewhere=set(), now=1.0).task.task_id == 1
    item = choose_task(queue, holds=0, busy=True, held_elsewhere=set(), now=5.0)
    assert (item.task.task_id, item.attempt) == (0, 1)
    assert [q.task.task_id for q in queue.drain()] == [2] and not queue


def simulate(n_workers, n_checkpoints, tasks_per_checkpoint, max_in_flight, seed):
    """Hand out tasks with the driver's next_assignment; workers run their queued calls in random order
    (as a threaded Ray actor may). Returns each worker's sequence of checkpoint loads and the tasks it ran."""
    rng = random.Random(seed)
    tasks = make_plan(n_checkpoints, tasks_per_checkpoint, 1)
    queue = TaskQueue(tasks)
    workers = [{"holds": None, "inflight": [], "loaded": None, "loads": [], "ran": []} for _ in range(n_workers)]
    done = 0
    while done < len(tasks):
        while (pick := next_assignment(queue, [w["holds"] for w in workers], [len(w["inflight"]) for w in workers],
                                       max_in_flight, now=0.0)) is not None:
            w, item = workers[pick[0]], pick[1]
            assert all(t.checkpoint == item.task.checkpoint for t in w["inflight"])
            w["inflight"].append(item.task)
            w["holds"] = item.task.checkpoint
        w = rng.choice([w for w in workers if w["inflight"]])
        task = w["inflight"].pop(rng.randrange(len(w["inflight"])))
        if w["loaded"] != task.checkpoint:
            w["loaded"] = task.checkpoint
            w["loads"].append(task.checkpoint)
        w["ran"].append(task.task_id)
        done += 1
    return workers


def test_in_any_completion_order_each_worker_loads_each_checkpoint_at_most_once():
    for seed in range(20):
        workers = simulate(n_workers=3, n_checkpoints=8, tasks_per_checkpoint=6, max_in_flight=2, seed=seed)
        assert sorted(t for w in workers for t in w["ran"]) == list(range(48))
        for w in workers:
            assert len(w["loads"]) == len(set(w["loads"])), w["loads"]
        total = sum(len(w["loads"]) for w in workers)
        # every checkpoint once, plus workers joining one another at the tail: far below one load
        # of every checkpoint by every worker (24), which hand-out in plan order converges to
        assert 8 <= total <= 8 + 2 * 3, total
