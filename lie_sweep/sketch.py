"""S·v on any device: the seeded block sparse JL sketch of :mod:`storage.sketch` (its construction, its error
bound), applied to batches of parameter-sized vectors with torch.

The rows and signs of S are computed once, by numpy, from the hash of (seed, coordinate, block) and moved to the
vectors' device, so a CPU worker, a GPU worker and a reader with numpy alone use the same S. Applying it is s
``index_add_`` calls over the batch (O(batch · D · s), one read of the vectors per block); on CUDA they run with
PyTorch's deterministic algorithms, so that a resumed sweep stores the same bits (atomics would add in an
arbitrary order).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

__all__ = ["Sketcher", "SketchMatrix"]


class SketchMatrix(Protocol):
    """What :class:`Sketcher` needs of a sketch: :class:`storage.sketch.SketchSpec` (the one definition of S, in
    numpy; jobs hands it over, so this package never imports storage)."""

    k: int
    s: int
    d: int

    @property
    def scale(self) -> float:
        """1/√s, each nonzero's magnitude."""

    def rows_and_signs(self) -> tuple[np.ndarray, np.ndarray]:
        """(s, D) rows h_r(d) and signs σ_r(d) of S's nonzeros."""


class Sketcher:
    """``spec``'s S on ``device``, ready to sketch (n, D) batches.

    Held as one index per block: coordinate d of block r goes to column h_r(d) of a (n, 2k) accumulator when its
    sign is +1 and to column k + h_r(d) when it is −1, so that S·v = (P − N)/√s needs s ``index_add_`` passes over
    the vectors and no signed copy of them (a copy per pass costs twice the pass itself on a CPU)."""

    def __init__(self, spec: SketchMatrix, device: torch.device | str = "cpu") -> None:
        self.spec = spec
        rows, signs = spec.rows_and_signs()
        columns = rows + spec.k * (signs < 0)
        self.columns = torch.from_numpy(columns).to(device)  # int64: CPU index_add_ is ~8x slower with int32

    def __call__(self, vectors: torch.Tensor) -> torch.Tensor:
        """S·v of each row of ``vectors`` (…, D) → (…, k), in the vectors' dtype."""
        k = self.spec.k
        flat = vectors.reshape(-1, self.spec.d)
        both = flat.new_zeros((flat.shape[0], 2 * k))
        deterministic = torch.are_deterministic_algorithms_enabled()
        if flat.is_cuda and not deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            for r in range(self.spec.s):
                both.index_add_(1, self.columns[r], flat)
        finally:
            if flat.is_cuda and not deterministic:
                torch.use_deterministic_algorithms(False)
        out = (both[:, :k] - both[:, k:]).mul_(self.spec.scale)
        return out.reshape(*vectors.shape[:-1], k)
