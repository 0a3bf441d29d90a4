"""Seeded sketches of parameter-sized vectors: S·v for a k × D random projection S that is never materialised.

**The family: block sparse Johnson–Lindenstrauss** (Kane & Nelson's block construction). The k rows are cut into
s blocks of k/s rows; coordinate d of a vector lands, in every block r, in one row h_r(d) of that block with one
sign σ_r(d) ∈ {−1, +1}, scaled by 1/√s:

    (S v)[r·(k/s) + j] = (1/√s) · Σ_{d : h_r(d) = j} σ_r(d) · v[d]        (r = 0 … s−1, j = 0 … k/s − 1)

so S·v costs O(D·s) (not O(D·k)), and S has exactly s nonzeros ±1/√s per column, one in each block. Rows and
signs come from a counter-based hash of (seed, coordinate, block): every worker, CPU or GPU, and a reader with
numpy alone rebuilds the same S from the numbers recorded in a sketch array's attributes (family, k, s, seed, D).
Exactly, with all arithmetic on unsigned 64-bit integers modulo 2⁶⁴:

    key    = (seed << 40) ⊕ (d·s + r)
    z      = splitmix64(key):  z ← key + 0x9E3779B97F4A7C15
                               z ← (z ⊕ (z >> 30)) · 0xBF58476D1CE4E5B9
                               z ← (z ⊕ (z >> 27)) · 0x94D049BB133111EB
                               z ← z ⊕ (z >> 31)
    h_r(d) = (z >> 32) mod (k/s)          σ_r(d) = +1 if z & 1 else −1

(seed < 2²³ and D·s < 2⁴⁰, so the two parts of the key never overlap).

**Accuracy.** E[⟨Sa, Sb⟩] = ⟨a, b⟩ for any fixed a, b. Each block is an independent CountSketch of k/s rows, whose
inner-product estimate has variance (‖a‖²‖b‖² + ⟨a, b⟩² − 2Σ_d a_d² b_d²)/(k/s) ≤ 2‖a‖²‖b‖²/(k/s); the sketch
averages the s blocks, so

    Var⟨Sa, Sb⟩ ≤ 2‖a‖²‖b‖²/k,      |⟨Sa, Sb⟩ − ⟨a, b⟩| ≤ t·√(2/k)·‖a‖‖b‖  with probability ≥ 1 − 1/t²

(Chebyshev), and likewise ‖Sa‖²/‖a‖² has mean 1 and standard deviation ≤ √(2/k): at k = 1,024 the inner products
of two unit vectors err by at most 0.044 in standard deviation, at k = 256 by 0.088. The bound is relative to
‖a‖‖b‖, not to ⟨a, b⟩: two nearly orthogonal vectors' small inner product is known only to that absolute accuracy.
tests/lie_sweep/test_sketch.py measures the error on 54,144 inner products of real bracket and swap vectors of a
small model against their full vectors (error ÷ √(2/k)‖a‖‖b‖: median 0.53, 99% 2.2).

**s.** The variance bound does not depend on s; more nonzeros thin the tails (higher moments), and cost s passes
over the vectors. The default s = 1 (CountSketch) measured the same quantiles as s = 2 and 4 on those vectors
(99%: 2.21, 2.21, 2.19) and adds 5–6% to a bracket or swap on the narrow MXResNet on a CPU, where s = 4 adds
17–22% (benchmarks/bench_sketch.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SketchSpec", "FAMILY", "splitmix64", "sketch_attrs"]

FAMILY = "block-sparse-jl"
_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_MAX_SEED, _MAX_KEY = 1 << 23, 1 << 40


def splitmix64(key: np.ndarray) -> np.ndarray:
    """Steele, Lea and Flood's SplitMix64 finaliser of ``key`` (uint64, elementwise, modulo 2⁶⁴)."""
    with np.errstate(over="ignore"):
        z = key.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class SketchSpec:
    """One sketch S: k rows in s blocks, seed, over D coordinates (see the module docstring)."""

    k: int
    d: int
    s: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1 or self.s < 1 or self.k % self.s:
            raise ValueError(f"a sketch needs k a positive multiple of s, found k={self.k}, s={self.s}")
        if not 0 <= self.seed < _MAX_SEED or self.d * self.s >= _MAX_KEY:
            raise ValueError(f"seed must be in 0..{_MAX_SEED - 1} and D·s below 2^40 (D={self.d}, s={self.s})")

    @property
    def block(self) -> int:
        """Rows per block: k / s."""
        return self.k // self.s

    @property
    def scale(self) -> float:
        """The nonzeros' magnitude, 1/√s."""
        return 1.0 / math.sqrt(self.s)

    def rows_and_signs(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, signs), each (s, stop − start): for block r and coordinate d in [start, stop), the row of S that
        d lands in (r·k/s + h_r(d), int64) and its sign σ_r(d) (±1, int8)."""
        stop = self.d if stop is None else stop
        d = np.arange(start, stop, dtype=np.uint64)
        r = np.arange(self.s, dtype=np.uint64)[:, None]
        z = splitmix64((np.uint64(self.seed) << np.uint64(40)) ^ (d[None, :] * np.uint64(self.s) + r))
        rows = (z >> np.uint64(32)) % np.uint64(self.block) + r * np.uint64(self.block)
        signs = np.where(z & np.uint64(1), 1, -1).astype(np.int8)
        return rows.astype(np.int64), signs

    def apply(self, vectors: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
        """S·v of each row of ``vectors`` (…, D) → (…, k), in float64, with numpy alone (``chunk`` coordinates at
        a time)."""
        v = np.asarray(vectors, dtype=np.float64)
        flat = v.reshape(-1, self.d)
        out = np.zeros((flat.shape[0], self.k))
        for start in range(0, self.d, chunk):
            stop = min(self.d, start + chunk)
            rows, signs = self.rows_and_signs(start, stop)
            for r in range(self.s):
                np.add.at(out.T, rows[r], (signs[r] * flat[:, start:stop]).T)
        return (out * self.scale).reshape(*v.shape[:-1], self.k)

    def attrs(self) -> dict:
        """What a sketch array records of S (its own attributes): enough to rebuild it (module docstring)."""
        return sketch_attrs(self)

    @classmethod
    def from_attrs(cls, attrs: dict) -> "SketchSpec":
        """The S a sketch array's attributes describe."""
        s = attrs["sketch"]
        if s.get("family") != FAMILY:
            raise ValueError(f"unknown sketch family {s.get('family')!r}")
        return cls(k=int(s["k"]), d=int(s["d"]), s=int(s["s"]), seed=int(s["seed"]))


def sketch_attrs(spec: SketchSpec) -> dict:
    """The ``sketch`` attribute of a sketch array: the family, k, s, seed and D, and how to rebuild S."""
    return {"sketch": {"family": FAMILY, "k": spec.k, "s": spec.s, "seed": spec.seed, "d": spec.d,
                       "hash": "splitmix64((seed << 40) ^ (d*s + r)); row = r*(k/s) + (z >> 32) % (k/s); "
                               "sign = +1 if z & 1 else -1; value scale 1/sqrt(s)",
                       "of": "the vector over all D parameters, in the flat order of the store's param_spec",
                       "reference": "storage/sketch.py, storage/README.md: sketches"}}
