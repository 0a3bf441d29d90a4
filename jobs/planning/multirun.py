"""Hydra multirun: ``lie-sweep run -m KEY=a,b …`` expands sweep overrides into one sweep per combination.

Overrides are parsed by Hydra's own override grammar, so its sweep syntax holds: ``field=sgd,adam``,
``examples.count=range(4,9,2)``, ``choice(…)``; a list value (``effects=[bracket,swap]``) is one value, not
a sweep. The combinations are the Cartesian product of the sweep overrides, in the order Hydra's basic
sweeper runs them (the first key varying slowest).

A multirun directory holds one job folder per combination, numbered as Hydra numbers its jobs, and an
index::

    MULTIRUN/
      multirun.json        {"format": "lie-sweep-multirun", "varies": [keys], "common": [overrides],
                            "jobs": [{"job": 0, "store": "0/sweep", "overrides": [...], "values": {key: value}}]}
      0/sweep/             job 0's store (storage.path)
      0/checkpoints/       job 0's trained checkpoints (checkpoints=train without a checkpoints.dir of its own)
      1/sweep/ …

``resume``, ``status`` and ``report`` accept the directory (:func:`read_index`). The index is data like a
store's config: each job's store must lie inside the directory (normalised, so ``../..`` and absolute
paths are refused), and :func:`check_job_store` holds a job's store to the index (its identity must be what
the job's overrides compose to); either problem is one line naming the job.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

from lie_sweep.errors import ConfigError, first_line

__all__ = ["INDEX", "MultirunJob", "expand", "plan_jobs", "index_record", "read_index", "default_root",
           "job_overrides", "describe", "check_job_store"]

INDEX = "multirun.json"
FORMAT = "lie-sweep-multirun"


@dataclass(frozen=True)
class MultirunJob:
    """One combination: job number, its store's path relative to the multirun directory, its overrides (the
    common ones, then one value of each sweep key), the values it varies, and whether it trains its checkpoints
    into its own folder (``J/checkpoints``)."""

    job: int
    store: str
    overrides: tuple[str, ...]
    values: dict[str, str]
    own_checkpoints: bool


def describe(values: dict[str, str]) -> str:
    """What a job varies, as overrides: ``field=adam examples.count=6``."""
    return " ".join(f"{k}={v}" for k, v in values.items())


def job_overrides(root: str, job: dict[str, Any]) -> list[str]:
    """The overrides that run ``job`` (a record of the index) of the multirun at ``root``: its own, and where its
    store (and, where it trains them, its checkpoints) go under ``root``."""
    where = os.path.join(root, str(job["job"]))
    paths = [f"checkpoints.dir={os.path.join(where, 'checkpoints')}"] if job["own_checkpoints"] else []
    return [*job["overrides"], *paths, f"storage.path={os.path.join(root, job['store'])}"]


def expand(overrides: Sequence[str]) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """(the sweep keys, the overrides common to every job, one {key: value} per combination) of
    ``overrides`` in Hydra's grammar; a malformed override is one error line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as exc:  # hydra's OverrideParseException and grammar errors
        raise ConfigError("cannot parse the multirun overrides", expected="Hydra overrides such as field=sgd,adam "
                          "or examples.count=range(4,9,2)", found=first_line(exc),
                          fix="quote values holding commas that are not a sweep: 'key=[a,b]'") from None
    keys, common, choices = [], [], []
    for o in parsed:
        if o.is_sweep_override():
            keys.append(o.get_key_element())
            choices.append(list(o.sweep_string_iterator()))
        else:
            common.append(o.input_line)
    if not keys:
        raise ConfigError("run -m needs a sweep override", expected="at least one KEY=a,b (or range(…), choice(…))",
                          found=" ".join(overrides) or "no overrides", fix="drop -m to run a single sweep")
    combos = [dict(zip(keys, values)) for values in itertools.product(*choices)]
    return keys, common, combos


def default_root(now: float | None = None) -> str:
    """Where a multirun goes without a ``storage.path``: ``lie-sweep-out/multirun/YYYY-MM-DD_HH-MM-SS``."""
    return os.path.join("lie-sweep-out", "multirun", time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now)))


