"""Failure is a non-event: kill -9, dead workers, lost nodes, damaged shards, locks, bad inputs."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from jobs.execution.runs import resume_sweep, run_sweep
from lie_sweep import open_sweep

from .cli_runner import run_cli
from .faults import kill_session
from .sweeps import assert_bitwise_equal, brackets_of, copy_of_reference, glob_overrides, marks_of, reference_arrays

pytestmark = pytest.mark.slow

# kill -9 of the driver, the reaper and resume after it: tests/jobs/test_object_store.py (on S3, the harder store)


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
    dry = run_cli("check", str(store), cwd=tmp_path)                  # by default check reports and changes nothing
    assert dry.returncode == 1 and "2 damaged, nothing changed" in dry.stdout and "--repair" in dry.stdout
    assert len(marks_of(store)) == 30 and truncated.exists()
    proc = run_cli("check", str(store), "--repair", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "damaged task 3 " in proc.stdout and "damaged task 22 " in proc.stdout   # task 22 = checkpoint 1, pair 7
    assert "2 damaged, marks cleared" in proc.stdout
    assert len(marks_of(store)) == 28
    result = resume_sweep(str(store), log=lambda m: None)
    assert sorted(r["task_id"] for r in result.report.completed) == [3, 22]
    assert_bitwise_equal(brackets_of(store), want)
    again = run_cli("check", str(store), cwd=tmp_path)
    assert again.returncode == 0 and "all intact" in again.stdout


# a driver holding a store, as `run` and `resume` hold it (storage's own lock; no Ray, so it is up in a second)
HOLDER = """
import sys, time
from storage.store import SweepStore
store = SweepStore.open(sys.argv[1], mode="r+")
store.ledger.acquire_lock("run")
print("holding", flush=True)
time.sleep(600)
"""


def test_a_store_in_use_is_refused_and_a_stale_lock_is_taken_over(reference, local_ray, tmp_path):
    store = copy_of_reference(reference, tmp_path / "s.zarr")
    ledger = open_sweep(str(store)).store.ledger
    for tid in (4, 11):
        ledger.clear_mark(tid)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        for args in (["run", *glob_overrides(reference, store)], ["resume", str(store)],
                     ["check", str(store), "--repair"]):
            second = run_cli(*args, cwd=tmp_path)
            assert second.returncode == 2 and "Traceback" not in second.stderr
            line = second.stderr.strip()
            assert len(line.splitlines()) == 1 and "in use by another driver" in line
            assert f"pid {proc.pid} on {socket.gethostname()}" in line
    finally:
        kill_session(proc)
    # the dead driver's lock is stale: a resume takes it over and finishes
    assert (store / "ledger" / "lock.json").exists()
    result = resume_sweep(str(store), log=lambda m: None)
    assert sorted(r["task_id"] for r in result.report.completed) == [4, 11]
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
