"""``lie-sweep query STORE --examples …``: what the stored order effects do to test items chosen after the sweep.

For each checkpoint the model is rebuilt from the store's config (float64, on the CPU; its classes held to the rules
of :mod:`jobs.planning.targets`), the checkpoint loaded (sha256-checked) and the gradient ∇L_t(θ) of each test item
taken with the sweep's task (its loss, in eval mode, as the worker takes example gradients). The test items are
dataset indices of the store's own data, or of another dataset of the same task: ``data.*`` overrides (or
``data=option``) pick it. :func:`storage.questions.effect_on` then gives, per checkpoint, test item and completed
pair, the first-order change L_t(θ_ij) − L_t(θ_ji) ≈ ⟨∇L_t, Δ_ij⟩, from the sketches where the store has them
(⟨S∇L_t, SΔ_ij⟩) else from the full arrays.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from lie_sweep import stack_examples
from lie_sweep.errors import ConfigError
from lie_sweep.fields import eval_mode, on_device
from lie_sweep.kernel import example_gradients
from lie_sweep.params import ParamSpec
from lie_sweep.task_kinds import task_of
from storage.reader import Sweep, open_sweep

from jobs.planning.build import build_dataset, build_model
from jobs.planning.config import config_from_stored
from jobs.planning.loader import load_into
from jobs.planning.targets import TargetTrust

__all__ = ["parse_items", "test_gradients", "query_store"]


def parse_items(text: str) -> list[int]:
    """Dataset indices from ``"3,7,10:14"`` (a ``start:stop`` range is half-open); one error line otherwise."""
    items: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            if ":" in part:
                start, stop = (int(x) for x in part.split(":", 1))
                items += range(start, stop)
            else:
                items.append(int(part))
    except ValueError:
        raise ConfigError("bad value for --examples", expected="dataset indices like 3,7,10:14", found=repr(text),
                          fix="--examples 0:8") from None
    if not items or min(items) < 0:
        raise ConfigError("bad value for --examples", expected="one or more non-negative dataset indices",
                          found=repr(text), fix="--examples 0:8")
    return list(dict.fromkeys(items))


def _data_overrides(overrides: Sequence[str]) -> None:
    """Only the dataset may change: the test items come from it; everything else defines the stored effects."""
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("~+")
        if key != "data" and not key.startswith("data."):
            raise ConfigError("query takes overrides of the dataset only",
                              expected="data.KEY=VALUE or data=OPTION (where the test items come from)",
                              found=o, fix="drop it; the model, task and checkpoints are the store's")


def test_gradients(sweep: Sweep, items: Sequence[int], overrides: Sequence[str] = (), *, trust: TargetTrust,
                   log: Callable[[str], None] = print) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """({item: (checkpoints, D) ∇L_item at each checkpoint, in the store's flat order}, (checkpoints, items) losses),
    float64 (module docstring)."""
    _data_overrides(overrides)
    cfg = config_from_stored(sweep.config, overrides, trust=trust)
    task = task_of(cfg.task.name)
    model = build_model(cfg.model).to(torch.float64)
    data = build_dataset(cfg.data)
    xs, ys = stack_examples(data, items, task)
    grads = np.zeros((len(items), len(sweep.steps), sum(int(np.prod(e["shape"])) for e in sweep.param_spec)))
    losses = np.zeros((len(sweep.steps), len(items)))
    for c, step in enumerate(sweep.steps):
        loaded = load_into(model, sweep.meta.checkpoints[c], cfg.field, batched_items=False, task=task)
        names = ParamSpec.from_tensors(loaded.params).names
        if names != sweep.param_names:
            raise ConfigError("the rebuilt model's parameters differ from the store's", expected=str(
                sweep.param_names[:3]), found=str(names[:3]), fix="query with the store's own model config")
        with eval_mode(loaded.fmodel.module), torch.no_grad():
            g, loss = example_gradients(loaded.fmodel, loaded.params, on_device(xs, None, torch.float64),
                                        on_device(ys, None, torch.float64), chunk_size=8)
        grads[:, c], losses[c] = g.numpy(), loss.numpy()
        log(f"step {step}: gradients of {len(items)} test item(s)")
    return {int(t): grads[n] for n, t in enumerate(items)}, losses


def query_store(path: str, items: Sequence[int], overrides: Sequence[str] = (), *, effect: str = "swap",
                epsilon: float | None = None, use: str = "auto", trust_store: bool = False,
                log: Callable[[str], None] = print, **open_kwargs: Any):
    """The ranked table of :func:`storage.questions.effect_on` for the test ``items`` (module docstring), with each
    test item's loss at each checkpoint in the column ``loss``."""
    sweep = open_sweep(path, **open_kwargs)
    trust = TargetTrust.from_overrides(overrides, trust_store=trust_store, log=log)
    sweep.effect_on({}, effect=effect, epsilon=epsilon, use=use)  # what the store cannot answer: one line, first
    gradients, losses = test_gradients(sweep, items, overrides, trust=trust, log=log)
    table = sweep.effect_on(gradients, effect=effect, epsilon=epsilon, use=use)
    loss = {(step, t): losses[c, n] for c, step in enumerate(sweep.steps) for n, t in enumerate(gradients)}
    table["loss"] = [loss[(s, t)] for s, t in zip(table["step"], table["test"])]
    return table
