"""The worker: one per GPU (or CPU slot). Keeps the model, the current checkpoint's parameters and
a bounded cache of the examples its tasks touch (:mod:`jobs.execution.field_cache`), computes a task's
brackets and writes the task's own shard, and for the example blocks the task owns, their gradients
and losses. It never holds all E examples: peak memory depends on the tile and D, not on E.

``BracketWorker`` is a plain class; the driver runs it as a Ray actor (``ray.remote(BracketWorker)``)
with two concurrent calls: computation is serialised by a lock; a GPU worker's compression and
writes run outside it, overlapping the next task's computation, a CPU worker's inside it
(``cluster.overlap_writes``: its compute threads already fill its CPUs, and a write thread beside
them would only contend for the cores and the GIL). Each call reports where its time went.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import numpy as np
import torch

from lie_sweep import ParamSpec, bracket_kernel, stack_examples
from lie_sweep.data import Minibatches
from lie_sweep.analysis import jacobian_fits, logit_deltas, norms_from_rms, output_jacobian
from lie_sweep.devices import DTYPES, resolve_device
from lie_sweep.hvp import hvp_batches
from lie_sweep.tasks import EvalBatch
from lie_sweep.kernel import ExampleFields, kernel_workspace, tile_groups
from lie_sweep.sketch import Sketcher
from storage.layout import Task
from storage.store import SweepStore

from jobs.planning.build import build_dataset, build_model
from jobs.planning.loader import load_into
from jobs.planning.memory import cache_budget
from jobs.planning.spec import SweepSpec

from . import rows
from .derive import example_rows, require_finite
from .effect_steps import TaskEffects, TaskInputs, step_of, task_tables
from .field_cache import ExampleRows, FieldCache
from .task_output import Computed, write_task
from .phase_clock import PhaseClock
from .worker_env import WORKER_VARIABLES, peak_rss, ray_node_id

__all__ = ["BracketWorker"]


class BracketWorker:
    """Computes and stores tasks of one sweep; loads each checkpoint once for all its tasks."""

    def __init__(self, spec: SweepSpec, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.spec = spec
        cfg = spec.config
        self.device = resolve_device(cfg.cluster.device)
        self.dtype = DTYPES[cfg.precision]
        self.chunk_size = cfg.chunk_size
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model).to(device=self.device, dtype=self.dtype)
        self.data = build_dataset(cfg.data)
        # the grid's items: examples, or minibatches of them (pairs.unit=batch: an item's loss is their mean)
        self.task = spec.task
        self.items = self.data if spec.batches is None else Minibatches(self.data, spec.batches, self.task)
        self.eval_inputs = (EvalBatch(*stack_examples(self.data, spec.eval_examples, self.task)).to(self.device,
                                                                                                    self.dtype)
                            if spec.eval_examples else None)
        self.pairs = np.asarray(spec.pair_positions, dtype=np.int64).reshape(-1, 2)
        self.pair_table = np.asarray(spec.pairs, dtype=np.int64).reshape(-1, 2)
        self.full_spec = ParamSpec.from_records(spec.param_spec)
        stored, index = spec.stored_spec()
        self.keeps_params = stored.size > 0
        self.kept_index = None if index is None else index.to(self.device)
        self.store = SweepStore.open(spec.store_path, mode="r+", storage_options=spec.storage_options)
        self.layout = self.store.layout
        self.cache = FieldCache(cache_budget(self.device, cfg.cluster), self._example_rows)
        self.loaded: int | None = None
        self.state = None  # the loaded checkpoint (jobs.planning.loader.LoadedCheckpoint)
        self.loads = 0
        self._compute = threading.Lock()  # one computation at a time; writes overlap it
        self._workspace: torch.Tensor | None = None  # the kernel's accumulators, reused task after task
        # a task's compression and writes overlap the next task's computation on a GPU (the CPU is idle
        # meanwhile); a CPU worker's threads already fill its CPUs, so there they run after it, in turn
        overlap = cfg.cluster.overlap_writes
        self.overlap_writes = self.device.type == "cuda" if overlap == "auto" else overlap == "always"
        self.node_id = ray_node_id()
        sketch = spec.sketch_spec()  # the same S on every worker, CPU or GPU (storage/sketch.py)
        self.sketcher = Sketcher(sketch, self.device) if sketch is not None else None

    def _load(self, checkpoint: int) -> None:
        self.loaded = None  # until this load completes: a failed load leaves nothing half-loaded in use
        self.cache.clear()
        self.state = load_into(self.model, self.spec.checkpoints[checkpoint], self.spec.config.field,
                               kind=self.spec.field_kind, batched_items=self.spec.batches is not None, task=self.task)
        self.hvp = (hvp_batches(self.state.fmodel, self.state.params, self.state.field, self.spec.hvp_mode)
                    if "bracket" in self.spec.effects else None)
        self.jacobian = None  # J_f on the evaluation batch, when it fits: logit deltas become a matmul
        expansion = "bracket" in self.spec.effects or "order" in self.spec.effects  # J_f for their logit deltas
        if expansion and self.eval_inputs is not None and jacobian_fits(
                len(self.spec.eval_examples), len(self.spec.output_names), self.full_spec.size, self.dtype,
                self.device):
            self.jacobian = output_jacobian(self.state.fmodel, self.state.params, self.eval_inputs)
        self.loaded = checkpoint
        self.loads += 1

    def _example_rows(self, positions: list[int]) -> ExampleRows:
        """The cache's misses at the loaded checkpoint (:func:`jobs.execution.derive.example_rows`)."""
        prov = self.spec.checkpoints[self.loaded if self.loaded is not None else 0]
        return example_rows(self.state, self.items, [self.spec.examples[p] for p in positions], positions,
                            self.device, self.dtype, self.full_spec, prov)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _stored(self, flat: torch.Tensor) -> np.ndarray:
        """Rows on the store's flat axis (the kept tensors)."""
        return (flat if self.kept_index is None else flat[:, self.kept_index]).cpu().numpy()

    def _task_positions(self, task: Task) -> tuple[list[int], np.ndarray]:
        """The example positions a task's pairs touch, in order of first appearance, and its pairs as rows
        of that list."""
        pos = self.pairs[task.start:task.stop]
        positions = list(dict.fromkeys(pos.reshape(-1).tolist()))
        row = {p: k for k, p in enumerate(positions)}
        local = np.asarray([[row[i], row[j]] for i, j in pos.tolist()], dtype=np.int64).reshape(-1, 2)
        return positions, local

    def _owned_block(self, step: int, block: int) -> tuple[dict[str, dict], np.ndarray | None, np.ndarray,
                                                           np.ndarray | None]:
        """An owned example block's table rows, stored gradients (kept tensors; None when none are kept), losses
        and gradients' sketch (None without storage.sketch), from its rows in the cache (one block at a time, so
        owning many costs no memory)."""
        positions = list(range(*self.layout.block_range(block)))
        ex = self.cache.rows(positions)
        grad_rms = ex.grad_rms.cpu()
        losses = ex.losses.double().cpu().numpy()
        examples = [self.spec.examples[p] for p in positions]
        tables = {"examples": rows.example_rows(step, examples, losses,
                                                norms_from_rms(grad_rms, self.full_spec).numpy()),
                  "example_rms": rows.example_rms_rows(step, examples, self.full_spec.names, grad_rms.numpy())}
        grads = self._stored(ex.gradients) if self.keeps_params else None
        sketched = None if self.sketcher is None else self._sketch(ex.gradients)
        return tables, grads, ex.losses.cpu().numpy(), sketched

    def require_finite(self, task: Task, values: torch.Tensor, what: str, term: str, source: str) -> None:
        """One error line where a task's per-pair ``values`` hold NaN/Inf (:func:`derive.require_finite`)."""
        require_finite(values, self.full_spec, self.spec.checkpoints[task.checkpoint],
                       lambda row: self.spec.pairs[task.start + row], what, term, source)

    def brackets(self, ex: ExampleRows, local: np.ndarray, positions: list[int]) -> torch.Tensor:
        """The task's brackets (P × D; a view of the reused workspace, see :meth:`_kernel_workspace`)."""
        st = self.state
        out = bracket_kernel(st.fmodel, st.params, ex.inputs, ex.targets, torch.from_numpy(local), field=st.field,
                             chunk_size=self.chunk_size, groups=tile_groups(local, positions), hvp=self.hvp,
                             example_fields=ExampleFields(ex.gradients, ex.losses, ex.fields),
                             workspace=self._kernel_workspace())
        return out.brackets

    def _compute_task(self, task: Task, clock: PhaseClock) -> Computed:
        """Everything a task stores, computed at its checkpoint (each effect's results, logit deltas, tables,
        its owned example blocks, written here one by one so that a task owning many holds one at a time)."""
        if self.loaded != task.checkpoint:
            self._load(task.checkpoint)
        clock.lap("load_s")
        step = self.spec.checkpoints[task.checkpoint]["step"]
        positions, local = self._task_positions(task)
        inputs = TaskInputs(task, self.cache.rows(positions), local, positions)
        clock.lap("fields_s")
        out = TaskEffects()
        for effect in self.spec.effect_kinds:
            computation = step_of(effect)
            computation.compute(self, inputs, out)
            self._sync()
            clock.lap(computation.lap)
        logits = self._logit_deltas(out.brackets, out.order)
        lead = None  # ε²J_f[u_i, u_j], to measure the exact swap's logit deltas against
        if out.swap_logits is not None and out.brackets is not None:
            lead = logits if out.order is None else self._logit_deltas(out.brackets, None)
        clock.lap("logits_s")
        tables = task_tables(step, np.arange(task.start, task.stop), self.pair_table[task.start:task.stop], inputs,
                             out, logits, lead, self.full_spec, self.spec.epsilon, self.spec.swap_epsilons)
        computed = Computed(self._stored(out.brackets) if self.keeps_params and out.brackets is not None else None,
                             {**{name: self._stored(t) for name, t in zip(("order1", "order2"), out.order or ())
                                 if self.keeps_params},
                              **{name: self._stored(t) for name, t in out.arrays.items() if self.keeps_params}},
                             None if logits is None else logits.numpy(), tables,
                             tables["pairs"]["norm" if out.brackets is not None else "swap_norm"].tolist(),
                             len(positions), self.loads, None if out.swaps is None else (
                                 np.stack([self._stored(s) for s in out.swaps]) if self.keeps_params else None,
                                 None if out.swap_logits is None else out.swap_logits.cpu().numpy()),
                             self._sketches(out))
        del inputs, out
        self._write_owned_blocks(task, step, computed.tables)
        self._sync()
        clock.lap("tables_s")
        return computed

    def _sketch(self, flat: torch.Tensor) -> np.ndarray:
        """S·v of rows over all D parameters (storage.sketch), on the CPU."""
        return self.sketcher(flat).cpu().numpy()

    def _sketches(self, out: TaskEffects) -> dict[str, np.ndarray]:
        """The sketch of each parameter-sized result a task computed ({} without storage.sketch): computed here,
        before anything is written, from the full vectors (whatever storage.keep stores of them)."""
        if self.sketcher is None:
            return {}
        results = {"brackets": out.brackets, **dict(zip(("order1", "order2"), out.order or ())), **out.arrays,
                   "swaps": out.swaps}
        return {name: self._sketch(results[name]) for name in self.layout.sketched
                if name != "gradients" and results.get(name) is not None}

    def _logit_deltas(self, brackets: torch.Tensor | None,
                      order: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor | None:
        """ε² J_f[u_i, u_j] on the evaluation batch; with ``order`` (field=optimizer), J_f(εΔ₁ + ε²Δ₂)
        = ε² J_f(Δ₁/ε + Δ₂). None without an evaluation batch, or without either."""
        if self.eval_inputs is None or (brackets is None and order is None):
            return None
        moved = brackets if order is None else order[0] / self.spec.epsilon + order[1]
        return logit_deltas(self.state.fmodel, self.state.params, self.eval_inputs, moved, epsilon=self.spec.epsilon,
                            chunk_size=self.chunk_size or 16, jacobian=self.jacobian).cpu()

    def _write_owned_blocks(self, task: Task, step: int, tables: dict[str, dict]) -> None:
        """Store the gradients and losses of the example blocks ``task`` owns, and add their table rows."""
        for b in task.example_blocks:
            block_tables, grads, losses, sketched = self._owned_block(step, b)
            self.store.write_examples(task.checkpoint, b, grads, losses)
            if sketched is not None:
                self.store.write_sketches(task, {}, {b: sketched})
            del grads
            for name, columns in block_tables.items():
                tables[name] = columns if name not in tables else {
                    k: np.concatenate([tables[name][k], v]) for k, v in columns.items()}

    def run(self, task: Task) -> dict[str, Any]:
        """Compute and store ``task``: brackets (kept tensors), logit deltas, summary tables, and for
        the example blocks it owns their gradients and losses.

        Returns a small summary (timings, bracket norms, the SHA-256 of every file written, the cache's
        hit counts, the process's peak RSS) only after everything is written, so a completion mark may
        follow. A non-finite loss, gradient or bracket raises :class:`NonFiniteError` naming the
        checkpoint, the example or pair, and the tensor.
        """
        clock = PhaseClock()
        with self._compute:
            clock.lap("wait_s")
            out = self._compute_task(task, clock)
            compute = clock.total(exclude=("wait_s",))
            if not self.overlap_writes:
                files = write_task(self.store, task, out, clock)
        if self.overlap_writes:
            files = write_task(self.store, task, out, clock)
        return {"task_id": task.task_id, "checkpoint": task.checkpoint, "start": task.start, "stop": task.stop,
                "compute_s": compute, "write_s": clock.total(exclude=("wait_s",)) - compute,
                "phases": clock.finish(), "norms": out.norms, "files": files,
                "host": socket.gethostname(), "pid": os.getpid(), "node": self.node_id, "loads": out.loads,
                "examples": out.examples, "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                "peak_rss": peak_rss(), "hvp": None if self.hvp is None else self.hvp.mode,
                "finished": time.time(), "env": {k: os.environ.get(k) for k in WORKER_VARIABLES},
                "threads": torch.get_num_threads()}

    def _kernel_workspace(self) -> torch.Tensor | None:
        """The kernel's accumulator for a task of up to ``pairs.per_task`` pairs, allocated once and reused.

        The task's brackets are a view of it until they are written: a CPU worker whose writes overlap the
        next task's computation (``cluster.overlap_writes=always``) would overwrite them, so it gets none
        (on a GPU the stored copy is taken off the device before the next task starts)."""
        if self.overlap_writes and self.device.type == "cpu":
            return None
        if self._workspace is None:
            self._workspace = kernel_workspace(self.layout.pairs_per_task, self.full_spec.size, self.dtype,
                                               self.device)
        return self._workspace

    def ping(self) -> int:
        """The worker's process id, once it is up (the driver's readiness probe)."""
        return os.getpid()
