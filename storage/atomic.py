"""Whole-or-nothing file writes and content hashes, on any fsspec filesystem.

A file is written under a temporary name in a folder of its own (the store's ``ledger/tmp``, never
a data folder, so that a reader listing ``tables/`` never meets a half-written or abandoned file),
then renamed into place: a reader sees the old file, the new one, or none, never a torn one.
"""

from __future__ import annotations

import hashlib
import posixpath
import uuid

import fsspec

__all__ = ["write_atomic", "file_digest", "discard"]


def write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes, tmp_dir: str) -> None:
    """Write ``data`` to ``path``: first to a unique file in ``tmp_dir``, then renamed into place; a write that
    fails (a full disk) leaves neither file."""
    fs.makedirs(tmp_dir, exist_ok=True)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = posixpath.join(tmp_dir, f"{uuid.uuid4().hex}.tmp")
    try:
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    except BaseException:  # a full disk, an interrupt: no file is left behind in tmp_dir
        try:
            fs.rm_file(tmp)
        except (FileNotFoundError, OSError):
            pass
        raise


def discard(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Remove the file ``path`` if it exists."""
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass


def file_digest(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Hex SHA-256 of a file's bytes (what a completion mark records and ``check`` compares)."""
    return hashlib.sha256(fs.cat_file(path)).hexdigest()
