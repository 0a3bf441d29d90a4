"""Exact order expansions: Δ₁, Δ₂ by forward-mode AD in ε against real torch.optim swaps (float64)."""

import copy

import pytest
import torch
from torch.func import grad, jvp

from lie_sweep import compute_brackets
from lie_sweep.fields import FunctionalModel
from lie_sweep.optim import from_state_dict
from lie_sweep.order import order_expansion

OPTIMIZERS = {
    "sgd": lambda ps: [torch.optim.SGD(ps, lr=0.05)],
    "momentum": lambda ps: [torch.optim.SGD(ps, lr=0.05, momentum=0.9)],
    "nesterov-wd": lambda ps: [torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)],
    "adam": lambda ps: [torch.optim.Adam(ps, lr=5e-3, betas=(0.8, 0.999))],
    "adamw": lambda ps: [torch.optim.AdamW(ps, lr=5e-3, weight_decay=0.1)],
    "amsgrad": lambda ps: [torch.optim.Adam(ps, lr=5e-3, amsgrad=True)],
    "muon": lambda ps: [torch.optim.Muon([(n, p) for n, p in ps if p.ndim == 2], lr=0.02),
                        torch.optim.AdamW([(n, p) for n, p in ps if p.ndim != 2], lr=5e-3)],
}


def mse(out, y):
    return ((out - y) ** 2).mean(-1)


