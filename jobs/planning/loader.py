"""The one checkpoint loader: a checkpoint file → the model holding its weights, its update field and (for
``field=optimizer``) its optimizer, as every part of a sweep needs them (the workers, ``verify``, ``plan``,
the HVP calibration and the sweep's set-up).

A checkpoint recorded by a sweep (its provenance: path, size, sha256, step) is checked against the record
as it is read: a missing or changed file is one error line. NaN/Inf weights are refused. The field and the
optimizer's state live on the parameters' device and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from lie_sweep import Checkpoint, FunctionalModel, apply_checkpoint, load_checkpoint
from lie_sweep.checkpoints import check_finite, checkpoint_digest
from lie_sweep.errors import CheckpointError, CheckpointNotFoundError
from lie_sweep.field_kinds import FIELDS, FieldKind, build_field
from lie_sweep.fields import Params, UpdateField
from lie_sweep.optim import cast_state, from_state_dict
from lie_sweep.optim_names import name_optimizer_state
from lie_sweep.tasks import Task

__all__ = ["LoadedCheckpoint", "load_into", "verify_checkpoint"]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint applied to a model: θ as a dict of tensors, the field bound to them, and for fields that
    step the saved optimizer its (step function, state) (:func:`lie_sweep.optim.from_state_dict`), else None."""

    checkpoint: Checkpoint
    fmodel: FunctionalModel
    params: Params
    field: UpdateField
    optimizer: tuple[Any, Any] | None


def verify_checkpoint(prov: Mapping[str, Any], digest: tuple[int, str] | None = None) -> None:
    """The checkpoint a sweep recorded (path, size, sha256) is still there, unchanged; else one error line.

    ``digest``: its (size, sha256) when the caller already has them (e.g. from ``load_checkpoint``)."""
    path = Path(prov["path"])
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} of this sweep is missing",
                                      expected=f"the file swept at step {prov['step']}", found="no such file",
                                      fix="restore it; if the checkpoints moved, resume with "
                                          "checkpoints.dir=NEW_DIR (or checkpoints.glob= / checkpoints.paths=); "
                                          "or start over (resume --restart)")
    size, sha256 = digest if digest is not None else checkpoint_digest(path)
    if size != prov["size"] or sha256 != prov["sha256"]:
        raise CheckpointError(f"checkpoint {path} changed since the sweep started",
                              expected=f"sha256 {prov['sha256'][:16]}… ({prov['size']} bytes)",
                              found=f"different contents ({size} bytes)",
                              fix="restore the original file, or start a new sweep (resume --restart)")


def load_into(model: torch.nn.Module, source: str | Path | Mapping[str, Any], field: Any, *,
              position: int = 0, kind: FieldKind | None = None, batched_items: bool = False,
              task: Task | None = None) -> LoadedCheckpoint:
    """Load ``source`` into ``model`` (in place) and build what a sweep computes with at it.

    ``source``: a checkpoint path, or a sweep's provenance record of one (then verified against it);
    ``field``: the ``field.*`` config (``name`` and the field's own keys); ``position``: the file's
    place in its list (a step for files that record none); ``kind``: the field's registry entry when the
    caller has it resolved already (a worker's spec carries it), else ``FIELDS[field.name]``;
    ``batched_items``: the sweep's items are minibatches (``pairs.unit=batch``), each one loss, their mean;
    ``task``: the loss and measurement (:mod:`lie_sweep.tasks`; default multilabel). The checkpoint's model keys
    are aligned to the model (module prefix, tied weights) and its optimizer state is matched to the parameters by
    name or by checked shapes (:mod:`lie_sweep.optim_names`): a misfit is one error line.
    """
    kind = kind if kind is not None else FIELDS[field.name]
    prov = source if isinstance(source, Mapping) else None
    path = str(prov["path"] if prov is not None else source)
    if prov is not None and not Path(path).exists():
        verify_checkpoint(prov)  # the missing-file message names how to relocate the checkpoints
    ckpt = load_checkpoint(path, position=position)  # hashes the file as it reads it
    if prov is not None:
        verify_checkpoint(prov, digest=(ckpt.size, ckpt.sha256))
    prefix = apply_checkpoint(model, ckpt)  # one error line when it does not fit
    fmodel = FunctionalModel(model, batched_items=batched_items, task=task)
    params = fmodel.params()
    names = [n for n, _ in model.named_parameters()]  # the order a saved optimizer indexes its parameters by
    if ckpt.optimizer_state is not None and (kind.needs_state or kind.steps_optimizer):
        ckpt.optimizer_state = name_optimizer_state(ckpt.optimizer_state, {n: tuple(p.shape) for n, p in
                                                                           model.named_parameters()}, prefix)
    check_finite(ckpt)
    bound = build_field(field, ckpt.optimizer_state, names, path, kind=kind).bind(params)
    optimizer = None
    if kind.steps_optimizer:
        step, state = from_state_dict(ckpt.optimizer_state, names)
        ref = next(iter(params.values()))
        optimizer = (step, cast_state(state, ref.dtype, ref.device))
    return LoadedCheckpoint(checkpoint=ckpt, fmodel=fmodel, params=params, field=bound, optimizer=optimizer)
