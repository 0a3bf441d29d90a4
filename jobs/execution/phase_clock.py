"""Where a worker's call spent its time: wall seconds per phase, and the calling thread's CPU time, OS time
and page faults over the call (``getrusage(RUSAGE_THREAD)``: the thread's own, not the other call's that
the actor runs beside it; process-wide where the OS has no per-thread figures). Each task's result
carries them (``phases``), so a run's tasks say where worker time went (``benchmarks/bench_sweep.py``
sums them).
"""

from __future__ import annotations

import resource
import time

__all__ = ["PhaseClock"]


class PhaseClock:
    """Wall seconds per phase of one call (:meth:`lap` closes a phase), and this thread's CPU and OS seconds
    and page faults over the call (``getrusage(RUSAGE_THREAD)``; process-wide where there is no such call)."""

    _WHO = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()
        self._usage = resource.getrusage(self._WHO)

    def lap(self, name: str) -> None:
        """Add the seconds since the previous lap to phase ``name``."""
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self._last
        self._last = now

    def finish(self) -> dict[str, float]:
        """The phases, with the thread's CPU (``user_s``), OS time (``os_s``) and ``page_faults`` since the start."""
        usage = resource.getrusage(self._WHO)
        self.phases.update(user_s=usage.ru_utime - self._usage.ru_utime, os_s=usage.ru_stime - self._usage.ru_stime,
                           page_faults=float(usage.ru_minflt - self._usage.ru_minflt))
        return self.phases

    def total(self, exclude: tuple[str, ...] = ()) -> float:
        """Seconds of the timed phases so far, without ``exclude``."""
        return sum(v for k, v in self.phases.items() if k.endswith("_s") and k not in exclude
                   and k not in ("user_s", "os_s"))
