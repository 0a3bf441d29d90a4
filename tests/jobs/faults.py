"""Real faults for tests: a driver process in its own session, killed with SIGKILL at a chosen point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def count_marks(store: Path) -> int:
    """Completion marks in ``store``, loose or folded into segments (read directly: the store may be half made)."""
    marks = store / "ledger" / "marks"
    if not marks.is_dir():
        return 0
    ids = {int(p.stem.split("-")[1]) for p in marks.glob("task-*.json")}
    for segment in marks.glob("segment-*.json"):
        try:
            ids |= {int(k) for k in json.loads(segment.read_text())}
        except (ValueError, OSError):
            continue
    return len(ids)


def start_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """``lie-sweep ARGS`` in a new session (its Ray processes join that session)."""
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=cwd, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL every process of the driver's session: the driver, its Ray head and its workers."""
    sid = proc.pid
    for _ in range(50):
        pids = session_pids(sid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    proc.wait(timeout=30)
    assert not session_pids(sid), "processes of the killed driver survived"


def kill_when(proc: subprocess.Popen, store: Path, marks: int, timeout: float = 240) -> int:
    """Wait until ``store`` holds at least ``marks`` completion marks, then kill the driver's session."""
    deadline = time.monotonic() + timeout
    while count_marks(store) < marks:
        if proc.poll() is not None:
            raise AssertionError(f"driver ended before {marks} marks: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            kill_session(proc)
            raise AssertionError(f"no {marks} marks within {timeout}s")
        time.sleep(0.01)
    kill_session(proc)
    return count_marks(store)
