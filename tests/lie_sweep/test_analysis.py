import math

import pytest
import torch

from lie_sweep import MXResNet, ParamSpec, SmallConvNet, compute_brackets
from lie_sweep.analysis import (effective_rank, gram_matrix, jacobian_fits, logit_deltas, norms_from_rms,
                                output_jacobian, pair_fits, slope_one_fit, tensor_rms)
from lie_sweep.fields import FunctionalModel, eval_mode

from .reference import sgd_in_both_orders
from .cases import batch, rel_err, tiny_mlp


def _bracket(model, x, y, pairs):
    params = FunctionalModel(model).params()
    spec = ParamSpec.from_tensors(params)
    return spec.flatten(compute_brackets(model, x, y, pairs), batch_dims=1)


def test_logit_deltas_equal_a_finite_difference_along_the_bracket_float64():
    model = tiny_mlp()
    x, y = batch(4, (6,), 3)
    x_eval, _ = batch(5, (6,), 3, seed=9)
    pairs = [(0, 1), (2, 3), (1, 3)]
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    spec = ParamSpec.from_tensors(params)
    b = _bracket(model, x, y, pairs)
    eps = 0.05
    deltas = logit_deltas(fmodel, params, x_eval, b, epsilon=eps, chunk_size=2)
    assert deltas.shape == (3, 5, 3)
    flat = spec.flatten(params)
    with eval_mode(model):
        base = fmodel.outputs(params, x_eval)
        for p in range(len(pairs)):
            # outputs after θ + ε²[u_i,u_j] minus outputs at θ: ε²·J_f[u_i,u_j] + O(ε⁴); the O(ε⁴) part
            # shrinks by t² when the step is scaled by t, so (f(θ + t·ε²b) − f(θ))/t converges linearly
            errs = []
            for t in (1e-1, 1e-2, 1e-3):
                moved = fmodel.outputs(spec.unflatten(flat + t * eps**2 * b[p]), x_eval)
                errs.append(rel_err((moved - base) / t, deltas[p]))
            assert errs[-1] < 1e-6
            assert errs[0] > 50 * errs[-1]


def test_logit_deltas_match_outputs_of_two_sgd_orders():
    """f(θ_ij) − f(θ_ji) = ε²·J_f[u_i,u_j] + O(ε³): sign and scale of the stored convention."""
    torch.manual_seed(5)
    model = SmallConvNet(width=3, num_outputs=4, activation_name="mish").double()
    x, y = batch(2, (3, 8, 8), 4)
    x_eval, _ = batch(3, (3, 8, 8), 4, seed=4)
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    b = _bracket(model, x, y, [(0, 1)])

    errors = {}
    with eval_mode(model):
        for eps in (1e-2, 1e-3):
            ij, ji = sgd_in_both_orders(fmodel, params, x, y, 0, 1, eps)
            swap = fmodel.outputs(ij, x_eval) - fmodel.outputs(ji, x_eval)
            errors[eps] = rel_err(swap, logit_deltas(fmodel, params, x_eval, b, epsilon=eps)[0])
    assert errors[1e-3] < 0.05
    assert errors[1e-2] >= 5 * errors[1e-3]


def test_logit_deltas_with_batchnorm_use_running_statistics():
    torch.manual_seed(0)
    model = MXResNet(num_outputs=3, widths=(4, 8), depths=(1, 1), stem_widths=(4, 4, 4),
                     zero_init_residual=False).double()
    x, y = batch(2, (3, 16, 16), 3)
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    b = _bracket(model, x, y, [(0, 1)])
    model.train()
    d = logit_deltas(fmodel, params, x[:1], b, epsilon=0.1)  # one eval input: batch statistics would fail
    assert model.training and torch.isfinite(d).all() and d.abs().max() > 0


def test_tensor_rms_per_tensor():
    spec = ParamSpec([("a", (2, 2)), ("b", (3,))])
    flat = torch.tensor([[1.0, -1.0, 1.0, -1.0, 0.0, 3.0, 4.0], [0.0] * 7])
    rms = tensor_rms(flat, spec)
    torch.testing.assert_close(rms, torch.tensor([[1.0, math.sqrt(25 / 3)], [0.0, 0.0]], dtype=torch.float64))


