"""Exact swaps θ_ij − θ_ji (lie_sweep.swap) against real torch.optim steps and independent two-step loops (float64)."""

import pytest
import torch

from lie_sweep import SGDField, compute_brackets
from lie_sweep.fields import FunctionalModel, PreconditionedField, eval_mode
from lie_sweep.optim import from_state_dict
from lie_sweep.swap import FieldRule, OptimizerRule, shift_groups, swap_kernel
from lie_sweep.torch_swap import torch_optim_swap
from lie_sweep.verify import real_swap as field_steps

from .test_order import OPTIMIZERS, float64_muon, mse, real_swap, trained  # noqa: F401 - a fixture

PAIRS = [(0, 1), (2, 0), (1, 2)]


def batch(seed=2, n=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randn(n, 3, generator=g, dtype=torch.float64))


def flat(d, names):
    return torch.cat([d[n].flatten() for n in names])


@pytest.mark.parametrize("field", ["sgd", "adam"])
def test_field_swaps_equal_two_steps_in_each_order(field):
    net, optimizers, _ = trained("adam")
    fm = FunctionalModel(net, mse)
    params, names = fm.params(), fm.param_names
    u = SGDField() if field == "sgd" else PreconditionedField.from_adam_state(optimizers[0].state_dict(), names)
    x, y = batch()
    eval_x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got = swap_kernel(fm, params, x, y, PAIRS, FieldRule(u.bind(params), 0.05), eval_inputs=eval_x)
    for p, (i, j) in enumerate(PAIRS):
        a, b = field_steps(fm, u.bind(params), params, (x[i], y[i]), (x[j], y[j]), 0.05)
        want = flat(a, names) - flat(b, names)
        torch.testing.assert_close(got.deltas[p], want, rtol=1e-9, atol=1e-15)
        torch.testing.assert_close(got.logit_deltas[p], fm.outputs(a, eval_x) - fm.outputs(b, eval_x),
                                   rtol=1e-9, atol=1e-15)


def test_sgd_swap_tends_to_the_bracket_and_keeps_its_precision_in_float32():
    net, _, _ = trained("sgd")
    fm = FunctionalModel(net, mse)
    params, names = fm.params(), fm.param_names
    x, y = batch()
    bracket = compute_brackets(net, x, y, PAIRS, loss_fn=mse)
    b = torch.stack([flat({n: bracket[n][p] for n in names}, names) for p in range(len(PAIRS))])
    errors = []
    for eps in (1e-2, 1e-3, 1e-4):
        d = swap_kernel(fm, params, x, y, PAIRS, FieldRule(SGDField(), eps)).deltas
        errors.append(float((d - eps ** 2 * b).norm() / d.norm()))
    assert all(0.05 < errors[k + 1] / errors[k] < 0.2 for k in range(2)), errors      # O(ε³): the error ∝ ε
    # float32 at ε = 1e-3: increments, not θ_ij − θ_ji, keep the swap to the gradients' round-off
    net32 = net.float()
    fm32 = FunctionalModel(net32, mse)
    d32 = swap_kernel(fm32, fm32.params(), x.float(), y.float(), PAIRS, FieldRule(SGDField(), 1e-3)).deltas
    d64 = swap_kernel(fm, params, x, y, PAIRS, FieldRule(SGDField(), 1e-3)).deltas
    net.double()
    assert float((d32.double() - d64).norm() / d64.norm()) < 1e-3


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_optimizer_swaps_equal_real_torch_optim_swaps(case, request):
    if case == "muon":
        request.getfixturevalue("float64_muon")
    net, optimizers, _ = trained(case)
    fm = FunctionalModel(net, mse)
    params, names = fm.params(), fm.param_names
    saved = [o.state_dict() for o in optimizers]
    step, state = from_state_dict(saved if len(saved) > 1 else saved[0], names,
                                  ns_dtype=torch.float64 if case == "muon" else None)
    x, y = batch()
    follow = 3 if case == "momentum" else 0
    for eps in (step.learning_rate(), step.learning_rate() / 10):
        got = swap_kernel(fm, params, x, y, PAIRS, OptimizerRule(step, eps), state=state, follow_steps=follow)
        for p, (i, j) in enumerate(PAIRS):
            want = real_swap(net, optimizers, [(x[i], y[i]), (x[j], y[j])], eps, follow_steps=follow)
            assert float((got.deltas[p] - want).norm()) <= 1e-10 * float(want.norm()), (case, eps, p)


