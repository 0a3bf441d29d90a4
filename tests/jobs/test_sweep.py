"""Sweeps end to end: Hydra config -> real local Ray workers -> real on-disk Zarr store -> reader."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jobs.execution.account import format_account
from jobs.execution.runs import run_sweep
from lie_sweep import open_sweep

from .sweeps import marks_of

pytestmark = pytest.mark.slow

VERIFY = r"""
import json, sys, torch
import lie_sweep as ls
sweep = ls.open_sweep(sys.argv[1])
cfg = sweep.config
model = ls.SmallConvNet(num_outputs=12, width=cfg["model"]["width"])
data = ls.SyntheticShapes(length=cfg["data"]["length"], image_size=cfg["data"]["image_size"])
x, y = ls.stack_examples(data, sweep.examples)
pos = {e: k for k, e in enumerate(sweep.examples)}
pairs = [(pos[int(i)], pos[int(j)]) for i, j in sweep.pairs]
worst = {"bracket": 0.0, "gradient": 0.0, "loss": 0.0}
for c, prov in enumerate(sweep.meta.checkpoints):
    ls.apply_checkpoint(model, ls.load_checkpoint(prov["path"]))
    ref = ls.compute_brackets(model, x, y, pairs)
    fm = ls.FunctionalModel(model)
    out = ls.bracket_kernel(fm, fm.params(), x, y, pairs)
    for p, (i, j) in enumerate(sweep.pairs):
        got = sweep.bracket(prov["step"], int(i), int(j))
        for name, t in ref.items():
            want = t[p].numpy()
            err = abs(got[name] - want).max() / max(abs(want).max(), 1e-30)
            worst["bracket"] = max(worst["bracket"], float(err))
    for e, k in enumerate(sweep.examples):
        g = sweep.gradient(prov["step"], k)
        want = out.spec.unflatten(out.gradients[out.examples.tolist().index(pos[k])])
        for name, t in want.items():
            worst["gradient"] = max(worst["gradient"], float(abs(g[name] - t.numpy()).max() / abs(t.numpy()).max()))
        worst["loss"] = max(worst["loss"], abs(float(sweep.losses[c, e]) - float(out.losses[pos[k]])))
