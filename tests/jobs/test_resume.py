"""Failure is a non-event: kill -9, dead workers, lost nodes, damaged shards, locks, bad inputs."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs.execution.account import format_account
from jobs.execution.runs import resume_sweep, run_sweep

from .faults import count_marks, kill_session, session_pids, start_cli
from .sweeps import assert_bitwise_equal, brackets_of, copy_of_reference, glob_overrides, marks_of, reference_arrays

pytestmark = pytest.mark.slow

def test_kill_9_of_the_driver_leaves_no_process_and_resume_gives_bitwise_identical_results(reference, local_ray,
                                                                                          tmp_path):
    want = reference_arrays(reference, tmp_path)
    store = tmp_path / "s.zarr"
    proc = start_cli("run", *glob_overrides(reference, store), cwd=tmp_path)
    sid = proc.pid
    try:
        deadline = time.monotonic() + 240
        while count_marks(store) < 3:                            # workers are up and computing
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no 3 tasks completed within 240 s"
            time.sleep(0.01)
        assert len(session_pids(sid)) > 3                        # driver, GCS, raylet, agents, workers
        os.kill(proc.pid, signal.SIGKILL)                       # the driver alone: its reaper stops the rest
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = session_pids(sid)
        names = [Path(f"/proc/{p}/cmdline").read_bytes()[:60] for p in left if Path(f"/proc/{p}").exists()]
        assert not left, f"processes of the killed driver's Ray session still run after 20 s: {names}"
    finally:
        for pid in session_pids(sid):
            os.kill(pid, signal.SIGKILL)
    before = marks_of(store)
    assert 3 <= len(before) < 30
    assert (store / "ledger" / "lock.json").exists()                       # left behind by the dead driver
    # the resume takes the stale lock over (in this process, on the session's Ray: the CLI's resume is the same
    # call, and starting another Ray here would only cost time)
    resumed = format_account(resume_sweep(str(store), log=lambda m: None))
    final = marks_of(store)
    assert sorted(final) == list(range(30))
    for tid, mark in before.items():  # tasks completed before the kill were not recomputed: their marks stand
        assert final[tid] == mark
    assert sum(1 for m in final.values() if m["run"] == max(m["run"] for m in final.values())) == 30 - len(before)
    assert f"{30 - len(before)} computed now, {len(before)} already done" in resumed
    assert_bitwise_equal(brackets_of(store), want)
    assert not (store / "ledger" / "lock.json").exists()


def test_a_worker_killed_mid_sweep_is_replaced_and_results_are_identical(reference, tmp_path):
    want = reference_arrays(reference, tmp_path)
    store = tmp_path / "s.zarr"
    killed = []

    def kill_a_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            marks = marks_of(store) if (store / "ledger" / "marks").is_dir() else {}
            if len(marks) >= 2:
                pid = next(iter(marks.values()))["pid"]
                os.kill(pid, 9)
                killed.append(pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    result = run_sweep(glob_overrides(reference, store), log=lambda m: None)
    killer.join()
    assert killed and result.report.workers_replaced >= 1
    assert not result.report.failures and len(marks_of(store)) == 30
    assert_bitwise_equal(brackets_of(store), want)


def test_a_damaged_store_is_found_by_check_and_repaired_by_resume(reference, tmp_path):
    want = reference_arrays(reference, tmp_path)
    store = copy_of_reference(reference, tmp_path / "s.zarr")
    truncated = store / "arrays.zarr" / "brackets" / "c" / "0" / "3" / "0"
    flipped = store / "arrays.zarr" / "brackets" / "c" / "1" / "7" / "0"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    raw = bytearray(flipped.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "check", str(store)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "damaged task 3 " in proc.stdout and "damaged task 22 " in proc.stdout   # task 22 = checkpoint 1, pair 7
    assert "2 damaged" in proc.stdout
    assert len(marks_of(store)) == 28
    result = resume_sweep(str(store), log=lambda m: None)
    assert sorted(r["task_id"] for r in result.report.completed) == [3, 22]
    assert_bitwise_equal(brackets_of(store), want)
    again = subprocess.run([sys.executable, "-m", "jobs.cli", "check", str(store)], capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and "all intact" in again.stdout


def test_a_store_in_use_is_refused_and_a_stale_lock_is_taken_over(reference, local_ray, tmp_path):
    store = tmp_path / "s.zarr"
    proc = start_cli("run", *glob_overrides(reference, store), "pairs.per_task=1", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (store / "ledger" / "lock.json").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        for args in (["run", *glob_overrides(reference, store)], ["resume", str(store)], ["check", str(store)]):
            second = subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True,
                                    timeout=120, cwd=tmp_path)
            assert second.returncode == 2 and "Traceback" not in second.stderr
            line = second.stderr.strip()
            assert len(line.splitlines()) == 1 and "in use by another driver" in line
            assert f"pid {proc.pid} on {socket.gethostname()}" in line
    finally:
        kill_session(proc)
    # the dead driver's lock is stale: a resume takes it over and finishes
    assert (store / "ledger" / "lock.json").exists()
    resume_sweep(str(store), log=lambda m: None)
    assert len(marks_of(store)) == 30 and not (store / "ledger" / "lock.json").exists()


def test_a_lock_whose_holder_is_gone_is_taken_over(reference, tmp_path):
    store = copy_of_reference(reference, tmp_path / "s.zarr")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    lock = store / "ledger" / "lock.json"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead), "started": 0,
                                "heartbeat": 0, "command": "run", "token": "old"}))
    result = resume_sweep(str(store), log=lambda m: None)
    assert result.report.skipped == 30 and not lock.exists()
