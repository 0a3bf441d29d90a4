"""Hostile stores for tests: a store's metadata edited the way a colleague's (or an attacker's) copy could be."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import Any, Callable


class _Touch:
    """Unpickling this runs ``touch PATH`` (what a pickled payload in a store would do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)


def pickle_chain(canary: Path) -> dict[str, Any]:
    """The data node of issue 30: ``torch.load`` (weights_only off) of base64 bytes that run ``touch CANARY``."""
    blob = base64.b64encode(pickle.dumps(_Touch(str(canary)))).decode()
    return {"_target_": "torch.load", "weights_only": False,
            "f": {"_target_": "io.BytesIO", "initial_bytes": {"_target_": "base64.b64decode", "s": blob}}}


def edit_meta(store: Path, change: Callable[[dict], None]) -> None:
    """Apply ``change`` to the store's metadata (the ``lie_sweep`` attribute of ``arrays.zarr/zarr.json``)."""
    path = store / "arrays.zarr" / "zarr.json"
    record = json.loads(path.read_text())
    change(record["attributes"]["lie_sweep"])
    path.write_text(json.dumps(record))


def plant_config(store: Path, **nodes: Any) -> None:
    """Replace config nodes (``data=...``, ``model=...``, ``cluster=...``) of the store's recorded config."""
    def change(meta: dict) -> None:
        meta["config"].update(nodes)
    edit_meta(store, change)
