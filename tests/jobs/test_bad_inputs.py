"""Bad inputs end in one line, a non-zero exit, no traceback, and leave the store's data unchanged."""

import hashlib
import json
import shutil
import stat
from pathlib import Path

import pytest

from jobs.execution.account import format_account
from jobs.execution.runs import resume_sweep, run_sweep
from lie_sweep import open_sweep

from .cli_runner import cli_process, run_cli as cli
from .sweeps import marks_of

pytestmark = pytest.mark.slow


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}




def assert_one_line(proc, needle):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lie-sweep: error:"), proc.stderr
    assert needle in err, err


@pytest.fixture(scope="module")
def incomplete(tmp_path_factory, local_ray, small_factory):
    """A store with 3 of its tasks still to do, over checkpoints of its own."""
    root = tmp_path_factory.mktemp("bad")
    run_sweep(small_factory(root)("pairs.per_task=3"), log=lambda m: None)
    store = root / "s.zarr"
    ledger = open_sweep(str(store)).store.ledger
    for tid in (1, 4, 6):
        ledger.clear_mark(tid)
    return root


@pytest.fixture
def store(incomplete, tmp_path):
    """A fresh copy of the incomplete store and its checkpoints (paths rewritten to the copy)."""
    shutil.copytree(incomplete, tmp_path / "w")
    s = tmp_path / "w" / "s.zarr"
    meta = json.loads((s / "arrays.zarr" / "zarr.json").read_text())
    lie = meta["attributes"]["lie_sweep"]
    for prov in lie["checkpoints"]:
        prov["path"] = prov["path"].replace(str(incomplete), str(tmp_path / "w"))
    lie["config"]["checkpoints"]["dir"] = str(tmp_path / "w" / "ck")   # a restart retrains here, not there
    (s / "arrays.zarr" / "zarr.json").write_text(json.dumps(meta))
    return s


