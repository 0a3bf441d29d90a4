"""The worker: one per GPU (or CPU slot). Keeps the model, the current checkpoint's parameters and
a bounded cache of the examples its tasks touch (:mod:`jobs.field_cache`), computes a task's
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
import resource
import socket
import threading
import time
from typing import Any

import numpy as np
import torch

from lie_sweep import (FunctionalModel, ParamSpec, apply_checkpoint, bracket_kernel, compute_example_fields,
                       load_checkpoint, stack_examples)
from lie_sweep.analysis import (gram_matrix, jacobian_fits, logit_deltas, norms_from_rms, output_jacobian, pair_fits,
                                tensor_rms)
from lie_sweep.brackets import ExampleFields, kernel_workspace
from lie_sweep.hvp import hvp_batches
from lie_sweep.checkpoints import check_finite
from lie_sweep.errors import NonFiniteError
from lie_sweep.optim import cast_state
from lie_sweep.order import order_expansion
from storage.layout import Task
from storage.store import SweepStore

from . import rows
from .field_cache import ExampleRows, FieldCache
from .phase_clock import PhaseClock
from .memory import cache_budget
from .sweep import SweepSpec, build_dataset, build_model, optimizer_of, update_field, verify_checkpoint
from .worker_env import WORKER_VARIABLES

__all__ = ["BracketWorker", "resolve_device", "first_nonfinite", "pair_dots", "tile_groups", "DTYPES"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _ray_node_id() -> str | None:
    """The Ray node this worker runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - informational only
        return None


