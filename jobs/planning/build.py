"""What a validated config builds before any checkpoint is read: the dataset, the model, the examples and
their pairs (through the grid registry, :data:`jobs.planning.grids.GRIDS`), the evaluation batch and the
kept tensors. Cheap and side-effect free: ``plan`` and ``run`` both start here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from lie_sweep.errors import ConfigError, ExampleIndexError, LieSweepError, first_line
from lie_sweep.data import Minibatches, seeded_minibatches, stack_examples
from lie_sweep.fields import eval_mode
from lie_sweep.task_kinds import task_of
from lie_sweep.tasks import EvalBatch, Task

from .checks import keep_globs
from .grids import GRIDS, GridContext, GridInput, example_indices, pairs_of

__all__ = ["ResolvedGrid", "resolve_grid", "grid_pairs", "unit_batches", "build_model", "build_dataset", "kept_tensors",
           "eval_indices", "epsilon_of", "check_task_fit"]


def kept_tensors(names: list[str], keep: Any) -> list[str] | None:
    """The tensor names ``storage.keep`` selects (None: all), in model order; a glob matching none is an error."""
    globs = keep_globs(keep)
    if globs is None:
        return None
    for g in globs:
        if not fnmatch.filter(names, g):
            raise ConfigError(f"storage.keep glob {g!r} matches no parameter tensor",
                              expected="globs over the model's tensor names",
                              found=f"names like {names[:2] + names[-2:]}",
                              fix=f"e.g. storage.keep='[{names[-1].rsplit('.', 1)[0]}.*]', or storage.keep=all")
    return [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]


def eval_indices(count: int, start: int | None, dataset_length: int) -> list[int]:
    """Dataset indices of the evaluation batch: [start, start + count), by default the last ``count``."""
    if count == 0:
        return []
    first = dataset_length - count if start is None else start
    if first < 0 or first + count > dataset_length:
        raise ExampleIndexError("evaluation batch out of range", expected=f"indices within 0..{dataset_length - 1}",
                                found=f"{first}..{first + count - 1}",
                                fix="lower derived.eval_count or move derived.eval_start")
    return list(range(first, first + count))


def check_task_fit(model: torch.nn.Module, data: Any, task: Task, indices: Sequence[int]) -> int:
    """The number O of measured values per evaluation item, after holding model, data and task to each other on
    dataset items ``indices`` (:meth:`lie_sweep.tasks.Task.check`: one error line for 40 outputs over 12
    attributes, a class beyond the model's classes, real-valued targets under multilabel, …), before anything is
    trained or stored."""
    with eval_mode(model), torch.no_grad():
        measured = None
        for k in dict.fromkeys(int(i) for i in indices):
            x, y = task.item(data[k])
            out = task.read(model(x.unsqueeze(0)))
            task.check(out, task.target(y), f"dataset item {k}")
            measured = task.measure(out, task.target(y).unsqueeze(0))
        return int(measured.reshape(1, -1).shape[1]) if measured is not None else 0


def _instantiate(node: DictConfig | dict, what: str) -> Any:
    try:
        return instantiate(node, _convert_="all")
    except LieSweepError:
        raise
    except Exception as exc:
        cause = exc
        while getattr(cause, "__cause__", None) is not None:  # hydra wraps the target's own error
            cause = cause.__cause__
        if isinstance(cause, LieSweepError):
            raise cause from None
        raise ConfigError(f"cannot build the {what}", expected=f"valid {what}.* keys for {node['_target_']}",
                          found=first_line(cause), fix=f"check the {what} settings") from None


def build_model(model_cfg: DictConfig | dict) -> torch.nn.Module:
    """The model a config describes (``_target_`` plus keyword arguments)."""
    model = _instantiate(model_cfg, "model")
    if not isinstance(model, torch.nn.Module):
        raise ConfigError("model._target_ does not build a torch module", expected="a torch.nn.Module",
                          found=type(model).__name__, fix="point model._target_ at a module class")
    return model


def build_dataset(data_cfg: DictConfig | dict) -> Any:
    """The dataset a config describes; items are (input tensor, attribute vector)."""
    return _instantiate(data_cfg, "data")


@dataclass
class ResolvedGrid:
    """What a config defines before any checkpoint is read: data, examples, pairs, model, outputs."""

    data: Any
    examples: list[int]
    pairs: list[tuple[int, int]]
    eval_examples: list[int]
    model: torch.nn.Module
    params: dict[str, torch.Tensor]
    kept_names: list[str] | None
    attribute_names: list[str]
    output_names: list[str]
    batches: list[list[int]] | None = None   # pairs.unit=batch: the items' dataset indices (examples are items)

    task: Task | None = None

    @property
    def items(self) -> Any:
        """The dataset of the grid's items: ``data``, or its :class:`~lie_sweep.data.Minibatches`."""
        return self.data if self.batches is None else Minibatches(self.data, self.batches, self.task)

    def eval_batch(self) -> EvalBatch | None:
        """The evaluation batch (inputs and targets, as the task reads them), or None without one."""
        if not self.eval_examples:
            return None
        return EvalBatch(*stack_examples(self.data, self.eval_examples, self.task))


def resolve_grid(cfg: DictConfig) -> ResolvedGrid:
    """Build the dataset and model and resolve examples, pairs, the evaluation batch and kept tensors.

    Cheap and side-effect free (nothing trained or written): ``plan`` and ``run`` both start here.
    """
    data = build_dataset(cfg.data)
    task = task_of(cfg.task.name)
    batches = unit_batches(cfg, len(data))
    examples, pairs = grid_pairs(cfg, len(data) if batches is None else len(batches), items=batches is not None)
    evals = eval_indices(cfg.derived.eval_count, cfg.derived.eval_start, len(data))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    kept = kept_tensors(list(params), cfg.storage.keep)
    swept = [i for b in batches for i in b] if batches is not None else examples
    n_out = check_task_fit(model, data, task, [*swept[:4], *evals[:4]] or [0])
    attributes = list(getattr(data, "attribute_names", []) or [])
    outputs = task.measurement_names(n_out, data)
    return ResolvedGrid(data=data, examples=examples, pairs=pairs, eval_examples=evals, model=model, params=params,
                        kept_names=kept, attribute_names=attributes, output_names=outputs, batches=batches,
                        task=task)


def unit_batches(cfg: DictConfig, dataset_length: int) -> list[list[int]] | None:
    """``pairs.unit=batch``: the examples cut into disjoint seeded minibatches of ``pairs.batch_size`` (dataset
    indices; seed ``pairs.seed``, else the sweep's); None for example units."""
    ex, pc = cfg.examples, cfg.pairs
    if pc.unit != "batch":
        return None
    examples = example_indices(ex.mode, count=ex.count, start=ex.start, indices=list(ex.indices),
                               dataset_length=dataset_length)
    return seeded_minibatches(examples, int(pc.batch_size), int(pc.seed if pc.seed is not None else cfg.seed))


def grid_pairs(cfg: DictConfig, dataset_length: int, items: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
    """The sweep's examples and its pairs in the canonical order of the grid ``pairs.mode`` names
    (:data:`jobs.planning.grids.GRIDS`), as dataset indices; with ``items`` (minibatches), over the items
    0..dataset_length−1."""
    ex, pc = cfg.examples, cfg.pairs
    examples = list(range(dataset_length)) if items else example_indices(
        ex.mode, count=ex.count, start=ex.start, indices=list(ex.indices), dataset_length=dataset_length)
    kind = GRIDS[pc.mode]
    grid = GridInput(examples, block=pc.block, rounds=pc.rounds, group=pc.group,
                     seed=int(pc.seed if pc.seed is not None else cfg.seed))
    grid = kind.prepare(grid, pc, GridContext(dataset_length, dict(cfg.storage.options)))
    pairs = pairs_of(kind, grid)
    if not pairs:
        raise ConfigError("the grid has no pairs", expected="at least one pair", found=f"pairs={pc.mode} over "
                          f"{len(grid.examples)} examples", fix="add examples (examples.count, pairs.pool.count)")
    return grid.examples, pairs


def epsilon_of(cfg: DictConfig) -> float:
    """ε of the logit deltas: ``derived.epsilon``, else the training learning rate ``checkpoints.lr``."""
    return float(cfg.derived.epsilon if cfg.derived.epsilon is not None else cfg.checkpoints.lr)
