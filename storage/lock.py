"""One driver per store: a lock file ``lock.json`` in the store's ledger folder.

The lock records its holder (host, pid, start time) and a heartbeat the holder refreshes. It is
created exclusively (``open(..., "xb")``), so of two drivers racing for it exactly one wins. A lock
is stale when its holder is gone: on the same host, its pid no longer runs; on another host, its
heartbeat is older than ``stale_after`` seconds. A stale lock is removed and taken, again
exclusively, so two drivers taking over the same stale lock cannot both succeed.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import time
import uuid
from typing import Any

import fsspec

from .atomic import write_atomic
from .errors import StoreError

__all__ = ["StoreLock", "StoreLockedError", "pid_alive"]

LOCK_NAME = "lock.json"


class StoreLockedError(StoreError):
    """Another driver holds the store."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class StoreLock:
    """Exclusive hold of a store by one driver; use as a context manager or acquire/release."""

    def __init__(self, fs: fsspec.AbstractFileSystem, folder: str, *, command: str = "run",
                 stale_after: float = 120.0, heartbeat_every: float = 15.0) -> None:
        self.fs, self.folder = fs, folder
        self.path = posixpath.join(folder, LOCK_NAME)
        self.command = command
        self.stale_after = stale_after
        self.heartbeat_every = heartbeat_every
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "heartbeat": time.time(),
                "command": self.command, "token": self.token}

    def holder(self) -> dict[str, Any] | None:
        """The current lock record, or None when the store is not locked."""
        try:
            return json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {"host": "?", "pid": -1, "started": 0.0, "heartbeat": 0.0, "command": "?", "token": "torn"}

    def is_stale(self, record: dict[str, Any]) -> bool:
        """Whether ``record``'s holder is gone (see the module docstring)."""
        if record.get("token") == "torn":
            return True
        if record.get("host") == socket.gethostname():
            return not pid_alive(int(record.get("pid", -1)))
        return time.time() - float(record.get("heartbeat", 0.0)) > self.stale_after

    def _create(self) -> bool:
        record = self._record()
        try:
            with self.fs.open(self.path, "xb") as f:
                f.write(json.dumps(record).encode())
            return True
        except FileExistsError:
            return False
        except (NotImplementedError, ValueError):  # filesystems without exclusive create
            if self.fs.exists(self.path):
                return False
            self.fs.pipe_file(self.path, json.dumps(record).encode())
            time.sleep(0.2)
            current = self.holder()
            return bool(current and current.get("token") == self.token)

    def acquire(self) -> "StoreLock":
        """Take the lock, taking over a stale one; raise a one-line error naming a live holder."""
        self.fs.makedirs(self.folder, exist_ok=True)
        for _ in range(3):
            if self._create():
                self._start_heartbeat()
                return self
            record = self.holder()
            if record is None:
                continue  # released meanwhile
            if not self.is_stale(record):
                started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record.get("started", 0))))
                raise StoreLockedError(
                    "store is in use by another driver", expected="no other run, resume or check on this store",
                    found=f"`{record.get('command')}` by pid {record.get('pid')} on {record.get('host')}, "
                          f"started {started}",
                    fix="wait for it to finish or stop it; a dead driver's lock is taken over automatically")
            try:
                self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass
        raise StoreLockedError("cannot take the store's lock", expected="an exclusive lock file",
                               found="another driver kept taking it", fix="retry in a moment")

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat_every):
                record = self.holder()
                if not record or record.get("token") != self.token:
                    return  # taken from us: stop touching it
                record["heartbeat"] = time.time()
                write_atomic(self.fs, self.path, json.dumps(record).encode(), posixpath.join(self.folder, "tmp"))

        self._thread = threading.Thread(target=beat, name="lie-sweep-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        record = self.holder()
        if record and record.get("token") == self.token:
            try:
                self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
