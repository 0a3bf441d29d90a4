"""Memory policy of the kernel and the logit deltas: how many pairs one vmapped call may hold.

Not math: how much of a machine a call may take. A CUDA device lends a quarter of its free memory; a
CPU a quarter of its physical memory (at least 1 GiB; the total, not what is free now, so that the
batching, and with it the last bits of a result, does not change from run to run).
"""

from __future__ import annotations

import os

import torch

__all__ = ["BUFFERS_PER_HVP", "MAX_DEFAULT_CHUNK", "call_buffer_bytes", "default_chunk_size", "memory_budget",
           "cpu_budget"]

# Parameter-sized buffers held per ordered HVP in one vmapped call: the gathered tangent, the
# field's primal and tangent outputs, and the flattened result.
BUFFERS_PER_HVP = 4
MAX_DEFAULT_CHUNK = 256


def call_buffer_bytes(chunk_size: int, n_params: int, dtype: torch.dtype) -> int:
    """Bytes of the parameter-sized buffers one vmapped kernel call of ``chunk_size`` pairs holds
    (2 ordered HVPs × ``BUFFERS_PER_HVP`` buffers per pair; activations extra)."""
    return 2 * BUFFERS_PER_HVP * chunk_size * n_params * torch.empty((), dtype=dtype).element_size()


def default_chunk_size(n_params: int, dtype: torch.dtype, device: torch.device) -> int:
    """Pairs per vmapped call such that its parameter-sized buffers fit a memory budget.

    Budget: a quarter of the free memory on a CUDA device; on a CPU a quarter of the machine's
    physical memory (at least 1 GiB; the total, not what is free now, so that the batching, and with
    it the last bits of a result, does not change from run to run). Each pair holds 2 ordered HVPs ×
    ``BUFFERS_PER_HVP`` parameter-sized buffers; activations are extra. Capped at 256 pairs: larger
    blocks of shared tangents are faster per HVP (measured on the narrow MXResNet at n = 32 on a CPU:
    4.3 s a call with 47 pairs a call, 2.7 s with 256), and past 256 the gain is small.
    """
    per_pair = call_buffer_bytes(1, n_params, dtype)
    return int(max(1, min(MAX_DEFAULT_CHUNK, memory_budget(device, cpu_budget()) // max(per_pair, 1))))


def cpu_budget() -> int:
    """A quarter of this machine's physical memory, at least 1 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        total = 0
    return max(1 << 30, total // 4)


def memory_budget(device: torch.device, cpu_bytes: int) -> int:
    """Bytes one buffer family may take: a quarter of the free memory on a CUDA device, ``cpu_bytes`` on a CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    return cpu_bytes
