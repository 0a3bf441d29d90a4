"""S·v with torch (lie_sweep.sketch) equals numpy's, and its error on real order effects lies within the stated
bound: |⟨Sa, Sb⟩ − ⟨a, b⟩| ≤ t·√(2/k)·‖a‖‖b‖ with probability ≥ 1 − 1/t² (storage/sketch.py)."""

import numpy as np
import pytest
import torch

from lie_sweep import FunctionalModel, MLP
from lie_sweep.fields import SGDField
from lie_sweep.kernel import bracket_kernel
from lie_sweep.sketch import Sketcher
from lie_sweep.swap import FieldRule, swap_kernel
from storage.sketch import SketchSpec

from .cases import batch


def test_torch_and_numpy_sketches_are_the_same_numbers():
    spec = SketchSpec(96, d=1234, s=4, seed=5)
    v = torch.randn(7, 1234, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(Sketcher(spec)(v).numpy(), spec.apply(v.numpy()), rtol=0, atol=1e-12)
    assert Sketcher(spec)(v[0]).shape == (96,) and Sketcher(spec)(v.reshape(7, 1, 1234)).shape == (7, 1, 96)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_builds_the_same_sketch_as_the_cpu():
    spec = SketchSpec(256, d=50_000, s=4, seed=1)
    v = torch.randn(4, 50_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    cpu, gpu = Sketcher(spec), Sketcher(spec, "cuda")
    assert torch.equal(cpu.rows, gpu.rows.cpu()) and torch.equal(cpu.signs, gpu.signs.cpu())
    torch.testing.assert_close(gpu(v.cuda()).cpu(), cpu(v), rtol=0, atol=1e-12)
    assert torch.equal(gpu(v.cuda()), gpu(v.cuda()))          # deterministic: a resumed sweep stores the same bits


def order_effects(n=48):
    """Float64 brackets [u_i, u_j] and exact SGD swaps θ_ij − θ_ji of every pair of ``n`` examples of a small MLP
    (D = 1,123): n(n − 1)/2 of each."""
    torch.manual_seed(3)
    model = MLP(input_shape=(12,), num_outputs=3, hidden=(64,), activation_name="tanh").to(torch.float64)
    fm = FunctionalModel(model)
    params = fm.params()
    x, y = batch(n, (12,), 3)
    pairs = torch.combinations(torch.arange(n), 2)
    brackets = bracket_kernel(fm, params, x, y, pairs).brackets
    swaps = swap_kernel(fm, params, x, y, pairs, FieldRule(SGDField(), 0.05)).deltas
    return brackets, swaps


def test_sketched_inner_products_of_real_order_effects_lie_within_the_stated_bound():
    brackets, swaps = order_effects()
    n, d = brackets.shape
    assert n >= 1000 and d > 1000
    ratios, norm_ratios = [], []
    for k, s in ((64, 1), (256, 1), (64, 4), (256, 4)):             # the default s = 1 (CountSketch), and s = 4
        for seed in range(4):                                     # the probability is over S: several seeds
            sk = Sketcher(SketchSpec(k, d=d, s=s, seed=seed))
            for a, b in ((brackets, swaps), (brackets, brackets.roll(1, 0)), (swaps, swaps.roll(7, 0))):
                sa, sb = sk(a), sk(b)
                err = ((sa * sb).sum(1) - (a * b).sum(1)).abs()
                ratios.append((err / (np.sqrt(2 / k) * a.norm(dim=1) * b.norm(dim=1))).numpy())
            norm_ratios.append(((sk(swaps).norm(dim=1) ** 2 / swaps.norm(dim=1) ** 2 - 1).abs() / np.sqrt(2 / k))
                               .numpy())
    r, q = np.concatenate(ratios), np.concatenate(norm_ratios)
    quantiles = np.quantile(r, [0.5, 0.9, 0.99])
    print(f"{len(r)} inner products, error / (sqrt(2/k)|a||b|): median {quantiles[0]:.2f}, 90% {quantiles[1]:.2f}, "
          f"99% {quantiles[2]:.2f}; |S a|^2/|a|^2 - 1 over sqrt(2/k): 99% {np.quantile(q, 0.99):.2f}")
    assert (r ** 2).mean() <= 1.0 and (q ** 2).mean() <= 1.0     # the variance bound, E[ratio²] ≤ 1
    for t in (1.5, 2, 3, 5):                                      # Chebyshev: P(ratio > t) ≤ 1/t²
        assert (r > t).mean() <= 1 / t ** 2 and (q > t).mean() <= 1 / t ** 2
    assert quantiles[0] > 0.05                                   # not vacuous: the sketch does err
