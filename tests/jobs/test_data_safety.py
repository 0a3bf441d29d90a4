"""No mistake costs data (issue 11): each test reproduces a way a user lost files, time or trust, end to end."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pytest
import torch
import zarr

from jobs.execution.runs import resume_sweep, run_sweep
from lie_sweep import save_checkpoint
from lie_sweep.models import SmallConvNet
from storage.reader import open_sweep
from storage.tables import TABLES

from .cli_runner import cli_process, run_cli as cli
from .sweeps import SMALL, copy_of_reference, glob_overrides, marks_of, reference_arrays

pytestmark = pytest.mark.slow




def one_line_error(proc, needle):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("lie-sweep: error:"), err
    assert needle in err, err
    return err


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# 1. overwrite never deletes what is not a lie-sweep store -------------------------------------------
def test_overwrite_refuses_a_user_directory_before_anything_runs(tmp_path):
    (tmp_path / "p" / "sub").mkdir(parents=True)
    (tmp_path / "p" / "notes.txt").write_text("keep")
    (tmp_path / "p" / "sub" / "more.txt").write_text("also")
    proc = cli_process("run", *SMALL, f"checkpoints.dir={tmp_path / 'ck'}", "storage.path=p",  # a real process
                       "storage.overwrite=true", cwd=tmp_path)
    one_line_error(proc, "not a lie-sweep store")
    assert (tmp_path / "p" / "notes.txt").read_text() == "keep" and (tmp_path / "p" / "sub" / "more.txt").is_file()
    assert not (tmp_path / "ck").exists()                       # refused before training, not after


# 2. an empty or dangerous store path is refused -----------------------------------------------------
@pytest.mark.parametrize("path, needle", [("", "empty path"), (".", "the current directory"),
                                          ("..", "containing the current directory")])
def test_empty_and_dangerous_store_paths_are_refused(tmp_path, path, needle):
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("keep")
    proc = cli("run", *SMALL, f"checkpoints.dir={tmp_path / 'ck'}", f"storage.path={path}",
               "storage.overwrite=true", cwd=work)
    err = one_line_error(proc, needle)
    assert "storage.overwrite=true" not in err.split("fix:")[-1]
    assert sorted(os.listdir(work)) == ["mine.txt"] and not (tmp_path / "ck").exists()


def test_a_store_path_holding_the_checkpoints_is_refused(reference, tmp_path):
    shutil.copytree(reference / "ck", tmp_path / "out" / "ck")
    before = tree_digest(tmp_path / "out")
    proc = cli("run", *glob_overrides(reference, tmp_path / "out", "storage.overwrite=true",
                                      f"checkpoints.glob={tmp_path / 'out' / 'ck'}"), cwd=tmp_path)
    one_line_error(proc, "containing the sweep's checkpoints")
    assert tree_digest(tmp_path / "out") == before


# 3. non-finite checkpoints are refused before anything runs; non-finite results are not retried ----
def test_a_nan_checkpoint_is_refused_before_a_store_exists(reference, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(reference / "ck", ck)
    victim = sorted(ck.glob("*.pt"))[-1]
    state = torch.load(victim, weights_only=True)
    state["model"]["features.0.0.weight"].view(-1)[3] = float("nan")
    torch.save(state, victim)
    proc = cli("run", *glob_overrides(reference, tmp_path / "s.zarr", f"checkpoints.glob={ck}"), cwd=tmp_path)
    err = one_line_error(proc, "holds NaN/Inf")
    assert victim.name in err and "features.0.0.weight" in err
    assert not (tmp_path / "s.zarr").exists()


def test_non_finite_results_fail_once_naming_checkpoint_pair_and_tensor(reference, local_ray, tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    for step, scale in ((1, None), (2, 1e20)):
        torch.manual_seed(0)
        model = SmallConvNet(width=4, num_outputs=12)
        with torch.no_grad():                                   # finite weights, and yet:
            if scale is None:                                   # logits 3e38·(Σ features + 1) overflow
                model.head.weight.fill_(3e38)
                model.head.bias.fill_(3e38)
            else:
                model.head.weight.mul_(scale)
        save_checkpoint(ck / f"step_{step:06d}.pt", model, step=step)
    result = run_sweep(glob_overrides(reference, tmp_path / "s.zarr", f"checkpoints.glob={ck}", "cluster.retries=2"),
                       log=lambda m: None)
    assert len(result.report.failures) == 30 and not result.report.completed
    for failure in result.report.failures:
        line = failure["error"]
        assert failure["attempts"] == 1 and "\n" not in line, line  # deterministic: not retried
        if failure["checkpoint"] == 0:                          # the logits overflow: losses are NaN
            assert line.startswith("non-finite results at step 1 (step_000001.pt)") and "loss for example" in line
        else:                                                   # gradients are finite, their HVPs overflow
            assert line.startswith("non-finite bracket at step 2 (step_000002.pt)"), line
            assert "NaN/Inf in [u_" in line and "for tensor " in line


# 4. a killed driver leaves no process behind: tests/jobs/test_resume.py (its kill -9 test)


# 6. tables read whole, by folder, with standard tools -----------------------------------------------
def test_each_table_folder_reads_with_pandas_pyarrow_polars_and_duckdb(reference):
    store = reference / "s.zarr"   # read only
    sweep = open_sweep(str(store))
    for name in TABLES:
        ours = sweep.table(name)
        folder = store / "tables" / name
        readers = {
            "pandas": lambda: pd.read_parquet(folder),
            "pyarrow.dataset": lambda: pads.dataset(folder, format="parquet").to_table().to_pandas(),
            "polars": lambda: pl.read_parquet(folder).to_pandas(),
            "duckdb": lambda: duckdb.sql(f"select * from read_parquet('{folder}/*/*.parquet', "
                                         "hive_partitioning=true)").df(),
        }
        keys = [c for c in ("step", "pair", "example", "tensor") if c in ours.columns]
        want = ours.sort_values(keys).reset_index(drop=True)
        for tool, read in readers.items():
            got = read()
            assert list(got.columns) == list(ours.columns), (name, tool, list(got.columns))
            assert dict(got.dtypes) == dict(ours.dtypes), (name, tool, dict(got.dtypes))
            pd.testing.assert_frame_equal(got.sort_values(keys).reset_index(drop=True), want, check_exact=True)


# 8. check detects any change after completion -------------------------------------------------------
def test_a_value_changed_through_zarr_is_found_by_check_and_recomputed_by_resume(reference, local_ray, tmp_path):
    store = copy_of_reference(reference, tmp_path / "s.zarr")   # one pair per task
    shard = store / "arrays.zarr" / "brackets" / "c" / "1" / "4" / "0"   # checkpoint 1, pair 4: task 19
    original = shard.read_bytes()
    group = zarr.open_group(str(store / "arrays.zarr"), mode="r+")
    value = group["brackets"][1, 4, 7]
    group["brackets"][1, 4, 7] = value * 2 + 1                  # rewrites the shard with valid CRC32Cs
    assert shard.read_bytes() != original
    proc = cli("check", str(store), "--repair", cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "damaged task 19 " in proc.stdout and "changed after completion" in proc.stdout
    assert "1 damaged" in proc.stdout and 19 not in marks_of(store) and len(marks_of(store)) == 29
    result = resume_sweep(str(store), log=lambda m: None)
    assert [r["task_id"] for r in result.report.completed] == [19]
    assert shard.read_bytes() == original
    assert "all intact" in cli("check", str(store), cwd=tmp_path).stdout


# 9. honest metadata: a moved checkpoint directory resumes, a modified file in it is refused -----------
def test_a_moved_checkpoint_directory_resumes_and_a_modified_file_is_refused(reference, local_ray, tmp_path):
    first, moved, bad = tmp_path / "ck1", tmp_path / "elsewhere" / "ck2", tmp_path / "ck3"
    shutil.copytree(reference / "ck", first)
    store = tmp_path / "s.zarr"
    run_sweep(glob_overrides(reference, store, f"checkpoints.glob={first}/*.pt"), log=lambda m: None)
    meta = open_sweep(str(store)).meta
    assert [c["relpath"] for c in meta.checkpoints] == sorted(p.name for p in first.glob("*.pt"))
    ledger = open_sweep(str(store)).store.ledger
    for tid in (2, 17, 29):
        ledger.clear_mark(tid)
    shutil.copytree(first, bad)
    shutil.move(str(first), str(moved))
    one_line_error(cli("resume", str(store), cwd=tmp_path), "checkpoints.dir=NEW_DIR")
    victim = sorted(bad.glob("*.pt"))[0]
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF
    victim.write_bytes(bytes(data))
    one_line_error(cli("resume", str(store), f"checkpoints.glob={bad}/*.pt", cwd=tmp_path), "changed since")
    result = resume_sweep(str(store), [f"checkpoints.glob={moved}/*.pt"], log=lambda m: None)
    assert sorted(r["task_id"] for r in result.report.completed) == [2, 17, 29] and not result.report.failures
    got = open_sweep(str(store))
    np.testing.assert_array_equal(got.store.group["brackets"][:], reference_arrays(reference, tmp_path)[0])
    assert all(c["path"].startswith(str(moved)) for c in got.meta.checkpoints)    # found there from now on
    assert json.loads(cli("status", str(store), "--json", cwd=tmp_path).stdout)["state"] == "complete"
