"""Parquet summary tables of a sweep: small, loadable whole, partitioned by checkpoint step.

Each table lives under ``tables/NAME/step-SSSSSSSSSS/part-TTTTTT.parquet``: one file per task (T: the
task id that wrote it; S the checkpoint's step in ten digits, so that folders sort as their steps do), so
a task owns its files as it owns its shards, a retried task overwrites them, and reading one checkpoint
lists and reads one folder. Every file holds ``step`` as a column, and the folder is named ``step-S``,
not Hive's ``step=S``: a Hive name would make pandas, pyarrow, polars and duckdb add a second ``step``
column of another type from the folder name. So each table folder reads whole with any of them, with the
same rows and dtypes, in the order of the steps:

    pandas.read_parquet("STORE/tables/pairs")
    pyarrow.dataset.dataset("STORE/tables/pairs").to_table()
    polars.read_parquet("STORE/tables/pairs/*/*.parquet")
    duckdb.sql("select * from read_parquet('STORE/tables/pairs/*/*.parquet')")

A plain reader reads every part present; lie-sweep's reader only those of completed tasks (a part
of a task killed before its completion mark may be there until the task is recomputed).
Files are written in the store's ``ledger/tmp`` and renamed into place, so no temporary file ever
sits in a table folder. Stores of schema 3–4 named the folders ``step-S`` (unpadded: ``step-100`` sorted
before ``step-20``), of schema ≤ 2 ``step=S``; they are still read.

Each part's Parquet schema metadata ``lie_sweep`` (JSON) says what its quantities are computed
over: all parameters of the model, also where ``storage.keep`` stores only some tensors' values.

Tables (one row per …):

    pairs        checkpoint × pair             step, pair, i, j, norm, rms, c, log_c, r2, n_tensors,
                                               logit_rms (NaN without logit deltas), grad_dot (g_i · g_j)
    pair_rms     checkpoint × pair × tensor    step, pair, i, j, tensor, rms_bracket, rms_grad_i, rms_grad_j
    examples     checkpoint × example          step, example, loss, grad_norm
    example_rms  checkpoint × example × tensor step, example, tensor, rms_grad

Schema ≤ 3 stores also hold ``checkpoints`` (step, effective_rank, mean_loss, mean_grad_norm), which
needed every example's gradient in one task; schema 4 computes mean loss and gradient norm per
checkpoint from ``examples`` when read, and g_i · g_j per pair is ``pairs.grad_dot``.
"""

from __future__ import annotations

import io
import json
import posixpath
from typing import Any, Iterable, Mapping, Sequence

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import write_atomic
from .errors import StoreError

__all__ = ["TABLES", "OLDER_TABLES", "table_dir", "part_path", "task_of_part", "write_part", "read_parts",
           "step_of_folder", "part_metadata", "STEP_DIGITS"]

TABLES = ("pairs", "pair_rms", "examples", "example_rms")
OLDER_TABLES = ("checkpoints",)  # schema <= 3 stored it; schema 4 derives it on read (Sweep.checkpoint_table)
STEP_DIGITS = 10  # schema >= 5: step-0000000100, so a listing's order is the steps' (0 in older stores: step-100)


def table_dir(tables: str, table: str, step: int | None = None, digits: int = STEP_DIGITS) -> str:
    """``table``'s folder under the store's ``tables`` folder, or its folder of checkpoint ``step`` (zero-padded
    to ``digits``); an unknown table is a one-line error."""
    if table not in TABLES + OLDER_TABLES:
        raise StoreError(f"unknown table {table!r}", expected=" | ".join(TABLES), found=repr(table),
                         fix="pick one of those")
    where = posixpath.join(tables, table)
    return where if step is None else posixpath.join(where, f"step-{int(step):0{digits}d}")


def part_path(tables: str, table: str, step: int, part: int, digits: int = STEP_DIGITS) -> str:
    """Where task ``part`` writes its rows of ``table`` at checkpoint ``step``."""
    return posixpath.join(table_dir(tables, table, step, digits), f"part-{int(part):06d}.parquet")


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
    """The step of a ``step-S`` folder (``step=S`` in stores of schema ≤ 2), or None for any other name."""
    name = posixpath.basename(path.rstrip("/"))
    if not name.startswith(("step-", "step=")):
        return None
    try:
        return int(name[5:])
    except ValueError:
        return None


def part_metadata(metadata: Mapping[str, Any] | None) -> dict[bytes, bytes] | None:
    """Parquet schema metadata holding ``metadata`` as JSON under the key ``lie_sweep``."""
    return None if not metadata else {b"lie_sweep": json.dumps(dict(metadata), sort_keys=True).encode()}


def write_part(fs: fsspec.AbstractFileSystem, path: str, columns: Mapping[str, Any], tmp_dir: str,
               metadata: Mapping[str, Any] | None = None) -> None:
    """Write one part (snappy-compressed Parquet, ``metadata`` in its schema), in full or not at all
    (written in ``tmp_dir``, then renamed into place). Snappy: zstd cost 1.45 ms against 0.55 ms for a 64-row part
    of 12 columns, twice per task (benchmarks/README.md, *Overhead per task*); any Parquet reader reads either."""
    buffer = io.BytesIO()
    table = pa.table(dict(columns))
    if metadata:
        table = table.replace_schema_metadata(part_metadata(metadata))
    pq.write_table(table, buffer, compression="snappy")
    write_atomic(fs, path, buffer.getvalue(), tmp_dir)


def read_parts(fs: fsspec.AbstractFileSystem, paths: Iterable[str],
               columns: Sequence[str] | None = None) -> pa.Table | None:
    """The rows of the given parts, concatenated in order (None when there are none); read by 8 threads (pyarrow
    and file reads release the GIL: a 10⁶-pair store's 245 parts of a table read in about half the time)."""
    from concurrent.futures import ThreadPoolExecutor

    paths = list(paths)

    def read(path: str) -> pa.Table:
        return pq.read_table(io.BytesIO(fs.cat_file(path)), columns=None if columns is None else list(columns))

    if len(paths) < 8:
        tables = [read(p) for p in paths]
    else:
        with ThreadPoolExecutor(8) as pool:
            tables = list(pool.map(read, paths))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")
