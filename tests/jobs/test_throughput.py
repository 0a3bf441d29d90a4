"""The settings that make a sweep run at its kernel's speed reach the workers, and change no result:
the workers' environment (thread pools, allocator), the HVP mode, the reusable kernel workspace."""

import numpy as np
import pytest

from jobs.execution.runs import run_sweep
from jobs.execution.worker_env import RETAIN_FREED_MEMORY, THREAD_VARIABLES, worker_env
from lie_sweep import open_sweep

from .sweeps import assert_bitwise_equal, brackets_of, glob_overrides


def test_worker_env_sizes_every_thread_pool_and_retains_freed_memory_unless_told_not_to():
    env = worker_env(3)
    assert all(env[k] == "3" for k in THREAD_VARIABLES)
    assert env["MALLOC_ARENA_MAX"] == "1" and env["MALLOC_MMAP_MAX_"] == "0"
    assert int(env["MALLOC_TRIM_THRESHOLD_"]) > 2**32
    assert not set(RETAIN_FREED_MEMORY) & set(worker_env(1, "system"))


def test_this_process_can_keep_its_freed_memory_too():
    import ctypes.util
    import platform

    from jobs.execution.worker_env import retain_freed_memory_here

    glibc = platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c") is not None
    assert retain_freed_memory_here() is glibc


def _run(reference, store, *extra):
    return run_sweep(glob_overrides(reference, store, "pairs.per_task=4", *extra), log=lambda m: None)


@pytest.fixture(scope="module")
def forward_run(reference, tmp_path_factory):
    store = tmp_path_factory.mktemp("forward") / "s.zarr"
    return _run(reference, store), store


def test_workers_run_with_the_configured_environment_and_report_where_their_time_went(forward_run, reference,
                                                                                      tmp_path):
    result, _ = forward_run
    done = result.report.completed
    assert done and all(r["env"]["MALLOC_ARENA_MAX"] == "1" and r["env"]["OMP_NUM_THREADS"] == "1"
                        and r["threads"] == 1 and r["hvp"] == "forward" for r in done)
    for r in done:
        phases = r["phases"]
        assert phases["kernel_s"] > 0 and phases["write_arrays_s"] > 0 and phases["user_s"] > 0
        assert r["compute_s"] == pytest.approx(sum(v for k, v in phases.items() if k in (
            "load_s", "fields_s", "kernel_s", "order_s", "logits_s", "tables_s")))
    system = _run(reference, tmp_path / "system.zarr", "cluster.malloc=system").report.completed
    assert all(r["env"]["MALLOC_ARENA_MAX"] is None and r["env"]["OMP_NUM_THREADS"] == "1" for r in system)
    # the allocator's settings change no stored bit
    for a, b in zip(brackets_of(tmp_path / "system.zarr"), brackets_of(forward_run[1])):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("mode", ["reverse", "auto"])
def test_a_sweep_in_another_hvp_mode_stores_the_same_brackets_and_records_its_mode(forward_run, reference,
                                                                                   tmp_path, mode):
    store = tmp_path / f"{mode}.zarr"
    result = _run(reference, store, f"hvp={mode}")
    recorded = open_sweep(str(store)).store.meta.hvp_mode
    assert recorded == (mode if mode != "auto" else result.spec.hvp_mode) and recorded in ("forward", "reverse")
    assert {r["hvp"] for r in result.report.completed} == {recorded}
    got, want = brackets_of(store)[0], brackets_of(forward_run[1])[0]
    assert np.abs(want).max() > 0
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()


def test_resume_keeps_the_recorded_mode_unless_one_is_set():
    from jobs.planning.config import load_config, typed
    from jobs.planning.spec import SweepSpec
    from storage.meta import StoreMeta

    meta = StoreMeta(schema_version=1, layout={}, hvp_mode="reverse")
    for asked, used in (("auto", "reverse"), ("forward", "forward")):
        config = typed(load_config([f"hvp={asked}", "storage.path=unused.zarr"]))
        spec = SweepSpec.from_store_meta(meta, config, examples=[0, 1], pairs=[(0, 1)], store_path="unused.zarr")
        assert spec.hvp_mode == used
    assert StoreMeta(schema_version=1, layout={}).hvp_mode == "forward"  # stores written before the key


def test_a_sessions_next_sweep_starts_in_the_warm_workers_of_the_last_and_reports_its_own_peak(reference, local_ray,
                                                                                               tmp_path):
    from jobs.execution.pool import release_workers
    from jobs.execution.worker_env import peak_rss, reset_peak_rss

    def pids(store):
        marks = open_sweep(str(store)).store.ledger.done_tasks().values()
        return {m["pid"] for m in marks}, max(m["peak_rss"] for m in marks)

    assert reset_peak_rss() and 0 < peak_rss()              # what a worker process does when it takes a sweep
    grid = ("pairs.per_task=5", "cluster.workers=2")
    run_sweep(glob_overrides(reference, tmp_path / "a", *grid), log=lambda m: None)
    run_sweep(glob_overrides(reference, tmp_path / "b", *grid), log=lambda m: None)
    (first, _), (second, _) = pids(tmp_path / "a"), pids(tmp_path / "b")
    assert second == first                                   # the same processes served both sweeps
    assert release_workers() == 2
    run_sweep(glob_overrides(reference, tmp_path / "c", *grid), log=lambda m: None)
    assert not pids(tmp_path / "c")[0] & first               # new processes once released
    assert_bitwise_equal(brackets_of(tmp_path / "a"), brackets_of(tmp_path / "b"))
    assert_bitwise_equal(brackets_of(tmp_path / "a"), brackets_of(tmp_path / "c"))


def test_a_warm_up_changes_no_result_and_no_load_count(local_ray, reference, tmp_path):
    """cluster.warm_up computes a worker's first task before it is ready and keeps nothing of it: the store is
    bitwise that of a sweep without it, and each worker still reports the checkpoint loads its tasks made."""
    plain = run_sweep(glob_overrides(reference, tmp_path / "plain.zarr", "pairs.per_task=5"), log=lambda m: None)
    warm = run_sweep(glob_overrides(reference, tmp_path / "warm.zarr", "pairs.per_task=5", "cluster.warm_up=true"),
                     log=lambda m: None)
    assert_bitwise_equal(brackets_of(tmp_path / "plain.zarr"), brackets_of(tmp_path / "warm.zarr"))
    assert len(warm.report.completed) == len(plain.report.completed) == 6
    assert max(r["loads"] for r in warm.report.completed) <= 2
    assert open_sweep(str(tmp_path / "warm.zarr")).store.ledger.done_tasks().keys() == set(range(6))
