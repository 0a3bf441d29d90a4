"""The worker: one per GPU (or CPU slot). Keeps the model, the current checkpoint's parameters and
every example's gradient and field, computes a task's brackets and writes the task's own shard.

``BracketWorker`` is a plain class; the driver runs it as a Ray actor (``ray.remote(BracketWorker)``)
with two concurrent calls: computation is serialised by a lock, and a task's compression and
write run outside it, overlapping the next task's computation.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import torch

from lie_sweep import (FunctionalModel, PreconditionedField, SGDField, apply_checkpoint, bracket_kernel,
                       compute_example_fields, load_checkpoint, stack_examples)
from storage.store import SweepStore

from .plan import Task
from .sweep import SweepSpec, build_dataset, build_model, verify_checkpoint

__all__ = ["BracketWorker", "resolve_device"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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


class BracketWorker:
    """Computes and stores tasks of one sweep; loads each checkpoint once for all its tasks."""

    def __init__(self, spec: SweepSpec, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.spec = spec
        cfg = spec.config
        self.device = resolve_device(cfg["cluster"]["device"])
        self.dtype = _DTYPES[cfg["precision"]]
        self.chunk_size = cfg["chunk_size"]
        torch.manual_seed(cfg["seed"])
        self.model = build_model(cfg["model"]).to(device=self.device, dtype=self.dtype)
        inputs, targets = stack_examples(build_dataset(cfg["data"]), spec.examples)
        self.inputs = inputs.to(self.device, self.dtype)
        self.targets = targets.to(self.device, self.dtype)
        self.pairs = torch.tensor(spec.pair_positions, dtype=torch.long).reshape(-1, 2)
        self.fmodel = FunctionalModel(self.model)
        self.store = SweepStore.open(spec.store_path, mode="r+", storage_options=spec.storage_options)
        self.loaded: int | None = None
        self.loads = 0
        self._compute = threading.Lock()  # one computation at a time; writes overlap it
        self.node_id = _ray_node_id()

    def _load(self, checkpoint: int) -> None:
        prov = self.spec.checkpoints[checkpoint]
        ckpt = load_checkpoint(prov["path"])  # hashes the file as it reads it
        verify_checkpoint(prov, sha256=ckpt.sha256)
        apply_checkpoint(self.model, ckpt)
        self.params = self.fmodel.params()
        if self.spec.config["field"]["name"] == "adam":
            names = [n for n, _ in self.model.named_parameters()]
            self.field = PreconditionedField.from_adam_state(ckpt.optimizer_state, names,
                                                             eps=self.spec.config["field"]["eps"])
        else:
            self.field = SGDField()
        self.field = self.field.bind(self.params)
        self.example_fields = compute_example_fields(self.fmodel, self.params, self.inputs, self.targets,
                                                     field=self.field)
        self.loaded = checkpoint
        self.loads += 1

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, task: Task) -> dict[str, Any]:
        """Compute and store ``task``; returns a small summary (timings, bracket norms).

        Returns only after the task's shards are written, so a completion mark may follow.
        """
        with self._compute:
            t0 = time.perf_counter()
            if self.loaded != task.checkpoint:
                self._load(task.checkpoint)
            out = bracket_kernel(self.fmodel, self.params, self.inputs, self.targets,
                                 self.pairs[task.start:task.stop], field=self.field, chunk_size=self.chunk_size,
                                 example_fields=self.example_fields)
            norms = out.brackets.norm(dim=1).tolist()
            finite = bool(torch.isfinite(out.brackets).all())
            values = out.brackets.cpu().numpy()
            examples = None
            if task.writes_examples:
                examples = (self.example_fields.gradients.cpu().numpy(), self.example_fields.losses.cpu().numpy())
            self._sync()
            loads = self.loads
            t1 = time.perf_counter()
        if examples is not None:
            self.store.write_examples(task.checkpoint, *examples)
        self.store.write_brackets(task.checkpoint, task.start, values)
        t2 = time.perf_counter()
        return {"task_id": task.task_id, "checkpoint": task.checkpoint, "start": task.start, "stop": task.stop,
                "compute_s": t1 - t0, "write_s": t2 - t1, "norms": norms, "finite": finite,
                "host": socket.gethostname(), "pid": os.getpid(), "node": self.node_id, "loads": loads}

    def ping(self) -> int:
        return os.getpid()
