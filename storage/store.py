"""The sweep store: one Zarr v3 group per sweep, at a local path or an fsspec URL.

Writers: the driver creates the store (metadata, pair table, examples, steps) and writes
completion marks; each worker writes only the shards its tasks own (see :mod:`storage.layout`).
Marks are small JSON files ``marks/task-NNNNNN.json`` written after a task's data is stored; a
task without a mark is not done, whatever its shards hold.
"""

from __future__ import annotations

import json
import posixpath
import time
from typing import Any, Mapping, Sequence

import fsspec
import numpy as np
import zarr

from .codecs import compressors_for
from .errors import NotASweepError, StoreError, StoreExistsError
from .layout import META_KEY, SCHEMA_VERSION, StoreLayout

__all__ = ["SweepStore", "filesystem_of"]

MARKS_DIR = "marks"


def filesystem_of(path: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, root path inside it) for a local path or an fsspec URL."""
    fs, root = fsspec.core.url_to_fs(str(path), **dict(storage_options or {}))
    return fs, root.rstrip("/")


def _is_sweep(fs: fsspec.AbstractFileSystem, root: str) -> bool:
    meta = posixpath.join(root, "zarr.json")
    if not fs.exists(meta):
        return False
    try:
        return META_KEY in json.loads(fs.cat_file(meta)).get("attributes", {})
    except (ValueError, OSError):
        return False


class SweepStore:
    """Read/write access to one sweep store. Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: str, group: zarr.Group, storage_options: Mapping[str, Any] | None = None) -> None:
        self.path = str(path)
        self.group = group
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = filesystem_of(self.path, self.storage_options)
        self.meta: dict[str, Any] = dict(group.attrs[META_KEY])
        self.layout = StoreLayout(**self.meta["layout"])

    # -- creation and opening ---------------------------------------------------------------
    @classmethod
    def create(cls, path: str, *, layout: StoreLayout, meta: Mapping[str, Any], pairs: np.ndarray,
               examples: Sequence[int], steps: Sequence[int], dtype: str = "float32", codec: str = "lossless",
               level: int = 3, overwrite: bool = False,
               storage_options: Mapping[str, Any] | None = None) -> "SweepStore":
        """Create an empty store with its metadata, pair table, examples and steps.

        Refuses an existing store or non-empty directory unless ``overwrite``, which deletes it.
        """
        fs, root = filesystem_of(path, storage_options)
        if fs.exists(root):
            if fs.isfile(root):
                raise StoreError("store path is a file", expected="a directory or a new path", found=f"file {path}",
                                 fix="choose another storage.path")
            if fs.ls(root) and not overwrite:
                what = "a sweep store" if _is_sweep(fs, root) else "a non-empty directory"
                raise StoreExistsError(f"store path {path} already holds {what}", expected="a new or empty path",
                                       found=what, fix="choose another storage.path, or set storage.overwrite=true "
                                                      "to delete it")
            if overwrite:
                fs.rm(root, recursive=True)
        compressors = compressors_for(codec, level)
        try:
            group = zarr.open_group(str(path), mode="w", zarr_format=3, storage_options=storage_options or None)
        except OSError as exc:
            raise StoreError(f"cannot create store at {path}", expected="a writable location",
                             found=str(exc).splitlines()[0], fix="check permissions and the path") from None
        for name, spec in (("brackets", layout.brackets()), ("gradients", layout.gradients())):
            group.create_array(name, shape=spec["shape"], chunks=spec["chunks"], shards=spec["shards"], dtype=dtype,
                               compressors=compressors, fill_value=0.0,
                               dimension_names=("checkpoint", "pair" if name == "brackets" else "example", "param"))
        spec = layout.losses()
        group.create_array("losses", shape=spec["shape"], chunks=spec["chunks"], dtype=dtype,
                           compressors=compressors, fill_value=0.0, dimension_names=("checkpoint", "example"))
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        group.create_array("pairs", data=pairs, chunks=(max(1, min(len(pairs), 1 << 16)), 2),
                           dimension_names=("pair", "side"))
        group.create_array("examples", data=np.asarray(examples, dtype=np.int64), dimension_names=("example",))
        group.create_array("steps", data=np.asarray(steps, dtype=np.int64), dimension_names=("checkpoint",))
        full_meta = dict(meta)
        full_meta.update({"schema_version": SCHEMA_VERSION, "layout": layout.to_dict(), "dtype": dtype,
                          "codec": codec, "level": level, "created": time.time()})
        group.attrs[META_KEY] = full_meta  # written last: a store without it is not a sweep
        return cls(path, group, storage_options)

    @classmethod
    def open(cls, path: str, mode: str = "r", storage_options: Mapping[str, Any] | None = None) -> "SweepStore":
        """Open an existing store (``mode`` "r" or "r+"); a path that holds no sweep is one error line."""
        fs, root = filesystem_of(path, storage_options)
        if not _is_sweep(fs, root):
            found = "no such path" if not fs.exists(root) else ("a file" if fs.isfile(root) else "no lie-sweep metadata")
            raise NotASweepError(f"{path} is not a lie-sweep store", expected="a store written by `lie-sweep run`",
                                 found=found, fix="pass the storage.path a sweep was run with")
        group = zarr.open_group(str(path), mode=mode, zarr_format=3, storage_options=storage_options or None)
        version = group.attrs[META_KEY].get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StoreError(f"store {path} has a newer schema", expected=f"schema version <= {SCHEMA_VERSION}",
                             found=str(version), fix="upgrade lie-sweep to read it")
        return cls(path, group, storage_options)

    # -- data written by workers ------------------------------------------------------------
    def write_brackets(self, checkpoint: int, start: int, values: np.ndarray) -> None:
        """Store brackets of pairs [start, start + len(values)) of ``checkpoint``: one task's shard."""
        self.layout.bracket_shard_of(checkpoint, start)
        stop = start + values.shape[0]
        if stop > self.layout.n_pairs or values.shape[1] != self.layout.n_params:
            raise StoreError("bracket block does not fit the store",
                             expected=f"at most {self.layout.n_pairs - start} × {self.layout.n_params}",
                             found=f"{values.shape}", fix="re-plan the sweep from the store's config")
        self.group["brackets"][checkpoint, start:stop, :] = values

    def write_examples(self, checkpoint: int, gradients: np.ndarray, losses: np.ndarray) -> None:
        """Store every example's gradient (E × D) and loss (E,) at ``checkpoint``."""
        self.group["gradients"][checkpoint, :, :] = gradients
        self.group["losses"][checkpoint, :] = losses

    # -- completion marks, written by the driver only -------------------------------------------
    def _mark_path(self, task_id: int) -> str:
        return posixpath.join(self.root, MARKS_DIR, f"task-{task_id:06d}.json")

    def mark_done(self, task_id: int, info: Mapping[str, Any]) -> None:
        """Record that task ``task_id``'s data is durably written (write, then rename into place)."""
        final = self._mark_path(task_id)
        tmp = final + ".tmp"
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        self.fs.pipe_file(tmp, json.dumps(dict(info), sort_keys=True).encode())
        self.fs.mv(tmp, final)

    def done_tasks(self) -> dict[int, dict[str, Any]]:
        """{task id: mark} for every task with a readable completion mark."""
        marks_dir = posixpath.join(self.root, MARKS_DIR)
        if not self.fs.exists(marks_dir):
            return {}
        done = {}
        for path in self.fs.ls(marks_dir, detail=False):
            name = posixpath.basename(path)
            if not (name.startswith("task-") and name.endswith(".json")):
                continue
            try:
                done[int(name[5:-5])] = json.loads(self.fs.cat_file(path))
            except (ValueError, OSError):
                continue  # a torn mark counts as not done
        return done

    # -- sizes ---------------------------------------------------------------------------------
    def bytes_on_disk(self) -> int:
        """Bytes of every file under the store."""
        return int(sum(info["size"] for info in self.fs.find(self.root, detail=True).values()))

    def raw_bytes(self) -> int:
        """Bytes the parameter-sized arrays would take uncompressed."""
        item = np.dtype(self.meta["dtype"]).itemsize
        return int(sum(np.prod(self.group[name].shape) * item for name in ("brackets", "gradients")))
