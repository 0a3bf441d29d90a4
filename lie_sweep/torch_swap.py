"""θ_ij − θ_ji taken by ``torch.optim`` itself, from a checkpoint's saved optimizer state: the reference that
``lie-sweep verify`` checks a store's exact swaps against (:mod:`lie_sweep.swap` computes them functionally,
batched; this module steps real optimizers, one order at a time).

For each order the module is deep-copied and its optimizers rebuilt from the saved state dicts (each from its
own deep copy: ``load_state_dict`` keeps a saved ``step`` tensor by reference and Adam increments it in place),
every group's learning rate scaled by lr / (the first group's saved rate), as the sweep's
:class:`~lie_sweep.swap.OptimizerRule` does; then one ``optimizer.step()`` on example i's loss, one on j's, and
``follow_steps`` more on zero gradients. BatchNorm runs in eval mode (running statistics), as in the sweep.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import torch

from .fields import LossFn, bce_per_example
from .optim import optimizer_kind
from .tasks import read_output

__all__ = ["TORCH_OPTIMIZERS", "rebuild_optimizers", "torch_optim_ends", "torch_optim_swap"]

TORCH_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                    "muon": getattr(torch.optim, "Muon", None)}


def _dicts(saved: Mapping | Sequence[Mapping]) -> list[Mapping]:
    return [saved] if isinstance(saved, Mapping) else list(saved)


def rebuild_optimizers(module: torch.nn.Module, saved: Mapping | Sequence[Mapping]) -> list[torch.optim.Optimizer]:
    """``torch.optim`` optimizers over ``module``'s parameters from saved state dict(s) (one, or a list: Muon
    with AdamW), each group's parameters by ``param_names`` (or by position in ``module.parameters()``)."""
    named = dict(module.named_parameters())
    ordered = list(named)
    out = []
    for sd in _dicts(saved):
        cls = TORCH_OPTIMIZERS[optimizer_kind(sd["param_groups"][0])]
        groups = [{"params": [(n, named[n]) for n in g["param_names"]]} if "param_names" in g else
                  {"params": [named[ordered[k]] for k in g["params"]]} for g in sd["param_groups"]]
        opt = cls(groups)
        opt.load_state_dict(copy.deepcopy(dict(sd)))
        out.append(opt)
    return out


def _one_order(module: torch.nn.Module, saved: Any, loss_fn: LossFn, examples: Sequence[Any], lr: float,
               follow_steps: int, batched_items: bool) -> torch.Tensor:
    model = copy.deepcopy(module).eval()
    optimizers = rebuild_optimizers(model, saved)
    base = float(optimizers[0].param_groups[0]["lr"])
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = float(group["lr"]) * lr / base if base else lr  # saved 0 (a schedule's end): lr itself
    params = [p for p in model.parameters() if p.requires_grad]
    for example in [*examples, *[None] * follow_steps]:
        for opt in optimizers:
            opt.zero_grad()
        if example is None:
            for p in params:
                p.grad = torch.zeros_like(p)
        else:
            x, y = example
            out = read_output(model(x if batched_items else x[None]))
            (loss_fn(out, y).mean() if batched_items else loss_fn(out, y[None]).sum()).backward()
        for opt in optimizers:
            opt.step()
    return torch.cat([p.detach().reshape(-1) for p in params])


def torch_optim_ends(module: torch.nn.Module, saved: Mapping | Sequence[Mapping], example_i: Any, example_j: Any,
                     lr: float, *, follow_steps: int = 0, loss_fn: LossFn | None = None,
                     batched_items: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(θ_ij, θ_ji), flat over ``module``'s trainable parameters in ``named_parameters()`` order: two
    ``torch.optim`` steps at learning rate ``lr`` in each order (see the module docstring); ``module`` itself
    is left as it was. ``example_*`` are (input, target) without a batch dimension, or with ``batched_items``
    minibatches (B × …), each step then on the minibatch's mean loss."""
    loss_fn = loss_fn or bce_per_example
    return (_one_order(module, saved, loss_fn, (example_i, example_j), lr, follow_steps, batched_items),
            _one_order(module, saved, loss_fn, (example_j, example_i), lr, follow_steps, batched_items))


def torch_optim_swap(module: torch.nn.Module, saved: Mapping | Sequence[Mapping], example_i: Any, example_j: Any,
                     lr: float, *, follow_steps: int = 0, loss_fn: LossFn | None = None,
                     batched_items: bool = False) -> torch.Tensor:
    """θ_ij − θ_ji of :func:`torch_optim_ends` (its round-off: that of the parameters, u·max|θ|)."""
    ij, ji = torch_optim_ends(module, saved, example_i, example_j, lr, follow_steps=follow_steps, loss_fn=loss_fn,
                              batched_items=batched_items)
    return ij - ji
