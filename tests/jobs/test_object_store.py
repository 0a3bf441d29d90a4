"""kill -9 of a driver whose store is on S3 (an S3-compatible server, moto, on 127.0.0.1): no process of its Ray
session survives, a report and status read the partial store, resume takes the stale lock over, recomputes only
what is missing (the marks of completed tasks stand) and gives the bits of an uninterrupted local run. The sweep
is a tournament with exact swaps under the checkpoints' own Adam (field=optimizer, effects=[bracket,swap]), so
brackets, gradients and swaps all come back bit for bit."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from lie_sweep import open_sweep

from jobs.report.encode import decode

from .faults import kill_session, session_pids, start_cli
from .reports import logit_tolerance, page_data
from .servers import start_s3
from .sweeps import glob_overrides, reference_arrays

pytestmark = [pytest.mark.slow]

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    pytest.importorskip("s3fs")
    proc, url = start_s3(tmp_path_factory.mktemp("s3"))
    yield url
    kill_session(proc)


def test_kill_9_of_a_driver_on_s3_leaves_no_process_and_resume_gives_bitwise_identical_results(s3, reference,
                                                                                               tmp_path, monkeypatch):
    import s3fs

    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", s3)   # the drivers and their workers find the server here
    fs = s3fs.S3FileSystem(endpoint_url=s3)
    fs.mkdir("sweeps")
    url = "s3://sweeps/exp.zarr"
    # a tournament of the checkpoints' own Adam swaps beside the brackets: 10 pairs, 10 tasks of 2 pairs
    smaller = ("examples.count=6", "pairs=tournament", "pairs.group=3", "pairs.rounds=2", "pairs.per_task=2",
               "field=optimizer", "effects=[bracket,swap]")
    want = reference_arrays(reference, tmp_path, *smaller)
    ref = open_sweep(str(tmp_path / "ref.zarr")).store.group
    want_swaps = np.asarray(ref["swaps"][:]), np.asarray(ref["swap_logit_deltas"][:])

    def marks() -> int:
        if not fs.exists("sweeps/exp.zarr/ledger/marks"):
            return 0
        return sum(p.rsplit("/", 1)[-1].startswith("task-") and p.endswith(".json")      # loose marks, while it runs
                   for p in fs.ls("sweeps/exp.zarr/ledger/marks", refresh=True))

    proc = start_cli("run", *glob_overrides(reference, url, *smaller), cwd=tmp_path)
    deadline = time.monotonic() + 240
    while marks() < 3:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sid = proc.pid
    try:
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
    killed_at = marks()
    assert 3 <= killed_at < 10
    before = open_sweep(url, storage_options={"endpoint_url": s3}).store.ledger.done_tasks()
    assert fs.exists("sweeps/exp.zarr/ledger/lock.json")                 # left behind by the dead driver
    # a report of the killed run's store: its completed tasks only (checked against the finished store below)
    report = start_cli("report", url, "-o", str(tmp_path / "partial.html"), cwd=tmp_path)
    out, err = report.communicate(timeout=120)
    assert report.returncode == 0, err
    assert f"store in progress: {killed_at} of 10 tasks" in out
    status = start_cli("status", url, cwd=tmp_path)
    out, err = status.communicate(timeout=120)
    assert status.returncode == 0, err
    assert f"{killed_at} done" in out
    resume = start_cli("resume", url, cwd=tmp_path)
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err[-3000:]
    assert f"{10 - killed_at} computed now, {killed_at} already done" in out
    sweep = open_sweep(url, storage_options={"endpoint_url": s3})  # fsspec read FSSPEC_* at import
    assert sweep.complete
    final = sweep.store.ledger.done_tasks()
    assert sorted(final) == list(range(10)) and all(final[tid] == mark for tid, mark in before.items())
    g = sweep.store.group
    for got, expected in zip((g["brackets"][:], g["gradients"][:], g["losses"][:], g["swaps"][:],
                              g["swap_logit_deltas"][:]), (*want, *want_swaps)):
        assert np.array_equal(np.asarray(got), expected)
    assert not fs.exists("sweeps/exp.zarr/ledger/lock.json")
    page = page_data(tmp_path / "partial.html")
    assert page["info"]["tasks_done"] == killed_at and not page["info"]["complete"]
    done, logits = decode(page["done"]).astype(bool), decode(page["logits"])
    final = np.asarray(g["logit_deltas"][:], dtype=np.float64)[:, decode(page["positions"]).astype(int)]
    assert done.sum() == 2 * page["info"]["tasks_done"]  # two pairs per task, every pair shown
    assert np.isnan(logits[~done]).all()
    assert np.all(np.abs(logits[done] - final[done]) <= logit_tolerance(final[done]))
