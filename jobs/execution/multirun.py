"""Running and resuming a Hydra multirun (:mod:`jobs.planning.multirun`): one sweep per combination, each its
own store under the multirun directory, one after the other on the same Ray workers.

Every job's config is composed and checked before the first one runs, so a typo in any combination ends the
multirun in one line with nothing trained; the index is written before the first job starts, so an interrupted
multirun resumes (``lie-sweep resume MULTIRUN``: each job's store is resumed, a job that never started is run).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from lie_sweep.errors import ConfigError
from storage.paths import MARKER
from storage.store import SweepStore

from jobs.planning.config import load_config
from jobs.planning.multirun import INDEX, check_job_store, describe, index_record, job_overrides, plan_jobs, read_index
from jobs.planning.targets import TargetTrust, vet_overrides

from .runs import RunResult, resume_sweep, run_config

__all__ = ["MultirunResult", "run_multirun", "resume_multirun", "multirun_summary"]


@dataclass
class MultirunResult:
    """The multirun directory, its index, and each job's run (in job order)."""

    root: str
    index: dict
    results: list[RunResult]

    @property
    def failed(self) -> int:
        """Tasks that failed, over all jobs."""
        return sum(len(r.report.failures) for r in self.results)


def _check_root(root: str, overwrite: bool) -> None:
    """A new multirun needs a new or empty directory (or ``storage.overwrite=true`` over an earlier multirun)."""
    if not os.path.exists(root) or (os.path.isdir(root) and not os.listdir(root)):
        return
    if os.path.isfile(os.path.join(root, INDEX)):
        if overwrite:
            return
        raise ConfigError(f"{root} already holds a multirun", expected="a new or empty directory",
                          found=f"{INDEX} and its stores", fix=f"finish it with `lie-sweep resume {root}`, pick "
                          "another storage.path, or add storage.overwrite=true to replace its stores")
    what = "a lie-sweep store" if os.path.isfile(os.path.join(root, MARKER)) else "files"
    raise ConfigError(f"{root} is not a multirun directory", expected="a new or empty directory",
                      found=what, fix="pick another storage.path for the multirun")


def run_multirun(overrides: Sequence[str], *, log: Callable[[str], None] = print) -> MultirunResult:
    """One sweep per combination of ``overrides``' sweep values (see :mod:`jobs.planning.multirun`)."""
    root, keys, common, jobs = plan_jobs(overrides)
    index = index_record(keys, common, jobs)
    # every combination composed and checked before anything runs
    configs = [load_config(job_overrides(root, record)) for record in index["jobs"]]
    _check_root(root, overwrite=bool(configs[0].storage.overwrite))
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, INDEX), "w") as f:
        json.dump(index, f, indent=1)
    log(f"multirun: {len(jobs)} sweeps varying {', '.join(keys)} -> {root}/ (index: {INDEX})")
    results = []
    for job, cfg in zip(jobs, configs):
        log(f"[{job.job + 1}/{len(jobs)}] {describe(job.values)}")
        results.append(run_config(cfg, log=log))
    return MultirunResult(root, index, results)


def resume_multirun(path: str, overrides: Sequence[str] = (), *, restart: bool = False,
                    log: Callable[[str], None] = print, trust_store: bool = False) -> MultirunResult:
    """Finish every job of the multirun at ``path``: resume its store, or run it when it was never created.
    The index is data like a store's config: the classes its overrides name are built only as
    :mod:`jobs.planning.targets` allows (``trust_store``: theirs too, listed first)."""
    index = read_index(path)
    if index is None:
        raise ConfigError(f"{path} is not a multirun directory", expected=f"a directory holding {INDEX}",
                          found="none", fix="pass a store, or the directory `run -m` wrote")
    results = []
    for job in index["jobs"]:
        log(f"[{job['job'] + 1}/{len(index['jobs'])}] {describe(job['values'])}")
        if os.path.isfile(os.path.join(job["path"], MARKER)):
            check_job_store(path, job, SweepStore.open(job["path"]).meta.identity)
            results.append(resume_sweep(job["path"], overrides, restart=restart, log=log, trust_store=trust_store))
        else:
            vet_overrides(job["overrides"], TargetTrust.from_overrides(overrides, trust_store=trust_store, log=log,
                                                                        source=f"{INDEX} (job {job['job']})"))
            results.append(run_config(load_config([*job_overrides(path, job), *overrides]), log=log))
    return MultirunResult(path, index, results)


def multirun_summary(result: MultirunResult) -> str:
    """One line per job: what it varies, its store, tasks and pairs computed now, failures."""
    keys = result.index["varies"]
    width = max([len(describe(j["values"])) for j in result.index["jobs"]] + [6])
    lines = ["", f"multirun {result.root}/ ({len(result.results)} sweeps varying {', '.join(keys)})",
             f"  {'job':>3}  {'values':<{width}}  {'tasks':>9}  {'failed':>6}  store"]
    for job, run in zip(result.index["jobs"], result.results):
        values = describe(job["values"])
        done = f"{len(run.report.completed) + run.report.skipped}/{run.n_tasks}"
        lines.append(f"  {job['job']:>3}  {values:<{width}}  {done:>9}  "
                     f"{len(run.report.failures):>6}  {os.path.join(result.root, job['store'])}")
    lines.append(f"compare them: lie-sweep report {result.root}")
    return "\n".join(lines)