def trained(case, seed=0):
    """A small smooth float64 model, its optimizers after 3 steps, their saved state, two examples."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    optimizers = OPTIMIZERS[case](list(net.named_parameters()))
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
        for o in optimizers:
            o.zero_grad()
        mse(net(x), y).mean().backward()
        for o in optimizers:
            o.step()
    examples = [(torch.randn(4, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64))
                for _ in range(2)]
    return net, optimizers, examples


def real_swap(net, optimizers, examples, eps, follow_steps=0):
    """θ after i then j minus after j then i, with the torch.optim classes at learning rate scale eps/lr₀."""
    ends = []
    base = optimizers[0].param_groups[0]["lr"]
    for order in ((0, 1), (1, 0)):
        model = copy.deepcopy(net)
        mine = {n: p for n, p in model.named_parameters()}
        opts = [type(o)([(n, mine[n]) for g in o.param_groups for n in g["param_names"]]
                        if "param_names" in o.param_groups[0] else model.parameters()) for o in optimizers]
        for o, src in zip(opts, optimizers):
            o.load_state_dict(copy.deepcopy(src.state_dict()))
            for group in o.param_groups:
                group["lr"] = group["lr"] * eps / base
        for k in [*order, *[None] * follow_steps]:
            for o in opts:
                o.zero_grad()
            if k is None:
                for p in mine.values():
                    p.grad = torch.zeros_like(p)
            else:
                x, y = examples[k]
                mse(model(x[None]), y[None]).sum().backward()
            for o in opts:
                o.step()
        ends.append({n: p.detach().clone() for n, p in mine.items()})
    return torch.cat([(ends[0][n] - ends[1][n]).flatten() for n in ends[0]])


def expansion(net, optimizers, examples, follow_steps=0):
    saved = [o.state_dict() for o in optimizers]
    names = [n for n, _ in net.named_parameters()]
    step, state = from_state_dict(saved if len(saved) > 1 else saved[0], names)
    fm = FunctionalModel(net, mse)
    d1, d2 = order_expansion(fm, step, fm.params(), state, examples[0], examples[1], follow_steps=follow_steps)
    flat = lambda d: torch.cat([d[n].flatten() for n in names])  # noqa: E731
    return flat(d1), flat(d2), step.learning_rate()


@pytest.fixture
def float64_muon(monkeypatch):
    """torch.optim.Muon with its Newton–Schulz iteration in float64: in bfloat16 its rounding (~1e-3) swamps
    the ε³ remainder, so no expansion could be checked against it."""
    import torch.optim._muon as muon

    original = muon._zeropower_via_newtonschulz

    def in_float64(g, coefficients, steps, eps):
        saved = torch.Tensor.bfloat16
        monkeypatch.setattr(torch.Tensor, "bfloat16", lambda t: t.clone())
        try:
            return original(g, coefficients, steps, eps)
        finally:
            monkeypatch.setattr(torch.Tensor, "bfloat16", saved)

    monkeypatch.setattr(muon, "_zeropower_via_newtonschulz", in_float64)


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_expansion_matches_real_swaps_to_third_order(case, request):
    if case == "muon":
        request.getfixturevalue("float64_muon")
    net, optimizers, examples = trained(case)
    d1, d2, lr = expansion(net, optimizers, examples, follow_steps=1 if case == "momentum" else 0)
    remainders = []
    for eps in (lr, lr / 10, lr / 100):
        delta = real_swap(net, optimizers, examples, eps, follow_steps=1 if case == "momentum" else 0)
        remainders.append(float((delta - eps * d1 - eps**2 * d2).norm()) / eps**3)
        # the expansion is not trivially small: it carries the swap
        assert float((eps * d1 + eps**2 * d2).norm()) > 0.5 * float(delta.norm())
    # (Δ(ε) − εΔ₁ − ε²Δ₂)/ε³ tends to ‖Δ₃‖: bounded as ε shrinks 10× twice (not growing like 1/ε or 1/ε²)
    assert remainders[2] < 2 * remainders[0] + 1e-6 and remainders[1] < 2 * remainders[0] + 1e-6, remainders
    assert abs(remainders[2] - remainders[1]) < 0.2 * remainders[1] + 1e-6, remainders


def test_plain_sgd_gives_the_bracket():
    net, optimizers, examples = trained("sgd")
    d1, d2, _ = expansion(net, optimizers, examples)
    x = torch.stack([e[0] for e in examples])
    y = torch.stack([e[1] for e in examples])
    bracket = compute_brackets(net, x, y, [(0, 1)], loss_fn=mse)
    flat = torch.cat([bracket[n][0].flatten() for n, _ in net.named_parameters()])
    assert float(d1.abs().max()) == 0.0
    assert float((d2 - flat).abs().max()) <= 1e-10 * max(1.0, float(flat.abs().max()))


@pytest.mark.parametrize("follow_steps", [0, 2])
def test_momentum_expansion_is_the_formula(follow_steps):
    """Δ₁ = −μ^{K+1}(g_i − g_j); with K = 0, Δ₂ = [u_i, u_j] + μ (H_j − H_i) m."""
    net, optimizers, examples = trained("momentum")
    d1, d2, _ = expansion(net, optimizers, examples, follow_steps=follow_steps)
    fm = FunctionalModel(net, mse)
    params = fm.params()
    names = list(params)
    mu = optimizers[0].param_groups[0]["momentum"]
    m = {n: optimizers[0].state[p]["momentum_buffer"] for n, p in net.named_parameters()}
    flat = lambda d: torch.cat([d[n].flatten() for n in names])  # noqa: E731
    g = [grad(fm.example_loss)(params, *e) for e in examples]
    assert torch.allclose(d1, -mu ** (follow_steps + 1) * (flat(g[0]) - flat(g[1])), rtol=0, atol=1e-12)
    if follow_steps:
        return

    def hvp(k, v):
        return flat(jvp(lambda p: grad(fm.example_loss)(p, *examples[k]), (params,), (v,))[1])

    bracket = hvp(1, g[0]) - hvp(0, g[1])
    want = bracket + mu * (hvp(1, m) - hvp(0, m))
    assert float((d2 - want).abs().max()) <= 1e-10 * float(want.abs().max())


def test_adam_orders_differ_at_first_order():
    net, optimizers, examples = trained("adam")
    d1, d2, lr = expansion(net, optimizers, examples)
    assert float(d1.norm()) > 0 and float(d2.norm()) > 0


# ---- verify: real swaps along a field against the leading order ---------------------------------------------


def test_real_swap_is_torch_sgd_and_its_error_falls_linearly_with_eps():
    from lie_sweep import SGDField
    from lie_sweep.verify import LADDER, field_swap_errors, real_swap

    net, optimizers, examples = trained("sgd")
    fm = FunctionalModel(net, mse)
    params = fm.params()
    a, _ = real_swap(fm, SGDField(), params, examples[0], examples[1], 0.05)
    net_a = copy.deepcopy(net)
    opt = torch.optim.SGD(net_a.parameters(), lr=0.05)
    for x, y in examples:  # i then j with torch.optim.SGD
        opt.zero_grad()
        mse(net_a(x[None]), y[None]).sum().backward()
        opt.step()
    for n, p in net_a.named_parameters():
        assert torch.allclose(a[n], p.detach(), rtol=0, atol=1e-14)
    x = torch.stack([e[0] for e in examples])
    y = torch.stack([e[1] for e in examples])
    bracket = {n: t[0] for n, t in compute_brackets(net, x, y, [(0, 1)], loss_fn=mse).items()}
    rows = field_swap_errors(fm, SGDField(), params, examples[0], examples[1], bracket, x, None,
                             [0.05 * f for f in LADDER])
    errors = [r["rel_theta"] for r in rows]
    assert all(0.15 < errors[k + 1] / errors[k] < 0.35 for k in range(len(errors) - 1)), errors  # ∝ ε: 1/4 per rung
    assert all(r["relu_switch"] != r["relu_switch"] for r in rows)  # NaN: a tanh model has no ReLU


def test_relu_switch_counts_sign_changes():
    from lie_sweep.verify import relu_switch_fraction

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).double()
    fm = FunctionalModel(net, mse)
    p = fm.params()
    x = torch.randn(5, 3, dtype=torch.float64)
    flipped = {**p, "0.weight": -p["0.weight"], "0.bias": -p["0.bias"]}
    pre = x @ p["0.weight"].T + p["0.bias"]
    assert relu_switch_fraction(fm, p, p, x) == 0.0
    assert relu_switch_fraction(fm, p, flipped, x) == float(((pre > 0) != (-pre > 0)).double().mean())


def test_draining_removes_momentums_first_order_term_but_not_adams():
    net, optimizers, examples = trained("momentum")
    fm = FunctionalModel(net, mse)
    g_i, g_j = (torch.cat([t.flatten() for t in grad(fm.example_loss)(fm.params(), x, y).values()])
                for x, y in examples)
    for k in (0, 12):                                                  # Δ₁ = −μ^{K+1} (g_i − g_j): drains away
        d1, _, _ = expansion(net, optimizers, examples, follow_steps=k)
        torch.testing.assert_close(d1, -0.9 ** (k + 1) * (g_i - g_j), rtol=1e-12, atol=1e-14)
    net, optimizers, examples = trained("adam")
    undrained, _, _ = expansion(net, optimizers, examples)
    a, d2a, _ = expansion(net, optimizers, examples, follow_steps=40)
    b, d2b, _ = expansion(net, optimizers, examples, follow_steps=80)
    assert float((a - b).norm()) < 1e-3 * float(a.norm())           # converged (β₁^40 ≈ 1e-4) ...
    assert 0.1 * float(undrained.norm()) < float(a.norm()) < float(undrained.norm())   # ... to a non-zero limit
    assert float(d2a.norm()) > float(expansion(net, optimizers, examples)[1].norm())