def test_slope_one_fit_recovers_a_known_constant():
    gen = torch.Generator().manual_seed(0)
    c_true = torch.tensor([0.3, 2.0, 17.0], dtype=torch.float64)
    grad_rms_i = torch.exp(torch.randn(3, 40, generator=gen, dtype=torch.float64) * 2)
    grad_rms_j = torch.exp(torch.randn(3, 40, generator=gen, dtype=torch.float64) * 2)
    g = (grad_rms_i * grad_rms_j).sqrt()
    exact = pair_fits(c_true[:, None] * g, grad_rms_i, grad_rms_j)
    torch.testing.assert_close(exact.c, c_true)
    torch.testing.assert_close(exact.r2, torch.ones(3, dtype=torch.float64))
    noise = torch.randn(3, 40, generator=gen, dtype=torch.float64) * 0.1
    noisy = pair_fits(c_true[:, None] * g * noise.exp(), grad_rms_i, grad_rms_j)
    assert ((noisy.c / c_true).log().abs() < 0.1).all()
    assert (noisy.r2 > 0.95).all() and (noisy.r2 < 1).all()
    assert noisy.n_tensors.tolist() == [40, 40, 40]


def test_slope_one_fit_leaves_out_zero_tensors_and_reports_undefined_fits():
    y = torch.tensor([[1.0, 2.0, 4.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.5, 1.0, 2.0], [0.5, 1.0, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    fit = slope_one_fit(y.log(), x.log())
    assert fit.n_tensors.tolist() == [3, 1, 0]
    assert fit.c[0].item() == pytest.approx(2.0)
    assert fit.c[1].item() == pytest.approx(2.0) and math.isnan(fit.r2[1].item())
    assert math.isnan(fit.c[2].item())


def test_gram_and_effective_rank():
    g = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    torch.testing.assert_close(gram_matrix(g), 9 * torch.eye(3, dtype=torch.float64))
    assert effective_rank(gram_matrix(g)) == pytest.approx(3.0)
    parallel = torch.tensor([[1.0, 2.0], [2.0, 4.0], [-3.0, -6.0]])
    assert effective_rank(gram_matrix(parallel)) == pytest.approx(1.0, abs=1e-6)
    # singular values 2 and 1: p = (2/3, 1/3)
    skew = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert effective_rank(gram_matrix(skew)) == pytest.approx(math.exp(entropy))
    assert effective_rank(torch.zeros(2, 2)) == 0.0


def test_logit_deltas_through_the_output_jacobian_equal_the_forward_mode_ones():
    torch.manual_seed(0)
    model = MXResNet(num_outputs=3, widths=(4, 8), depths=(1, 1), stem_widths=(4, 4, 4),
                     zero_init_residual=False).double()
    x, y = batch(3, (3, 16, 16), 3)
    x_eval, _ = batch(4, (3, 16, 16), 3, seed=7)
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    b = _bracket(model, x, y, [(0, 1), (0, 2), (1, 2)])
    jac = output_jacobian(fmodel, params, x_eval)
    assert jac.shape == (4 * 3, ParamSpec.from_tensors(params).size)
    fast = logit_deltas(fmodel, params, x_eval, b, epsilon=0.1, jacobian=jac)
    slow = logit_deltas(fmodel, params, x_eval, b, epsilon=0.1, chunk_size=2)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-14)
    assert jacobian_fits(16, 40, 11_000_000, torch.float32, torch.device("cpu")) is False
    assert jacobian_fits(16, 12, 700_000, torch.float32, torch.device("cpu")) is True


def test_norms_follow_from_per_tensor_rms():
    spec = ParamSpec([("a", (3, 4)), ("b", (5,))])
    flat = torch.randn(4, 17, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(norms_from_rms(tensor_rms(flat, spec), spec), flat.double().norm(dim=1),
                               rtol=1e-6, atol=0)
