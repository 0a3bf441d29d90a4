"""Dense and double-backward references for brackets, independent of the kernel under test."""

from __future__ import annotations

import torch
from torch.func import functional_call, grad

from lie_sweep.fields import bce_per_example


def _loss_of_flat(model, spec, buffers, x, y):
    def f(flat):
        params = spec.unflatten(flat)
        out = functional_call(model, (params, buffers), (x.unsqueeze(0),))
        return bce_per_example(out, y.unsqueeze(0))[0]
    return f


def dense_brackets(model, spec, x, y, pairs, precond=None):
    """[u_i,u_j] = P(H_j P g_i − H_i P g_j) from full Hessians (torch.func.hessian); flat (P, D)."""
    model.eval()
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    flat = spec.flatten(params)
    p_diag = torch.ones_like(flat) if precond is None else spec.flatten(precond)
    grads, hessians = {}, {}
    for k in {k for pair in pairs for k in pair}:
        f = _loss_of_flat(model, spec, buffers, x[k], y[k])
        grads[k] = torch.func.grad(f)(flat)
        hessians[k] = torch.func.hessian(f)(flat)
    rows = []
    for i, j in pairs:
        ui, uj = -p_diag * grads[i], -p_diag * grads[j]
        # J_{u_j} u_i − J_{u_i} u_j with J_{u_x} = −P H_x
        rows.append(-p_diag * (hessians[j] @ ui) + p_diag * (hessians[i] @ uj))
    return torch.stack(rows)


def double_backward_brackets(model, x, y, pairs):
    """H_j g_i − H_i g_j by double backward through autograd, one example at a time; flat (P, D)."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]

    def grad_of(k, create_graph):
        loss = bce_per_example(model(x[k:k + 1]), y[k:k + 1])[0]
        return torch.autograd.grad(loss, params, create_graph=create_graph)

    def hvp(k, vec):
        g = grad_of(k, True)
        return torch.autograd.grad(g, params, grad_outputs=vec)

    def flat(ts):
        return torch.cat([t.reshape(-1) for t in ts])
    rows = []
    for i, j in pairs:
        gi = [t.detach() for t in grad_of(i, False)]
        gj = [t.detach() for t in grad_of(j, False)]
        rows.append(flat(hvp(j, gi)) - flat(hvp(i, gj)))
    return torch.stack(rows)


def sgd_in_both_orders(fmodel, params, x, y, i, j, eps):
    """(θ_ij, θ_ji): two plain SGD steps of size ε from θ, on example i then j and on j then i."""
    def step(p, k):
        g = grad(fmodel.example_loss)(p, x[k], y[k])
        return {n: p[n] - eps * g[n] for n in p}
    return step(step(params, i), j), step(step(params, j), i)
