"""The sweep store: a directory (local path or fsspec URL) holding a pure Zarr v3 group, Parquet
tables and a ledger beside each other (see :mod:`storage.paths` for the tree).

Writers: the driver creates the store (marker, metadata, pair table, examples, steps) and writes
completion marks; each worker writes only the files its tasks own (see :mod:`storage.layout`) and
reports their SHA-256. Marks are small JSON files ``ledger/marks/task-NNNNNN.json`` written after a
task's data is stored, holding those digests; a task without a mark is not done, whatever its
files hold, and a file whose bytes no longer match its mark's digest is damaged (``check``). Beside
them: ``ledger/failures/`` (one JSON record and one traceback log per task that failed for good),
``ledger/runs/`` (one record per run or resume) and ``ledger/lock.json`` (the driver holding the
store, see :mod:`storage.lock`). Summary tables are Parquet files under ``tables/``, written by the
task that owns them (see :mod:`storage.tables`).

Float arrays are filled with NaN: a cell no task has written reads as NaN, never as a plausible 0.

This module is a little over 300 lines because :class:`SweepStore` is the one object every writer
and reader holds: its file map (:meth:`SweepStore.files_of`), writes, table reads and sizes. What
can stand alone does: the on-disk tree (:mod:`storage.paths`), where a store may be created
(:mod:`storage.location`), its arrays (:mod:`storage.arrays`), the ledger (:mod:`storage.ledger`),
the metadata (:mod:`storage.meta`) and the tables (:mod:`storage.tables`).
"""

from __future__ import annotations

import json
import math
import posixpath
import time
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import zarr

from .arrays import INDEX_ARRAYS, consolidate, create_arrays
from .atomic import discard, file_digest, write_atomic
from .codecs import DEFAULT_KEEPBITS, MANTISSA_BITS, check_encodable
from .errors import NotASweepError, StoreError, StoreKeyError, first_line
from .layout import SCHEMA_VERSION, StoreLayout, Task
from .ledger import Ledger
from .location import check_creatable, check_writable, delete_own_entries, filesystem_of, normalise_store_path
from .lock import StoreLock
from .meta import StoreMeta
from .paths import (MARKER, META_KEY, StoreTree, detect, enclosing_store, has_metadata, marker_problem,
                    marker_record, read_marker)
from .space import is_no_space, no_space_error
from .tables import STEP_DIGITS, part_path, read_parts, step_of_folder, table_dir, task_of_part, write_part

__all__ = ["SweepStore"]



def _group_url(path: str, tree: StoreTree) -> str:
    """The Zarr group's location in the same form as ``path`` (local path or URL)."""
    return str(path) if tree.legacy else str(path).rstrip("/") + "/" + posixpath.basename(tree.arrays)


def _undo_creation(fs: Any, tree: StoreTree, existed: bool) -> None:
    """Remove what an interrupted :meth:`SweepStore.create` wrote at ``tree`` (lie-sweep's own entries only),
    and the folder itself where creation made it."""
    try:
        for entry in fs.ls(tree.root, detail=False) if fs.exists(tree.root) else ():
            if posixpath.basename(entry.rstrip("/")) in tree.own_entries:
                fs.rm(entry, recursive=True)
        if not existed and fs.exists(tree.root) and not fs.ls(tree.root, detail=False):
            fs.rmdir(tree.root)
    except OSError:  # best effort: what is left is an unfinished store, which storage.overwrite=true replaces
        pass


