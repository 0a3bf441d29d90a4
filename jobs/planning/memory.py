"""How much memory one worker has, and what a task needs of it (``plan``'s fit check and the worker's cache).

A worker's share: on a CUDA device, its free memory (times ``gpus_per_worker`` where workers
share a GPU); on a CPU, the machine's RAM divided among the workers its CPUs hold
(``cpus_per_worker`` each). A task's peak, over the flat parameter axis of D elements of
``itemsize`` bytes, with n_local ≤ 2·pairs_per_task examples touched by its pairs (plus one example
block, for a task that stores blocks: it handles them one at a time):

    cache              min(cache budget, 2·E·D) bytes of gradient and field rows (jobs.execution.field_cache)
    task rows          2·n_local·D           its examples' gradients and fields, stacked
    kernel call        2·4·chunk·D           one vmapped call's parameter-sized buffers (lie_sweep.brackets)
    brackets           2·a·pairs_per_task·D  the task's per-pair arrays, and the copies written to the store (a = 1
                                             for the bracket, + 2 for effect order, + K for effect swap's K step sizes)
    swap steps         n_local·D             effect swap: each example's first step (lie_sweep.swap), in task rows
    jacobian           B·O·D                 J_f on the evaluation batch, where it is used
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from lie_sweep.budget import call_buffer_bytes, default_chunk_size

__all__ = ["worker_memory", "cache_budget", "TaskMemory", "task_memory", "CACHE_SHARE"]

CACHE_SHARE = 0.25  # of a worker's memory, for cached example rows (cluster.cache_gib overrides)


def worker_memory(device: torch.device, cluster: Any) -> int:
    """Bytes one worker may use on ``device`` (see the module docstring)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * min(1.0, float(cluster.gpus_per_worker)))
    import psutil

    per_node = max(1, (os.cpu_count() or 1) // max(1, int(cluster.cpus_per_worker)))
    return int(psutil.virtual_memory().total // per_node)


def cache_budget(device: torch.device, cluster: Any) -> int:
    """Bytes of the worker's example cache: ``cluster.cache_gib``, else :data:`CACHE_SHARE` of its memory."""
    if cluster.cache_gib is not None:
        return int(float(cluster.cache_gib) * 2 ** 30)
    return int(CACHE_SHARE * worker_memory(device, cluster))


@dataclass
class TaskMemory:
    """A worker's peak bytes, by part (see the module docstring)."""

    cache: int
    task_rows: int
    kernel_call: int
    brackets: int
    jacobian: int
    chunk_size: int

    @property
    def total(self) -> int:
        """All parts together."""
        return self.cache + self.task_rows + self.kernel_call + self.brackets + self.jacobian


def task_memory(*, n_params: int, n_examples: int, local_examples: int, pairs_per_task: int,
                chunk_size: int | None, dtype: torch.dtype, device: torch.device, cache_bytes: int,
                jacobian_bytes: int = 0, pair_arrays: int = 1, swaps: bool = False,
                bracket: bool = True) -> TaskMemory:
    """A worker's peak memory for tasks of ``pairs_per_task`` pairs touching ``local_examples`` examples
    (without the bracket, the kernel call is the swap's batch of partners' gradients and second steps at one
    shifted point: 2·min(64, local_examples)·D)."""
    item = torch.empty((), dtype=dtype).element_size()
    chunk = chunk_size or default_chunk_size(n_params, dtype, device)
    call = (call_buffer_bytes(min(chunk, pairs_per_task), n_params, dtype) if bracket else
            2 * min(64, local_examples) * n_params * item)
    return TaskMemory(cache=min(cache_bytes, 2 * n_examples * n_params * item),
                      task_rows=(3 if swaps else 2) * local_examples * n_params * item,
                      kernel_call=call,
                      brackets=2 * pair_arrays * pairs_per_task * n_params * item, jacobian=jacobian_bytes,
                      chunk_size=chunk)
