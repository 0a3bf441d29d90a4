"""Large sweeps: memory, throughput and driver cost against the number of examples E, and a 100,000-task resume.

Part 1 (``--examples 256 1024 4096``): for each E, a real ``lie-sweep run`` of a tournament
(r = 2, b = 16) of an MLP with D ≈ 2M parameters (storage.keep=summary, one worker, a 1 GiB example
cache) runs for ``--seconds`` (or to the end with ``--full``) and is then killed; from its completion
marks it prints:

* peak worker RSS (the worker's ru_maxrss, recorded in every mark);
* steady pairs/s: pairs completed after the first ``--warm`` tasks over the time they took;
* driver overhead per task: wall time per task minus the worker's own compute time per task, as a
  share of the task time (the worker writes in a second thread, overlapping the next task);
* resume start-up: ``lie-sweep resume`` from process start until its workers are ready and computing;
* planned tasks and files (``lie-sweep plan``), and the partial store's bytes and file count.

Part 2 (``--ledger``): a store of 100,128 tasks (448 examples, all pairs, one pair per task, a tiny
convnet) is created by ``lie-sweep run``, killed after its first mark, given 100,118 completion marks
through the ledger (as a driver writes them, folded into segments), and resumed: the seconds until
its plan and marks are read, until computing starts (workers ready, tasks handed out) and until the
first task is done, on a local disk and (``--s3``) on an S3 server on loopback (moto).

Usage: python benchmarks/bench_scale.py [--examples 256 1024 4096] [--seconds 120] [--ledger] [--s3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MLP = ["model=mlp", "model.hidden=[640]", "pairs=tournament", "pairs.rounds=2", "pairs.group=16",
       "pairs.per_task=120", "pairs.block=16", "storage.keep=summary", "derived.eval_count=0", "checkpoints.steps=1",
       "checkpoints.save_every=1", "cluster.workers=1", "cluster.threads_per_worker=2", "cluster.cache_gib=1"]
LEDGER = ["model.width=4", "data.length=448", "data.image_size=16", "examples.count=448", "pairs.per_task=1",
          "storage.keep=summary", "derived.eval_count=0", "checkpoints.steps=1", "checkpoints.save_every=1",
          "cluster.workers=1"]


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=cwd, start_new_session=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL the driver's session (its Ray processes too)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    time.sleep(2)


def marks_of(store: str, storage_options: dict | None = None) -> dict[int, dict]:
    from storage.store import SweepStore

    try:
        return SweepStore.open(store, storage_options=storage_options).ledger.done_tasks()
    except Exception:  # noqa: BLE001 - not created yet
        return {}


def wait_for_marks(store: str, count: int, proc: subprocess.Popen, timeout: float, options=None) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if len(marks_of(store, options)) >= count:
            return time.monotonic() - start
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"no {count} marks in {store} after {time.monotonic() - start:.0f} s: "
                       f"{(proc.stdout.read() if proc.poll() is not None else '')[-2000:]}")


def timed_lines(proc: subprocess.Popen, timeout: float) -> dict[str, float]:
    """Seconds from now until the driver printed a line starting with "resuming", one ending "already done"
    (workers ready: computing starts) and its first progress bar after that (a task completed)."""
    start, seen = time.monotonic(), {}
    for line in proc.stdout:
        t = time.monotonic() - start
        if line.startswith("resuming"):
            seen.setdefault("prepared_s", t)
        elif "already done" in line:
            seen.setdefault("computing_s", t)
        elif line.startswith("[") and "computing_s" in seen:
            seen["first_task_s"] = t
            break
        if t > timeout:
            break
    return seen


def files_and_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def scale(e: int, work: Path, seconds: float, warm: int, full: bool) -> dict:
    store = work / f"e{e}"
    common = [*MLP, f"data.length={max(e, 512)}", f"examples.count={e}"]
    plan = subprocess.run([sys.executable, "-m", "jobs.cli", "plan", *common], cwd=work, capture_output=True,
                          text=True, check=True).stdout
    planned = {line.split()[0]: line for line in plan.splitlines() if line[:1].isalpha()}
    proc = cli("run", *common, f"storage.path={store}", f"checkpoints.dir={work / f'ck{e}'}", cwd=work)
    wait_for_marks(str(store), 1, proc, 600)
    if full:
        proc.wait()
    else:
        time.sleep(seconds)
        stop(proc)
    marks = sorted(marks_of(str(store)).values(), key=lambda m: m["finished"])
    steady = marks[warm:]
    span = steady[-1]["finished"] - marks[warm - 1]["finished"]
    pairs = sum(m["stop"] - m["start"] for m in steady)
    compute = sum(m["compute_s"] for m in steady)
    files, nbytes = files_and_bytes(store)
    resume = cli("resume", str(store), cwd=work)
    times = timed_lines(resume, 600)
    stop(resume)
    return {"E": e, "tasks_done": len(marks), "peak_rss_gib": max(m["peak_rss"] for m in marks) / 2 ** 30,
            "pairs_per_s": pairs / span, "driver_overhead": (span - compute) / len(steady),
            "overhead_share": (span - compute) / span, "task_s": span / len(steady),
            "resume_start_s": times.get("computing_s", float("nan")),
            "plan_tasks": planned["tasks"].split()[1], "plan_files": planned["files"].split()[1],
            "store_files": files, "store_mib": nbytes / 2 ** 20}


def ledger(work: Path, s3: bool) -> dict:
    """Seconds from `resume` start until its first new mark, for a 100,128-task store with all but 10 done."""
    from storage.store import SweepStore

    env, options, url = dict(os.environ), None, str(work / "big")
    server = None
    if s3:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "x", "secret": "x"}
        env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
        import s3fs

        s3fs.S3FileSystem(**options).mkdir("bench")
        url = "s3://bench/big"
    extra = [f"storage.options.{k}={v}" for k, v in (options or {}).items()]
    proc = cli("run", *LEDGER, f"storage.path={url}", f"checkpoints.dir={work / 'ck-ledger'}", *extra, cwd=work,
               env=env)
    wait_for_marks(url, 1, proc, 900, options)
    stop(proc)
    store = SweepStore.open(url, mode="r+", storage_options=options)
    n = store.meta.n_tasks
    t0 = time.perf_counter()
    example = next(iter(store.ledger.done_tasks().values()))
    for task_id in range(n - 10):                 # as a driver records them (folded every 1,000)
        store.ledger._loose[task_id] = {**example, "task_id": task_id}
        if len(store.ledger._loose) >= 1000:
            store.ledger.fold_marks()
    store.ledger.fold_marks()
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = store.ledger.done_tasks()
    list_s = time.perf_counter() - t0
    resume = cli("resume", url, *extra, cwd=work, env=env)
    times = timed_lines(resume, 600)
    stop(resume)
    if server is not None:
        server.stop()
    return {"where": "s3 (moto, loopback)" if s3 else "local disk", "tasks": n, "marks": len(done),
            "write_marks_s": write_s, "read_marks_s": list_s, **times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, nargs="*", default=[256, 1024, 4096])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--warm", type=int, default=5, help="tasks before the steady state (the cache filling)")
    ap.add_argument("--full", action="store_true", help="run each sweep to its end")
    ap.add_argument("--ledger", action="store_true", help="also the 100,128-task resume")
    ap.add_argument("--s3", action="store_true", help="the 100,128-task resume on S3 (moto) too")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = [scale(e, work, args.seconds, args.warm, args.full) for e in args.examples]
    print(f"{'E':>6} {'tasks':>8} {'done':>6} {'peak RSS':>9} {'pairs/s':>8} {'s/task':>7} {'driver/task':>11} "
          f"{'share':>6} {'resume':>7} {'files (plan)':>12} {'store':>9}")
    for r in rows:
        print(f"{r['E']:>6} {r['plan_tasks']:>8} {r['tasks_done']:>6} {r['peak_rss_gib']:>7.2f}Gi "
              f"{r['pairs_per_s']:>8.2f} {r['task_s']:>7.2f} {r['driver_overhead'] * 1e3:>9.1f}ms "
              f"{100 * r['overhead_share']:>5.1f}% {r['resume_start_s']:>6.1f}s {r['plan_files']:>12} "
              f"{r['store_mib']:>6.1f}MiB")
    if rows:
        base, top = rows[0], rows[-1]
        print(f"RSS at E={top['E']} / E={base['E']}: {top['peak_rss_gib'] / base['peak_rss_gib']:.2f} (target <= 1.3); "
              f"pairs/s: {top['pairs_per_s'] / base['pairs_per_s']:.2f} (target >= 0.85)")
    results = {"scale": rows}
    if args.ledger:
        results["ledger"] = [ledger(work, False)] + ([ledger(work, True)] if args.s3 else [])
        for r in results["ledger"]:
            print(f"ledger on {r['where']}: {r['marks']:,} marks of {r['tasks']:,} tasks written in "
                  f"{r['write_marks_s']:.1f} s, read in {r['read_marks_s']:.2f} s; resume: plan and marks read "
                  f"after {r.get('prepared_s', float('nan')):.1f} s, computing after "
                  f"{r.get('computing_s', float('nan')):.1f} s, first task done after "
                  f"{r.get('first_task_s', float('nan')):.1f} s")
    (work / "bench_scale.json").write_text(json.dumps(results, indent=1))
    print(f"figures: {work / 'bench_scale.json'}")


if __name__ == "__main__":
    main()
