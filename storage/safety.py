"""Store locations that are never written: refused before anything is trained, created or deleted.

``storage.overwrite=true`` deletes a store's contents, so a store path must never be one whose
deletion costs a user their own files: an empty path, the current directory or one containing it,
a filesystem (or bucket) root, the home directory, or a directory holding the sweep's checkpoints.
"""

from __future__ import annotations

import os
from typing import Sequence

from .errors import StoreError

__all__ = ["refuse_unsafe_path"]


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or lies under it (both absolute and resolved)."""
    try:
        return os.path.commonpath([path, directory]) == directory
    except ValueError:  # different drives
        return False


def _refuse(path: str, found: str, fix: str = "set storage.path to a new directory of its own, "
                                                "e.g. storage.path=lie-sweep-out/sweep") -> StoreError:
    return StoreError(f"refusing store path {path!r}", expected="a directory of the store's own", found=found,
                      fix=fix)


def refuse_unsafe_path(path: str, protect: Sequence[str | os.PathLike] = ()) -> None:
    """Raise a one-line :class:`StoreError` when ``path`` must never hold a store (see the module docstring).

    ``protect``: files or directories the store must not contain (the sweep's checkpoints). For an
    fsspec URL only the bucket root is refused; local paths are resolved (symlinks, ``..``, ``~``).
    """
    text = str(path).strip() if path is not None else ""
    if not text:
        raise _refuse(text, "an empty path, which means the current directory")
    if "://" in text and not text.startswith("file://"):
        protocol, rest = text.split("://", 1)
        if not rest.strip("/") or "/" not in rest.strip("/"):
            raise _refuse(text, f"the root of {protocol}://{rest.strip('/')}",
                          fix=f"add a folder, e.g. storage.path={protocol}://{rest.strip('/') or 'bucket'}/sweep")
        return
    local = os.path.realpath(os.path.expanduser(text[len("file://"):] if text.startswith("file://") else text))
    cwd = os.path.realpath(os.getcwd())
    home = os.path.realpath(os.path.expanduser("~"))
    if local == os.path.dirname(local):
        raise _refuse(text, "a filesystem root")
    if local == cwd:
        raise _refuse(text, "the current directory")
    if _inside(cwd, local):
        raise _refuse(text, f"a directory containing the current directory ({cwd})")
    if local == home:
        raise _refuse(text, "your home directory")
    for item in protect:
        held = os.path.realpath(os.path.expanduser(os.fspath(item)))
        if _inside(held, local):
            raise _refuse(text, f"a directory containing the sweep's checkpoints ({held})",
                          fix="keep the store and the checkpoints apart, e.g. storage.path=lie-sweep-out/sweep")