def resolve_device(name: str) -> torch.device:
    """``auto``: the first visible CUDA device, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def tile_groups(local: np.ndarray, positions: list[int]) -> list[list[int]]:
    """The task's examples (rows of ``positions``) grouped for the kernel's shared-tangent blocks: the
    connected components of its pairs (a tournament's groups; an all-pairs tile's A ∪ B), each sorted by
    position (so a tile's A comes before its B), in order of first appearance."""
    parent = list(range(len(positions)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, j in local.tolist():
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for k in range(len(positions)):
        groups.setdefault(root(k), []).append(k)
    return [sorted(g, key=positions.__getitem__) for g in groups.values()]


def pair_dots(rows: torch.Tensor, li: torch.Tensor, lj: torch.Tensor) -> np.ndarray:
    """g_i · g_j in float64 for each pair (li[p], lj[p]) of ``rows`` (n × D), read off the rows' Gram matrix
    (a product per pair would convert each row to float64 once per partner)."""
    return gram_matrix(rows)[li.to(rows.device), lj.to(rows.device)].cpu().numpy()


def first_nonfinite(flat: torch.Tensor, spec: ParamSpec) -> tuple[int, str] | None:
    """(row, tensor name) of the first NaN/Inf in ``flat`` (rows × D on ``spec``'s axis), or None."""
    bad = ~torch.isfinite(flat)
    bad_rows = bad.any(dim=1).nonzero()
    if not bad_rows.numel():
        return None
    row = int(bad_rows[0, 0])
    col = int(bad[row].nonzero()[0, 0])
    return row, next(e.name for e in spec.entries if e.offset <= col < e.stop)


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
        self.eval_inputs = (stack_examples(self.data, spec.eval_examples)[0].to(self.device, self.dtype)
                            if spec.eval_examples else None)
        self.pairs = np.asarray(spec.pair_positions, dtype=np.int64).reshape(-1, 2)
        self.pair_table = np.asarray(spec.pairs, dtype=np.int64).reshape(-1, 2)
        self.full_spec = ParamSpec.from_records(spec.param_spec)
        stored, index = spec.stored_spec()
        self.keeps_params = stored.size > 0
        self.kept_index = None if index is None else index.to(self.device)
        self.fmodel = FunctionalModel(self.model)
        self.store = SweepStore.open(spec.store_path, mode="r+", storage_options=spec.storage_options)
        self.layout = self.store.layout
        self.cache = FieldCache(cache_budget(self.device, cfg.cluster), self._example_rows)
        self.loaded: int | None = None
        self.optimizer = None  # field=optimizer: (step function, state) of the loaded checkpoint's optimizer
        self.loads = 0
        self._compute = threading.Lock()  # one computation at a time; writes overlap it
        self._workspace: torch.Tensor | None = None  # the kernel's accumulators, reused task after task
        # a task's compression and writes overlap the next task's computation on a GPU (the CPU is idle
        # meanwhile); a CPU worker's threads already fill its CPUs, so there they run after it, in turn
        overlap = cfg.cluster.overlap_writes
        self.overlap_writes = self.device.type == "cuda" if overlap == "auto" else overlap == "always"
        self.node_id = _ray_node_id()

    def _load(self, checkpoint: int) -> None:
        self.loaded = None  # until this load completes: a failed load leaves nothing half-loaded in use
        self.cache.clear()
        prov = self.spec.checkpoints[checkpoint]
        ckpt = load_checkpoint(prov["path"])  # hashes the file as it reads it
        verify_checkpoint(prov, sha256=ckpt.sha256)
        check_finite(ckpt)
        apply_checkpoint(self.model, ckpt)
        self.params = self.fmodel.params()
        names = [n for n, _ in self.model.named_parameters()]
        field = update_field(self.spec.config.field, ckpt.optimizer_state, names, prov["path"])
        self.field = field.bind(self.params)
        self.hvp = hvp_batches(self.fmodel, self.params, self.field, self.spec.hvp_mode)
        self.optimizer = optimizer_of(self.spec.config.field, ckpt.optimizer_state, names, prov["path"])
        if self.optimizer is not None:
            self.optimizer = (self.optimizer[0], cast_state(self.optimizer[1], self.dtype, self.device))
        self.jacobian = None  # J_f on the evaluation batch, when it fits: logit deltas become a matmul
        if self.eval_inputs is not None and jacobian_fits(len(self.spec.eval_examples), len(self.spec.output_names),
                                                          self.full_spec.size, self.dtype, self.device):
            self.jacobian = output_jacobian(self.fmodel, self.params, self.eval_inputs)
        self.loaded = checkpoint
        self.loads += 1

    def _example_rows(self, positions: list[int]) -> ExampleRows:
        """Inputs, targets, losses, gradients, fields and gradient RMS of examples at ``positions`` (the
        cache's misses), at the loaded checkpoint; NaN/Inf anywhere is one error naming the example."""
        inputs, targets = stack_examples(self.data, [self.spec.examples[p] for p in positions])
        inputs, targets = inputs.to(self.device, self.dtype), targets.to(self.device, self.dtype)
        # one example per call: batched, a row's last bits depend on the batch it was computed in, and which
        # examples a worker's cache misses together depends on its task history; so a resumed or
        # differently scheduled sweep would not reproduce a store bit for bit
        fields = compute_example_fields(self.fmodel, self.params, inputs, targets, field=self.field, chunk_size=1)
        found = self._nonfinite_example_values(fields, positions)
        if found is not None:
            prov = self.spec.checkpoints[self.loaded if self.loaded is not None else 0]
            raise NonFiniteError(f"non-finite results at step {prov['step']} ({os.path.basename(prov['path'])})",
                                 expected="finite losses and gradients from a finite checkpoint", found=found,
                                 fix="the model overflows at these weights (try precision=float64), or this "
                                     "example's input or target is not finite")
        return ExampleRows(positions, inputs, targets, fields.losses, fields.gradients, fields.fields,
                           tensor_rms(fields.gradients, self.full_spec))

    def _nonfinite_example_values(self, fields: ExampleFields, positions: list[int]) -> str | None:
        """Where some examples' losses, gradients or fields first hold NaN/Inf, or None."""
        bad_losses = (~torch.isfinite(fields.losses)).nonzero()
        if bad_losses.numel():
            return f"a NaN/Inf loss for example {self.spec.examples[positions[int(bad_losses[0, 0])]]}"
        for what, values in (("gradient", fields.gradients), ("update field", fields.fields)):
            bad = first_nonfinite(values, self.full_spec)
            if bad is not None:
                return f"NaN/Inf in the {what} of example {self.spec.examples[positions[bad[0]]]}, tensor {bad[1]}"
        return None

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

    def _owned_block(self, step: int, block: int) -> tuple[dict[str, dict], np.ndarray | None, np.ndarray]:
        """An owned example block's table rows, stored gradients (kept tensors; None when none are kept) and
        losses, from its rows in the cache (one block at a time, so owning many costs no memory)."""
        positions = list(range(*self.layout.block_range(block)))
        ex = self.cache.rows(positions)
        grad_rms = ex.grad_rms.cpu()
        losses = ex.losses.double().cpu().numpy()
        examples = [self.spec.examples[p] for p in positions]
        tables = {"examples": rows.example_rows(step, examples, losses,
                                                norms_from_rms(grad_rms, self.full_spec).numpy()),
                  "example_rms": rows.example_rms_rows(step, examples, self.full_spec.names, grad_rms.numpy())}
        grads = self._stored(ex.gradients) if self.keeps_params else None
        return tables, grads, ex.losses.cpu().numpy()

    def _derive(self, task: Task, local: np.ndarray, ex: ExampleRows, brackets: torch.Tensor,
                logits: torch.Tensor | None) -> dict[str, dict]:
        """The task's table rows, from the brackets while they are in memory (see :mod:`lie_sweep.analysis`)."""
        step = self.spec.checkpoints[task.checkpoint]["step"]
        li, lj = torch.from_numpy(local[:, 0]), torch.from_numpy(local[:, 1])
        grad_rms = ex.grad_rms.cpu()
        rms_b = tensor_rms(brackets, self.full_spec).cpu()
        rms_gi, rms_gj = grad_rms[li], grad_rms[lj]
        fits = pair_fits(rms_b, rms_gi, rms_gj)
        norms = norms_from_rms(rms_b, self.full_spec)
        grad_dot = pair_dots(ex.gradients, li, lj)
        ids = np.arange(task.start, task.stop)
        table = self.pair_table[task.start:task.stop]
        logit_rms = None if logits is None else logits.double().pow(2).mean(dim=(1, 2)).sqrt().numpy()
        names = self.full_spec.names
        tables = {
            "pairs": rows.pair_rows(step, ids, table, norms.numpy(), (norms / self.full_spec.size ** 0.5).numpy(),
                                    fits.log_c.numpy(), fits.r2.numpy(), fits.n_tensors.numpy(), logit_rms,
                                    grad_dot),
            "pair_rms": rows.pair_rms_rows(step, ids, table, names, rms_b.numpy(), rms_gi.numpy(), rms_gj.numpy()),
        }
        return tables

    def _order_terms(self, ex: ExampleRows, local: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(Δ₁, Δ₂) of the loaded checkpoint's optimizer for each of the task's pairs, (P × D) each, one
        pair at a time (:func:`lie_sweep.order.order_expansion`)."""
        step, state = self.optimizer
        follow = self.spec.config.field.follow_steps
        d1, d2 = [], []
        for i, j in local.tolist():
            a, b = order_expansion(self.fmodel, step, self.params, state, (ex.inputs[i], ex.targets[i]),
                                   (ex.inputs[j], ex.targets[j]), follow_steps=follow)
            d1.append(self.full_spec.flatten(a))
            d2.append(self.full_spec.flatten(b))
        return torch.stack(d1), torch.stack(d2)

    def _require_finite(self, task: Task, rows: torch.Tensor, what: str, term: str, source: str) -> None:
        """One :class:`NonFiniteError` line naming the checkpoint, the pair (``term`` formatted with its
        dataset indices i, j) and the tensor where the task's per-pair ``rows`` first hold NaN/Inf."""
        bad = first_nonfinite(rows, self.full_spec)
        if bad is not None:
            i, j = self.spec.pairs[task.start + bad[0]]
            prov = self.spec.checkpoints[task.checkpoint]
            raise NonFiniteError(f"non-finite {what} at step {prov['step']} ({os.path.basename(prov['path'])})",
                                 expected=f"finite {what}s from finite gradients",
                                 found=f"NaN/Inf in {term.format(i=i, j=j)} for tensor {bad[1]}",
                                 fix=f"{source} overflow at these weights: try precision=float64")

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
            if self.loaded != task.checkpoint:
                self._load(task.checkpoint)
            clock.lap("load_s")
            step = self.spec.checkpoints[task.checkpoint]["step"]
            positions, local = self._task_positions(task)
            ex = self.cache.rows(positions)
            clock.lap("fields_s")
            out = bracket_kernel(self.fmodel, self.params, ex.inputs, ex.targets, torch.from_numpy(local),
                                 field=self.field, chunk_size=self.chunk_size,
                                 example_fields=ExampleFields(ex.gradients, ex.losses, ex.fields),
                                 groups=tile_groups(local, positions), hvp=self.hvp,
                                 workspace=self._kernel_workspace())  # brackets: a view of it (see below)
            brackets = out.brackets
            self._sync()
            clock.lap("kernel_s")
            self._require_finite(task, brackets, "bracket", "[u_{i}, u_{j}]", "the Hessian-vector products")
            order = None
            if self.optimizer is not None:
                order = self._order_terms(ex, local)
                for k, terms in enumerate(order, start=1):
                    self._require_finite(task, terms, f"order-{k} term", f"Δ{k} of ({{i}}, {{j}})", "the derivatives")
                clock.lap("order_s")
            logits = None
            if self.eval_inputs is not None:
                # field=optimizer: J_f(εΔ₁ + ε²Δ₂) = ε² J_f(Δ₁/ε + Δ₂); otherwise ε² J_f[u_i, u_j]
                moved = brackets if order is None else order[0] / self.spec.epsilon + order[1]
                logits = logit_deltas(self.fmodel, self.params, self.eval_inputs, moved, epsilon=self.spec.epsilon,
                                      chunk_size=self.chunk_size or 16, jacobian=self.jacobian).cpu()
                clock.lap("logits_s")
            tables = self._derive(task, local, ex, brackets, logits)
            order_values = {}
            if order is not None:
                eps = self.spec.epsilon
                n1, n2 = (o.double().norm(dim=1).cpu().numpy() for o in order)
                tables["pairs"].update(order1_norm=n1, order2_norm=n2,
                                       dominant=np.where(eps * n1 >= eps * eps * n2, "first", "second"))
                if self.keeps_params:
                    order_values = {"order1": self._stored(order[0]), "order2": self._stored(order[1])}
                del order
            norms = tables["pairs"]["norm"].tolist()
            values = self._stored(brackets) if self.keeps_params else None
            del ex, out
            for b in task.example_blocks:  # written one by one: a task owning many blocks holds one at a time
                block_tables, grads, losses = self._owned_block(step, b)
                self.store.write_examples(task.checkpoint, b, grads, losses)
                del grads
                for name, columns in block_tables.items():
                    tables[name] = columns if name not in tables else {
                        k: np.concatenate([tables[name][k], v]) for k, v in columns.items()}
            logits = None if logits is None else logits.numpy()
            self._sync()
            loads = self.loads
            del brackets
            clock.lap("tables_s")
            compute = clock.total(exclude=("wait_s",))
            if not self.overlap_writes:
                files = self._write(task, values, order_values, logits, tables, clock)
        if self.overlap_writes:
            files = self._write(task, values, order_values, logits, tables, clock)
        return {"task_id": task.task_id, "checkpoint": task.checkpoint, "start": task.start, "stop": task.stop,
                "compute_s": compute, "write_s": clock.total(exclude=("wait_s",)) - compute,
                "phases": clock.finish(), "norms": norms, "files": files,
                "host": socket.gethostname(), "pid": os.getpid(), "node": self.node_id, "loads": loads,
                "examples": len(positions), "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "hvp": self.hvp.mode,
                "finished": time.time(), "env": {k: os.environ.get(k) for k in WORKER_VARIABLES},
                "threads": torch.get_num_threads()}

    def _write(self, task: Task, values: np.ndarray | None, order_values: dict[str, np.ndarray],
               logits: np.ndarray | None, tables: dict[str, dict], clock: "PhaseClock") -> dict[str, str]:
        """Write a task's arrays and table parts; the SHA-256 of every file written."""
        if values is not None:
            self.store.write_brackets(task.checkpoint, task.start, values)
        for name, array in order_values.items():
            self.store.write_brackets(task.checkpoint, task.start, array, name)
        clock.lap("write_arrays_s")
        if logits is not None:
            self.store.write_logit_deltas(task.checkpoint, task.start, logits)
        for name, columns in tables.items():
            self.store.write_table_part(name, task.checkpoint, task.task_id, columns)
        clock.lap("write_tables_s")
        files = self.store.digests(list(self.store.files_of(task).values()))
        clock.lap("digests_s")
        return files

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
