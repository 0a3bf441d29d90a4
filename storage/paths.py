"""Where a store's parts live on disk, and how a directory is recognised as a store. Pure but for
:func:`detect`, which reads one or two small files.

A store (schema ≥ 3) is a directory with four entries, so that each part is readable by the tool
made for it:

    STORE/
      lie-sweep.json      marker, written first: {"format": "lie-sweep", "schema_version": 5, "arrays":
                          "arrays.zarr", "tables": "tables", "ledger": "ledger"}; checked on open
      arrays.zarr/        a pure Zarr v3 group: the arrays, and the sweep's metadata in its attributes
      tables/NAME/step-S/part-T.parquet     summary tables (Parquet; see storage.tables)
      ledger/             bookkeeping: lock.json, marks/, failures/, runs/, tmp/ (files being written)

Stores of schema ≤ 2 kept everything inside the Zarr group itself (``STORE/zarr.json``, arrays,
``marks/``, ``failures/``, ``runs/``, ``tables/``, ``lock.json`` side by side): :func:`detect`
recognises them as ``legacy`` trees so that they stay readable.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

import fsspec

__all__ = ["MARKER", "ARRAYS", "TABLES_DIR", "LEDGER", "META_KEY", "StoreTree", "detect", "enclosing_store",
           "has_metadata", "marker_record", "read_marker", "marker_problem"]

MARKER = "lie-sweep.json"
ARRAYS = "arrays.zarr"
TABLES_DIR = "tables"
LEDGER = "ledger"
META_KEY = "lie_sweep"  # the Zarr group attribute holding the sweep's metadata
FORMAT = "lie-sweep"

_LEGACY_ENTRIES = frozenset({"zarr.json", "brackets", "gradients", "losses", "logit_deltas", "gram", "pairs",
                             "examples", "eval_examples", "steps", "tables", "marks", "failures", "runs", "lock.json"})


@dataclass(frozen=True)
class StoreTree:
    """The paths of one store's parts under ``root`` (a path inside an fsspec filesystem)."""

    root: str
    legacy: bool = False

    @property
    def arrays(self) -> str:
        """The Zarr group."""
        return self.root if self.legacy else posixpath.join(self.root, ARRAYS)

    @property
    def tables(self) -> str:
        """The Parquet tables' folder."""
        return posixpath.join(self.root, TABLES_DIR)

    @property
    def ledger(self) -> str:
        """Lock, marks, failures, run records."""
        return self.root if self.legacy else posixpath.join(self.root, LEDGER)

    @property
    def tmp(self) -> str:
        """Where files are written before being renamed into place (outside every data folder)."""
        return posixpath.join(self.ledger, "tmp")

    @property
    def marker(self) -> str:
        """The marker file written first at creation."""
        return posixpath.join(self.root, MARKER)

    @property
    def own_entries(self) -> frozenset[str]:
        """The names lie-sweep writes at the root; anything else there is somebody else's."""
        return _LEGACY_ENTRIES if self.legacy else frozenset({MARKER, ARRAYS, TABLES_DIR, LEDGER})

    def relative(self, path: str) -> str:
        """``path`` relative to the root (what marks record, so that a moved store still verifies)."""
        return posixpath.relpath(path, self.root)

    def absolute(self, relative: str) -> str:
        """The path of ``relative`` (as marks record it) under the root."""
        return posixpath.join(self.root, relative)


def _json(fs: fsspec.AbstractFileSystem, path: str) -> dict | None:
    try:
        value = json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError, OSError):
        return None
    return value if isinstance(value, dict) else None


def has_metadata(fs: fsspec.AbstractFileSystem, group: str) -> bool:
    """Whether the Zarr group at ``group`` holds a sweep's metadata (written last at creation)."""
    attributes = (_json(fs, posixpath.join(group, "zarr.json")) or {}).get("attributes") or {}
    return META_KEY in attributes


def detect(fs: fsspec.AbstractFileSystem, root: str) -> StoreTree | None:
    """The store at ``root`` (schema 3 by its marker, older by the group's metadata), or None.

    A schema-3 store whose creation was interrupted has its marker but no metadata yet: it is
    recognised (so ``storage.overwrite=true`` may replace it) but cannot be opened.
    """
    marker = _json(fs, posixpath.join(root, MARKER))
    if marker is not None and marker.get("format") == FORMAT:
        return StoreTree(root)
    if has_metadata(fs, root):
        return StoreTree(root, legacy=True)
    return None


def enclosing_store(fs: fsspec.AbstractFileSystem, root: str, levels: int = 3) -> str | None:
    """The root of the lie-sweep store (found by its marker) that ``root`` lies inside, up to ``levels``
    folders up; None when there is none (``root`` itself being a store does not count)."""
    here = root.rstrip("/")
    for _ in range(levels):
        parent = posixpath.dirname(here)
        if not parent or parent == here:
            return None
        marker = _json(fs, posixpath.join(parent, MARKER))
        if marker is not None and marker.get("format") == FORMAT:
            return parent
        here = parent
    return None


def read_marker(fs: fsspec.AbstractFileSystem, root: str) -> dict | None:
    """The store's marker (``lie-sweep.json``) as written, or None where it is missing or not JSON."""
    return _json(fs, posixpath.join(root, MARKER))


def marker_problem(marker: dict | None, schema_version: int) -> str | None:
    """What is wrong with a store's marker next to its metadata's ``schema_version`` (None: nothing): the
    marker must name this format, the same schema, and the entries this lie-sweep reads (arrays, tables,
    ledger: markers of schema ≥ 3 name them; a marker naming others describes a layout this reader does not
    know)."""
    if marker is None or marker.get("format") != FORMAT:
        return f"{MARKER} is missing or not lie-sweep's"
    if marker.get("schema_version") != schema_version:
        return (f"{MARKER} says schema {marker.get('schema_version')!r}, the group's metadata schema "
                f"{schema_version}")
    for key, expected in (("arrays", ARRAYS), ("tables", TABLES_DIR), ("ledger", LEDGER)):
        if key in marker and marker[key] != expected:
            return f"{MARKER} names {key} {marker[key]!r}, this lie-sweep reads {expected!r}"
    return None


def marker_record(schema_version: int) -> dict:
    """The marker's contents."""
    return {"format": FORMAT, "schema_version": schema_version, "arrays": ARRAYS, "tables": TABLES_DIR,
            "ledger": LEDGER}