def test_resume_of_a_path_that_is_not_a_store(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    before = snapshot(tmp_path / "plain")
    # a real process once: what a shell shows (the other calls run the command line in this process)
    assert_one_line(cli_process("resume", str(tmp_path / "plain"), cwd=tmp_path), "is not a lie-sweep store")
    assert_one_line(cli("resume", str(tmp_path / "nowhere"), cwd=tmp_path), "found no such path")
    assert_one_line(cli("status", str(tmp_path / "plain"), cwd=tmp_path), "is not a lie-sweep store")
    assert snapshot(tmp_path / "plain") == before


def test_resume_with_a_changed_identity_is_refused_with_a_diff(store, tmp_path, local_ray):
    before = snapshot(store)
    proc = cli("resume", str(store), "model.width=8", "precision=float64", cwd=tmp_path)
    assert_one_line(proc, "model.width: 4 -> 8")
    assert 'precision: "float32" -> "float64"' in proc.stderr and "--restart" in proc.stderr
    assert snapshot(store) == before
    # execution settings may change (in this process, on the session's Ray: the CLI path is the one above)
    ok = resume_sweep(str(store), ["cluster.workers=1", "chunk_size=2"], log=lambda m: None)
    assert "3 computed now, 5 already done" in format_account(ok)
    again = format_account(resume_sweep(str(store), log=lambda m: None))   # a finished store: no "nan pairs/s"
    assert "0 computed now, 8 already done" in again and "none computed now" in again and "nan" not in again


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_cluster_ends_run_and_resume_at_once_with_nothing_written(store, tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    proc = cli("run", f"cluster.address={address}", "cluster.connect_timeout=1", f"storage.path={tmp_path / 'new'}",
               f"checkpoints.dir={tmp_path / 'ck'}", cwd=tmp_path)
    assert_one_line(proc, f"cannot reach the Ray cluster at {address}")
    assert "cluster.address=null" in proc.stderr
    assert not (tmp_path / "ck").exists() and not (tmp_path / "new").exists()  # nothing trained, nothing written
    before = snapshot(store)
    proc = cli("resume", str(store), f"cluster.address={address}", "cluster.connect_timeout=1", cwd=tmp_path)
    assert_one_line(proc, f"cannot reach the Ray cluster at {address}")
    assert snapshot(store) == before and not (store / "ledger" / "lock.json").exists()   # no lock left behind


def test_restart_starts_the_store_over_with_the_new_config(store, local_ray):
    resume_sweep(str(store), ["model.width=8"], restart=True, log=lambda m: None)
    meta = json.loads((store / "arrays.zarr" / "zarr.json").read_text())["attributes"]["lie_sweep"]
    assert meta["config"]["model"]["width"] == 8 and len(marks_of(store)) == 8


def test_a_store_path_that_is_a_file(tmp_path, small_factory):
    target = tmp_path / "afile"
    target.write_text("keep me")
    proc = cli("run", *small_factory(tmp_path)(f"storage.path={target}"), cwd=tmp_path)
    assert_one_line(proc, "store path is a file")
    assert target.read_text() == "keep me"
    assert_one_line(cli("resume", str(target), cwd=tmp_path), "found a file")


def test_a_read_only_store_directory(store, tmp_path):
    before = snapshot(store)
    mode = store.stat().st_mode
    store.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        assert_one_line(cli("resume", str(store), cwd=tmp_path), "is read-only")
        assert_one_line(cli("check", str(store), "--repair", cwd=tmp_path), "is read-only")
        assert cli("check", str(store), cwd=tmp_path).returncode == 0       # reporting needs no write access
        status = cli("status", str(store), cwd=tmp_path)   # reading needs no write access
        assert status.returncode == 0 and "3 pending" in status.stdout
    finally:
        store.chmod(mode)
    assert snapshot(store) == before


def test_a_checkpoint_deleted_or_modified_between_run_and_resume(store, tmp_path):
    before = snapshot(store)
    ck = sorted((store.parent / "ck").glob("step_*.pt"))
    original = ck[0].read_bytes()
    ck[0].write_bytes(original[:-8] + b"\x00" * 8)
    assert_one_line(cli("resume", str(store), cwd=tmp_path), "changed since the sweep started")
    ck[0].write_bytes(original)
    ck[1].unlink()
    assert_one_line(cli("resume", str(store), cwd=tmp_path), "of this sweep is missing")
    assert snapshot(store) == before


def test_a_store_from_a_newer_schema_version(store, tmp_path):
    meta = json.loads((store / "arrays.zarr" / "zarr.json").read_text())
    meta["attributes"]["lie_sweep"]["schema_version"] = 99
    (store / "arrays.zarr" / "zarr.json").write_text(json.dumps(meta))
    before = snapshot(store)
    for command in ("resume", "status", "check"):
        assert_one_line(cli(command, str(store), cwd=tmp_path), "newer schema")
    assert snapshot(store) == before


def test_status_reports_pending_failed_and_eta(store, tmp_path):
    failure = {"task_id": 4, "checkpoint": 1, "start": 0, "stop": 3, "attempts": 3, "error": "boom: x"}
    (store / "ledger" / "failures").mkdir(exist_ok=True)
    (store / "ledger" / "failures" / "task-000004.json").write_text(json.dumps({**failure,
                                                                                "log": "failures/task-000004.log"}))
    proc = cli("status", str(store), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["tasks"] == {"total": 8, "done": 5, "failed": 1, "pending": 2}
    assert st["checkpoints"][0]["pending"] == 1 and st["checkpoints"][1]["failed"] == 1
    assert st["failures"][0]["error"] == "boom: x" and st["failures"][0]["pairs"] == [0, 3]
    # (a ratio, not a bound: a 528-parameter convnet's shards are mostly per-chunk index and checksums)
    assert st["pairs_per_second"] > 0 and st["eta_seconds"] > 0 and st["compression_ratio"] > 0
    text = cli("status", str(store), cwd=tmp_path).stdout
    assert "FAILED task 4" in text and "time left" in text


def test_the_issue_24_inputs_end_in_one_line_with_nothing_written(store, tmp_path):
    """Each ended in a traceback, a silent side effect or a wrong account before (issue 24, item 3)."""
    new = [f"storage.path={tmp_path / 'new'}", f"checkpoints.dir={tmp_path / 'ck'}"]
    for args, needle in ((["pairs=tournament", "pairs.seed=-1"], "bad value for pairs.seed"),
                         (["pairs=tournament", "pairs.group=20", "examples.count=12"],
                          "the tournament's groups hold every example"),
                         (["storage.path=gs://bucket/x.zarr"], "pip install 'lie-sweep[gcs]'")):
        assert_one_line(cli("run", *new, *args, cwd=tmp_path), needle)
    assert not (tmp_path / "ck").exists() and not (tmp_path / "new").exists()
    before = snapshot(store)
    inner = cli("show", str(store / "arrays.zarr"), cwd=tmp_path)
    assert_one_line(inner, "is inside a lie-sweep store")
    assert f"pass {store}" in inner.stderr
    assert_one_line(cli("report", str(store), "-o", str(tmp_path / "no" / "dir" / "r.html"), cwd=tmp_path),
                    "the report's folder does not exist")
    assert not (tmp_path / "no").exists()
    assert_one_line(cli("report", str(store), "-o", "/proc/r.html", cwd=tmp_path), "cannot write the report")
    assert snapshot(store) == before
