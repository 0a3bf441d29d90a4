"""The order effect of the optimizer that trained the model, expanded exactly in the learning rate.

For examples i, j at parameters θ with optimizer state s, and a functional step Φ (see
:mod:`lie_sweep.optim`) at learning rate ε,

    Δ(ε) = Φ_j(Φ_i(θ, s)) − Φ_i(Φ_j(θ, s))        (θ after i then j, minus after j then i),

optionally followed in both orders by K further steps with zero gradient, so that a momentum
buffer drains into the parameters (``follow_steps``). Δ(0) = 0, and

    Δ(ε) = ε Δ₁ + ε² Δ₂ + O(ε³),   Δ₁ = Δ'(0),  Δ₂ = Δ''(0) / 2,

computed by nested forward-mode AD in ε (``torch.func.jvp`` of ``jvp``) through the real steps and
the per-example gradients: exact to rounding, never finite differences. What they are:

* plain SGD: Δ₁ = 0, Δ₂ = [u_i, u_j] = H_j g_i − H_i g_j (the bracket);
* SGD with momentum μ and buffer m (dampening 0): Δ₁ = −μ (g_i − g_j), Δ₂ = [u_i, u_j] + μ (H_j − H_i) m.
  Draining with K zero-gradient steps pays the two orders' buffer difference, (μ − 1)(g_i − g_j) at
  first order, out into θ: Δ₁ = −μ^{K+1} (g_i − g_j), which vanishes as K grows (both orders end up
  having applied the same gradients), while Δ₂ gains the second-order terms the drained buffers carry;
* Adam / AdamW: the state update does not depend on ε, so Δ₁ = −(d_i + d_j^{(i)}) + (d_j + d_i^{(j)}) with
  d_x = m̂_x / (√v̂_x + eps) the step direction after taking g_x into the moments, and d^{(x)} the next
  direction from the moments that already hold g_x: order matters at first order whenever the moments
  carry memory (β₁ > 0 or β₂ < 1 with t small). Δ₂ collects the gradient changes
  g_j(θ − ε d_i) − g_j = −ε H_j d_i pushed through the step's derivative in g (of m̂ and of 1/√v̂);
  weight decay adds terms in θ; with AdamW also (1 − ελ) factors. Muon is the same with the
  Newton–Schulz map of the momentum in place of m̂ / √v̂. Draining: the two orders leave moments that
  differ at ε⁰ by −(1 − β₁)²(g_i − g_j) in m and −(1 − β₂)²(g_i² − g_j²) in v; zero-gradient steps pay
  them out through the nonlinear m̂ / (√v̂ + eps), so unlike momentum SGD, Δ₁ does not vanish as K
  grows: it converges to a non-zero limit (measured on a small MLP with β = (0.8, 0.999): ‖Δ₁‖ 3.53
  at K = 0, 1.33 for K ≥ 50), while Δ₂ grows (6.2 → 33).

Cost per pair: the two orders each take one gradient at θ (no ε dependence) and one at a moved point,
carried to second order in ε: about two forward-over-forward-over-reverse passes, against two HVPs
(forward-over-reverse) for the SGD bracket (benchmarks/bench_order.py measures it).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch.func import grad, jvp

from .fields import FunctionalModel, Params, eval_mode
from .optim import OptimizerStep, State
from .params import ParamSpec

__all__ = ["order_expansion", "order_terms_of_pairs", "swap_difference", "swap_parameters"]


def _orders(fmodel: FunctionalModel, step: OptimizerStep, params: Mapping[str, torch.Tensor], state: State,
            first: tuple[torch.Tensor, torch.Tensor], second: tuple[torch.Tensor, torch.Tensor], lr,
            follow_steps: int) -> Params:
    """θ after a step on ``first`` then one on ``second`` (then ``follow_steps`` zero-gradient steps)."""
    loss = fmodel.example_loss
    p, s = dict(params), state
    for x, y in (first, second):
        p, s = step.step(p, s, grad(loss)(p, x, y), lr=lr)
    for _ in range(follow_steps):
        p, s = step.step(p, s, {n: torch.zeros_like(t) for n, t in p.items()}, lr=lr)
    return p


def swap_parameters(fmodel: FunctionalModel, step: OptimizerStep, params: Mapping[str, torch.Tensor], state: State,
                    example_i: tuple[torch.Tensor, torch.Tensor], example_j: tuple[torch.Tensor, torch.Tensor],
                    lr: float | torch.Tensor, follow_steps: int = 0) -> tuple[Params, Params]:
    """(θ after i then j, θ after j then i) through the functional steps at ``lr`` (BatchNorm in eval mode)."""
    with eval_mode(fmodel.module):
        return (_orders(fmodel, step, params, state, example_i, example_j, lr, follow_steps),
                _orders(fmodel, step, params, state, example_j, example_i, lr, follow_steps))


def swap_difference(fmodel: FunctionalModel, step: OptimizerStep, params: Mapping[str, torch.Tensor], state: State,
                    example_i: tuple[torch.Tensor, torch.Tensor], example_j: tuple[torch.Tensor, torch.Tensor],
                    lr: float | torch.Tensor, follow_steps: int = 0) -> Params:
    """Δ(lr): θ after i then j minus θ after j then i, through the functional steps (BatchNorm in eval mode)."""
    a, b = swap_parameters(fmodel, step, params, state, example_i, example_j, lr, follow_steps)
    return {n: a[n] - b[n] for n in a}


def order_expansion(fmodel: FunctionalModel, step: OptimizerStep, params: Mapping[str, torch.Tensor], state: State,
                    example_i: tuple[torch.Tensor, torch.Tensor], example_j: tuple[torch.Tensor, torch.Tensor],
                    follow_steps: int = 0) -> tuple[Params, Params]:
    """(Δ₁, Δ₂): the ε and ε² Taylor coefficients of Δ(ε) (see the module docstring), as named tensors.

    ``example_*`` are (input, target) without a batch dimension; ``state`` is the optimizer state by
    parameter name (:func:`lie_sweep.optim.from_state_dict`), in the parameters' dtype."""
    dtype = next(iter(params.values())).dtype
    device = next(iter(params.values())).device
    zero = torch.zeros((), dtype=dtype, device=device)
    one = torch.ones((), dtype=dtype, device=device)

    def delta(eps: torch.Tensor) -> Params:
        return swap_difference(fmodel, step, params, state, example_i, example_j, eps, follow_steps)

    def first_derivative(eps: torch.Tensor) -> Params:
        return jvp(delta, (eps,), (one,))[1]

    d1, d2 = jvp(first_derivative, (zero,), (one,))
    return {n: t.detach() for n, t in d1.items()}, {n: (t / 2).detach() for n, t in d2.items()}


def order_terms_of_pairs(fmodel: FunctionalModel, step: OptimizerStep, params: Mapping[str, torch.Tensor],
                         state: State, inputs: torch.Tensor, targets: torch.Tensor, pairs: Sequence[Sequence[int]],
                         follow_steps: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(Δ₁, Δ₂) of each pair (i, j) of ``pairs`` (indices into the batch ``inputs``, ``targets``), flat over the
    parameters (pairs × D each), one pair at a time (:func:`order_expansion`)."""
    spec = ParamSpec.from_tensors(params)
    d1, d2 = [], []
    for i, j in pairs:
        a, b = order_expansion(fmodel, step, params, state, (inputs[i], targets[i]), (inputs[j], targets[j]),
                               follow_steps=follow_steps)
        d1.append(spec.flatten(a))
        d2.append(spec.flatten(b))
    return torch.stack(d1), torch.stack(d2)
