"""The environment a bracket worker's process starts with: thread counts and the C allocator's settings.

Why the allocator: a kernel call allocates and frees parameter-sized batches (121 HVPs × D floats of a
narrow ResNet are 340 MB). glibc's default serves such blocks with ``mmap`` and returns them with
``munmap`` when freed, so every call faults all of that memory in again, page by page: measured on a
2-core VM, 44–65% of a kernel call's CPU time went to the OS (4–7 million page faults per n = 32 call;
``benchmarks/bench_kernel.py``).
Ray runs an actor's calls in threads, whose allocations come from per-thread arenas that grow by
``mmap`` whatever ``M_MMAP_MAX`` says; one arena (``MALLOC_ARENA_MAX=1``) keeps them on the heap.

* ``MALLOC_ARENA_MAX=1``: every thread allocates from the main heap;
* ``MALLOC_MMAP_MAX_=0``: no allocation is served by ``mmap``;
* ``MALLOC_TRIM_THRESHOLD_=2^40``: freed memory is kept in the process for the next call, not trimmed.

The price: a worker's resident memory stays at its peak (the peak itself does not grow). The variables
only affect glibc (Linux); elsewhere they are ignored. ``cluster.malloc=system`` leaves the allocator
at its defaults.
"""

from __future__ import annotations

import resource

__all__ = ["RETAIN_FREED_MEMORY", "THREAD_VARIABLES", "WORKER_VARIABLES", "worker_env", "retain_freed_memory_here",
           "ray_node_id", "peak_rss", "reset_peak_rss"]

RETAIN_FREED_MEMORY: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
}

# thread pools other than torch's intra-op pool (set with torch.set_num_threads in the worker): OpenMP,
# MKL and OpenBLAS, and zarr's codec pool (compression; unbounded, it runs one thread per chunk in flight)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ZARR_THREADING__MAX_WORKERS")
WORKER_VARIABLES = (*THREAD_VARIABLES, *RETAIN_FREED_MEMORY)  # what a worker reports it runs with


def worker_env(threads: int, malloc: str = "retain") -> dict[str, str]:
    """Environment variables of a worker with ``threads`` compute threads: every thread pool sized to
    ``threads`` (no oversubscription of the worker's CPUs), and with ``malloc="retain"``
    :data:`RETAIN_FREED_MEMORY`."""
    env = {name: str(int(threads)) for name in THREAD_VARIABLES}
    if malloc == "retain":
        env.update(RETAIN_FREED_MEMORY)
    return env


def retain_freed_memory_here() -> bool:
    """Keep freed memory in this process from now on (:func:`lie_sweep.allocator.retain_freed_memory`), for what
    the command line computes itself (``plan``'s calibration, ``hvp=auto``'s timing, training), so that it
    measures what the workers will see. The arena count cannot change once threads exist, so this covers the
    main thread, where that work runs. Returns whether the allocator took the settings (False where it is not
    glibc)."""
    from lie_sweep.allocator import retain_freed_memory

    return retain_freed_memory()


def ray_node_id() -> str | None:
    """The Ray node this worker runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - informational only
        return None


def peak_rss() -> int:
    """This process's peak resident memory in bytes since it started or since :func:`reset_peak_rss`
    (Linux: ``VmHWM``; elsewhere ``ru_maxrss``, which cannot be reset)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Start :func:`peak_rss` afresh from the current resident memory (Linux ``clear_refs``), so that a
    worker process serving another sweep reports that sweep's peak; False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
