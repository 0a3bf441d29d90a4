"""How far the leading order holds: real two-step swaps against ε²[u_i, u_j], at a ladder of step sizes.

For a pair (i, j) at θ and a step size ε, the real swap takes the field's own steps
θ ← θ + ε u_x(θ) (for ``SGDField`` exactly ``torch.optim.SGD(lr=ε)``; for a ``PreconditionedField``,
SGD with Adam's frozen P) in both orders:

    Δ(ε) = θ_ij − θ_ji,     δf(ε) = f(θ_ij) − f(θ_ji) on the evaluation batch,

and compares them with the prediction ε² b (b = [u_i, u_j]) and ε² J_f b:

    rel_theta  = ‖Δ(ε) − ε² b‖ / ‖Δ(ε)‖,     rel_logits = ‖δf(ε) − ε² J_f b‖ / ‖δf(ε)‖.

Both fall like ε when the expansion holds (the remainder is O(ε³)). ``relu_switch`` is the fraction of
ReLU inputs (over the evaluation batch, every ``nn.ReLU`` module) whose sign changes within one step
of size ε on i or on j (mean of the two): where it is large, the loss is not smooth on the scale of a
step and no Taylor expansion can hold. NaN for models without ``nn.ReLU`` modules.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from .fields import FunctionalModel, Params, UpdateField, eval_mode
from .tasks import EvalBatch, eval_batch

__all__ = ["LADDER", "real_swap", "relu_switch_fraction", "swap_errors", "field_swap_errors"]

LADDER = (1.0, 1 / 4, 1 / 16, 1 / 64, 1 / 256)  # ε as fractions of the training learning rate


def _flat(d: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in d.values()])


def _steps(fmodel: FunctionalModel, field: UpdateField, params: Params, examples, eps: float) -> Params:
    p = dict(params)
    for x, y in examples:
        u = field.value(fmodel, p, x, y)
        p = {n: p[n] + eps * u[n] for n in p}
    return p


def real_swap(fmodel: FunctionalModel, field: UpdateField, params: Mapping[str, torch.Tensor],
              example_i: tuple[torch.Tensor, torch.Tensor], example_j: tuple[torch.Tensor, torch.Tensor],
              eps: float) -> tuple[Params, Params]:
    """(θ_ij, θ_ji): two steps of size ``eps`` along the field, in each order (BatchNorm in eval mode)."""
    with eval_mode(fmodel.module), torch.no_grad():
        return (_steps(fmodel, field, dict(params), (example_i, example_j), eps),
                _steps(fmodel, field, dict(params), (example_j, example_i), eps))


def relu_switch_fraction(fmodel: FunctionalModel, before: Mapping[str, torch.Tensor],
                         after: Mapping[str, torch.Tensor], inputs: torch.Tensor) -> float:
    """Fraction of ``nn.ReLU`` inputs on ``inputs`` whose sign differs between ``before`` and ``after``
    (NaN without ReLU modules)."""
    seen: list[torch.Tensor] = []
    relus = [m for m in fmodel.module.modules() if isinstance(m, torch.nn.ReLU)]
    if not relus:
        return float("nan")
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.append(args[0] > 0)) for m in relus]
    try:
        with eval_mode(fmodel.module), torch.no_grad():
            fmodel.outputs(before, inputs)
            signs_before, seen[:] = list(seen), []
            fmodel.outputs(after, inputs)
    finally:
        for h in hooks:
            h.remove()
    switched = sum(int((a != b).sum()) for a, b in zip(signs_before, seen))
    total = sum(a.numel() for a in signs_before)
    return switched / total


def swap_errors(fmodel: FunctionalModel, params: Mapping[str, torch.Tensor],
                swap: Callable[[float], tuple[Params, Params]], one_step: Callable[[float, int], Params],
                predict: Callable[[float], tuple[torch.Tensor, torch.Tensor | None]],
                eval_inputs: EvalBatch | torch.Tensor | None, epsilons: Sequence[float]) -> list[dict[str, float]]:
    """For each ε: rel_theta, rel_logits (NaN without an evaluation batch or a logit prediction), the norms
    of the real and predicted parameter swaps, and relu_switch (see the module docstring).

    ``swap(ε)`` gives (θ_ij, θ_ji), ``one_step(ε, k)`` θ after one step on example k (0: i, 1: j), and
    ``predict(ε)`` the predicted θ_ij − θ_ji (flat) and f(θ_ij) − f(θ_ji) on ``eval_inputs`` (or None; f the task's
    measurement; an :class:`~lie_sweep.tasks.EvalBatch`, or its inputs alone)."""
    batch = eval_batch(eval_inputs)
    rows = []
    for eps in epsilons:
        a, c = swap(eps)
        delta = (_flat(a) - _flat(c)).to(torch.float64)
        pred, pred_f = predict(eps)
        pred = pred.to(torch.float64)
        row = {"epsilon": float(eps), "norm_real": float(delta.norm()), "norm_pred": float(pred.norm()),
               "rel_theta": float((delta - pred).norm() / delta.norm()), "rel_logits": float("nan"),
               "relu_switch": float("nan")}
        if batch is not None:
            with eval_mode(fmodel.module), torch.no_grad():
                real = (fmodel.measure(a, batch.inputs, batch.targets)
                        - fmodel.measure(c, batch.inputs, batch.targets)).to(torch.float64)
            if pred_f is not None:
                row["rel_logits"] = float((real - pred_f.reshape(real.shape).to(torch.float64)).norm() / real.norm())
            row["relu_switch"] = 0.5 * (relu_switch_fraction(fmodel, params, one_step(eps, 0), batch.inputs)
                                        + relu_switch_fraction(fmodel, params, one_step(eps, 1), batch.inputs))
        rows.append(row)
    return rows


def field_swap_errors(fmodel: FunctionalModel, field: UpdateField, params: Mapping[str, torch.Tensor],
                      example_i: tuple[torch.Tensor, torch.Tensor], example_j: tuple[torch.Tensor, torch.Tensor],
                      bracket: Mapping[str, torch.Tensor], eval_inputs: torch.Tensor | None,
                      logit_bracket: torch.Tensor | None, epsilons: Sequence[float]) -> list[dict[str, float]]:
    """:func:`swap_errors` of steps along ``field`` against ε² b (b = [u_i, u_j] by name) and ε² J_f b
    (``logit_bracket`` = J_f b on ``eval_inputs``, or None)."""
    b = _flat(bracket).to(torch.float64)
    examples = (example_i, example_j)

    def one_step(eps: float, k: int) -> Params:
        with eval_mode(fmodel.module), torch.no_grad():
            return _steps(fmodel, field, dict(params), (examples[k],), eps)

    def predict(eps: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        return eps * eps * b, None if logit_bracket is None else eps * eps * logit_bracket

    return swap_errors(fmodel, params, lambda eps: real_swap(fmodel, field, params, example_i, example_j, eps),
                       one_step, predict, eval_inputs, epsilons)
