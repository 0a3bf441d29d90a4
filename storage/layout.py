"""The store's layout: array names, shapes, inner chunks and task-aligned shards. Pure; no I/O.

One store per sweep (a Zarr v3 group) holds, for C checkpoints, P pairs, E examples and a flat
parameter axis of length D:

    brackets   (C, P, D)  [u_i, u_j] per checkpoint and pair        shard (1, pairs_per_task, D')
    gradients  (C, E, D)  ∇L_x per checkpoint and example           shard (1, E, D')
    losses     (C, E)     L_x per checkpoint and example            chunk (1, E)
    pairs      (P, 2)     dataset indices (i, j), i before j in the canonical order
    examples   (E,)       dataset indices of the examples
    steps      (C,)       training step of each checkpoint

Task t = (checkpoint c, pairs [start, stop)) with start a multiple of ``pairs_per_task`` owns the
one ``brackets`` shard at (c, start // pairs_per_task); the first task of a checkpoint also owns
that checkpoint's ``gradients`` shard and ``losses`` chunk. No two tasks write the same shard.
Inner chunks are (1, 1, inner) along D, so reading one pair's tensor touches only its chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SCHEMA_VERSION", "META_KEY", "StoreLayout"]

SCHEMA_VERSION = 1
META_KEY = "lie_sweep"


@dataclass(frozen=True)
class StoreLayout:
    n_checkpoints: int
    n_pairs: int
    n_examples: int
    n_params: int
    pairs_per_task: int
    inner_chunk: int = 1 << 18  # elements of the flat axis per inner chunk (1 MiB in float32)

    def __post_init__(self) -> None:
        for name in ("n_checkpoints", "n_pairs", "n_examples", "n_params", "pairs_per_task", "inner_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)}")

    @property
    def inner(self) -> int:
        """Inner chunk length along D (never longer than D)."""
        return min(self.inner_chunk, self.n_params)

    @property
    def shard_params(self) -> int:
        """Shard length along D: D rounded up to whole inner chunks."""
        return math.ceil(self.n_params / self.inner) * self.inner

    @property
    def n_tasks_per_checkpoint(self) -> int:
        return math.ceil(self.n_pairs / self.pairs_per_task)

    def brackets(self) -> dict:
        return {"shape": (self.n_checkpoints, self.n_pairs, self.n_params), "chunks": (1, 1, self.inner),
                "shards": (1, self.pairs_per_task, self.shard_params)}

    def gradients(self) -> dict:
        return {"shape": (self.n_checkpoints, self.n_examples, self.n_params), "chunks": (1, 1, self.inner),
                "shards": (1, self.n_examples, self.shard_params)}

    def losses(self) -> dict:
        return {"shape": (self.n_checkpoints, self.n_examples), "chunks": (1, self.n_examples), "shards": None}

    def bracket_shard_of(self, checkpoint: int, start: int) -> tuple[int, int, int]:
        """The shard grid index that pairs [start, ...) of ``checkpoint`` live in."""
        if start % self.pairs_per_task:
            raise ValueError(f"task start {start} is not a multiple of pairs_per_task {self.pairs_per_task}")
        return (checkpoint, start // self.pairs_per_task, 0)

    def to_dict(self) -> dict:
        return {"n_checkpoints": self.n_checkpoints, "n_pairs": self.n_pairs, "n_examples": self.n_examples,
                "n_params": self.n_params, "pairs_per_task": self.pairs_per_task, "inner_chunk": self.inner_chunk}
