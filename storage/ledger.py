"""A store's ledger: who holds it (lock), which tasks are done (marks), which failed, and each run.

All of it lives in the store's ``ledger/`` folder (the store root itself in schema-2 stores), as
small JSON files written whole or not at all (:func:`storage.atomic.write_atomic`):

    lock.json                 the driver holding the store (see :mod:`storage.lock`)
    marks/task-NNNNNN.json    completion marks, written by the driver only, after the task's files;
                              they hold the SHA-256 of every file the task wrote
    marks/segment-NNNNNN.json many marks in one file, {task id: mark}: the driver folds its loose
                              marks into a segment every ``SEGMENT_MARKS`` marks and when a run
                              ends, so a 100,000-task store lists and reads ~100 files, not 100,000.
                              A segment is written before the loose marks it holds are deleted; a
                              crash in between leaves both, which read as the same marks
    failures/task-NNNNNN.json / .log   a task's last failure: one-line record, full traceback
    runs/run-NNNNNN.json      one record per run or resume (throughput, ETA)

A torn or unreadable record counts as absent: a task whose mark cannot be read is not done.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Mapping

import fsspec

from .atomic import discard, write_atomic
from .lock import StoreLock
from .paths import StoreTree

__all__ = ["Ledger"]

MARKS_DIR = "marks"
SEGMENT_MARKS = 1000   # loose marks folded into one segment file
FAILURES_DIR = "failures"
RUNS_DIR = "runs"


class Ledger:
    """The lock, completion marks, failures and run records of the store at ``tree``."""

    def __init__(self, fs: fsspec.AbstractFileSystem, tree: StoreTree) -> None:
        self.fs, self.tree = fs, tree
        self.lock: StoreLock | None = None
        self._loose: dict[int, dict[str, Any]] = {}   # marks this driver wrote since its last segment

    # -- the lock: one driver per store ---------------------------------------------------------
    def acquire_lock(self, command: str) -> StoreLock:
        """Hold the store for this driver (see :class:`storage.lock.StoreLock`)."""
        self.lock = StoreLock(self.fs, self.tree.ledger, command=command).acquire()
        return self.lock

    def lock_holder(self) -> dict[str, Any] | None:
        """The live driver holding the store, or None."""
        probe = StoreLock(self.fs, self.tree.ledger)
        record = probe.holder()
        return None if record is None or probe.is_stale(record) else record

    def release(self) -> None:
        """Give up the lock, if this ledger holds it."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # -- completion marks, written by the driver only ---------------------------------------------
    def _mark_path(self, task_id: int) -> str:
        return posixpath.join(self.tree.ledger, MARKS_DIR, f"task-{task_id:06d}.json")

    def _segment_path(self, number: int) -> str:
        return posixpath.join(self.tree.ledger, MARKS_DIR, f"segment-{number:06d}.json")

    def mark_done(self, task_id: int, info: Mapping[str, Any]) -> None:
        """Record that task ``task_id``'s data is durably written (``info``: its digests, timings, …).

        Written as a loose mark at once; every :data:`SEGMENT_MARKS` marks the driver's loose marks are
        folded into one segment (see :meth:`fold_marks`)."""
        record = json.loads(json.dumps(dict(info), sort_keys=True, default=str))
        self._write_json(self._mark_path(task_id), record)
        self._loose[task_id] = record
        if len(self._loose) >= SEGMENT_MARKS:
            self.fold_marks()

    def fold_marks(self, include_existing: bool = False) -> None:
        """Write the marks this driver wrote since its last fold as one segment, then delete their loose files
        (the driver holding the lock only: every :data:`SEGMENT_MARKS` marks and when a run ends).
        ``include_existing`` also folds loose marks already on disk (a killed run's, when a resume starts)."""
        if include_existing:
            self._loose.update(self._records(MARKS_DIR, "task-"))
        if not self._loose:
            return
        numbers = [n for n, _ in self._listing(MARKS_DIR, "segment-")]
        self._write_json(self._segment_path(max(numbers, default=0) + 1), {str(k): v for k, v in self._loose.items()})
        paths = [self._mark_path(t) for t in self._loose]
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            for path in paths:
                discard(self.fs, path)
        self._loose.clear()

    def done_tasks(self) -> dict[int, dict[str, Any]]:
        """{task id: mark} for every task with a readable completion mark, loose or in a segment (a torn
        mark is not done)."""
        out: dict[int, dict[str, Any]] = {}
        for _, path in self._listing(MARKS_DIR, "segment-"):
            segment = self._read(path)
            if isinstance(segment, dict):
                out.update({int(k): v for k, v in segment.items()})
        out.update(self._records(MARKS_DIR, "task-"))
        return out

    def clear_mark(self, task_id: int) -> None:
        """Forget that ``task_id`` is done, so the next resume recomputes it (its loose mark, and its entry in
        a segment, which is rewritten without it)."""
        discard(self.fs, self._mark_path(task_id))
        self._loose.pop(task_id, None)
        for _, path in self._listing(MARKS_DIR, "segment-"):
            segment = self._read(path)
            if isinstance(segment, dict) and str(task_id) in segment:
                del segment[str(task_id)]
                self._write_json(path, segment)

    # -- failures and runs, written by the driver -------------------------------------------------
    def record_failure(self, task_id: int, record: Mapping[str, Any], traceback_text: str) -> None:
        """Keep a task's last failure: a one-line record and its full traceback in a log beside it."""
        base = posixpath.join(self.tree.ledger, FAILURES_DIR, f"task-{task_id:06d}")
        write_atomic(self.fs, base + ".log", traceback_text.encode(), self.tree.tmp)
        self._write_json(base + ".json", {**record, "log": base + ".log"})

    def clear_failure(self, task_id: int) -> None:
        """Forget a task's failure (it completed, or is being recomputed)."""
        base = posixpath.join(self.tree.ledger, FAILURES_DIR, f"task-{task_id:06d}")
        for path in (base + ".json", base + ".log"):
            discard(self.fs, path)

    def failures(self) -> dict[int, dict[str, Any]]:
        """{task id: failure record} for tasks whose last attempt failed."""
        return self._records(FAILURES_DIR, "task-")

    def record_run(self, run_id: int, record: Mapping[str, Any]) -> None:
        """Write (or rewrite, when it ends) the record of run ``run_id``."""
        self._write_json(posixpath.join(self.tree.ledger, RUNS_DIR, f"run-{run_id:06d}.json"), record)

    def runs(self) -> dict[int, dict[str, Any]]:
        """{run id: record} of every run and resume of this store, in order."""
        return dict(sorted(self._records(RUNS_DIR, "run-").items()))

    # -- files ------------------------------------------------------------------------------------
    def _write_json(self, final: str, record: Mapping[str, Any]) -> None:
        write_atomic(self.fs, final, json.dumps(dict(record), sort_keys=True, default=str).encode(), self.tree.tmp)

    def _listing(self, folder: str, prefix: str) -> list[tuple[int, str]]:
        """(number, path) of the ``PREFIXNNNNNN.json`` files in ``folder``, by number."""
        where = posixpath.join(self.tree.ledger, folder)
        self.fs.invalidate_cache(where)  # object-store filesystems cache listings; other processes write here
        if not self.fs.exists(where):
            return []
        out = []
        for path in self.fs.ls(where, detail=False):
            name = posixpath.basename(path)
            if name.startswith(prefix) and name.endswith(".json"):
                try:
                    out.append((int(name[len(prefix):-5]), path))
                except ValueError:
                    continue
        return sorted(out)

    def _read(self, path: str) -> Any:
        try:
            return json.loads(self.fs.cat_file(path))
        except (ValueError, OSError):
            return None

    def _records(self, folder: str, prefix: str) -> dict[int, dict[str, Any]]:
        out = {}
        for number, path in self._listing(folder, prefix):
            record = self._read(path)
            if record is not None:
                out[number] = record
        return out
