"""The user's own code: the modules a sweep's ``_target_`` s name that live in the user's folders rather than in
an installed package, made importable by the driver and by every worker, local or on a cluster.

The folders are the working directory ``lie-sweep`` runs from and those of ``cluster.code_dirs``. The command
line appends them to ``sys.path`` (appends: a user's folder never shadows an installed package such as
``storage``), so ``model._target_=mymod.Net`` works from the folder holding ``mymod.py`` without ``PYTHONPATH``.
The sweep's spec carries them to its workers, which append them too (a shared filesystem: this machine, a
cluster on one NFS); a cluster joined by address gets the modules themselves uploaded with the Ray job
(``py_modules`` for a package folder; a one-file module goes in the job's ``working_dir``, which Ray puts on
every worker's path), and ``submit`` ships them in the job's runtime environment the same way.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["code_dirs", "add_code_dirs", "target_modules", "user_modules", "job_runtime_env"]


def code_dirs(extra: Sequence[str] = ()) -> list[str]:
    """The folders user code is looked up in: the working directory, then ``extra`` (absolute, existing)."""
    dirs = [os.getcwd(), *(str(Path(d).expanduser().resolve()) for d in extra)]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def add_code_dirs(dirs: Iterable[str]) -> None:
    """Append each of ``dirs`` to ``sys.path`` once (after every installed package)."""
    for d in dirs:
        if d not in sys.path:
            sys.path.append(d)


def target_modules(config: Mapping[str, Any]) -> list[str]:
    """The top-level module of every ``_target_`` in a config's ``model`` and ``data`` (nested ones too)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            target = value.get("_target_")
            if isinstance(target, str) and target:
                found.append(target.split(".", 1)[0])
            for sub in value.values():
                walk(sub)
        elif isinstance(value, (list, tuple)):
            for sub in value:
                walk(sub)

    for node in ("model", "data"):
        walk(config.get(node))
    return list(dict.fromkeys(found))


def user_modules(config: Mapping[str, Any], dirs: Sequence[str]) -> list[str]:
    """The files (``mymod.py``) or package folders of the config's target modules that live under ``dirs``:
    what a job must carry to a cluster that does not share this filesystem."""
    out = []
    roots = [Path(d).resolve() for d in dirs]
    for name in target_modules(config):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
            continue
        origin = Path(spec.origin).resolve()
        where = origin.parent if spec.submodule_search_locations else origin
        if any(root == where.parent or root == where for root in roots):
            out.append(str(where))
    return list(dict.fromkeys(out))


def job_runtime_env(modules: Sequence[str], workdir: str | None = None) -> dict[str, Any]:
    """A Ray runtime environment that carries ``modules`` (from :func:`user_modules`): package folders as
    ``py_modules``, one-file modules copied into ``workdir`` (a new temporary folder when None) made the job's
    ``working_dir``; {} for none."""
    import shutil
    import tempfile

    files = [m for m in modules if os.path.isfile(m)]
    env: dict[str, Any] = {}
    if files:
        workdir = workdir or tempfile.mkdtemp(prefix="lie-sweep-code-")
        for f in files:
            shutil.copy(f, os.path.join(workdir, os.path.basename(f)))
        env["working_dir"] = workdir
    packages = [m for m in modules if os.path.isdir(m)]
    if packages:
        env["py_modules"] = packages
    return env
