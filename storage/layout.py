"""The store's layout: array names, shapes, inner chunks and task-aligned shards. Pure; no I/O.

One store per sweep (a Zarr v3 group) holds, for C checkpoints, P pairs, E examples, a flat
parameter axis of length D (the kept tensors, see ``storage.keep``), B evaluation examples and O
model outputs:

    brackets      (C, P, D)     [u_i, u_j] per checkpoint and pair        shard (1, pairs_per_task, D')
    gradients     (C, E, D)     ∇L_x per checkpoint and example           shard (1, example_block, D')
    losses        (C, E)        L_x per checkpoint and example            chunk (1, example_block)
    logit_deltas  (C, P, B, O)  ε²·J_f[u_i, u_j] on the evaluation batch  chunk (1, pairs_per_task, B, O)
                                (field=optimizer: J_f(εΔ₁ + ε²Δ₂))
    order1        (C, P, D)     effect order (field=optimizer): Δ₁, Δ₂ of    shard (1, pairs_per_task, D')
    order2        (C, P, D)     the optimizer's swap (lie_sweep.order), like brackets
    swaps         (C, K, P, D)  effect swap: θ_ij − θ_ji at each of the K    shard (1, 1, pairs_per_task, D')
                                swap step sizes (lie_sweep.swap)
    swap_logit_deltas (C, K, P, B, O)  f(θ_ij) − f(θ_ji) on the evaluation   chunk (1, K, pairs_per_task, B, O)
                                batch, exact
    NAME          (C, P, D)     a registered effect's own per-pair array   shard (1, pairs_per_task, D')
                                (``effect_arrays``; lie_sweep.effects)
    sketch_NAME   (…, k)        storage.sketch=k: S·v of each parameter-   chunk: the task's (or the example
                                sized result v of NAME over all D          block's) rows, k whole
                                parameters (storage.sketch), stored
                                even with storage.keep=summary
    gram          (C, E, E)     g_a · g_b per checkpoint (float64)        schema ≤ 3 only: chunk (1, E, E)
    pairs         (P, 2)        dataset indices (i, j), i before j in the canonical order
    examples      (E,)          dataset indices of the examples
    eval_examples (B,)          dataset indices of the evaluation batch
    steps         (C,)          training step of each checkpoint

With D = 0 (``storage.keep=summary``) there are no ``brackets`` or ``gradients`` arrays; with
B = 0 no ``logit_deltas``. A sweep without effect bracket (``effects=[swap]``) has no ``brackets``, and no
``logit_deltas`` unless it computes the optimizer expansion.

Task t = (checkpoint c, pairs [start, stop)) with start a multiple of ``pairs_per_task`` (see
:meth:`StoreLayout.tasks`) owns the one ``brackets`` shard and the one ``logit_deltas`` chunk at
(c, start // pairs_per_task). Examples are cut into blocks of ``example_block`` positions; block
k's ``gradients`` shard and ``losses`` chunk at checkpoint c belong to one task of that checkpoint
(blocks spread evenly over its tasks: see :func:`block_owners`). No two tasks write the same shard
or chunk. Inner chunks are (1, r, inner): ``inner`` elements along D and r rows (pairs, examples), r the
largest divisor of the shard's rows with r·inner ≤ ``inner_chunk`` (``inner_rows``; 1 in older stores, and
whenever D alone fills a chunk), so reading one pair's tensor touches at most ``inner_chunk`` elements per
chunk it reads, and a small model's shard is a few chunks instead of one per pair.

Schema 4 made tasks tile-sized: before it, one block held all E examples (owned by a checkpoint's
first task) and a (C, E, E) ``gram`` array existed; a layout read from an older store has
``example_block`` 0 and ``keeps_gram`` true, which describe exactly that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SCHEMA_VERSION", "StoreLayout", "Task", "block_owners", "packed_rows"]

# 2: keep, logit deltas, Gram matrices, Parquet tables; 3: arrays.zarr / tables / ledger side by side,
# NaN fill, content digests in completion marks, step-S table folders, relative checkpoint provenance;
# 4: example blocks owned by tile tasks (memory bounded per task), no gram array, checkpoints table derived on read;
# 5: coordinate arrays named after their dimensions (checkpoint = steps, example, eval_example, output, epsilon),
# each parameter-sized array's flat axis in its own attributes, consolidated metadata, step-0000000100 table folders
SCHEMA_VERSION = 5


@dataclass(frozen=True)
class Task:
    """Checkpoint ``checkpoint`` (position in the sweep's list) × pairs [start, stop) of the canonical order."""

    task_id: int
    checkpoint: int
    start: int
    stop: int
    example_blocks: tuple[int, ...] = ()  # example blocks whose gradients and losses this task writes

    @property
    def n_pairs(self) -> int:
        """Pairs in this task."""
        return self.stop - self.start

    @property
    def writes_examples(self) -> bool:
        """Whether this task stores some example blocks' gradients and losses (and their table rows)."""
        return bool(self.example_blocks)


@dataclass(frozen=True)
class StoreLayout:
    """Shapes, task-aligned shards and inner chunks of a store's arrays (see the module docstring)."""
    n_checkpoints: int
    n_pairs: int
    n_examples: int
    n_params: int
    pairs_per_task: int
    inner_chunk: int = 1 << 18  # elements of the flat axis per inner chunk (1 MiB in float32)
    n_eval: int = 0             # evaluation examples of the logit deltas (0: none)
    n_outputs: int = 0          # model outputs per evaluation example
    example_block: int = 0      # examples per block (0: one block of all E, as in schema <= 3)
    keeps_gram: bool = True     # schema <= 3 stores hold a (C, E, E) gram array; schema 4 does not
    keeps_order: bool = False   # field=optimizer: order1, order2 (C, P, D) beside brackets, sharded alike
    swap_epsilons: tuple[float, ...] = ()  # effect swap: its step sizes (K); () without it
    keeps_brackets: bool = True  # effect bracket: brackets (C, P, D); false for effects without it, e.g. [swap]
    effect_arrays: tuple[str, ...] = ()  # a registered effect's own (C, P, D) arrays, sharded like brackets
    sketch_k: int = 0           # storage.sketch: k rows of the seeded sketch of every parameter-sized result (0: off)
    sketch_s: int = 1           # its nonzeros per coordinate (storage.sketch: block sparse JL, storage/sketch.py)
    sketch_seed: int = 0        # its seed
    inner_rows: int = 1         # at most this many rows (pairs, examples) per inner chunk of a parameter-sized array
                                # (1 in stores before it was recorded; new stores: inner_chunk // inner, see
                                # :func:`packed_rows`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "swap_epsilons", tuple(float(e) for e in self.swap_epsilons))
        object.__setattr__(self, "effect_arrays", tuple(str(a) for a in self.effect_arrays))
        for name in ("n_checkpoints", "n_pairs", "n_examples", "pairs_per_task", "inner_chunk", "inner_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, found {getattr(self, name)}")
        for name in ("n_params", "n_eval", "n_outputs", "example_block"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, found {getattr(self, name)}")

    @property
    def block(self) -> int:
        """Examples per block (the last may hold fewer)."""
        return min(self.example_block or self.n_examples, self.n_examples)

    @property
    def n_blocks(self) -> int:
        """Example blocks: ceil(E / block)."""
        return math.ceil(self.n_examples / self.block)

    def block_key(self, what: str, block: int) -> str:
        """How a task's file list names an example block's ``gradients`` or ``losses`` file: ``what k``, or
        ``what`` alone where there is one block (schema ≤ 3)."""
        return what if self.n_blocks == 1 else f"{what} {block}"

    def block_range(self, block: int) -> tuple[int, int]:
        """Positions [start, stop) of the examples in ``block``."""
        return block * self.block, min((block + 1) * self.block, self.n_examples)

    @property
    def keeps_params(self) -> bool:
        """Whether the store holds parameter-sized arrays (``brackets``, ``gradients``)."""
        return self.n_params > 0

    @property
    def keeps_logits(self) -> bool:
        """Whether the store holds ``logit_deltas`` (an evaluation batch and outputs)."""
        return self.n_eval > 0 and self.n_outputs > 0

    @property
    def keeps_lead_logits(self) -> bool:
        """Whether the store holds ``logit_deltas``: an evaluation batch and an expansion to take them of (the
        bracket's ε²J_f[u_i,u_j], or the optimizer's J_f(εΔ₁ + ε²Δ₂)); the exact swap's are ``swap_logit_deltas``."""
        return self.keeps_logits and (self.keeps_brackets or self.keeps_order)

    @property
    def inner(self) -> int:
        """Inner chunk length along D (never longer than D)."""
        return max(1, min(self.inner_chunk, self.n_params))

    def rows_per_chunk(self, shard_rows: int) -> int:
        """Rows of an inner chunk of a shard of ``shard_rows`` rows: the largest divisor of ``shard_rows`` not above
        ``inner_rows`` (zarr's shards hold whole inner chunks). A task's shard is then a few chunks of up to
        ``inner_chunk`` elements each, not one chunk per pair: the codec pipeline's cost per chunk (~0.4 ms) made a
        small model's 64-pair shard cost 33 ms to write, against 2.4 ms packed (benchmarks/bench_overhead.py)."""
        top = max(1, min(self.inner_rows, shard_rows))
        return next(r for r in range(top, 0, -1) if shard_rows % r == 0)

    @property
    def shard_params(self) -> int:
        """Shard length along D: D rounded up to whole inner chunks."""
        return math.ceil(self.n_params / self.inner) * self.inner

    @property
    def n_tasks_per_checkpoint(self) -> int:
        """Tasks per checkpoint: ceil(P / pairs_per_task)."""
        return math.ceil(self.n_pairs / self.pairs_per_task)

    def float_arrays(self) -> dict[str, dict]:
        """{name: shape, chunks, shards, dims} of every float array this store holds, in creation order."""
        arrays = {"brackets": self.brackets()} if self.keeps_params and self.keeps_brackets else {}
        if self.keeps_params:
            arrays["gradients"] = self.gradients()
        if self.keeps_params and self.keeps_order:
            arrays.update(order1=self.brackets(), order2=self.brackets())
        if self.keeps_params:
            arrays.update({name: self.brackets() for name in self.effect_arrays})
        arrays["losses"] = self.losses()
        if self.keeps_gram:
            arrays["gram"] = self.gram()
        if self.keeps_lead_logits:
            arrays["logit_deltas"] = self.logit_deltas()
        if self.keeps_swaps and self.keeps_params:
            arrays["swaps"] = self.swaps()
        if self.keeps_swaps and self.keeps_logits:
            arrays["swap_logit_deltas"] = self.swap_logit_deltas()
        arrays.update(self.sketch_arrays())
        return arrays

    @property
    def sketched(self) -> tuple[str, ...]:
        """The parameter-sized results a sketched store keeps S·v of (whatever ``storage.keep`` stores in full)."""
        if not self.sketch_k:
            return ()
        return ((("brackets",) if self.keeps_brackets else ()) + ("gradients",)
                + (("order1", "order2") if self.keeps_order else ()) + self.effect_arrays
                + (("swaps",) if self.keeps_swaps else ()))

    def sketch_arrays(self) -> dict[str, dict]:
        """{``sketch_NAME``: shape, chunks, dims} of each sketched result: its full array's leading dimensions, then
        ``sketch`` (k); one chunk per task's pairs (per example block for the gradients), k whole."""
        k, out = self.sketch_k, {}
        for name in self.sketched:
            if name == "gradients":
                out["sketch_gradients"] = {"shape": (self.n_checkpoints, self.n_examples, k),
                                           "chunks": (1, self.block, k), "shards": None,
                                           "dims": ("checkpoint", "example", "sketch")}
            elif name == "swaps":
                out["sketch_swaps"] = {"shape": (self.n_checkpoints, len(self.swap_epsilons), self.n_pairs, k),
                                       "chunks": (1, len(self.swap_epsilons), self.pairs_per_task, k),
                                       "shards": None, "dims": ("checkpoint", "epsilon", "pair", "sketch")}
            else:
                out[f"sketch_{name}"] = {"shape": (self.n_checkpoints, self.n_pairs, k),
                                         "chunks": (1, self.pairs_per_task, k), "shards": None,
                                         "dims": ("checkpoint", "pair", "sketch")}
        return out

    @property
    def keeps_swaps(self) -> bool:
        """Whether the sweep computes exact swaps (effect swap)."""
        return bool(self.swap_epsilons)

    def swaps(self) -> dict:
        """Shape, inner chunks and shards of ``swaps`` (C, K, P, D): one shard per task and step size."""
        return {"shape": (self.n_checkpoints, len(self.swap_epsilons), self.n_pairs, self.n_params),
                "chunks": (1, 1, self.rows_per_chunk(self.pairs_per_task), self.inner),
                "shards": (1, 1, self.pairs_per_task, self.shard_params),
                "dims": ("checkpoint", "epsilon", "pair", "param")}

    def swap_logit_deltas(self) -> dict:
        """Shape and chunks of ``swap_logit_deltas`` (C, K, P, B, O): one chunk per task."""
        return {"shape": (self.n_checkpoints, len(self.swap_epsilons), self.n_pairs, self.n_eval, self.n_outputs),
                "chunks": (1, len(self.swap_epsilons), self.pairs_per_task, self.n_eval, self.n_outputs),
                "shards": None, "dims": ("checkpoint", "epsilon", "pair", "eval_example", "output")}

    def brackets(self) -> dict:
        """Shape, inner chunks and shards of ``brackets`` (C, P, D): one shard per task."""
        return {"shape": (self.n_checkpoints, self.n_pairs, self.n_params),
                "chunks": (1, self.rows_per_chunk(self.pairs_per_task), self.inner),
                "shards": (1, self.pairs_per_task, self.shard_params), "dims": ("checkpoint", "pair", "param")}

    def gradients(self) -> dict:
        """Shape, inner chunks and shards of ``gradients`` (C, E, D): one shard per checkpoint × example block."""
        return {"shape": (self.n_checkpoints, self.n_examples, self.n_params),
                "chunks": (1, self.rows_per_chunk(self.block), self.inner),
                "shards": (1, self.block, self.shard_params), "dims": ("checkpoint", "example", "param")}

    def losses(self) -> dict:
        """Shape and chunks of ``losses`` (C, E): one chunk per checkpoint × example block."""
        return {"shape": (self.n_checkpoints, self.n_examples), "chunks": (1, self.block), "shards": None,
                "dims": ("checkpoint", "example")}

    def logit_deltas(self) -> dict:
        """Shape and chunks of ``logit_deltas`` (C, P, B, O): one chunk per task."""
        return {"shape": (self.n_checkpoints, self.n_pairs, self.n_eval, self.n_outputs),
                "chunks": (1, self.pairs_per_task, self.n_eval, self.n_outputs), "shards": None,
                "dims": ("checkpoint", "pair", "eval_example", "output")}

    def gram(self) -> dict:
        """Shape and chunks of ``gram`` (C, E, E)."""
        return {"shape": (self.n_checkpoints, self.n_examples, self.n_examples),
                "chunks": (1, self.n_examples, self.n_examples), "shards": None,
                "dims": ("checkpoint", "example", "example_b")}

    def owned_blocks(self) -> list[tuple[int, ...]]:
        """Per task of a checkpoint (by position), the example blocks it writes (:func:`block_owners`; a
        layout of schema ≤ 3 has one block, written by task 0)."""
        owners = block_owners(self.n_examples, self.block, self.n_pairs, self.pairs_per_task)
        out: list[list[int]] = [[] for _ in range(self.n_tasks_per_checkpoint)]
        for block, task in enumerate(owners):
            out[task].append(block)
        return [tuple(blocks) for blocks in out]

    def tasks(self) -> list[Task]:
        """The sweep's tasks: checkpoint by checkpoint, each ``pairs_per_task`` consecutive pairs of the
        canonical order (the last of a checkpoint may be fewer), with the example blocks it writes; a
        task's id is its position. Pure and deterministic, so a resumed run re-derives the same tasks
        from the stored layout."""
        owned = self.owned_blocks()
        return [Task(c * self.n_tasks_per_checkpoint + k, c, start, min(start + self.pairs_per_task, self.n_pairs),
                     owned[k])
                for c in range(self.n_checkpoints)
                for k, start in enumerate(range(0, self.n_pairs, self.pairs_per_task))]

    def task_of(self, checkpoint, pair):
        """The id of the task computing pair position ``pair`` at checkpoint position ``checkpoint``:
        c·T + p // pairs_per_task, as :meth:`tasks` numbers them (elementwise on numpy arrays too)."""
        return checkpoint * self.n_tasks_per_checkpoint + pair // self.pairs_per_task

    def bracket_shard_of(self, checkpoint: int, start: int) -> tuple[int, int, int]:
        """The shard grid index that pairs [start, ...) of ``checkpoint`` live in."""
        if start % self.pairs_per_task:
            raise ValueError(f"task start {start} is not a multiple of pairs_per_task {self.pairs_per_task}")
        return (checkpoint, start // self.pairs_per_task, 0)

    def to_dict(self) -> dict:
        """The layout as stored in the metadata (``StoreLayout(**d)`` rebuilds it)."""
        return {"n_checkpoints": self.n_checkpoints, "n_pairs": self.n_pairs, "n_examples": self.n_examples,
                "n_params": self.n_params, "pairs_per_task": self.pairs_per_task, "inner_chunk": self.inner_chunk,
                "n_eval": self.n_eval, "n_outputs": self.n_outputs, "example_block": self.example_block,
                "keeps_gram": self.keeps_gram, "keeps_order": self.keeps_order,
                **({"swap_epsilons": list(self.swap_epsilons)} if self.swap_epsilons else {}),
                **({} if self.keeps_brackets else {"keeps_brackets": False}),
                **({"effect_arrays": list(self.effect_arrays)} if self.effect_arrays else {}),
                **({"sketch_k": self.sketch_k, "sketch_s": self.sketch_s, "sketch_seed": self.sketch_seed}
                   if self.sketch_k else {}),
                **({"inner_rows": self.inner_rows} if self.inner_rows != 1 else {})}


def packed_rows(n_params: int, inner_chunk: int) -> int:
    """Rows a new store packs into one inner chunk: as many whole rows of D = ``n_params`` as fit in
    ``inner_chunk`` elements (1 when a row alone fills one)."""
    return max(1, inner_chunk // max(1, min(inner_chunk, n_params)))


def block_owners(n_examples: int, block: int, n_pairs: int, pairs_per_task: int) -> tuple[int, ...]:
    """For each example block k, the task (within a checkpoint) that computes and writes it: ⌊k·T/n_blocks⌋
    of the T tasks, spread evenly, so no task stores more than ⌈n_blocks/T⌉ blocks (first-touch ownership
    would give a tournament's first tasks hundreds of blocks each)."""
    n_blocks = math.ceil(n_examples / block)
    n_tasks = math.ceil(n_pairs / pairs_per_task)
    return tuple(k * n_tasks // n_blocks for k in range(n_blocks))