print(json.dumps(worst))
"""


def test_demo_at_test_size_through_ray_and_zarr_reopened_by_another_process(local_ray, small, tmp_path):
    result = run_sweep(small("pairs.per_task=3"), log=lambda m: None)
    assert not result.report.failures
    assert len(result.report.completed) == result.n_tasks == 2 * 4
    summary = format_account(result)
    assert "compression ratio" in summary and "10 pairs" not in summary.split("pairs")[0]
    proc = subprocess.run([sys.executable, "-c", VERIFY, str(tmp_path / "s.zarr")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    worst = json.loads(proc.stdout.strip().splitlines()[-1])
    assert worst["bracket"] <= 1e-5 and worst["gradient"] <= 1e-5 and worst["loss"] <= 1e-5, worst
    sweep = open_sweep(str(tmp_path / "s.zarr"))
    assert sweep.complete and sweep.steps == [2, 4] and sweep.examples == [0, 1, 2, 3, 4]
    # one definition of throughput and compression: the run's account, status, show and the page agree
    from jobs.report.collect import collect_report
    from jobs.results.show import show_store
    from jobs.results.status import format_status, sweep_status

    st = sweep_status(str(tmp_path / "s.zarr"))
    rate, ratio = f"{st['pairs_per_second']:.1f} pairs/s", f"compression ratio {st['compression_ratio']:.2f}x"
    shown = show_store(str(tmp_path / "s.zarr"))
    for text in (summary, format_status(st), shown):
        assert rate in text and ratio in text, text
    info = collect_report(sweep).info
    assert (info["pairs_per_second"], info["compression_ratio"]) == (st["pairs_per_second"], st["compression_ratio"])


def test_results_do_not_depend_on_workers_or_pairs_per_task(local_ray, small, tmp_path):
    run_sweep(small("cluster.workers=1", "pairs.per_task=3", store="a.zarr"), log=lambda m: None)
    # the same checkpoints, found by glob this time (training settings do not apply to a glob)
    same = [o for o in small("cluster.workers=2", "pairs.per_task=4", store="b.zarr")
            if not o.startswith("checkpoints.")]
    run_sweep([*same, "checkpoints=glob", f"checkpoints.glob={tmp_path / 'ck'}"], log=lambda m: None)
    a, b = open_sweep(str(tmp_path / "a.zarr")), open_sweep(str(tmp_path / "b.zarr"))
    assert a.steps == b.steps and np.array_equal(a.pairs, b.pairs)
    ba, bb = np.asarray(a.store.group["brackets"][:]), np.asarray(b.store.group["brackets"][:])
    assert np.abs(ba - bb).max() <= 1e-6 * np.abs(ba).max()
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-6)


def test_two_workers_never_share_a_shard(local_ray, small, tmp_path):
    run_sweep(small("cluster.workers=2", "pairs.per_task=2"), log=lambda m: None)
    root = tmp_path / "s.zarr"
    tasks = open_sweep(str(root)).store.layout.tasks()
    assert len(tasks) == 10                                       # 2 checkpoints × 10 pairs, 2 per task
    shards = root / "arrays.zarr" / "brackets" / "c"
    planned = {t.task_id: shards / str(t.checkpoint) / str(t.start // 2) / "0" for t in tasks}
    assert len(set(planned.values())) == len(tasks)               # from the plan: one shard per task
    on_disk = {p for p in (root / "arrays.zarr" / "brackets" / "c").rglob("*") if p.is_file()}
    assert on_disk == set(planned.values())                      # from the files: no other shard written
    marks = marks_of(root)
    assert sorted(marks) == [t.task_id for t in tasks]
    assert len({m["pid"] for m in marks.values()}) == 2          # both workers wrote
    grad_shards = {p for p in (root / "arrays.zarr" / "gradients" / "c").rglob("*") if p.is_file()}
    layout = open_sweep(str(root)).store.layout                  # 5 examples in blocks of 2: 3 blocks
    owned = {(t.checkpoint, b): t.task_id for t in tasks for b in t.example_blocks}
    assert layout.n_blocks == 3 and len(owned) == 2 * 3           # each (checkpoint, block) owned by one task
    assert grad_shards == {root / "arrays.zarr" / "gradients" / "c" / str(c) / str(b) / "0" for c, b in owned}
    by_worker = {}
    for m in marks.values():
        by_worker.setdefault(m["pid"], []).append(m)
    for ran in by_worker.values():                                # each worker loaded each of its checkpoints once:
        assert max(m["loads"] for m in ran) == len({m["checkpoint"] for m in ran})   # loads counts them all
        assert len({(m["checkpoint"], m["loads"]) for m in ran}) == len({m["checkpoint"] for m in ran})


def test_a_second_run_into_the_same_store_is_refused_and_keeps_the_data(local_ray, small, tmp_path):
    run_sweep(small(), log=lambda m: None)
    before = np.asarray(open_sweep(str(tmp_path / "s.zarr")).store.group["brackets"][:])
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "run", *small()], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "already holds a sweep store" in proc.stderr
    after = np.asarray(open_sweep(str(tmp_path / "s.zarr")).store.group["brackets"][:])
    assert np.array_equal(before, after)


ADAM_VERIFY = r"""
import json, sys, torch
import lie_sweep as ls
sweep = ls.open_sweep(sys.argv[1])
cfg = sweep.config
model = ls.SmallConvNet(num_outputs=12, width=cfg["model"]["width"])
x, y = ls.stack_examples(ls.SyntheticShapes(length=cfg["data"]["length"], image_size=cfg["data"]["image_size"]),
                         sweep.examples)
worst, differs = 0.0, 0.0
for prov in sweep.meta.checkpoints:
    ck = ls.load_checkpoint(prov["path"])
    ls.apply_checkpoint(model, ck)
    field = ls.PreconditionedField.from_adam_state(ck.optimizer_state, [n for n, _ in model.named_parameters()])
    pairs = [(0, 1), (2, 4)]
    ref = ls.compute_brackets(model, x, y, pairs, field=field)
    sgd = ls.compute_brackets(model, x, y, pairs)
    for p, (a, b) in enumerate(pairs):
        got = sweep.bracket(prov["step"], sweep.examples[a], sweep.examples[b])
        for n, t in ref.items():
            worst = max(worst, float(abs(got[n] - t[p].numpy()).max() / abs(t[p].numpy()).max()))
            differs = max(differs, float(abs(sgd[n][p] - t[p]).max() / abs(t[p]).max()))
print(json.dumps([worst, differs]))
"""


def test_adam_field_sweep_stores_preconditioned_brackets(local_ray, small, tmp_path):
    run_sweep(small("field=adam"), log=lambda m: None)
    proc = subprocess.run([sys.executable, "-c", ADAM_VERIFY, str(tmp_path / "s.zarr")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    worst, differs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert worst <= 1e-5 and differs > 1e-2
