"""The C allocator setting the kernels run fastest with, applied to the calling process on their first call.

A kernel call allocates and frees parameter-sized batches (121 HVPs × D floats of a narrow ResNet are 340 MB).
glibc's default serves such blocks with ``mmap`` and unmaps them when freed, so every call faults all of that
memory in again, page by page: 60–78% of a library call's CPU time went to the OS on a 2-core VM (1.7–1.9 M
page faults per n = 16 call; ``benchmarks/bench_kernel.py --malloc system``).

**A process-wide change, made once**: the first call of :func:`lie_sweep.bracket_kernel` (and so
:func:`lie_sweep.compute_brackets`) or :func:`lie_sweep.swap_kernel` in a process calls glibc's ``mallopt``
with ``M_MMAP_MAX = 0`` (no allocation served by ``mmap``) and ``M_TRIM_THRESHOLD = 2³¹ − 1`` (freed memory kept
for the next call, not returned to the OS). The price: the process's resident memory stays at its peak (the
peak itself does not grow). It covers allocations of every thread that uses the main heap; the command
line's workers also start with ``MALLOC_ARENA_MAX=1`` (:mod:`jobs.execution.worker_env`), which only an
environment variable set before the process starts can do.

Opt out by setting ``LIE_SWEEP_MALLOC=system`` before the first call. Nothing happens where the C library is not
glibc (macOS, Windows, musl): :func:`kernel_allocator` then reports False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["retain_freed_memory", "kernel_allocator"]

_applied: bool | None = None  # None: not tried yet in this process


def retain_freed_memory() -> bool:
    """Keep freed memory in this process from now on (glibc ``mallopt``: no ``mmap``, no trimming). Returns
    whether the allocator took the settings (False where it is not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def kernel_allocator() -> bool:
    """Apply :func:`retain_freed_memory` once per process, unless ``LIE_SWEEP_MALLOC=system`` (see the module
    docstring); whether this process runs with it."""
    global _applied
    if _applied is None:
        _applied = os.environ.get("LIE_SWEEP_MALLOC", "retain") != "system" and retain_freed_memory()
    return _applied