def plan_jobs(overrides: Sequence[str]) -> tuple[str, list[str], list[str], list[MultirunJob]]:
    """(the multirun directory, the sweep keys, the common overrides, the jobs) for ``run -m overrides``.

    ``storage.path`` (when given) is the multirun directory; each job's store is ``J/sweep`` under it, and a
    job that trains its checkpoints writes them to ``J/checkpoints`` unless ``checkpoints.dir`` is given."""
    keys, common, combos = expand(overrides)
    for fixed in ("storage.path", "storage.overwrite"):
        if fixed in keys:
            raise ConfigError(f"{fixed} cannot vary in a multirun", expected="each job's store under the multirun "
                              "directory", found=f"{fixed} among the sweep keys", fix=f"set {fixed} once")
    root = next((o.split("=", 1)[1] for o in common if o.startswith("storage.path=")), None) or default_root()
    root = os.path.realpath(os.path.expanduser(root))  # judged and written as what it resolves to
    common = [o for o in common if not o.startswith("storage.path=")]
    own_dir = any(o.startswith("checkpoints.dir=") for o in common) or "checkpoints.dir" in keys
    jobs = [MultirunJob(k, f"{k}/sweep", (*common, *(f"{key}={value}" for key, value in values.items())), values,
                        not own_dir) for k, values in enumerate(combos)]
    return root, keys, common, jobs


def index_record(keys: Sequence[str], common: Sequence[str], jobs: Sequence[MultirunJob]) -> dict[str, Any]:
    """The index ``multirun.json`` holds."""
    return {"format": FORMAT, "varies": list(keys), "common": list(common), "created": time.time(),
            "jobs": [{"job": j.job, "store": j.store, "overrides": list(j.overrides), "values": j.values,
                      "own_checkpoints": j.own_checkpoints} for j in jobs]}


def read_index(path: str) -> dict[str, Any] | None:
    """The index of the multirun directory at ``path`` with each job's ``store`` made a path, or None when
    ``path`` is not one (a local directory holding ``multirun.json``)."""
    index_path = os.path.join(path, INDEX)
    if not os.path.isfile(index_path):
        return None
    try:
        record = json.loads(open(index_path).read())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {index_path}", expected="the index `run -m` wrote", found=first_line(exc),
                          fix="restore it, or pass one job's store (MULTIRUN/J/sweep)") from None
    if record.get("format") != FORMAT:
        raise ConfigError(f"{index_path} is not a multirun index", expected=f'"format": "{FORMAT}"',
                          found=str(record.get("format")), fix="pass one job's store instead")
    root = os.path.realpath(path)
    jobs = record.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise ConfigError(f"{index_path} lists no jobs", expected="the index `run -m` wrote", found=repr(jobs)[:80],
                          fix="restore it, or pass one job's store (MULTIRUN/J/sweep)")
    for k, job in enumerate(jobs):
        job["path"] = _job_path(index_path, root, k, job)
    return record


def _job_path(index_path: str, root: str, k: int, job: Any) -> str:
    """The store of entry ``k`` of an index, checked: a well-formed record whose store (and checkpoint folder)
    lie inside the multirun directory ``root``, once normalised."""
    def refuse(found: str) -> ConfigError:
        return ConfigError(f"multirun job {k} of {index_path} is not one `run -m` wrote", expected="a job whose "
                           "store lies inside the multirun directory", found=found,
                           fix="restore the index, or pass that job's store directly")

    if not (isinstance(job, dict) and isinstance(job.get("job"), int) and not isinstance(job.get("job"), bool)
            and job["job"] >= 0 and isinstance(job.get("store"), str) and isinstance(job.get("overrides"), list)
            and all(isinstance(o, str) for o in job["overrides"]) and isinstance(job.get("values"), dict)):
        raise refuse(f"a malformed record ({repr(job)[:80]})")
    where = os.path.realpath(os.path.join(root, job["store"]))
    if os.path.commonpath([where, root]) != root or where == root:
        raise refuse(f"store {job['store']!r} (resolves to {where}, outside {root})")
    for override in job["overrides"]:
        if override.split("=", 1)[0] in ("storage.path", "storage.overwrite"):
            raise refuse(f"{override} among its overrides (the directory places each job's store)")
    for key, value in job["values"].items():
        if f"{key}={value}" not in job["overrides"]:
            raise refuse(f"values {describe(job['values'])} that its overrides do not set")
    return where


def check_job_store(root: str, job: dict[str, Any], identity: dict[str, Any]) -> None:
    """A job's store (its recorded ``identity``) is the sweep the index says: the job's overrides compose to
    the same identity; else one line naming the job and the keys that differ."""
    from storage.identity import identity_diff

    from .config import compose_config, identity_of

    composed = compose_config(job_overrides(root, job))
    diff = identity_diff(identity, identity_of(composed))
    if diff:
        raise ConfigError(f"multirun job {job['job']}'s store disagrees with {INDEX}",
                          expected=f"the sweep of {describe(job['values']) or 'its overrides'}",
                          found=f"{job['path']}: " + "; ".join(diff[:3]),
                          fix="restore the index or the store, or pass the store directly")
