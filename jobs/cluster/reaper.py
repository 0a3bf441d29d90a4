"""Embedded Ray leaves nothing running after its driver dies: a watchdog process per embedded session.

``ray.init()`` on this machine starts GCS, raylet, dashboard, monitor and log processes as children
of the driver, and the raylet starts two agents and the workers. When the driver is killed with
SIGKILL, most of them exit within seconds, but the dashboard and runtime-env agents outlive it
(they try to report the raylet's death to the dead GCS). :func:`start_reaper` starts this module as
a separate process, in its own session so that a terminal's Ctrl-C does not reach it, holding the
read end of a pipe whose write end only the driver holds. While the driver lives, the reaper
records the driver's process tree (pid and start time of every descendant) every
``INTERVAL`` seconds; when the pipe reaches end-of-file (the driver exited or was killed), it sends
SIGTERM to every recorded process still running, and their descendants, then SIGKILL to those left
after ``GRACE`` seconds, and exits. A pid is signalled only if its start time still matches, so a
recycled pid is never hit.

Linux only (it reads ``/proc``); elsewhere :func:`start_reaper` does nothing.

Run as ``python reaper.py DRIVER_PID`` with the pipe on stdin.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

__all__ = ["start_reaper", "process_tree", "INTERVAL", "GRACE"]

INTERVAL = 0.5  # seconds between snapshots of the driver's process tree
GRACE = 2.0     # seconds between SIGTERM and SIGKILL


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live, non-zombie process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def process_tree(root: int) -> dict[int, int]:
    """{pid: start time} of every live descendant of ``root`` (not ``root`` itself)."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := _stat(int(name))) is not None:
            parents.setdefault(info[0], []).append((int(name), info[1]))
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in parents.get(todo.pop(), []):
            if pid not in out:
                out[pid] = started
                todo.append(pid)
    return out


def _alive(known: dict[int, int]) -> dict[int, int]:
    return {pid: t for pid, t in known.items() if (info := _stat(pid)) is not None and info[1] == t}


def _signal_all(known: dict[int, int], sig: int) -> None:
    for pid in known:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap(known: dict[int, int]) -> None:
    """Stop every process in ``known`` that still runs, and its descendants: SIGTERM, then SIGKILL."""
    for pid in list(known):
        known.update(process_tree(pid))
    known = _alive(known)
    _signal_all(known, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while known and time.monotonic() < deadline:
        time.sleep(0.1)
        known = _alive(known)
    _signal_all(known, signal.SIGKILL)


def watch(driver: int, pipe: int) -> None:
    """Record ``driver``'s tree (less this process) until ``pipe`` reaches end-of-file, then :func:`reap` it."""
    known: dict[int, int] = {}
    while True:
        known.update(process_tree(driver))
        known.pop(os.getpid(), None)
        ready, _, _ = select.select([pipe], [], [], INTERVAL)
        if ready and not os.read(pipe, 4096):
            break
    reap(known)


def start_reaper() -> subprocess.Popen | None:
    """Start the watchdog for this (driver) process; keep the returned handle alive as long as the driver.

    The pipe's write end is this process's only: it is not inherited by Ray's children (Python
    creates it non-inheritable), so end-of-file means this process is gone.
    """
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
        return None
    return subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.stdin.fileno())