class SweepStore:
    """Read/write access to one sweep store. Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: str, group: zarr.Group, tree: StoreTree,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        self.path = str(path)
        self.group = group
        self.tree = tree
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = filesystem_of(self.path, self.storage_options)
        self.meta = StoreMeta.from_dict(group.attrs[META_KEY])
        if self.meta.dtype not in MANTISSA_BITS:  # it types every read: a damaged one is one line, not a traceback
            raise StoreError(f"store {self.path} has damaged metadata",
                             expected=f"dtype one of {sorted(MANTISSA_BITS)}",
                             found=f"dtype {first_line(repr(self.meta.dtype), 60)}",
                             fix="restore the store's arrays.zarr/zarr.json from a copy, or recompute the store")
        self.layout = StoreLayout(**self.meta.layout)
        self.ledger = Ledger(self.fs, tree)

    # -- creation and opening ---------------------------------------------------------------
    @classmethod
    def create(cls, path: str, *, layout: StoreLayout, meta: Mapping[str, Any], pairs: np.ndarray,
               examples: Sequence[int], steps: Sequence[int], eval_examples: Sequence[int] = (),
               dtype: str = "float32", codec: str = "lossless", level: int = 1, keepbits: int = DEFAULT_KEEPBITS,
               overwrite: bool = False, command: str = "run", protect: Sequence[str] = (),
               storage_options: Mapping[str, Any] | None = None,
               swap_attrs: Mapping[str, Any] | None = None) -> "SweepStore":
        """Create an empty store holding its lock, with metadata, pair table, examples and steps
        (``swap_attrs``: recorded on the swap arrays, what redoes a swap).

        ``codec`` (with ``level``, ``keepbits``) applies to the parameter-sized arrays; the small
        arrays (losses, logit deltas, Gram matrices) are always stored losslessly.

        Refuses an unsafe location (:func:`storage.safety.refuse_unsafe_path`; ``protect``: the
        sweep's checkpoints), a store in use by a live driver, and any non-empty directory that is not
        a lie-sweep store or holds files lie-sweep did not write, with or without ``overwrite``. An
        existing store is refused unless ``overwrite``, which deletes lie-sweep's own entries in it
        (and nothing else) once the lock is held. ``path`` is judged and written in its normalised form
        (:func:`storage.location.normalise_store_path`).
        """
        path = normalise_store_path(path)
        old = check_creatable(path, overwrite=overwrite, protect=protect, command=command,
                              storage_options=storage_options)
        fs, root = filesystem_of(path, storage_options)
        tree = StoreTree(root)
        existed = fs.exists(root)
        try:
            lock = StoreLock(fs, tree.ledger, command=command).acquire()
        except OSError as exc:
            if is_no_space(exc):
                _undo_creation(fs, tree, existed)
                raise no_space_error(path, written="nothing was created", fix="free space, then run again") from None
            raise
        try:
            if old is not None:
                delete_own_entries(fs, old, keep=lock.path)
            write_atomic(fs, tree.marker, json.dumps(marker_record(SCHEMA_VERSION)).encode(), tree.tmp)
            try:
                group = zarr.open_group(_group_url(path, tree), mode="w", zarr_format=3,
                                        storage_options=storage_options or None)
            except OSError as exc:
                raise StoreError(f"cannot create store at {path}", expected="a writable location",
                                 found=first_line(exc), fix="check permissions and the path") from None
            create_arrays(group, layout, dtype=dtype, codec=codec, level=level, keepbits=keepbits, pairs=pairs,
                          examples=examples, steps=steps, eval_examples=eval_examples,
                          swap_attrs=dict(swap_attrs or {}), output_names=meta.get("output_names", ()),
                          stored_spec=meta.get("stored_spec", ()), full_spec=meta.get("param_spec", ()))
            full_meta = StoreMeta.from_dict({**meta, "schema_version": SCHEMA_VERSION, "layout": layout.to_dict(),
                                             "dtype": dtype, "codec": codec, "level": level, "keepbits": keepbits,
                                             "created": time.time()})
            group.attrs[META_KEY] = full_meta.to_dict()  # written last: a store without it is not a sweep
            consolidate(group)
        except BaseException as exc:
            lock.release()
            if is_no_space(exc):  # a half-made store helps nobody: what creation wrote goes, one line says why
                _undo_creation(fs, tree, existed)
                raise no_space_error(path, written="the store was not created (nothing of it is left)",
                                     fix="free space, then run again") from None
            raise
        store = cls(path, group, tree, storage_options)
        store.ledger.lock = lock
        return store

    @classmethod
    def open(cls, path: str, mode: str = "r", storage_options: Mapping[str, Any] | None = None) -> "SweepStore":
        """Open an existing store (``mode`` "r" or "r+"), found by its normalised path; a path that holds no
        sweep is one error line."""
        path = normalise_store_path(path)
        fs, root = filesystem_of(path, storage_options)
        outer = enclosing_store(fs, root)
        if outer is not None:  # e.g. STORE/arrays.zarr: a Zarr group, but not the sweep
            raise NotASweepError(f"{path} is inside a lie-sweep store", expected="the store's own path",
                                 found=f"a path inside {outer}", fix=f"pass {outer}")
        tree = detect(fs, root)
        if tree is None:
            found = ("no such path" if not fs.exists(root) else
                     "a file" if fs.isfile(root) else "no lie-sweep metadata")
            raise NotASweepError(f"{path} is not a lie-sweep store", expected="a store written by `lie-sweep run`",
                                 found=found, fix="pass the storage.path a sweep was run with")
        if not has_metadata(fs, tree.arrays):
            raise NotASweepError(f"{path} is an unfinished lie-sweep store", expected="a store whose creation finished",
                                 found=f"no sweep metadata in {posixpath.basename(tree.arrays)}",
                                 fix="its creation was interrupted: run the sweep again with storage.overwrite=true")
        if mode != "r":
            check_writable(fs, root, path)
        group = zarr.open_group(_group_url(path, tree), mode=mode, zarr_format=3,
                                storage_options=storage_options or None)
        version = group.attrs[META_KEY].get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StoreError(f"store {path} has a newer schema", expected=f"schema version <= {SCHEMA_VERSION}",
                             found=str(version), fix="upgrade lie-sweep to read it")
        problem = None if tree.legacy else marker_problem(read_marker(fs, root), version)
        if problem is not None:
            raise StoreError(f"store {path} does not describe itself consistently", expected=f"a {MARKER} as "
                             f"lie-sweep writes it ({json.dumps(marker_record(version))})", found=problem,
                             fix="restore the marker from a copy of the store, or recompute the store")
        return cls(path, group, tree, storage_options)

    # -- shard files, for integrity checks ------------------------------------------------------
    def _chunk_path(self, array: str, index: Sequence[int]) -> str:
        return posixpath.join(self.tree.arrays, array, "c", *(str(i) for i in index))

    def _bracket_file(self, checkpoint: int, start: int, array: str = "brackets") -> str:
        return self._chunk_path(array, self.layout.bracket_shard_of(checkpoint, start))

    @property
    def pair_arrays(self) -> tuple[str, ...]:
        """The parameter-sized per-pair arrays this store keeps: brackets (effect bracket), order1, order2
        (effect order), and a registered effect's own (``layout.effect_arrays``)."""
        if not self.layout.keeps_params:
            return ()
        return (("brackets",) if self.layout.keeps_brackets else ()) + (
            ("order1", "order2") if self.layout.keeps_order else ()) + self.layout.effect_arrays

    def _swap_files(self, checkpoint: int, start: int) -> dict[str, str]:
        """A task's ``swaps k`` shards (one per step size k) and its ``swap_logit_deltas`` chunk, where kept."""
        if not self.layout.keeps_swaps:
            return {}
        shard = self.layout.bracket_shard_of(checkpoint, start)[1]
        files = {f"swaps {k}": self._chunk_path("swaps", (checkpoint, k, shard, 0))
                 for k in range(len(self.layout.swap_epsilons))} if self.layout.keeps_params else {}
        if self.layout.keeps_logits:
            files["swap_logit_deltas"] = self._chunk_path("swap_logit_deltas", (checkpoint, 0, shard, 0, 0))
        return files

    def _logit_file(self, checkpoint: int, start: int) -> str:
        return self._chunk_path("logit_deltas", (*self.layout.bracket_shard_of(checkpoint, start)[:2], 0, 0))

    def _example_files(self, checkpoint: int, block: int) -> dict[str, str]:
        files = ({"gradients": self._chunk_path("gradients", (checkpoint, block, 0))}
                 if self.layout.keeps_params else {})
        files["losses"] = self._chunk_path("losses", (checkpoint, block))
        if self.layout.keeps_gram:
            files["gram"] = self._chunk_path("gram", (checkpoint, 0, 0))
        return files

    def files_of(self, task: Task) -> dict[str, str]:
        """{what: file} of every file ``task`` owns (see :mod:`storage.layout`), by name, never by position:
        ``brackets`` (its shard) and ``logit_deltas`` (its chunk) where the store keeps them; for each
        example block it writes, ``gradients`` (where kept) and ``losses`` (``gradients k`` / ``losses k``
        for block k; schema ≤ 3: one block and a ``gram``); and ``table NAME``, its part of each table it
        writes."""
        c = task.checkpoint
        files = {name: self._bracket_file(c, task.start, name) for name in self.pair_arrays}
        if self.layout.keeps_lead_logits:
            files["logit_deltas"] = self._logit_file(c, task.start)
        files.update(self._swap_files(c, task.start))
        for block in task.example_blocks:
            for what, path in self._example_files(c, block).items():
                files[self.layout.block_key(what, block)] = path
        files.update(self._sketch_files(task))
        tables = ("pairs", "pair_rms")
        if task.writes_examples:
            tables += ("examples", "example_rms") + (("checkpoints",) if self.layout.keeps_gram else ())
        for name in tables:
            files[f"table {name}"] = part_path(self.tree.tables, name, self.steps[c], task.task_id,
                                                  self.step_digits)
        return files

    def _sketch_files(self, task: Task) -> dict[str, str]:
        """A task's sketch chunks (``sketch NAME``; ``sketch gradients k`` per example block it owns)."""
        c, chunk = task.checkpoint, task.start // self.layout.pairs_per_task
        files = {}
        for name in self.layout.sketched:
            if name == "gradients":
                for block in task.example_blocks:
                    files[f"sketch gradients {block}"] = self._chunk_path("sketch_gradients", (c, block, 0))
            else:
                files[f"sketch {name}"] = self._chunk_path(f"sketch_{name}", (c, 0, chunk, 0) if name == "swaps"
                                                           else (c, chunk, 0))
        return files

    def write_sketches(self, task: Task, sketches: Mapping[str, np.ndarray], blocks: Mapping[int, np.ndarray]) -> None:
        """Store a task's sketches: ``sketches`` by result name (its pairs' rows; ``swaps``: K × pairs × k), and the
        sketched gradients of the example ``blocks`` it owns (block → rows × k)."""
        c, rows = task.checkpoint, slice(task.start, task.stop)
        files = self._sketch_files(task)
        for key in [f"sketch {n}" for n in sketches] + [f"sketch gradients {b}" for b in blocks]:
            self._discard(files[key])  # a torn chunk of a killed attempt is never read back
        for name, values in sketches.items():
            check_encodable(self.meta.codec, values, f"sketch_{name}")
            target = self.group[f"sketch_{name}"]
            if name == "swaps":
                target[c, :, rows] = values
            else:
                target[c, rows] = values
        for block, values in blocks.items():
            start, stop = self.layout.block_range(block)
            self.group["sketch_gradients"][c, start:stop] = values

    def digests(self, paths: Sequence[str]) -> dict[str, str]:
        """{path relative to the store root: SHA-256 of its bytes} of files just written (for a mark)."""
        return {self.tree.relative(p): file_digest(self.fs, p) for p in paths}

    def changed_files(self, recorded: Mapping[str, str]) -> list[str]:
        """The files (relative paths) present whose bytes no longer match ``recorded`` digests."""
        changed = []
        for rel, digest in sorted(recorded.items()):
            try:
                if file_digest(self.fs, self.tree.absolute(rel)) != digest:
                    changed.append(rel)
            except FileNotFoundError:
                continue  # reported as missing by whoever reads the task's files
        return changed

    def update_meta(self, changes: Mapping[str, Any]) -> None:
        """Rewrite keys of the sweep's metadata (the driver holding the lock only: a moved checkpoint
        location on resume)."""
        self.meta = self.meta.replace(**changes)
        self.group.attrs[META_KEY] = self.meta.to_dict()  # the root's own: its consolidated children stay true

    @property
    def steps(self) -> list[int]:
        """Training step of each checkpoint, in store order (read once)."""
        if not hasattr(self, "_steps"):
            self._steps = [int(s) for s in self.group[self._index_array("steps")][:]]
        return self._steps

    @property
    def step_digits(self) -> int:
        """Digits of the table folders' steps: ``STEP_DIGITS`` (schema ≥ 5), 0 in older stores."""
        return STEP_DIGITS if self.meta.schema_version >= 5 else 0

    def _index_array(self, role: str) -> str:
        """The name of index array ``role`` (``steps``, ``examples``, ``eval_examples``) in this store's schema."""
        new, old = INDEX_ARRAYS[role]
        return new if self.meta.schema_version >= 5 else old

    @property
    def examples(self) -> list[int]:
        """Dataset indices of the sweep's examples."""
        return [int(e) for e in self.group[self._index_array("examples")][:]]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Pairs (i, j) of dataset indices in the canonical order."""
        return [(int(i), int(j)) for i, j in self.group["pairs"][:]]

    def array(self, name: str) -> zarr.Array:
        """The Zarr array ``name``; one error line when this store does not keep it."""
        if name in self.group:
            return self.group[name]
        if name in ("swaps", "swap_logit_deltas"):
            raise StoreKeyError(f"this store has no {name}", expected="a store run with effects including swap",
                                found=f"effects={self.meta.config.get('effects')}",
                                fix="run the sweep with effects=[bracket,swap]")
        if name in ("order1", "order2"):
            raise StoreKeyError(f"this store has no {name}", expected="a store run with field=optimizer",
                                found=f"field={self.meta.config.get('field', {}).get('name', 'sgd')}",
                                fix="run the sweep with field=optimizer")
        if name == "brackets" and self.layout.keeps_params and not self.layout.keeps_brackets:
            raise StoreKeyError("this store has no brackets", expected="a store run with effects including bracket",
                                found=f"effects={self.meta.config.get('effects')}",
                                fix="read its exact swaps (sweep.swap(...)), or re-run with effects=[bracket,swap]")
        if name in ("brackets", "gradients"):
            raise StoreKeyError(f"this store keeps no {name}", expected="a store run with storage.keep=all or globs",
                                found="storage.keep=summary", fix="use the tables (sweep.fits(), sweep.rms_table())")
        found = ("derived.eval_count=0" if name == "logit_deltas" and not self.layout.keeps_logits else
                 f"effects={self.meta.config.get('effects')} (the exact swaps' are swap_logit_deltas)"
                 if name == "logit_deltas" else
                 "a schema-4 store (g_i·g_j of each pair: the pairs table's grad_dot)" if name == "gram" else
                 f"a store of schema {self.meta.schema_version} (older lie-sweep)")
        raise StoreKeyError(f"this store has no {name}", expected=f"a store with {name}", found=found,
                            fix="re-run the sweep with them enabled")

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists now (listing caches of object stores are refreshed first)."""
        self._fresh(posixpath.dirname(path))
        return bool(self.fs.exists(path))

    def _discard(self, path: str) -> None:
        """Remove a file if it exists. Workers use it on a shard they are about to rewrite: a torn or
        corrupt one (from a killed writer) would otherwise be read back, and fail its checksum, by a
        partial-shard write."""
        discard(self.fs, path)

    def discard_files(self, paths: Sequence[str]) -> None:
        """Remove each of ``paths`` that exists."""
        for path in paths:
            self._discard(path)

    # -- data written by workers ------------------------------------------------------------
    def write_brackets(self, checkpoint: int, start: int, values: np.ndarray, array: str = "brackets") -> None:
        """Store brackets (or ``array`` order1 / order2) of pairs [start, start + len(values)) of
        ``checkpoint``: one task's shard."""
        self.layout.bracket_shard_of(checkpoint, start)
        if array not in self.pair_arrays:
            raise StoreError(f"this store keeps no {array}", expected="a store with storage.keep=all or globs"
                             + (" and field=optimizer" if array != "brackets" else ""),
                             found=f"storage.keep={self.meta.config.get('storage', {}).get('keep', 'all')}",
                             fix="write only what the store keeps")
        check_encodable(self.meta.codec, values, array)
        self._discard(self._bracket_file(checkpoint, start, array))
        stop = start + values.shape[0]
        if stop > self.layout.n_pairs or values.shape[1] != self.layout.n_params:
            raise StoreError("bracket block does not fit the store",
                             expected=f"at most {self.layout.n_pairs - start} × {self.layout.n_params}",
                             found=f"{values.shape}", fix="re-plan the sweep from the store's config")
        self.group[array][checkpoint, start:stop, :] = values

    def write_examples(self, checkpoint: int, block: int, gradients: np.ndarray | None, losses: np.ndarray) -> None:
        """Store example block ``block``'s gradients (block × D, kept tensors; None when none are kept) and
        losses (block,) at ``checkpoint``: its owner task's shard and chunk."""
        start, stop = self.layout.block_range(block)
        if len(losses) != stop - start:
            raise StoreError("example block does not fit the store", expected=f"{stop - start} examples",
                             found=str(len(losses)), fix="re-plan the sweep from the store's config")
        if self.layout.keeps_params:
            check_encodable(self.meta.codec, gradients, "gradients")
        for path in self._example_files(checkpoint, block).values():
            self._discard(path)
        if self.layout.keeps_params:
            self.group["gradients"][checkpoint, start:stop, :] = gradients
        self.group["losses"][checkpoint, start:stop] = losses

    def write_swaps(self, checkpoint: int, start: int, values: np.ndarray | None, logits: np.ndarray | None) -> None:
        """Store a task's exact swaps (K × pairs × D, kept tensors; None when none are kept) and their logit
        deltas (K × pairs × B × O; None without an evaluation batch) for pairs [start, ...) of ``checkpoint``."""
        files = self._swap_files(checkpoint, start)
        if not files:
            raise StoreError("this store keeps no swaps", expected="a store run with effects including swap",
                             found=f"effects={self.meta.config.get('effects')}", fix="write only what the store keeps")
        self.discard_files(list(files.values()))
        if values is not None and self.layout.keeps_params:
            check_encodable(self.meta.codec, values, "swaps")
            self.group["swaps"][checkpoint, :, start:start + values.shape[1], :] = values
        if logits is not None and self.layout.keeps_logits:
            self.group["swap_logit_deltas"][checkpoint, :, start:start + logits.shape[1]] = logits

    def write_logit_deltas(self, checkpoint: int, start: int, values: np.ndarray) -> None:
        """Store logit deltas (pairs × B × O) of pairs [start, start + len(values)) of ``checkpoint``."""
        self.layout.bracket_shard_of(checkpoint, start)
        self._discard(self._logit_file(checkpoint, start))
        self.group["logit_deltas"][checkpoint, start:start + values.shape[0]] = values

    def write_table_part(self, table: str, checkpoint: int, task_id: int, columns: Mapping[str, Any]) -> None:
        """Write task ``task_id``'s rows of ``table`` at ``checkpoint`` (replacing an earlier attempt's).

        The part's metadata says what its quantities are computed over (all parameters, see storage/README.md)."""
        write_part(self.fs, part_path(self.tree.tables, table, self.steps[checkpoint], task_id, self.step_digits),
                   columns,
                   self.tree.tmp, metadata=self.table_metadata)

    @property
    def table_metadata(self) -> dict[str, Any]:
        """What every table part states about itself: its quantities are over all D parameters."""
        n_all = sum(math.prod(e["shape"]) for e in self.meta.param_spec)
        return {"schema_version": SCHEMA_VERSION, "computed_over": "all parameters", "n_params": n_all,
                "n_params_stored": self.layout.n_params, "keep": self.meta.config.get("storage", {})
                .get("keep", "all")}

    def table_steps(self, table: str) -> list[int]:
        """Steps with at least one part of ``table``."""
        where = table_dir(self.tree.tables, table)
        self._fresh(where)
        if not self.fs.exists(where):
            return []
        steps = (step_of_folder(p) for p in self.fs.ls(where, detail=False))
        return sorted(s for s in steps if s is not None)

    def read_table(self, table: str, steps: Sequence[int] | None = None, tasks: Iterable[int] | None = None,
                   columns: Sequence[str] | None = None):
        """``table``'s rows (a pyarrow Table) at ``steps`` (all when None); reads only those folders, and
        of them only the parts of ``tasks`` when given (a task's part holds exactly its own rows).

        Only parts of completed tasks are read: a part left by a task that has no completion mark
        (killed before it) is ignored.
        """
        table_dir(self.tree.tables, table)  # an unknown table fails here, before any listing
        done = set(self.ledger.done_tasks())
        if tasks is not None:
            done &= set(tasks)
        paths = []
        for step in (self.table_steps(table) if steps is None else steps):
            where = self._step_folder(table, step)
            if where is None:
                continue
            paths += [p for p in sorted(self.fs.ls(where, detail=False)) if task_of_part(p) in done]
        return read_parts(self.fs, paths, columns)

    # -- the verify table: written whole by `lie-sweep verify`, not by tasks --------------------------
    @property
    def verify_path(self) -> str:
        """``tables/verify/verify.parquet``: the last verify run's rows of the expansion against real swaps
        (see jobs.results.verify)."""
        return self.verify_file("verify")

    def verify_file(self, name: str = "verify") -> str:
        """``tables/verify/NAME.parquet``: ``verify`` (the expansion against real swaps) or ``swaps`` (the stored
        exact swaps against torch.optim)."""
        if name not in ("verify", "swaps"):
            raise StoreError(f"unknown verify table {name!r}", expected="verify | swaps", found=repr(name),
                             fix="pick one of those")
        return posixpath.join(self.tree.tables, "verify", f"{name}.parquet")

    def write_verify(self, columns: Mapping[str, Any], metadata: Mapping[str, Any], name: str = "verify") -> None:
        """Replace verify table ``name`` (atomically)."""
        write_part(self.fs, self.verify_file(name), columns, self.tree.tmp, metadata=metadata)

    def read_verify(self, name: str = "verify"):
        """Verify table ``name`` (pyarrow), or None when ``verify`` has not written it on this store."""
        path = self.verify_file(name)
        self._fresh(posixpath.dirname(path))
        return read_parts(self.fs, [path]) if self.fs.exists(path) else None

    def _step_folder(self, table: str, step: int) -> str | None:
        """The folder of ``table`` at ``step`` that exists (``step-S``, or ``step=S`` in older stores)."""
        where = table_dir(self.tree.tables, table, step, self.step_digits)
        for folder in (where, where.replace("/step-", "/step=") if self.tree.legacy else None):
            if folder is not None:
                self._fresh(folder)
                if self.fs.exists(folder):
                    return folder
        return None

    def _fresh(self, path: str) -> None:
        """Forget cached listings under ``path`` (object-store filesystems cache them; others write here)."""
        self.fs.invalidate_cache(path)

    # -- sizes ---------------------------------------------------------------------------------
    def bytes_on_disk(self) -> int:
        """Bytes of every file under the store."""
        self._fresh(self.root)
        return int(sum(info["size"] for info in self.fs.find(self.root, detail=True).values()))

    def array_bytes_on_disk(self, names: Sequence[str] = ("brackets", "gradients", "losses")) -> int:
        """Bytes of the named arrays' files."""
        total = 0
        self._fresh(self.root)
        for name in names:
            where = posixpath.join(self.tree.arrays, name)
            if self.fs.exists(where):
                total += sum(info["size"] for info in self.fs.find(where, detail=True).values())
        return int(total)
