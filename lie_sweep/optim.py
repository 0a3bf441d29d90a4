"""Optimizer steps as pure functions of named tensors, built from a saved ``optimizer.state_dict()``.

``step(params, state, grads, lr) -> (params', state')`` never mutates its inputs, so it composes
with ``torch.func`` transforms: the learning rate ``lr`` may be a 0-d tensor carrying forward-mode
tangents (see :mod:`lie_sweep.order`). Each kind follows its ``torch.optim`` class's single-tensor
algorithm (torch 2.13), per parameter p with gradient g, learning rate γ:

SGD (momentum μ, dampening τ, weight decay λ, Nesterov)::

    d = g + λ p;  b = d on the first step, else μ b + (1 − τ) d;  d = d + μ b (Nesterov) or b;  p ← p − γ d

Adam / AdamW (β₁, β₂, eps, λ; t the step count after this step)::

    Adam: g ← g + λ p          AdamW (decoupled): p ← p (1 − γ λ)
    m ← m + (1 − β₁)(g − m);  v ← β₂ v + (1 − β₂) g²   (amsgrad: v_max ← max(v_max, v), used below)
    p ← p − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + eps)

Muon (momentum μ, Nesterov, λ, Newton–Schulz coefficients (a, b, c), k steps, eps; 2-D only)::

    b ← b + (1 − μ)(g − b);  B = g + μ (b − g) (Nesterov) or b;  O = NS_k(B / max(‖B‖, eps))
    p ← p (1 − γ λ) − γ · r(shape) · O,   r = √max(1, A/B) ("original") or 0.2 √max(A, B)

``torch.optim.Muon`` runs NS in bfloat16; ``ns_dtype="bfloat16"`` does the same (it then matches
torch step for step), the default ``ns_dtype=None`` runs it in the parameters' dtype: a smooth map
whose Taylor coefficients in γ exist (bfloat16 rounding has none). A checkpoint trained with Muon
usually holds two optimizers (Muon for the 2-D weights, AdamW for the rest): pass both state dicts
as a list, with ``param_names`` in their groups (construct them with ``model.named_parameters()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import torch

from .errors import ConfigError

__all__ = ["OptimizerStep", "optimizer_kind", "from_state_dict", "cast_state", "State"]

Params = dict[str, torch.Tensor]
State = dict[str, dict[str, Any]]

_SGD_KEYS = {"momentum", "dampening", "nesterov"}
_MUON_KEYS = {"ns_coefficients", "ns_steps"}


def optimizer_kind(group: Mapping[str, Any]) -> str:
    """The ``torch.optim`` class a saved param group belongs to: sgd, adam, adamw or muon."""
    keys = set(group)
    if _MUON_KEYS <= keys:
        return "muon"
    if "betas" in keys:
        return "adamw" if group.get("decoupled_weight_decay", False) else "adam"
    if _SGD_KEYS <= keys:
        return "sgd"
    raise ConfigError("unsupported optimizer state", expected="a state dict of torch.optim SGD, Adam, AdamW or Muon",
                      found=f"a param group with keys {sorted(k for k in keys if k != 'params')}",
                      fix="save one of those optimizers' state_dict() with the checkpoint")


@dataclass
class _Group:
    kind: str
    names: list[str]
    hyper: dict[str, Any]


def _newton_schulz(x: torch.Tensor, coefficients: Sequence[float], steps: int, eps: float,
                   dtype: torch.dtype | None) -> torch.Tensor:
    """torch.optim.Muon's quintic Newton–Schulz iteration, out of place, in ``dtype`` (None: x's)."""
    a, b, c = coefficients
    out_dtype = x.dtype
    y = x.to(dtype) if dtype is not None else x
    tall = y.size(0) > y.size(1)
    if tall:
        y = y.T
    y = y / y.norm().clamp(min=eps)
    for _ in range(steps):
        gram = y @ y.T
        update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        y = torch.addmm(y, update, y, beta=a)
    if tall:
        y = y.T
    return y.to(out_dtype) if dtype is not None else y


def _muon_lr_ratio(adjust: str | None, shape: Sequence[int]) -> float:
    rows, cols = shape[:2]
    if adjust is None or adjust == "original":
        return math.sqrt(max(1, rows / cols))
    if adjust == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


@dataclass
class OptimizerStep:
    """One optimizer step as a pure function (see the module docstring); ``groups`` from a state dict."""

    groups: list[_Group]
    ns_dtype: torch.dtype | None = None
    lr: dict[str, float] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        """The optimizer kinds, one per param group."""
        return [g.kind for g in self.groups]

    def learning_rate(self) -> float:
        """The (first group's) configured learning rate: ε at which a real swap is taken."""
        return float(self.groups[0].hyper["lr"])

    def step(self, params: Mapping[str, torch.Tensor], state: State, grads: Mapping[str, torch.Tensor],
             lr: float | torch.Tensor | None = None) -> tuple[Params, State]:
        """(params', state') after one step with gradients ``grads``; ``lr`` scales every group's learning
        rate by lr / (first group's lr) when given (None: the saved rates; a saved rate of 0, a schedule's end:
        every group's rate is ``lr``). Parameters without a group are returned unchanged."""
        new_params, new_state = dict(params), {k: dict(v) for k, v in state.items()}
        for name, (decay, update) in self._updates(params, new_state, grads, lr):
            p = params[name]
            new_params[name] = (p if decay is None else p * (1 - decay)) + update
        return new_params, new_state

    def increment(self, params: Mapping[str, torch.Tensor], state: State, grads: Mapping[str, torch.Tensor],
                  lr: float | torch.Tensor | None = None) -> tuple[Params, State]:
        """(params' − params, state') of :meth:`step`, computed as an increment (−decay·θ + update), never as
        the difference of two parameter vectors: what exact swaps accumulate (:mod:`lie_sweep.swap`).
        Parameters without a group get a zero increment."""
        new_state = {k: dict(v) for k, v in state.items()}
        inc = {name: torch.zeros_like(p) for name, p in params.items()}
        for name, (decay, update) in self._updates(params, new_state, grads, lr):
            inc[name] = update if decay is None else update - decay * params[name]
        return inc, new_state

    def _updates(self, params: Mapping[str, torch.Tensor], new_state: State, grads: Mapping[str, torch.Tensor],
                 lr: float | torch.Tensor | None) -> Iterator[tuple[str, tuple[Any, torch.Tensor]]]:
        """(name, (decay, update)) per stepped parameter: θ' = θ (1 − decay) + update (decay None: θ' = θ +
        update); ``new_state`` (a copy) receives each parameter's new state."""
        base = self.learning_rate()
        scale = None if lr is None or base == 0 else lr / base
        for group in self.groups:
            # a schedule's last checkpoint may have saved lr 0: then every group takes lr itself
            gamma = group.hyper["lr"] if lr is None else lr if scale is None else group.hyper["lr"] * scale
            for name in group.names:
                p, g, s = params[name], grads[name], new_state.setdefault(name, {})
                if group.hyper.get("maximize", False):
                    g = -g
                yield name, getattr(self, f"_{group.kind.replace('adamw', 'adam')}")(p, g, s, gamma, group.hyper)

    # -- one parameter each; ``s`` is that parameter's state dict, replaced in place by new tensors; each
    # returns (decay, update) with θ' = θ (1 − decay) + update -----------------------------------------------
    @staticmethod
    def _sgd(p: torch.Tensor, g: torch.Tensor, s: dict, lr: Any, h: Mapping) -> tuple[None, torch.Tensor]:
        d = g + h["weight_decay"] * p if h["weight_decay"] else g
        mu = h["momentum"]
        if mu:
            buf = s.get("momentum_buffer")
            buf = d if buf is None else mu * buf.to(d.dtype) + (1 - h["dampening"]) * d
            s["momentum_buffer"] = buf
            d = d + mu * buf if h["nesterov"] else buf
        return None, -(lr * d)

    @staticmethod
    def _adam(p: torch.Tensor, g: torch.Tensor, s: dict, lr: Any, h: Mapping) -> tuple[Any, torch.Tensor]:
        beta1, beta2 = (float(b) for b in h["betas"])
        wd = h["weight_decay"]
        decay = None
        if wd and h.get("decoupled_weight_decay", False):
            decay = lr * wd
        elif wd:
            g = g + wd * p
        t = float(s.get("step", 0.0)) + 1.0
        m = s.get("exp_avg", torch.zeros_like(g)).to(g.dtype)  # a saved state's dtype may be narrower
        v = s.get("exp_avg_sq", torch.zeros_like(g)).to(g.dtype)
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        s.update(step=torch.tensor(t, dtype=torch.float32), exp_avg=m, exp_avg_sq=v)
        if h.get("amsgrad", False):
            v = torch.maximum(s.get("max_exp_avg_sq", torch.zeros_like(v)).to(v.dtype), v)
            s["max_exp_avg_sq"] = v
        denom = v.sqrt() / math.sqrt(1 - beta2 ** t) + h["eps"]
        return decay, -((lr / (1 - beta1 ** t)) * m / denom)

    def _muon(self, p: torch.Tensor, g: torch.Tensor, s: dict, lr: Any, h: Mapping) -> tuple[Any, torch.Tensor]:
        mu = h["momentum"]
        buf = s.get("momentum_buffer", torch.zeros_like(g)).to(g.dtype)
        buf = buf + (1 - mu) * (g - buf)
        s["momentum_buffer"] = buf
        update = g + mu * (buf - g) if h["nesterov"] else buf
        ortho = _newton_schulz(update, h["ns_coefficients"], h["ns_steps"], h["eps"], self.ns_dtype)
        return lr * h["weight_decay"], -(lr * _muon_lr_ratio(h.get("adjust_lr_fn"), p.shape) * ortho)


def _state_of(saved: Mapping, index: Any) -> dict[str, Any] | None:
    state = saved.get("state", {})
    return state.get(index, state.get(str(index)))


def from_state_dict(saved: Mapping | Sequence[Mapping], param_names: Sequence[str], *,
                    ns_dtype: torch.dtype | None = None) -> tuple[OptimizerStep, State]:
    """The step function and the state (by parameter name, tensors cloned) of saved optimizer(s).

    ``saved`` is one ``optimizer.state_dict()``, or a list of them (Muon with AdamW). A group's
    ``param_names`` name its parameters; without them its integer indices are positions in
    ``param_names`` (the order of ``model.parameters()`` the optimizer was built with), which is only
    unambiguous for a single optimizer.
    """
    dicts = [saved] if isinstance(saved, Mapping) else list(saved)
    groups: list[_Group] = []
    state: State = {}
    for sd in dicts:
        if not isinstance(sd, Mapping) or "param_groups" not in sd:
            raise ConfigError("optimizer state missing", expected="an optimizer.state_dict() with param_groups",
                              found=type(sd).__name__, fix="save optimizer.state_dict() with the checkpoint")
        for group in sd["param_groups"]:
            kind = optimizer_kind(group)
            named = group.get("param_names")
            if named is None and len(dicts) > 1:
                raise ConfigError("several optimizers need named parameters", expected="param_names in each group",
                                  found="integer indices only", fix="build the optimizers with "
                                  "model.named_parameters() so their state dicts name their parameters")
            names = []
            for k, index in enumerate(group["params"]):
                name = named[k] if named is not None else (param_names[index] if index < len(param_names) else None)
                if name is None or name not in param_names:
                    raise ConfigError("optimizer state does not fit the model",
                                      expected=f"parameters among the model's {len(param_names)}",
                                      found=f"parameter {index!r} ({name})",
                                      fix="use the optimizer state saved with this model's checkpoint")
                names.append(name)
                saved_state = _state_of(sd, index)
                if saved_state:
                    state[name] = {key: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
                                   for key, v in saved_state.items()}
            hyper = {k: v for k, v in group.items() if k not in ("params", "param_names")}
            for key in ("lr", "weight_decay", "momentum", "dampening", "eps"):
                if isinstance(hyper.get(key), torch.Tensor):
                    hyper[key] = float(hyper[key])
            groups.append(_Group(kind, names, hyper))
    return OptimizerStep(groups, ns_dtype=ns_dtype), state


def cast_state(state: State, dtype: torch.dtype, device: torch.device | str | None = None) -> State:
    """``state`` with its floating tensors (not step counts) in ``dtype`` on ``device``."""
    return {name: {k: (v.to(device=device, dtype=dtype) if isinstance(v, torch.Tensor) and v.is_floating_point()
                       and k != "step" else v) for k, v in s.items()} for name, s in state.items()}
