"""A small trainer that makes checkpoints for sweeps (Adam, as in the reference experiment, or AdamW), on any task."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .checkpoints import save_checkpoint
from .data import stack_examples
from .errors import ConfigError
from .fields import LossFn, on_device
from .tasks import MultiLabel, Task

__all__ = ["train", "save_steps"]


def save_steps(steps: int, save_every: int) -> list[int]:
    """The steps :func:`train` saves a checkpoint at: every ``save_every`` steps, and the last."""
    return sorted(set(range(save_every, steps + 1, save_every)) | {steps})


def train(model: torch.nn.Module, dataset: Dataset, *, steps: int, save_every: int, out_dir: str | os.PathLike,
          lr: float = 5e-3, betas: tuple[float, float] = (0.8, 0.999), batch_size: int = 32, seed: int = 0,
          loss_fn: LossFn | None = None, suffix: str = ".pt", task: Task | None = None, optimizer: str = "adam",
          weight_decay: float = 0.0) -> list[Path]:
    """Train ``model`` with Adam (``optimizer="adamw"``: AdamW, decoupled ``weight_decay``) on shuffled
    minibatches; save a checkpoint every ``save_every`` steps.

    Checkpoints are ``out_dir/step_{step:06d}{suffix}`` holding the model, the optimizer state and the
    step (steps ``save_every, 2·save_every, …`` and the last). The minibatch loss is the mean of the
    per-item loss of ``task`` (default: multilabel, BCE with logits over attributes), or of ``loss_fn``;
    BatchNorm and dropout train in train mode. Deterministic for a given ``seed`` on a given device. Returns
    the paths written, in step order.
    """
    if steps < 1 or save_every < 1 or batch_size < 1:
        raise ConfigError("trainer settings must be positive",
                          expected="steps, save_every and batch_size >= 1",
                          found=f"steps={steps}, save_every={save_every}, batch_size={batch_size}",
                          fix="set them to positive integers")
    task = task if task is not None else MultiLabel()
    loss_fn = loss_fn if loss_fn is not None else task.loss
    out = Path(out_dir)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if optimizer not in kinds:
        raise ConfigError("unknown trainer optimizer", expected=" | ".join(kinds), found=repr(optimizer),
                          fix="checkpoints.optimizer=adam")
    opt = kinds[optimizer](model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
    order = torch.randperm(len(dataset), generator=gen)  # type: ignore[arg-type]
    cursor = 0
    written: list[Path] = []
    saved = set(save_steps(steps, save_every))
    model.train()
    for step in range(1, steps + 1):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(dataset), generator=gen), 0  # type: ignore[arg-type]
        idx = order[cursor:cursor + batch_size].tolist()
        cursor += batch_size
        x, y = stack_examples(dataset, idx, task)
        x, y = on_device(x, device, dtype), on_device(y, device, dtype)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(task.read(model(x)), y).mean()
        loss.backward()
        opt.step()
        if step in saved:
            written.append(save_checkpoint(out / f"step_{step:06d}{suffix}", model, opt, step))
    model.eval()
    return written
