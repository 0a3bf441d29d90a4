"""Datasets: a deterministic synthetic multi-attribute image set, and example batches.

A dataset for lie-sweep is any map-style dataset (``__getitem__``, ``__len__``) whose items are ``(input,
target)`` or dicts (``input_ids``, ``attention_mask``, ``labels``), read by the sweep's task
(:mod:`lie_sweep.tasks`); ``attribute_names`` (or ``class_names``) label the measured outputs.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch.utils.data import Dataset

from .errors import ConfigError, require_indices
from .tasks import MultiLabel, Task

__all__ = ["SyntheticShapes", "SHAPE_ATTRIBUTES", "stack_examples", "Minibatches", "seeded_minibatches"]

SHAPE_ATTRIBUTES: tuple[str, ...] = (
    "Circle", "Square", "Triangle",      # exactly one: the shape
    "Red", "Green", "Blue",              # exactly one: the shape's colour (like Black_Hair/Brown_Hair)
    "Large",                             # radius above the median
    "Left", "Top",                       # centre in the left / top half
    "Dark_Background",
    "Hollow",                            # only the outline is drawn
    "Noisy",                             # pixel noise added
)

_COLOURS = torch.tensor([[0.9, 0.15, 0.1], [0.1, 0.8, 0.2], [0.15, 0.25, 0.95]])


class SyntheticShapes(Dataset):
    """``length`` images of one shape on a background, with 12 binary attributes (:data:`SHAPE_ATTRIBUTES`).

    Item k is a pure function of (``seed``, k): its own seeded generator draws the attributes and
    geometry, so any subset is reproducible without materialising the rest. Images are float32
    (3, ``image_size``, ``image_size``) in [0, 1]; attributes are float32 0/1. Circle/Square/Triangle
    and Red/Green/Blue are mutually exclusive groups.
    """

    attribute_names: tuple[str, ...] = SHAPE_ATTRIBUTES

    def __init__(self, length: int = 1024, image_size: int = 32, seed: int = 0) -> None:
        if length < 1:
            raise ConfigError("dataset length must be positive", expected="length >= 1", found=str(length),
                              fix="set data.length to a positive integer")
        if image_size < 8:
            raise ConfigError("image size too small", expected="image_size >= 8", found=str(image_size),
                              fix="set data.image_size to 8 or more")
        self.length = int(length)
        self.image_size = int(image_size)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(index)
        require_indices([index], self.length, fix="pick example indices below the dataset length")
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        u = torch.rand(10, generator=g)
        shape = int(u[0] * 3)
        colour = int(u[1] * 3)
        radius = 0.14 + 0.16 * float(u[2])          # fraction of the image side
        cx = radius + (1 - 2 * radius) * float(u[3])
        cy = radius + (1 - 2 * radius) * float(u[4])
        dark = bool(u[5] < 0.5)
        hollow = bool(u[6] < 0.3)
        noisy = bool(u[7] < 0.3)

        s = self.image_size
        coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        dx, dy = xx - cx, yy - cy
        if shape == 0:
            dist = torch.sqrt(dx**2 + dy**2) / radius
        elif shape == 1:
            dist = torch.maximum(dx.abs(), dy.abs()) / (radius * 0.85)
        else:  # upward triangle: max of three half-plane distances
            n = torch.tensor([[0.0, 1.0], [math.sqrt(3) / 2, -0.5], [-math.sqrt(3) / 2, -0.5]])
            dist = torch.stack([-(dx * a + dy * b) for a, b in n.tolist()]).amax(0) / (radius * 0.5)
        mask = (dist <= 1.0) & ((dist >= 0.7) if hollow else torch.ones_like(dist, dtype=torch.bool))

        background = 0.1 if dark else 0.85
        image = torch.full((3, s, s), background)
        image[:, mask] = _COLOURS[colour][:, None]
        if noisy:
            image = image + 0.15 * torch.randn(3, s, s, generator=g)
        image = image.clamp(0.0, 1.0)

        attrs = torch.zeros(len(SHAPE_ATTRIBUTES))
        attrs[shape] = 1.0
        attrs[3 + colour] = 1.0
        attrs[6] = float(radius > 0.22)
        attrs[7] = float(cx < 0.5)
        attrs[8] = float(cy < 0.5)
        attrs[9] = float(dark)
        attrs[10] = float(hollow)
        attrs[11] = float(noisy)
        return image, attrs


def stack_examples(dataset: Dataset, indices: Sequence[int], task: "Task | None" = None) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """(inputs, targets) stacked from ``dataset[k]`` for k in ``indices``, as ``task`` reads items
    (:meth:`lie_sweep.tasks.Task.stack`; default multilabel: float targets). Inputs keep their dtype (token ids
    stay integers).

    Raises :class:`ExampleIndexError` (one line) for an index outside the dataset.
    """
    n = len(dataset)  # type: ignore[arg-type]
    require_indices(indices, n, fix=f"pick example indices below the dataset length {n}")
    return (task if task is not None else MultiLabel()).stack([dataset[int(k)] for k in indices])


class Minibatches(Dataset):
    """A dataset whose items are minibatches of another's examples: item k is (inputs, targets) of the examples
    ``batches[k]`` stacked (B × input shape, B × outputs). With a :class:`~lie_sweep.fields.FunctionalModel` of
    ``batched_items=True`` an item's loss is the mean of its examples', so its field is the mean field and a
    step on it is a mean-gradient step; the bracket of two items is the mean of their examples' pairwise brackets
    (the bracket is bilinear)."""

    def __init__(self, dataset: Dataset, batches: Sequence[Sequence[int]], task: "Task | None" = None) -> None:
        self.dataset = dataset
        self.batches = [[int(k) for k in b] for b in batches]
        self.attribute_names = list(getattr(dataset, "attribute_names", []) or [])
        self.task = task

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return stack_examples(self.dataset, self.batches[int(k)], self.task)


def seeded_minibatches(examples: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Disjoint minibatches of ``batch_size`` of ``examples`` (dataset indices): a seeded permutation cut in
    order, each batch sorted; ``len(examples)`` must be a multiple of ``batch_size``."""
    if batch_size < 1 or len(examples) % batch_size:
        raise ValueError(f"{len(examples)} examples do not make minibatches of {batch_size}")
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(int(seed))).tolist()
    shuffled = [int(examples[k]) for k in order]
    return [sorted(shuffled[k:k + batch_size]) for k in range(0, len(shuffled), batch_size)]
