"""pairs.per_task=auto: the task size chosen for the grid (jobs/planning/task_size.py), what the store records,
and that the same task size gives the same bits however it was chosen."""

import numpy as np
import pytest

from jobs.cli import main
from jobs.execution.runs import resume_sweep, run_sweep
from jobs.planning.task_size import auto_pairs_per_task
from lie_sweep import open_sweep
from lie_sweep.errors import ConfigError

from .sweeps import SMALL, assert_bitwise_equal, brackets_of


def size(d, pairs, checkpoints=1, block=8, device="cpu", fits=lambda n: True):
    return auto_pairs_per_task(n_params=d, pairs_per_checkpoint=pairs, n_checkpoints=checkpoints, block=block,
                               device_type=device, fits=fits)


def test_the_rule_gives_whole_tiles_bounded_by_work_spread_and_memory():
    # a 422-parameter MLP over 10^6 pairs: 2^26 / 2^14 = 4096 pairs (the cap), whole 64-pair tiles
    assert size(422, 1_000_405) == 4096
    # the narrow MXResNet: 2^26 / 703,268 = 95 -> one tile
    assert size(703_268, 496) == 64
    # a GPU takes 2^31 / D: a ResNet-18 of 11.2 M parameters, 191 -> 128 pairs
    assert size(11_201_900, 299_280, device="cuda") == 128
    # few pairs: at least ~16 tasks over the whole sweep, never more than a checkpoint's pairs
    assert size(422, 19_900, checkpoints=2) == 2496 and 2496 % 64 == 0
    assert size(5_532, 28, checkpoints=5) == 28
    # memory: halved in whole tiles until it fits, then below a tile
    assert size(422, 1_000_405, fits=lambda n: n <= 1000) == 512
    assert size(11_201_900, 299_280, fits=lambda n: n <= 17) == 17


def test_a_bad_task_size_is_one_line():
    from jobs.planning.config import load_config

    for bad in ("0", "big", "-3", "true"):
        with pytest.raises(ConfigError, match="pairs.per_task.*auto or an integer"):
            load_config([f"pairs.per_task={bad}"])


def test_plan_and_help_say_how_the_task_size_is_chosen(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "pairs.per_task = auto" in capsys.readouterr().out
    assert main(["plan", *SMALL, f"checkpoints.dir={tmp_path / 'ck'}"]) == 0
    out = capsys.readouterr().out
    assert "pairs.per_task=auto chose it" in out and "of compute a task" in out


def test_the_store_records_the_chosen_size_and_resume_keeps_its_own(local_ray, tmp_path):
    overrides = [*SMALL, "examples.count=24", f"checkpoints.dir={tmp_path / 'ck'}"]
    auto = run_sweep([*overrides, f"storage.path={tmp_path / 'auto.zarr'}"], log=lambda m: None)
    chosen = auto.store.layout.pairs_per_task
    # 276 pairs x 2 checkpoints of a 1,226-parameter convnet: <= all pairs / 16 in whole 4-pair tiles (block 2)
    assert chosen == 36 and auto.store.meta.config["pairs"]["per_task"] == 36
    same = run_sweep([*overrides, "checkpoints=glob", f"checkpoints.glob={tmp_path / 'ck'}",
                      f"pairs.per_task={chosen}", f"storage.path={tmp_path / 'given.zarr'}"], log=lambda m: None)
    assert same.store.meta.identity["pairs"] == auto.store.meta.identity["pairs"]  # the task size as a number
    assert_bitwise_equal(brackets_of(tmp_path / "auto.zarr"), brackets_of(tmp_path / "given.zarr"))
    # a store made with another task size (an older default, or the user's) resumes with its own
    run_sweep([*overrides, "checkpoints=glob", f"checkpoints.glob={tmp_path / 'ck'}", "pairs.per_task=7",
               f"storage.path={tmp_path / 'seven.zarr'}"], log=lambda m: None)
    sweep = open_sweep(str(tmp_path / "seven.zarr"))
    sweep.store.ledger.clear_mark(0)
    resumed = resume_sweep(str(tmp_path / "seven.zarr"), log=lambda m: None)
    assert resumed.store.layout.pairs_per_task == 7 and len(resumed.report.completed) == 1
    assert np.isfinite(brackets_of(tmp_path / "seven.zarr")[0]).all()
