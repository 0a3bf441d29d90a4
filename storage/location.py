"""Where a store may be created, and what replacing one deletes (never a file lie-sweep did not write).

Every decision about a store path is made on its normalised form (:func:`normalise_store_path`): a path
that resolves onto an existing store is that store however it is spelled (``a/missing/../store``, a
symlink, ``file://``), and onto a folder of somebody else's files is refused the same way.
:func:`check_creatable` is cheap, so a run calls it before it trains or computes anything;
:meth:`storage.store.SweepStore.create` calls it again, then :func:`delete_own_entries` once it holds
the lock. The same rules hold on every fsspec filesystem.
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import Any, Mapping, Sequence

import fsspec

from .errors import StoreError, StoreExistsError, brief
from .lock import StoreLock
from .paths import StoreTree, detect
from .safety import refuse_unsafe_path

__all__ = ["normalise_store_path", "filesystem_of", "check_writable", "check_creatable", "refuse_foreign",
           "delete_own_entries"]


def normalise_store_path(path: str | os.PathLike) -> str:
    """The one spelling of a store location every decision is made on.

    A local path (or ``file://`` URL) becomes its absolute real path: ``~`` expanded, symlinks resolved and
    ``..`` applied the way the kernel will once missing folders exist (``/a/missing/../s`` is ``/a/s``). An
    fsspec URL keeps its protocol and bucket, with ``.``, ``..`` and repeated slashes of its key resolved; a
    key that climbs out of its bucket is one error line. An empty path stays empty (refused where it is
    judged: :func:`storage.safety.refuse_unsafe_path`)."""
    text = os.fspath(path).strip() if path is not None else ""
    if not text:
        return ""
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        protocol, rest = text.split("://", 1)
        key = rest.strip("/")
        if not key:
            return f"{protocol}://"
        clean = posixpath.normpath(key)
        if clean == ".." or clean.startswith("../"):
            raise StoreError(f"store URL {text} climbs out of its bucket", expected=f"{protocol}://BUCKET/FOLDER",
                             found=f"key {rest!r}", fix="drop the '..' from storage.path")
        return f"{protocol}://{'' if clean == '.' else clean}"
    return os.path.realpath(os.path.expanduser(text))


def filesystem_of(path: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, root path inside it) for a local path or an fsspec URL; one error line naming the package
    (and lie-sweep's extra) when the URL's filesystem is not installed."""
    try:
        fs, root = fsspec.core.url_to_fs(str(path), **dict(storage_options or {}))
    except ImportError as exc:
        scheme = str(path).split("://", 1)[0]
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}.get(scheme)
        raise StoreError(f"no filesystem for {scheme}:// installed", expected=f"the fsspec package for {scheme}://",
                         found=f"ImportError: {str(exc).splitlines()[0]}",
                         fix=f"pip install 'lie-sweep[{extra}]'" if extra else "install the fsspec implementation "
                             f"of {scheme}:// (see the fsspec documentation)") from None
    return fs, root.rstrip("/")


def check_writable(fs: fsspec.AbstractFileSystem, root: str, path: str) -> None:
    """Refuse a local store directory without write permission (checked by mode bits too, for root)."""
    if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return
    if not os.path.isdir(root):
        return
    mode = os.stat(root).st_mode
    if not os.access(root, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise StoreError(f"store directory {path} is read-only", expected="a writable directory",
                         found=f"mode {stat.filemode(mode)}", fix=f"chmod u+w {path}, or copy the store elsewhere")


def refuse_foreign(path: str, tree: StoreTree | None, entries: Sequence[str]) -> None:
    """Refuse a non-empty directory that is not a store, or a store holding files lie-sweep did not write."""
    names = sorted(posixpath.basename(e.rstrip("/")) for e in entries)
    if tree is None:
        raise StoreExistsError(f"store path {path} is a non-empty directory that is not a lie-sweep store",
                               expected="a new or empty directory, or a lie-sweep store",
                               found=f"{len(names)} entries: {brief(names, 4)}",
                               fix="choose another storage.path; lie-sweep never deletes files it did not write")
    foreign = [n for n in names if n not in tree.own_entries]
    if foreign:
        raise StoreExistsError(f"store {path} holds files lie-sweep did not write",
                               expected=f"only lie-sweep's own entries ({brief(sorted(tree.own_entries), 4)})",
                               found=brief(foreign, 4), fix="move them out of the store, or choose another "
                                                            "storage.path; they are never deleted")


def check_creatable(path: str, *, overwrite: bool = False, protect: Sequence[str] = (), command: str = "run",
                    storage_options: Mapping[str, Any] | None = None) -> StoreTree | None:
    """Refuse, in one line, a location :meth:`create` must not write (see there); cheap, so a run
    calls it before training or computing anything. Returns the existing store that ``overwrite``
    will replace, or None for a new or empty directory."""
    path = normalise_store_path(path)
    refuse_unsafe_path(path, protect)
    fs, root = filesystem_of(path, storage_options)
    if not fs.exists(root):
        return None
    if fs.isfile(root):
        raise StoreError("store path is a file", expected="a directory or a new path", found=f"file {path}",
                         fix="choose another storage.path")
    check_writable(fs, root, path)
    entries = fs.ls(root, detail=False)
    if not entries:
        return None
    old = detect(fs, root)
    refuse_foreign(path, old, entries)
    probe = StoreLock(fs, old.ledger, command=command)
    holder = probe.holder()
    if holder is not None and not probe.is_stale(holder):
        probe.acquire()  # raises the one-line "in use" error naming the holder
    if not overwrite:
        raise StoreExistsError(f"store path {path} already holds a sweep store", expected="a new or empty path",
                               found="a lie-sweep store", fix="choose another storage.path, resume it with "
                                                              "`lie-sweep resume`, or set storage.overwrite=true "
                                                              "to replace it")
    return old


def delete_own_entries(fs: fsspec.AbstractFileSystem, tree: StoreTree, keep: str) -> None:
    """Delete what lie-sweep wrote at ``tree`` (never another file), except the file ``keep``."""
    for entry in fs.ls(tree.root, detail=False):
        name = posixpath.basename(entry.rstrip("/"))
        if name not in tree.own_entries:
            continue
        if posixpath.normpath(entry) == posixpath.normpath(tree.ledger) and not tree.legacy:
            for sub in fs.ls(entry, detail=False):
                if posixpath.normpath(sub) != posixpath.normpath(keep):
                    fs.rm(sub, recursive=True)
        elif posixpath.normpath(entry) != posixpath.normpath(keep):
            fs.rm(entry, recursive=True)
