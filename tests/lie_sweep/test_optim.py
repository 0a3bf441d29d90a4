"""Functional optimizer steps equal their torch.optim classes step for step, from a saved state (float64)."""

import copy

import pytest
import torch

from lie_sweep.optim import from_state_dict, optimizer_kind

CASES = {
    "sgd": lambda ps: [torch.optim.SGD([p for _, p in ps], lr=0.05)],   # unnamed: indices follow parameters()
    "sgd-momentum": lambda ps: [torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)],
    "sgd-nesterov": lambda ps: [torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True)],
    "adam": lambda ps: [torch.optim.Adam(ps, lr=5e-3, betas=(0.8, 0.999), weight_decay=0.01)],
    "adam-amsgrad": lambda ps: [torch.optim.Adam(ps, lr=5e-3, amsgrad=True)],
    "adamw": lambda ps: [torch.optim.AdamW(ps, lr=5e-3, weight_decay=0.1)],
    # Muon takes the 2-D weights, AdamW the rest; torch runs Newton-Schulz in bfloat16, and so does ns_dtype here
    "muon": lambda ps: [torch.optim.Muon([(n, p) for n, p in ps if p.ndim == 2], lr=0.02),
                        torch.optim.AdamW([(n, p) for n, p in ps if p.ndim != 2], lr=5e-3)],
}


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()


def train(net, optimizers, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
        for o in optimizers:
            o.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        for o in optimizers:
            o.step()


@pytest.mark.parametrize("case", sorted(CASES))
def test_functional_step_equals_torch_optim_from_a_saved_state(case):
    net = model()
    named = list(net.named_parameters())
    optimizers = CASES[case](named)
    train(net, optimizers, 3, seed=1)                       # a state worth saving
    saved = [copy.deepcopy(o.state_dict()) for o in optimizers]
    names = [n for n, _ in named]
    step, state = from_state_dict(saved if len(saved) > 1 else saved[0], names,
                                  ns_dtype=torch.bfloat16 if case == "muon" else None)
    assert set(step.kinds) == ({"muon", "adamw"} if case == "muon" else {case.split("-")[0]})
    params = {n: p.detach().clone() for n, p in named}
    g = torch.Generator().manual_seed(2)
    for _ in range(4):
        x, y = torch.randn(8, 5, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
        grads = torch.func.grad(lambda p: ((torch.func.functional_call(net, p, (x,)) - y) ** 2).mean())(params)
        for o in optimizers:
            o.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        for o in optimizers:
            o.step()
        params, state = step.step(params, state, grads)
        for n, p in net.named_parameters():
            assert torch.allclose(params[n], p.detach(), rtol=0, atol=1e-12), (case, n)


def test_sgd_from_a_fresh_state_and_kinds():
    net = model()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    step, state = from_state_dict(opt.state_dict(), [n for n, _ in net.named_parameters()])
    assert state == {} and step.kinds == ["sgd"]
    grads = {n: torch.ones_like(p) for n, p in net.named_parameters()}
    params = {n: p.detach() for n, p in net.named_parameters()}
    new, state = step.step(params, state, grads)
    assert all(torch.equal(new[n], params[n] - 0.1) for n in params)       # first step: buffer = gradient
    assert all(torch.equal(state[n]["momentum_buffer"], grads[n]) for n in params)
    new, state = step.step(params, state, grads, lr=torch.tensor(0.2, dtype=torch.float64))
    assert all(torch.allclose(new[n], params[n] - 0.2 * 1.9) for n in params)
    assert optimizer_kind({"betas": (0.9, 0.99), "decoupled_weight_decay": True}) == "adamw"


def test_unfit_or_unknown_state_is_one_line():
    from lie_sweep.errors import ConfigError

    net = model()
    opt = torch.optim.Adam(net.parameters())
    with pytest.raises(ConfigError, match="does not fit the model"):
        from_state_dict(opt.state_dict(), ["only.one"])
    with pytest.raises(ConfigError, match="unsupported optimizer"):
        from_state_dict({"state": {}, "param_groups": [{"lr": 1.0, "params": [0]}]}, ["a"])
