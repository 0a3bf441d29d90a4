"""A store is data, never code (issue 30): no spelling of a path loses a store, no store runs code it names,
no multirun index is trusted, and what goes wrong ends in one line with nothing lost. (The page's escaping is
tested in a browser in test_report_browser.py, the job artefacts on a Ray head in test_submit.py.)"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.execution.runs import resume_sweep
from lie_sweep import open_sweep

from .cli_runner import run_cli as cli
from .plant import edit_meta, pickle_chain, plant_config
from .sweeps import GRID, SMALL, copy_of_reference, glob_overrides, marks_of
from .test_bad_inputs import assert_one_line, snapshot

pytestmark = pytest.mark.slow


# 1. a path is judged by what it resolves to ------------------------------------------------------------
def test_a_path_through_a_missing_folder_or_a_symlink_is_the_store_it_resolves_to(reference, local_ray, tmp_path):
    victim = copy_of_reference(reference, tmp_path / "victim")
    before = snapshot(victim)
    (tmp_path / "link").symlink_to(victim)
    for spelling in (f"{tmp_path}/missing/../victim", f"{tmp_path}/link", f"file://{tmp_path}/missing/../victim"):
        assert_one_line(cli("run", *glob_overrides(reference, spelling), cwd=tmp_path), "already holds a sweep store")
        assert snapshot(victim) == before and not (tmp_path / "missing").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert_one_line(cli("run", *glob_overrides(reference, f"{tmp_path}/missing/../foreign"), cwd=tmp_path),
                    "not a lie-sweep store")
    assert os.listdir(foreign) == ["notes.txt"] and not (tmp_path / "missing").exists()
    # and resume takes the store however it is spelled
    victim_store = open_sweep(str(victim)).store
    victim_store.ledger.clear_mark(7)
    result = resume_sweep(f"{tmp_path}/missing/../victim", log=lambda m: None)
    assert [r["task_id"] for r in result.report.completed] == [7] and not (tmp_path / "missing").exists()
    assert result.store.path == str(victim.resolve())


# 2. reading a store runs no code it names ----------------------------------------------------------------
def test_a_planted_config_runs_nothing_under_any_command(reference, local_ray, tmp_path):
    store = copy_of_reference(reference, tmp_path / "planted")
    canary = tmp_path / "PWNED"
    plant_config(store, data=pickle_chain(canary))
    for command, needle in (("verify", "never follows"), ("resume", "never follows")):
        assert_one_line(cli(command, str(store), cwd=tmp_path), needle)
        assert not canary.exists(), command
    for command in ("show", "status", "check"):
        assert cli(command, str(store), cwd=tmp_path).returncode == 0, command
    report = cli("report", str(store), "-o", str(tmp_path / "r.html"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert "example images not shown: the dataset is not rebuilt from this store" in page
    open_sweep(str(store)).top_pairs(3)
    assert not canary.exists()
    # with --trust-store the command lists what it imports; a nested _target_ is never followed
    trusted = cli("verify", str(store), "--trust-store", cwd=tmp_path)
    assert_one_line(trusted, "never follows")
    assert not canary.exists()


@pytest.mark.parametrize("node, planted", [
    ("data", {"_target_": "builtins.open", "file": "VICTIM", "mode": "w"}),
    ("data", {"_target_": "pandas.read_pickle", "filepath_or_buffer": "VICTIM"}),
    ("model", {"_target_": "os.system", "command": "touch CANARY"}),
    ("model", {"_target_": "lie_sweep.data.SyntheticShapes", "length": 4}),   # lie-sweep's own, of the wrong kind
])
def test_a_store_naming_what_is_not_a_model_or_dataset_class_is_refused(reference, tmp_path, node, planted):
    store = copy_of_reference(reference, tmp_path / "planted")
    victim, canary = tmp_path / "victim.txt", tmp_path / "CANARY"
    victim.write_text("keep")
    planted = json.loads(json.dumps(planted).replace("VICTIM", str(victim)).replace("CANARY", str(canary)))
    plant_config(store, **{node: planted})
    assert_one_line(cli("resume", str(store), cwd=tmp_path), "lie-sweep does not import from a store")
    proc = cli("verify", str(store), "--trust-store", cwd=tmp_path)      # imported only with consent, listed first
    assert f"--trust-store: importing {node}._target_ {planted['_target_']}" in proc.stdout
    assert_one_line(proc, "is not a " if node == "data" else "is not a torch.nn.Module subclass")
    assert victim.read_text() == "keep" and not canary.exists()


def test_a_stored_cluster_address_is_not_followed_and_interpolations_stay_text(reference, tmp_path, monkeypatch):
    from jobs.planning.config import config_from_stored

    store = copy_of_reference(reference, tmp_path / "planted")
    edit_meta(store, lambda meta: meta["config"]["cluster"].update(address="127.0.0.1:9"))
    lines = []
    result = resume_sweep(str(store), log=lines.append)     # complete: nothing to run, and no cluster reached
    assert result.report.skipped == result.n_tasks
    assert any("run on the cluster 127.0.0.1:9; resuming on this machine" in line for line in lines)
    monkeypatch.setenv("LIE_SWEEP_CANARY", "resolved")
    stored = open_sweep(str(store)).config
    stored["data"]["seed"] = "${oc.env:LIE_SWEEP_CANARY}"
    assert config_from_stored(stored).data.seed == "${oc.env:LIE_SWEEP_CANARY}"   # text, never a resolver call


# 5. a multirun index is checked ---------------------------------------------------------------------------
def _multirun(reference, root):
    """A multirun directory of one job whose store is a copy of the reference sweep."""
    copy_of_reference(reference, root / "0" / "sweep")
    common = [*SMALL, *GRID, f"checkpoints.dir={reference / 'ck'}"]
    index = {"format": "lie-sweep-multirun", "varies": ["field"], "common": common, "created": 0,
             "jobs": [{"job": 0, "store": "0/sweep", "overrides": [*common, "field=sgd"], "values": {"field": "sgd"},
                       "own_checkpoints": False}]}
    (root / "multirun.json").write_text(json.dumps(index))
    return index


def test_a_multirun_index_is_held_to_its_directory_and_its_stores(reference, tmp_path):
    root = tmp_path / "mr"
    index = _multirun(reference, root)
    assert cli("status", str(root), cwd=tmp_path).returncode == 0
    elsewhere = copy_of_reference(reference, tmp_path / "elsewhere")
    before = snapshot(elsewhere)
    for store in ("../elsewhere", str(elsewhere), "0/../../elsewhere"):
        index["jobs"][0]["store"] = store
        (root / "multirun.json").write_text(json.dumps(index))
        for command in ("status", "report", "resume"):
            assert_one_line(cli(command, str(root), cwd=tmp_path), "multirun job 0")
    assert snapshot(elsewhere) == before and not (tmp_path / "sweep").exists()
    index["jobs"][0].update(store="0/sweep", overrides=[*index["common"], "field=adam"], values={"field": "adam"})
    (root / "multirun.json").write_text(json.dumps(index))   # says adam; the store is an SGD sweep
    for command in ("status", "report", "resume"):
        assert_one_line(cli(command, str(root), cwd=tmp_path), "multirun job 0's store disagrees with multirun.json")


# 6. one line, nothing lost --------------------------------------------------------------------------------
def test_a_closed_pipe_and_terminal_sequences_from_a_store(reference, tmp_path):
    store = copy_of_reference(reference, tmp_path / "s")
    edit_meta(store, lambda meta: meta["output_names"].__setitem__(0, "\x1b[2J\x1b]0;pwned\x07Wavy_Hair"))
    shown = cli("show", str(store), cwd=tmp_path)
    assert shown.returncode == 0 and "\x1b" not in shown.stdout + shown.stderr and "\x07" not in shown.stdout
    edit_meta(store, lambda meta: meta.update(dtype="<img src=x onerror=alert(1)>"))   # it types every read
    assert_one_line(cli("show", str(store), cwd=tmp_path), "has damaged metadata")
    edit_meta(store, lambda meta: meta.update(dtype="float32"))
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "status", str(store)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                                     # `| head` that has read all it wanted
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""


def _tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:80]}): needs root")


def test_a_full_disk_at_creation_and_mid_sweep_ends_in_one_line_and_resumes_bitwise(reference, local_ray, tmp_path):
    small = tmp_path / "small"
    _tmpfs(small, "40k")                                   # too small for the store's metadata
    try:
        proc = cli("run", *glob_overrides(reference, small / "s"), cwd=tmp_path)
        assert_one_line(proc, "no space left on the device of")
        assert "the store was not created" in proc.stderr and os.listdir(small) == []
        subprocess.run(["mount", "-o", "remount,size=160k", str(small)], check=True)   # room for a few tasks
        proc = cli("run", *glob_overrides(reference, small / "s"), cwd=tmp_path)
        *progress, last = proc.stderr.strip().splitlines()    # the progress line, then the error's one line
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and all(p.startswith("[") for p in progress)
        assert last.startswith("lie-sweep: error: no space left on the device of") and "tasks are stored" in last
        assert "free (fix: free space, then lie-sweep resume" in last
        assert os.listdir(small / "s" / "ledger" / "tmp") == []
        kept = len(marks_of(small / "s"))
        subprocess.run(["mount", "-o", "remount,size=4m", str(small)], check=True)
        result = resume_sweep(str(small / "s"), log=lambda m: None)
        assert len(result.report.completed) == 30 - kept and not result.report.failures
        got = np.asarray(open_sweep(str(small / "s")).store.group["brackets"][:])
        want = np.asarray(open_sweep(str(reference / "s.zarr")).store.group["brackets"][:])
        assert np.array_equal(got, want)
        assert "all intact" in cli("check", str(small / "s"), cwd=tmp_path).stdout
    finally:
        shutil.rmtree(small / "s", ignore_errors=True)
        subprocess.run(["umount", str(small)], capture_output=True)