def test_the_swap_is_antisymmetric_and_the_state_is_not_consumed():
    net, optimizers, _ = trained("adam")
    fm = FunctionalModel(net, mse)
    params, names = fm.params(), fm.param_names
    step, state = from_state_dict(optimizers[0].state_dict(), names)
    before = {n: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()} for n, s in state.items()}
    x, y = batch()
    rule = OptimizerRule(step, 5e-3)
    ij = swap_kernel(fm, params, x, y, [(0, 1)], rule, state=state).deltas
    ji = swap_kernel(fm, params, x, y, [(1, 0)], rule, state=state).deltas
    assert torch.equal(ij, -ji)
    for n, s in state.items():
        for k, v in s.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(before[n][k]))


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_torch_optim_swap_rebuilds_the_saved_optimizers_bit_for_bit(case):
    """verify's reference: optimizers rebuilt from state dicts alone step exactly as the live ones (and as the
    saved state is left untouched, twice in a row gives the same bits)."""
    net, optimizers, examples = trained(case)
    saved = [o.state_dict() for o in optimizers]
    saved = saved if len(saved) > 1 else saved[0]
    lr = optimizers[0].param_groups[0]["lr"] / 3
    for follow in (0, 2):
        want = real_swap(net, optimizers, examples, lr, follow_steps=follow)
        got = torch_optim_swap(net, saved, *examples, lr, follow_steps=follow, loss_fn=mse)
        assert torch.equal(got, want) and torch.equal(torch_optim_swap(net, saved, *examples, lr, follow_steps=follow,
                                                                       loss_fn=mse), got)


@pytest.mark.gpu
def test_swaps_on_cuda_equal_the_cpus():
    net, optimizers, _ = trained("adam")
    fm = FunctionalModel(net, mse)
    names = fm.param_names
    step, state = from_state_dict(optimizers[0].state_dict(), names)
    x, y = batch()
    want = [swap_kernel(fm, fm.params(), x, y, PAIRS, rule, state=state).deltas
            for rule in (FieldRule(SGDField(), 0.05), OptimizerRule(step, 5e-3))]
    net.cuda()
    fm = FunctionalModel(net, mse)
    state = {n: {k: (v.cuda() if torch.is_tensor(v) and v.ndim else v) for k, v in s.items()} for n, s in state.items()}
    got = [swap_kernel(fm, fm.params(), x.cuda(), y.cuda(), PAIRS, rule, state=state).deltas.cpu()
           for rule in (FieldRule(SGDField(), 0.05), OptimizerRule(step, 5e-3))]
    net.cpu()
    for g, w in zip(got, want):
        assert float((g - w).norm() / w.norm()) <= 1e-10


def test_muons_bfloat16_swap_is_torchs_to_within_bfloat16s_own_rounding(monkeypatch):
    """With torch's own bfloat16 Newton–Schulz the swap is not torch's bit for bit (the increments round at other
    points): it differs from it by no more than bfloat16 rounding moves torch's own swap (against the same
    iteration in float64): 4-8% of ‖Δ‖ on this model."""
    import torch.optim._muon as muon

    net, optimizers, _ = trained("muon")
    fm = FunctionalModel(net, mse)
    step, state = from_state_dict([o.state_dict() for o in optimizers], fm.param_names, ns_dtype=torch.bfloat16)
    x, y = batch()
    lr = step.learning_rate()
    got = swap_kernel(fm, fm.params(), x, y, PAIRS, OptimizerRule(step, lr), state=state).deltas
    original = muon._zeropower_via_newtonschulz

    def in_float64(g, coefficients, steps, eps):
        with monkeypatch.context() as m:
            m.setattr(torch.Tensor, "bfloat16", lambda t: t.clone())
            return original(g, coefficients, steps, eps)

    for p, (i, j) in enumerate(PAIRS):
        examples = [(x[i], y[i]), (x[j], y[j])]
        torch_bf16 = real_swap(net, optimizers, examples, lr)
        monkeypatch.setattr(muon, "_zeropower_via_newtonschulz", in_float64)
        torch_f64 = real_swap(net, optimizers, examples, lr)
        monkeypatch.setattr(muon, "_zeropower_via_newtonschulz", original)
        rounding = float((torch_bf16 - torch_f64).norm())
        assert 0 < float((got[p] - torch_bf16).norm()) <= 2 * rounding, p


