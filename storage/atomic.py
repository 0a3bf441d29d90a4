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


_MADE: set[tuple[int, str]] = set()   # (filesystem, folder) this process made or found: no makedirs per file


def _folder(fs: fsspec.AbstractFileSystem, folder: str, again: bool = False) -> None:
    key = (id(fs), folder)
    if again or key not in _MADE:
        fs.makedirs(folder, exist_ok=True)
        _MADE.add(key)


def write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes, tmp_dir: str) -> None:
    """Write ``data`` to ``path``: first to a unique file in ``tmp_dir``, then renamed into place; a write that
    fails (a full disk) leaves neither file. Folders are made once per process (again if one was removed since)."""
    tmp = posixpath.join(tmp_dir, f"{uuid.uuid4().hex}.tmp")
    try:
        for attempt in (False, True):
            _folder(fs, tmp_dir, attempt)
            _folder(fs, posixpath.dirname(path), attempt)
            try:
                fs.pipe_file(tmp, data)
                fs.mv(tmp, path)
                break
            except FileNotFoundError:
                if attempt:
                    raise
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
