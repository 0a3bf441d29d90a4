"""Hydra multirun (issue 24, item 7): `lie-sweep run -m KEY=a,b …` runs one sweep per combination, each its own
store under the multirun directory with an index of what each varies; `resume` and `status` take the directory."""

import json
import os
import shutil

import numpy as np
import pytest

from jobs.cli import main
from jobs.planning.multirun import expand, plan_jobs
from lie_sweep.errors import ConfigError
from storage.reader import open_sweep

from .sweeps import glob_overrides

pytestmark = pytest.mark.slow


def test_sweep_overrides_expand_as_hydras_basic_sweeper_does():
    keys, common, combos = expand(["field=sgd,adam", "effects=[bracket,swap]", "examples.count=range(4,7,2)",
                                   "pairs.seed=1"])
    assert keys == ["field", "examples.count"] and common == ["effects=[bracket,swap]", "pairs.seed=1"]
    assert combos == [{"field": "sgd", "examples.count": "4"}, {"field": "sgd", "examples.count": "6"},
                      {"field": "adam", "examples.count": "4"}, {"field": "adam", "examples.count": "6"}]
    root, _, _, jobs = plan_jobs(["field=sgd,adam", "storage.path=out/mr"])
    assert root == os.path.realpath("out/mr") and [j.store for j in jobs] == ["0/sweep", "1/sweep"]
    assert jobs[1].overrides == ("field=adam",) and jobs[1].own_checkpoints
    for bad, found in ((["field=sgd"], "no sweep override|a sweep override"), (["storage.path=a,b"], "cannot vary"),
                       (["field=sgd,"], "cannot parse")):
        with pytest.raises(ConfigError, match=found):
            plan_jobs(bad)


def test_run_m_makes_one_store_per_combination_and_resume_and_status_take_the_directory(reference, tmp_path, capsys):
    root = tmp_path / "mr"
    base = [o for o in glob_overrides(reference, root) if not o.startswith("cluster.workers")]
    assert main(["run", "-m", "field=sgd,adam", "pairs.per_task=5", *base]) == 0
    out = capsys.readouterr().out
    assert "multirun" in out and f"lie-sweep report {root}" in out
    index = json.loads((root / "multirun.json").read_text())
    assert index["varies"] == ["field"] and [j["values"] for j in index["jobs"]] == [{"field": "sgd"},
                                                                                    {"field": "adam"}]
    sweeps = [open_sweep(str(root / j["store"])) for j in index["jobs"]]
    assert [s.config["field"]["name"] for s in sweeps] == ["sgd", "adam"] and all(s.complete for s in sweeps)
    assert not (root / "0" / "checkpoints").exists()          # glob'd checkpoints: nothing trained per job
    # a different field gives different brackets on the same pairs
    a, b = (np.asarray(s.store.group["brackets"][:]) for s in sweeps)
    assert np.array_equal(sweeps[0].pairs, sweeps[1].pairs) and not np.allclose(a, b)

    assert main(["report", str(root)]) == 0                    # one page comparing the multirun's stores
    assert "2 stores" in capsys.readouterr().out and (root / "compare-report.html").is_file()

    assert main(["status", str(root), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert [(j["job"], j["state"]) for j in st["jobs"]] == [(0, "complete"), (1, "complete")]

    shutil.rmtree(root / "1")                                 # job 1 never ran (an interrupted multirun)
    assert main(["status", str(root)]) == 0
    assert "not started" in capsys.readouterr().out
    assert main(["resume", str(root)]) == 0
    again = open_sweep(str(root / "1" / "sweep"))
    assert again.complete and np.array_equal(np.asarray(again.store.group["brackets"][:]), b)


def test_a_bad_combination_refuses_the_multirun_before_anything_is_written(reference, tmp_path, capsys):
    root = tmp_path / "mr"
    assert main(["run", "-m", "field=sgd,adma", *glob_overrides(reference, root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "adma" in err and "adam" in err
    assert not root.exists()
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    assert main(["run", "-m", "field=sgd,adam", *glob_overrides(reference, root)]) == 2
    assert "not a multirun directory" in capsys.readouterr().err and (root / "notes.txt").read_text() == "mine"
