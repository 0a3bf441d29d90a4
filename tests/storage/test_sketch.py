"""The seeded sketch S (storage.sketch): S·v equals the construction storage/README.md documents, rebuilt here
with plain Python integers and a dense numpy matrix (no lie-sweep code); every process builds the same S."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from storage.sketch import SketchSpec

MASK = (1 << 64) - 1


def splitmix64(key: int) -> int:
    """SplitMix64's finaliser, as storage/README.md states it (Python integers, modulo 2^64)."""
    z = (key + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def dense_sketch(k: int, d: int, s: int, seed: int) -> np.ndarray:
    """The k × D matrix S of the documented construction, entry by entry."""
    S = np.zeros((k, d))
    for coord in range(d):
        for r in range(s):
            z = splitmix64(((seed << 40) ^ (coord * s + r)) & MASK)
            row = r * (k // s) + (z >> 32) % (k // s)
            S[row, coord] += (1.0 if z & 1 else -1.0) / np.sqrt(s)
    return S


@pytest.mark.parametrize("k, d, s, seed", [(64, 300, 4, 0), (48, 517, 3, 12345), (16, 40, 1, 7)])
def test_the_sketch_of_a_vector_is_the_documented_matrix_times_it(k, d, s, seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((5, d))
    S = dense_sketch(k, d, s, seed)
    assert np.allclose((np.abs(S) > 0).sum(axis=0), s)            # s nonzeros per column, ±1/√s
    got = SketchSpec(k, d=d, s=s, seed=seed).apply(v, chunk=97)    # chunking the flat axis changes nothing
    np.testing.assert_allclose(got, v @ S.T, rtol=0, atol=1e-12)


def test_every_process_builds_the_same_sketch():
    code = ("import hashlib, numpy as np; from storage.sketch import SketchSpec; s = SketchSpec(256, d=100_003, s=4,"
            " seed=9); r, g = s.rows_and_signs(); v = np.linspace(-1, 1, 100_003);"
            " print(hashlib.sha256(r.tobytes() + g.tobytes() + s.apply(v).tobytes()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": str(h), "PATH": ""}, cwd=None).stdout.strip()
               for h in (0, 1)}
    spec = SketchSpec(256, d=100_003, s=4, seed=9)
    r, g = spec.rows_and_signs()
    here = hashlib.sha256(r.tobytes() + g.tobytes() + spec.apply(np.linspace(-1, 1, 100_003)).tobytes()).hexdigest()
    assert digests == {here}


def test_a_sketch_array_records_what_rebuilds_it():
    spec = SketchSpec(128, d=1000, s=4, seed=3)
    again = SketchSpec.from_attrs(spec.attrs())
    assert again == spec
    with pytest.raises(ValueError, match="unknown sketch family"):
        SketchSpec.from_attrs({"sketch": {**spec.attrs()["sketch"], "family": "gaussian"}})
    with pytest.raises(ValueError, match="multiple of s"):
        SketchSpec(10, d=5, s=4)


def test_inner_products_are_unbiased_and_within_the_stated_variance_on_random_vectors():
    """E⟨Sa, Sb⟩ = ⟨a, b⟩ and Var ≤ 2‖a‖²‖b‖²/k (module docstring), over seeds of S for two fixed vectors."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(2000), rng.standard_normal(2000)
    b = b + 0.5 * a                                             # correlated, as order effects and gradients are
    k = 128
    est = np.array([SketchSpec(k, d=2000, s=4, seed=seed).apply(np.stack([a, b])) for seed in range(400)])
    inner = (est[:, 0] * est[:, 1]).sum(1)
    bound_var = 2 * (a @ a) * (b @ b) / k
    assert abs(inner.mean() - a @ b) < 4 * np.sqrt(bound_var / 400)
    assert inner.var() <= 1.25 * bound_var
