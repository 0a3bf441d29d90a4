"""Lazy, read-only access to a sweep store, in numpy (no torch).

``open_sweep(path)`` reads only metadata; each call reads only the shards and inner chunks that
hold what it returns.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .errors import StoreKeyError
from .store import SweepStore

__all__ = ["Sweep", "open_sweep"]


class Sweep:
    """A sweep's results: checkpoints (``steps``), ``examples`` (dataset indices), ``pairs``, ``param_names``."""

    def __init__(self, store: SweepStore) -> None:
        self.store = store
        g = store.group
        self.meta = store.meta
        self.steps: list[int] = [int(s) for s in g["steps"][:]]
        self.examples: list[int] = [int(e) for e in g["examples"][:]]
        self.pairs: np.ndarray = np.asarray(g["pairs"][:])
        self.param_spec: list[dict[str, Any]] = list(self.meta["param_spec"])
        self.param_names: list[str] = [e["name"] for e in self.param_spec]
        self.attribute_names: list[str] = list(self.meta.get("attribute_names") or [])
        self._pair_index = {(int(i), int(j)): p for p, (i, j) in enumerate(self.pairs)}
        self._example_index = {e: k for k, e in enumerate(self.examples)}
        self._ckpt_index = {s: k for k, s in enumerate(self.steps)}
        self._entries = {e["name"]: e for e in self.param_spec}

    def __repr__(self) -> str:
        return (f"Sweep({self.store.path!r}: {len(self.steps)} checkpoints, {len(self.examples)} examples, "
                f"{len(self.pairs)} pairs, {len(self.param_names)} tensors)")

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config the sweep was run with."""
        return dict(self.meta["config"])

    @property
    def complete(self) -> bool:
        """True when every task has its completion mark."""
        return len(self.store.done_tasks()) == self.meta["n_tasks"]

    def _checkpoint(self, step: int) -> int:
        if step not in self._ckpt_index:
            raise StoreKeyError("checkpoint not in this sweep", expected=f"a step among {self.steps}",
                                found=str(step), fix="pick a step from sweep.steps")
        return self._ckpt_index[step]

    def _example(self, example: int) -> int:
        if example not in self._example_index:
            raise StoreKeyError("example not in this sweep", expected=f"a dataset index among {self.examples}",
                                found=str(example), fix="pick an index from sweep.examples")
        return self._example_index[example]

    def _slices(self, names: Sequence[str] | None) -> list[dict[str, Any]]:
        names = self.param_names if names is None else list(names)
        for n in names:
            if n not in self._entries:
                raise StoreKeyError("parameter not in this sweep", expected="a name from sweep.param_names",
                                    found=repr(n), fix="list them with sweep.param_names")
        return [self._entries[n] for n in names]

    def _read_flat(self, array: str, row: tuple[int, int], names: Sequence[str] | None) -> dict[str, np.ndarray]:
        arr = self.store.group[array]
        out = {}
        for e in self._slices(names):
            stop = e["offset"] + int(np.prod(e["shape"], dtype=np.int64))
            out[e["name"]] = np.asarray(arr[row[0], row[1], e["offset"]:stop]).reshape(e["shape"])
        return out

    def bracket(self, ckpt: int, i: int, j: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """[u_i, u_j] at checkpoint step ``ckpt`` for dataset indices i, j, as named arrays.

        Stored once per unordered pair; [u_j, u_i] = −[u_i, u_j] and [u_i, u_i] = 0.
        """
        c = self._checkpoint(ckpt)
        self._example(i), self._example(j)
        if i == j:
            return {e["name"]: np.zeros(e["shape"], dtype=self.meta["dtype"]) for e in self._slices(names)}
        if (i, j) in self._pair_index:
            return self._read_flat("brackets", (c, self._pair_index[(i, j)]), names)
        if (j, i) in self._pair_index:
            return {k: -v for k, v in self._read_flat("brackets", (c, self._pair_index[(j, i)]), names).items()}
        raise StoreKeyError("pair not in this sweep", expected="a pair from sweep.pairs", found=f"({i}, {j})",
                            fix="list them with sweep.pairs")

    def gradient(self, ckpt: int, i: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """∇θ L_i at checkpoint step ``ckpt`` for dataset index i, as named arrays."""
        return self._read_flat("gradients", (self._checkpoint(ckpt), self._example(i)), names)

    @property
    def losses(self) -> np.ndarray:
        """Per-example losses, (checkpoints × examples), in ``steps`` × ``examples`` order."""
        return np.asarray(self.store.group["losses"][:])


def open_sweep(path: str, storage_options: Mapping[str, Any] | None = None) -> Sweep:
    """Open a sweep store for lazy reading; a path that is not a sweep raises one error line."""
    return Sweep(SweepStore.open(path, mode="r", storage_options=storage_options))