def test_a_momentum_swap_is_first_order_and_tends_to_minus_mu_times_the_gradient_difference():
    """SGD with momentum μ: Δ(ε)/ε → −μ(g_i − g_j) as ε → 0, the error falling like ε (lie_sweep/README.md)."""
    net, optimizers, _ = trained("momentum")
    fm = FunctionalModel(net, mse)
    params, names = fm.params(), fm.param_names
    step, state = from_state_dict(optimizers[0].state_dict(), names)
    mu = optimizers[0].param_groups[0]["momentum"]
    x, y = batch()
    grads = torch.stack([flat(torch.func.grad(fm.example_loss)(params, x[k], y[k]), names) for k in range(3)])
    errors = []
    for eps in (1e-2, 1e-3, 1e-4):
        d = swap_kernel(fm, params, x, y, PAIRS, OptimizerRule(step, eps), state=state).deltas
        want = torch.stack([-mu * (grads[i] - grads[j]) for i, j in PAIRS])
        errors.append(float((d / eps - want).norm() / want.norm()))
    assert all(0.05 < errors[k + 1] / errors[k] < 0.2 for k in range(2)), errors


def _partners(pairs):
    out = {}
    for p, (i, j) in enumerate(pairs):
        out.setdefault(i, []).append((p, j, 1.0))
        out.setdefault(j, []).append((p, i, -1.0))
    return out


def test_shifted_points_group_by_tile_and_every_partner_is_in_its_groups_union():
    triangle = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    rectangle = [(i, j) for i in range(4) for j in range(4, 8)]
    scattered = [(0, 5), (2, 9), (3, 7)]
    assert shift_groups(_partners(triangle), 128) == [(list(range(8)), [1, 2, 3, 4, 5, 6, 7, 0])]
    assert shift_groups(_partners(rectangle), 128) == [([0, 1, 2, 3], [4, 5, 6, 7]), ([4, 5, 6, 7], [0, 1, 2, 3])]
    assert [g for g, _ in shift_groups(_partners(scattered), 128)] == [[0], [2], [3], [5], [7], [9]]
    for pairs, limit in ((triangle, 20), (rectangle, 8), (triangle, 1)):
        partners = _partners(pairs)
        groups = shift_groups(partners, limit)
        assert sorted(a for g, _ in groups for a in g) == sorted(partners)
        for group, union in groups:
            assert len(group) == 1 or len(group) * len(union) <= limit
            assert all(b in union for a in group for _, b, _ in partners[a])


def test_a_tiles_swaps_batched_over_shifted_points_equal_one_pair_at_a_time_on_a_convnet():
    from lie_sweep import SmallConvNet
    torch.manual_seed(0)
    net = SmallConvNet(num_outputs=3, width=4).double()
    fm = FunctionalModel(net)
    params = fm.params()
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    y = (torch.rand(6, 3, dtype=torch.float64) > 0.5).double()
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    rule = FieldRule(SGDField(), 1e-2)
    together = swap_kernel(fm, params, x, y, pairs, rule, eval_inputs=x[:2])
    # a logit delta is f(θ_ij) − f(θ_ji), a difference of two O(|f|) outputs: batched convolutions round each
    # output differently, so the delta's absolute error is float64 round-off of |f|, not of the delta itself
    with eval_mode(net), torch.no_grad():  # eval mode: a training-mode forward would move BatchNorm's statistics
        logit_atol = 64 * torch.finfo(torch.float64).eps * float(net(x[:2]).abs().max())
    for p, pair in enumerate(pairs):
        alone = swap_kernel(fm, params, x, y, [pair], rule, eval_inputs=x[:2])
        torch.testing.assert_close(together.deltas[p], alone.deltas[0], rtol=1e-12, atol=1e-18)
        torch.testing.assert_close(together.logit_deltas[p], alone.logit_deltas[0], rtol=1e-12, atol=logit_atol)
