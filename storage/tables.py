"""Parquet summary tables of a sweep: small, loadable whole, partitioned by checkpoint step.

Each table lives under ``tables/NAME/step=S/part-TTTTTT.parquet``: one file per task (T: the task
id that wrote it), so a task owns its files as it owns its shards, a retried task overwrites
them, and reading one checkpoint lists and reads one folder. Every file also holds ``step`` as a
column, so parts concatenate without parsing folder names.

Tables (one row per …):

    pairs        checkpoint × pair             step, pair, i, j, norm, rms, c, log_c, r2, n_tensors,
                                               logit_rms (NaN without logit deltas)
    pair_rms     checkpoint × pair × tensor    step, pair, i, j, tensor, rms_bracket, rms_grad_i, rms_grad_j
    examples     checkpoint × example          step, example, loss, grad_norm
    example_rms  checkpoint × example × tensor step, example, tensor, rms_grad
    checkpoints  checkpoint                    step, effective_rank, mean_loss, mean_grad_norm
"""

from __future__ import annotations

import io
import posixpath
from typing import Any, Iterable, Mapping

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import StoreError

__all__ = ["TABLES", "TABLES_DIR", "table_dir", "part_path", "task_of_part", "write_part", "read_parts",
           "step_of_folder"]

TABLES_DIR = "tables"
TABLES = ("pairs", "pair_rms", "examples", "example_rms", "checkpoints")


def table_dir(root: str, table: str, step: int | None = None) -> str:
    """``table``'s folder, or its folder of checkpoint ``step``; an unknown table is a one-line error."""
    if table not in TABLES:
        raise StoreError(f"unknown table {table!r}", expected=" | ".join(TABLES), found=repr(table),
                         fix="pick one of those")
    where = posixpath.join(root, TABLES_DIR, table)
    return where if step is None else posixpath.join(where, f"step={int(step)}")


def part_path(root: str, table: str, step: int, part: int) -> str:
    """Where task ``part`` writes its rows of ``table`` at checkpoint ``step``."""
    return posixpath.join(table_dir(root, table, step), f"part-{int(part):06d}.parquet")


def task_of_part(path: str) -> int | None:
    """The task id of a part file written by :func:`part_path`, or None for any other file."""
    name = posixpath.basename(path)
    if not (name.startswith("part-") and name.endswith(".parquet")):
        return None
    try:
        return int(name[len("part-"):-len(".parquet")])
    except ValueError:
        return None


def step_of_folder(path: str) -> int | None:
    """The step of a ``step=S`` folder, or None for any other name."""
    name = posixpath.basename(path.rstrip("/"))
    if not name.startswith("step="):
        return None
    try:
        return int(name[5:])
    except ValueError:
        return None


def write_part(fs: fsspec.AbstractFileSystem, path: str, columns: Mapping[str, Any]) -> None:
    """Write one part (zstd-compressed Parquet), in full or not at all (written beside, then renamed)."""
    buffer = io.BytesIO()
    pq.write_table(pa.table(dict(columns)), buffer, compression="zstd")
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fs.pipe_file(tmp, buffer.getvalue())
    fs.mv(tmp, path)


def read_parts(fs: fsspec.AbstractFileSystem, paths: Iterable[str]) -> pa.Table | None:
    """The rows of the given parts, concatenated in order (None when there are none)."""
    tables = [pq.read_table(io.BytesIO(fs.cat_file(p))) for p in paths]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")
