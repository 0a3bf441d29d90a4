"""Which parameter each entry of a saved optimizer state belongs to: by name where the file records names,
otherwise by position, never without every state tensor's shape checked against its parameter.

A ``torch.optim`` state dict indexes parameters by integers numbered across its groups in group order. The
integer is a position in the parameter list the optimizer was built with, which is ``model.parameters()``
only for one group over all parameters. :func:`name_optimizer_state` gives every group ``param_names``:

1. names the file records (``param_names``, torch ≥ 2.6 with ``model.named_parameters()``), with a module
   prefix that the model's own names lack removed (a Lightning module's ``model.``);
2. else positions in the model's parameter order, accepted when every state tensor has its parameter's shape;
3. else, for several groups each holding a subsequence of the model's parameters in model order (the Hugging
   Face Trainer's weight-decay and no-decay groups), the one assignment of parameters to groups under which
   every shape fits, found by dynamic programming; none, or more than one, is one error line (never a
   silently wrong swap: several assignments fit only where shapes repeat, and then names are needed).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import torch

from .errors import ConfigError

__all__ = ["name_optimizer_state"]


def _state_of(saved: Mapping, index: Any) -> Mapping[str, Any]:
    state = saved.get("state", {}) or {}
    return state.get(index, state.get(str(index))) or {}


def _shape(saved: Mapping, index: Any) -> tuple[int, ...] | None:
    """The shape the state of parameter ``index`` implies (its moment buffers'), None when it holds none."""
    for value in _state_of(saved, index).values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return tuple(value.shape)
    return None


def _refuse(found: str, fix: str = "save the optimizer built with model.named_parameters() (its state then names "
                                   "its parameters), or the state saved with this model's checkpoint") -> ConfigError:
    return ConfigError("optimizer state does not fit the model", expected="a state entry of each parameter's shape, "
                       "matched by name or position", found=found, fix=fix)


def _by_names(saved: Mapping, shapes: Mapping[str, Sequence[int]], prefix: str) -> list[list[str]]:
    groups = []
    for group in saved["param_groups"]:
        names = []
        for index, name in zip(group["params"], group["param_names"]):
            name = name[len(prefix):] if prefix and name not in shapes and name.startswith(prefix) else name
            if name not in shapes:
                raise _refuse(f"parameter {name!r} of the saved state is not the model's")
            shape = _shape(saved, index)
            if shape is not None and shape != tuple(shapes[name]):
                raise _refuse(f"the state of {name!r} has shape {shape}, the parameter {tuple(shapes[name])}")
            names.append(name)
        groups.append(names)
    return groups


def _by_position(saved: Mapping, names: list[str], shapes: Mapping[str, Sequence[int]]) -> list[list[str]] | str:
    groups = []
    for group in saved["param_groups"]:
        chosen = []
        for index in group["params"]:
            if not isinstance(index, int) or not 0 <= index < len(names):
                return f"parameter index {index!r} of a model with {len(names)} parameters"
            shape = _shape(saved, index)
            if shape is not None and shape != tuple(shapes[names[index]]):
                return (f"the state of parameter {index} has shape {shape}, the model's parameter {index} "
                        f"({names[index]}) {tuple(shapes[names[index]])}")
            chosen.append(names[index])
        groups.append(chosen)
    return groups


def _by_partition(saved: Mapping, names: list[str], shapes: Mapping[str, Sequence[int]]) -> list[list[str]] | int:
    """The unique split of the model's parameters (in order) into the groups' subsequences under which every
    shape fits, where the groups' indices run 0..n−1 in group order; else how many splits fit (0, or 2 for
    several)."""
    groups = [list(g["params"]) for g in saved["param_groups"]]
    flat = [i for g in groups for i in g]
    if len(flat) != len(names) or flat != list(range(len(names))):
        return 0
    wanted = [[_shape(saved, i) for i in g] for g in groups]
    sizes = tuple(len(g) for g in groups)

    def fits(g: int, k: int, name: str) -> bool:
        return wanted[g][k] is None or wanted[g][k] == tuple(shapes[name])

    @lru_cache(maxsize=None)
    def ways(counts: tuple[int, ...]) -> int:  # assignments of names[sum(counts):], capped at 2
        at = sum(counts)
        if at == len(names):
            return 1
        total = 0
        for g, c in enumerate(counts):
            if c < sizes[g] and fits(g, c, names[at]):
                total += ways(counts[:g] + (c + 1,) + counts[g + 1:])
                if total >= 2:
                    return 2
        return total

    start = (0,) * len(groups)
    if ways(start) != 1:
        return ways(start)
    out, counts = [[] for _ in groups], start
    for name in names:
        g = next(g for g, c in enumerate(counts) if c < sizes[g] and fits(g, c, name)
                 and ways(counts[:g] + (c + 1,) + counts[g + 1:]) == 1)
        out[g].append(name)
        counts = counts[:g] + (counts[g] + 1,) + counts[g + 1:]
    return out


def name_optimizer_state(saved: Mapping | Sequence[Mapping] | None, shapes: Mapping[str, Sequence[int]],
                         prefix: str = "") -> Any:
    """``saved`` (one state dict or a list) with ``param_names`` in every group, found as the module docstring
    says; ``shapes``: the model's trainable parameters in ``named_parameters()`` order; ``prefix``: the module
    prefix the checkpoint's model keys had (``model.``). None stays None."""
    if saved is None:
        return None
    dicts = [saved] if isinstance(saved, Mapping) else list(saved)
    names = list(shapes)
    out = []
    for sd in dicts:
        if not isinstance(sd, Mapping) or not isinstance(sd.get("param_groups"), list):
            raise ConfigError("optimizer state missing", expected="an optimizer.state_dict() with param_groups",
                              found=type(sd).__name__, fix="save optimizer.state_dict() with the checkpoint")
        if all("param_names" in g for g in sd["param_groups"]):
            groups = _by_names(sd, shapes, prefix)
        elif len(dicts) > 1:
            raise ConfigError("several optimizers need named parameters", expected="param_names in each group",
                              found="integer indices only", fix="build the optimizers with model.named_parameters() "
                              "so that their state dicts name their parameters")
        else:
            groups = _by_position(sd, names, shapes)
            if isinstance(groups, str):
                partition = _by_partition(sd, names, shapes) if len(sd["param_groups"]) > 1 else 0
                if partition == 2:
                    raise _refuse(f"{groups}, and more than one split of the model's parameters into the "
                                  f"{len(sd['param_groups'])} saved groups fits their shapes")
                if not isinstance(partition, list):
                    raise _refuse(groups)
                groups = partition
        out.append({**sd, "param_groups": [{**g, "param_names": n} for g, n in zip(sd["param_groups"], groups)]})
    return out[0] if isinstance(saved, Mapping) else out
