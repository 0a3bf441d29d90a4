"""Update fields of training examples on parameter space.

Each example x defines a vector field u_x(θ) = −P ∇θ L_x(θ) (P = identity for plain SGD).
Parameters are held as a dict of tensors and the model is called with
``torch.func.functional_call``; buffers are passed separately and BatchNorm runs in eval mode
(running statistics), so that the per-example loss L_x is well defined.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Mapping

import torch
from torch.func import functional_call, grad, grad_and_value

from .errors import ConfigError
from .tasks import MultiLabel, Task, bce_per_example

__all__ = [
    "LossFn",
    "Params",
    "bce_per_example",
    "like_params",
    "on_device",
    "eval_mode",
    "FunctionalModel",
    "UpdateField",
    "SGDField",
    "PreconditionedField",
]

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def on_device(t: torch.Tensor, device: torch.device | str | None, dtype: torch.dtype | None) -> torch.Tensor:
    """``t`` on ``device``, and in ``dtype`` when ``t`` is floating point (token ids, class labels and indices stay
    integers: only floating tensors take the sweep's precision)."""
    return t.to(device=device, dtype=dtype if t.is_floating_point() else None)


def like_params(t: torch.Tensor, params: Params) -> torch.Tensor:
    """``t`` on the parameters' device, and in their dtype when ``t`` is floating point (indices stay integers)."""
    ref = next(iter(params.values()))
    return on_device(t, ref.device, ref.dtype)


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``module`` (and every submodule) in eval mode; restore each one's flag on exit."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


class FunctionalModel:
    """A module seen as a function of its trainable parameters θ (a dict of tensors), on a task
    (:mod:`lie_sweep.tasks`: the loss, how the output is read, the measurement; default: multilabel BCE).

    Frozen parameters (``requires_grad=False``) and buffers are held fixed. Calls run the module
    as it is configured; wrap them in :func:`eval_mode` to use BatchNorm's running statistics.
    ``loss_fn(outputs, targets)`` (per item) replaces the task's loss where given.
    """

    def __init__(self, module: torch.nn.Module, loss_fn: LossFn | None = None, *, batched_items: bool = False,
                 task: Task | None = None) -> None:
        self.module = module
        self.task: Task = task if task is not None else MultiLabel()
        self.loss_fn: LossFn = loss_fn if loss_fn is not None else self.task.loss
        self.batched_items = batched_items  # an item is a minibatch: its loss is the mean of its examples' losses
        trainable = {n: p for n, p in module.named_parameters() if p.requires_grad}
        if not trainable:
            raise ConfigError("model has no trainable parameters",
                              expected="at least one parameter with requires_grad=True",
                              found="none", fix="unfreeze the parameters whose brackets you want")
        self.param_names: list[str] = list(trainable)
        self.fixed: dict[str, torch.Tensor] = {
            n: p.detach() for n, p in module.named_parameters() if not p.requires_grad}
        self.fixed.update({n: b for n, b in module.named_buffers()})

    def params(self) -> Params:
        """The module's current trainable parameters, detached, in ``named_parameters()`` order."""
        named = dict(self.module.named_parameters())
        return {n: named[n].detach() for n in self.param_names}

    def outputs(self, params: Mapping[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """f(θ; inputs) for a batch of inputs, read as the task reads it (a tensor; ``ModelOutput.logits``)."""
        return self.task.read(functional_call(self.module, (dict(params), self.fixed), (inputs,)))

    def measure(self, params: Mapping[str, torch.Tensor], inputs: torch.Tensor,
                targets: torch.Tensor | None = None) -> torch.Tensor:
        """The task's measurement of a batch, (batch, O): what logit deltas hold (for most tasks the outputs
        themselves; for a language model each position's log-probability of its true next token)."""
        return self.task.measure(self.outputs(params, inputs), targets)

    def example_loss(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_x(θ) for one item, a scalar: one example (no batch dimension on ``x`` and ``y``), or with
        ``batched_items`` a minibatch (B × …), whose loss is the mean of its examples' (a mean-gradient step)."""
        if self.batched_items:
            return self.loss_fn(self.outputs(params, x), y).mean()
        out = self.outputs(params, x.unsqueeze(0))
        return self.loss_fn(out, y.unsqueeze(0)).reshape(())

    def example_grad_and_loss(self, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                              y: torch.Tensor) -> tuple[Params, torch.Tensor]:
        """(∇θ L_x(θ), L_x(θ)) for one example."""
        return grad_and_value(self.example_loss)(dict(params), x, y)


class UpdateField(ABC):
    """u_x(θ) = direction(θ, ∇θ L_x(θ)): the update an optimizer step on x takes, per unit step.

    Subclasses define :meth:`direction`. Brackets differentiate u_x through θ with ``jvp``, so a
    direction that depends on θ is handled exactly; one that is linear in the gradient (all
    fields here) makes the field of a mean loss the mean of the fields.
    """

    name: str = "field"
    # direction(θ, g) is linear in g and does not depend on θ: J_u v = direction(θ, H v), which lets
    # reverse-over-reverse HVPs (lie_sweep.hvp) differentiate the field
    linear: bool = False

    @abstractmethod
    def direction(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]) -> Params:
        """The update direction for gradient ``grads`` at parameters ``params``."""

    def flat_factor(self, spec: Any) -> float | torch.Tensor | None:
        """f with direction(θ, g) = f ⊙ g on ``spec``'s flat axis (a number or a D-vector), for fields that
        scale the gradient elementwise independently of θ; None for any other (the default)."""
        return None

    def bind(self, params: Mapping[str, torch.Tensor]) -> "UpdateField":
        """Check the field against the parameters it will act on; returns the field to use."""
        return self

    def value(self, fmodel: FunctionalModel, params: Mapping[str, torch.Tensor], x: torch.Tensor,
              y: torch.Tensor) -> Params:
        """u_x(θ) for one example."""
        return self.direction(params, grad(fmodel.example_loss)(dict(params), x, y))


class SGDField(UpdateField):
    """u_x(θ) = −∇θ L_x(θ). Its bracket is [u_i, u_j] = H_j g_i − H_i g_j."""

    name = "sgd"
    linear = True

    def direction(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]) -> Params:
        """u = −g."""
        return {n: -g for n, g in grads.items()}

    def flat_factor(self, spec: Any) -> float:
        """−1: u = −g."""
        return -1.0


class PreconditionedField(UpdateField):
    """u_x(θ) = −P ∇θ L_x(θ) with a fixed diagonal preconditioner P (a dict of tensors).

    Its bracket is [u_i, u_j] = P (H_j P g_i − H_i P g_j).
    """

    name = "preconditioned"
    linear = True

    def __init__(self, diagonal: Mapping[str, torch.Tensor]) -> None:
        self.diagonal = {n: t.detach() for n, t in diagonal.items()}

    @classmethod
    def from_adam_state(cls, optimizer_state: Mapping, param_names: list[str],
                        eps: float | None = None) -> "PreconditionedField":
        """P = 1 / (sqrt(v̂) + eps), v̂ = v / (1 − β2^t): Adam's frozen preconditioner.

        ``optimizer_state`` is a ``torch.optim.Adam(W)`` state dict whose groups name their parameters
        (``param_names``: :func:`lie_sweep.optim_names.name_optimizer_state`), or whose parameter indices follow
        ``param_names`` (the order of ``model.parameters()`` given to the optimizer).
        """
        state, groups = optimizer_state.get("state", {}), optimizer_state.get("param_groups", [])
        diagonal: dict[str, torch.Tensor] = {}
        for group in groups:
            _, beta2 = group["betas"]
            group_eps = float(eps if eps is not None else group["eps"])
            named = group.get("param_names")  # matched by name (lie_sweep.optim_names), else by position
            for k, idx in enumerate(group["params"]):
                if named is None and idx >= len(param_names):
                    raise ConfigError("Adam state does not fit the model",
                                      expected=f"at most {len(param_names)} parameters",
                                      found=f"parameter index {idx}",
                                      fix="use the optimizer state saved with this model's checkpoint")
                name = named[k] if named is not None else param_names[idx]
                s = state.get(idx, state.get(str(idx)))
                if s is None or "exp_avg_sq" not in s:
                    raise ConfigError("Adam state has no second moment",
                                      expected=f"'exp_avg_sq' for parameter {name!r}",
                                      found="none (was the optimizer stepped before saving?)",
                                      fix="use a checkpoint saved after at least one Adam step")
                t = float(s["step"])
                v_hat = s["exp_avg_sq"].detach() / (1.0 - math.pow(beta2, t))
                diagonal[name] = 1.0 / (v_hat.sqrt() + group_eps)
        return cls(diagonal)

    def bind(self, params: Mapping[str, torch.Tensor]) -> "PreconditionedField":
        """P restricted to ``params``, on their device and dtype; one error line when it does not fit them."""
        missing = [n for n in params if n not in self.diagonal]
        if missing:
            raise ConfigError("preconditioner does not cover the parameters",
                              expected="a diagonal tensor for every trainable parameter",
                              found=f"none for {missing[:3]}{'...' if len(missing) > 3 else ''}",
                              fix="build P from the same model's optimizer state")
        bound = {}
        for n, p in params.items():
            d = self.diagonal[n]
            if tuple(d.shape) != tuple(p.shape):
                raise ConfigError(f"preconditioner for {n!r} has the wrong shape",
                                  expected=str(tuple(p.shape)), found=str(tuple(d.shape)),
                                  fix="build P from the same model's optimizer state")
            bound[n] = d.to(device=p.device, dtype=p.dtype)
        return PreconditionedField(bound)

    def direction(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]) -> Params:
        """u = −P g."""
        return {n: -self.diagonal[n] * g for n, g in grads.items()}

    def flat_factor(self, spec: Any) -> torch.Tensor:
        """−P on the flat axis (a bound field: P on the parameters' device and dtype)."""
        return -spec.flatten(self.diagonal)
