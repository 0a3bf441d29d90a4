"""From a validated config to everything a sweep needs: data, examples, pairs, checkpoints, store.

``prepare_sweep`` runs on the driver: it instantiates the dataset and model, resolves examples and
pairs, trains or finds the checkpoints (checking each fits the model), and returns a
:class:`SweepSpec`, a picklable description that every worker rebuilds its state from.

A little over 300 lines: the spec, the grid and the checkpoint checks it is built from belong to
one step of the data flow (config → spec), which the driver, the workers and ``plan`` all share.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

import lie_sweep
from lie_sweep import (ParamSpec, PreconditionedField, SGDField, UpdateField, apply_checkpoint, find_checkpoints,
                       load_checkpoint, train)
from lie_sweep.checkpoints import check_finite, checkpoint_base, file_sha256
from lie_sweep.errors import (CheckpointError, CheckpointNotFoundError, ConfigError, ExampleIndexError,
                              LieSweepError, first_line, require_indices)
from lie_sweep.fields import eval_mode
from storage.identity import identity_hash
from storage.layout import StoreLayout
from storage.meta import StoreMeta
from storage.location import check_creatable

from .config import as_dict, identity_of, keep_globs, typed
from .schema import SweepConfig
from .grid import canonical_pairs, example_indices, top_pairs

__all__ = ["SweepSpec", "Grid", "resolve_grid", "epsilon_of", "prepare_sweep", "build_model", "build_dataset",
           "verify_checkpoint", "relocate_checkpoints", "checkpoint_location", "kept_tensors", "eval_indices",
           "update_field", "optimizer_of", "grid_pairs"]


@dataclass
class SweepSpec:
    """Everything that defines a sweep's work, in plain Python types (sent to every worker)."""

    config: SweepConfig                       # the validated config, typed (model and data: plain dicts)
    identity: dict[str, Any]
    examples: list[int]
    pairs: list[tuple[int, int]]
    checkpoints: list[dict[str, Any]]        # provenance: path, relpath (to checkpoint_base), step, size, sha256
    param_spec: list[dict[str, Any]]
    attribute_names: list[str]
    store_path: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    kept_names: list[str] | None = None      # tensors in the parameter-sized arrays (None: all)
    eval_examples: list[int] = field(default_factory=list)  # dataset indices of the logit deltas' batch
    output_names: list[str] = field(default_factory=list)   # one per model output
    epsilon: float = 0.0                     # ε of the logit deltas ε²·J_f[u_i,u_j]
    checkpoint_base: str = ""                # the configured checkpoint location's directory
    hvp_mode: str = "forward"                # the HVP mode of the tasks (config.hvp, or what auto chose)

    @property
    def identity_hash(self) -> str:
        """SHA-256 of the identity (what defines the results)."""
        return identity_hash(self.identity)

    @property
    def pair_positions(self) -> list[tuple[int, int]]:
        """Pairs as positions into ``examples`` (what the kernel indexes)."""
        pos = {e: k for k, e in enumerate(self.examples)}
        return [(pos[i], pos[j]) for i, j in self.pairs]

    @property
    def n_params(self) -> int:
        """D: parameters of the model on the full flat axis."""
        return ParamSpec.from_records(self.param_spec).size

    def stored_spec(self) -> tuple[ParamSpec, torch.Tensor | None]:
        """(spec of the stored flat axis, its positions on the full axis; None when all are kept)."""
        full = ParamSpec.from_records(self.param_spec)
        if self.kept_names is None:
            return full, None
        return full.subset(self.kept_names)

    def layout(self) -> StoreLayout:
        """The store's layout for this sweep (shapes, shards, inner chunks, example blocks)."""
        st, pc = self.config.storage, self.config.pairs
        block = min(pc.block, len(self.examples))
        return StoreLayout(n_checkpoints=len(self.checkpoints), n_pairs=len(self.pairs),
                           n_examples=len(self.examples), n_params=self.stored_spec()[0].size,
                           pairs_per_task=pc.per_task, inner_chunk=st.inner_chunk,
                           n_eval=len(self.eval_examples),
                           n_outputs=len(self.output_names) if self.eval_examples else 0,
                           example_block=block, keeps_gram=False,
                           keeps_order=self.config.field.name == "optimizer")

    def store_meta(self, n_tasks: int) -> dict[str, Any]:
        """The metadata written into the store (config without storage options, identity, provenance, specs)."""
        config = as_dict(self.config)
        config["storage"]["options"] = {}  # may hold credentials: never stored
        return {"package_version": lie_sweep.__version__, "config": config, "identity": self.identity,
                "identity_hash": self.identity_hash, "param_spec": self.param_spec,
                "stored_spec": self.stored_spec()[0].to_records(), "kept_names": self.kept_names,
                "checkpoints": self.checkpoints, "checkpoint_base": self.checkpoint_base,
                "attribute_names": self.attribute_names,
                "output_names": self.output_names, "eval_examples": self.eval_examples, "epsilon": self.epsilon,
                "n_tasks": n_tasks, "python": sys.version.split()[0], "torch": torch.__version__,
                "hvp_mode": self.hvp_mode}

    @classmethod
    def from_store_meta(cls, meta: StoreMeta, config: SweepConfig, examples: list[int],
                        pairs: list[tuple[int, int]], store_path: str) -> "SweepSpec":
        """The spec of an existing store (for resume), with ``config``'s execution settings (``hvp=auto``
        keeps the mode the store recorded)."""
        return cls(config=config, identity=meta.identity, examples=examples, pairs=pairs,
                   checkpoints=list(meta.checkpoints), param_spec=list(meta.param_spec),
                   attribute_names=list(meta.attribute_names), store_path=store_path,
                   storage_options=dict(config.storage.options), kept_names=meta.kept_names,
                   eval_examples=list(meta.eval_examples), output_names=list(meta.output_names),
                   epsilon=float(meta.epsilon), checkpoint_base=meta.checkpoint_base,
                   hvp_mode=meta.hvp_mode if config.hvp == "auto" else config.hvp)


def verify_checkpoint(prov: dict[str, Any], sha256: str | None = None) -> None:
    """The checkpoint a sweep recorded (path, size, sha256) is still there, unchanged; else one error line.

    ``sha256``: the file's hash when the caller already has it (e.g. from ``load_checkpoint``).
    """
    path = Path(prov["path"])
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} of this sweep is missing",
                                      expected=f"the file swept at step {prov['step']}", found="no such file",
                                      fix="restore it; if the checkpoints moved, resume with "
                                          "checkpoints.dir=NEW_DIR (or checkpoints.glob= / checkpoints.paths=); "
                                          "or start over (resume --restart)")
    size = path.stat().st_size
    if size != prov["size"] or (sha256 or file_sha256(path)) != prov["sha256"]:
        raise CheckpointError(f"checkpoint {path} changed since the sweep started",
                              expected=f"sha256 {prov['sha256'][:16]}… ({prov['size']} bytes)",
                              found=f"different contents ({size} bytes)",
                              fix="restore the original file, or start a new sweep (resume --restart)")


def update_field(field_cfg: Any, optimizer_state: Any, param_names: list[str], where: str) -> UpdateField:
    """The field a config's ``field`` names at a checkpoint: u = −∇L (sgd), or u = −P∇L with Adam's frozen
    P from ``optimizer_state`` (adam; a checkpoint without it is one error line naming ``where``)."""
    if field_cfg.name != "adam":
        return SGDField()
    if optimizer_state is None:
        raise ConfigError("field=adam needs optimizer state", expected=f"Adam state in {where}",
                          found="a checkpoint without optimizer state", fix="use field=sgd or checkpoints with state")
    return PreconditionedField.from_adam_state(optimizer_state, param_names, eps=field_cfg.eps)


def optimizer_of(field_cfg: Any, optimizer_state: Any, param_names: list[str], where: str) -> tuple[Any, Any] | None:
    """field=optimizer: the checkpoint's saved optimizer as a step function and its state
    (:func:`lie_sweep.optim.from_state_dict`); None for other fields; one error line for a checkpoint
    without optimizer state or with one that does not fit the model."""
    if field_cfg.name != "optimizer":
        return None
    if optimizer_state is None:
        raise ConfigError("field=optimizer needs the optimizer's state", expected=f"optimizer state in {where}",
                          found="a checkpoint without optimizer state",
                          fix="save optimizer.state_dict() with each checkpoint, or use field=sgd")
    from lie_sweep.optim import from_state_dict

    return from_state_dict(optimizer_state, param_names)


def checkpoint_location(checkpoints: Any) -> str | list[str]:
    """Where a config's checkpoints are: ``dir`` (train), ``glob`` (a glob or directory) or ``paths`` (list)."""
    if checkpoints.source == "train":
        return str(checkpoints.dir)
    return str(checkpoints.glob) if checkpoints.source == "glob" else [str(p) for p in checkpoints.paths]


def relocate_checkpoints(provenance: list[dict[str, Any]], location: str | list[str]) -> list[dict[str, Any]]:
    """The sweep's checkpoints found at a new ``location`` by their paths relative to the old one, each
    verified by size and sha256 (one error line for a missing or different file)."""
    base = checkpoint_base(location)
    moved = []
    for prov in provenance:
        relpath = prov.get("relpath") or os.path.basename(prov["path"])
        record = {**prov, "path": str((base / relpath).resolve())}
        verify_checkpoint(record)
        moved.append(record)
    return moved


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


def _output_count(model: torch.nn.Module, data: Any) -> int:
    x, _ = data[0]
    with eval_mode(model), torch.no_grad():
        return int(model(x.unsqueeze(0)).reshape(1, -1).shape[1])


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


def _train_checkpoints(cfg: DictConfig, model: torch.nn.Module, data: Any, log: Callable[[str], None]) -> list[Path]:
    ck = cfg.checkpoints
    out = Path(ck.dir)
    log(f"training {type(model).__name__} for {ck.steps} steps (Adam lr={ck.lr}), "
        f"a checkpoint every {ck.save_every} -> {out}/")
    torch.manual_seed(cfg.seed)
    # exactly the files this training wrote: other files in the directory are not swept
    return train(model, data, steps=ck.steps, save_every=ck.save_every, out_dir=out, lr=ck.lr,
                 betas=tuple(ck.betas), batch_size=ck.batch_size, seed=cfg.seed)


@dataclass
class Grid:
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


def resolve_grid(cfg: DictConfig) -> Grid:
    """Build the dataset and model and resolve examples, pairs, the evaluation batch and kept tensors.

    Cheap and side-effect free (nothing trained or written): ``plan`` and ``run`` both start here.
    """
    data = build_dataset(cfg.data)
    examples, pairs = grid_pairs(cfg, len(data))
    evals = eval_indices(cfg.derived.eval_count, cfg.derived.eval_start, len(data))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    kept = kept_tensors(list(params), cfg.storage.keep)
    n_out = _output_count(model, data)
    attributes = list(getattr(data, "attribute_names", []) or [])
    outputs = attributes if len(attributes) == n_out else [f"output_{k}" for k in range(n_out)]
    return Grid(data=data, examples=examples, pairs=pairs, eval_examples=evals, model=model, params=params,
                kept_names=kept, attribute_names=attributes, output_names=outputs)


def grid_pairs(cfg: DictConfig, dataset_length: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The sweep's examples and its pairs in the canonical order of ``pairs.mode`` (see :mod:`jobs.grid`)."""
    ex, pc = cfg.examples, cfg.pairs
    examples = example_indices(ex.mode, count=ex.count, start=ex.start, indices=list(ex.indices),
                               dataset_length=dataset_length)
    explicit: list = [list(p) for p in pc.list]
    pool: list[int] = []
    n_probes = len(examples)
    if pc.mode == "cross":
        members = example_indices(pc.pool.mode, count=pc.pool.count, start=pc.pool.start,
                                  indices=list(pc.pool.indices), dataset_length=dataset_length, what="pairs.pool")
        probes = set(examples)
        examples = examples + [m for m in dict.fromkeys(members) if m not in probes]
        where = {e: k for k, e in enumerate(examples)}
        pool = [where[m] for m in dict.fromkeys(members)]
    elif pc.mode == "top":
        explicit = _top_of_store(cfg)
        examples = sorted({k for pair in explicit for k in pair})
        require_indices(examples, dataset_length, fix="the source store's examples must be in this dataset")
    seed = int(pc.seed if pc.seed is not None else cfg.seed)
    pairs = canonical_pairs(examples, pc.mode, explicit, block=pc.block, rounds=pc.rounds, group=pc.group,
                            seed=seed, n_probes=n_probes, pool=pool)
    if not pairs:
        raise ConfigError("the grid has no pairs", expected="at least one pair", found=f"pairs={pc.mode} over "
                          f"{len(examples)} examples", fix="add examples (examples.count, pairs.pool.count)")
    return examples, pairs


def _top_of_store(cfg: DictConfig) -> list[tuple[int, int]]:
    """``pairs.top.k`` pairs of the store ``pairs.top.store`` ranked by ``pairs.top.by`` (see :func:`top_pairs`)."""
    from storage.reader import open_sweep

    top = cfg.pairs.top
    frame = open_sweep(str(top.store), storage_options=dict(cfg.storage.options) or None).table("pairs")
    if frame.empty:
        raise ConfigError("the source store has no computed pairs", expected=f"completed tasks in {top.store}",
                          found="an empty pairs table", fix="finish that sweep first (lie-sweep resume)")
    return top_pairs({k: frame[k].to_numpy() for k in frame.columns}, int(top.k), str(top.by))


def prepare_sweep(cfg: DictConfig, log: Callable[[str], None] = print) -> SweepSpec:
    """Resolve a validated config into a :class:`SweepSpec` (trains the model if checkpoints=train).

    Refuses a store path the store would refuse (:func:`storage.location.check_creatable`: unsafe,
    holding the checkpoints, not a store, an existing store without overwrite) before anything is
    trained, and a checkpoint that does not fit the model or holds NaN/Inf before any store is created.
    """
    ck = cfg.checkpoints
    location = checkpoint_location(ck)
    found = None if ck.source == "train" else find_checkpoints(location)
    check_creatable(cfg.storage.path, overwrite=cfg.storage.overwrite, protect=[ck.dir] if found is None else found,
                    storage_options=dict(cfg.storage.options))
    grid = resolve_grid(cfg)
    if cfg.cluster.address is None:  # a local worker's memory is known here; a cluster's workers are not
        _check_local_fit(cfg, grid)
    model = grid.model
    paths = found if found is not None else _train_checkpoints(cfg, model, grid.data, log)
    base = checkpoint_base(location)
    checkpoints = []
    for k, path in enumerate(paths):
        ckpt = load_checkpoint(path, position=k)
        check_finite(ckpt)
        apply_checkpoint(model, ckpt)  # fails early, with one line, if it does not fit
        update_field(cfg.field, ckpt.optimizer_state, list(grid.params), str(path))  # refuses a misfit early
        optimizer_of(cfg.field, ckpt.optimizer_state, list(grid.params), str(path))
        checkpoints.append(ckpt.provenance(base))
    checkpoints.sort(key=lambda c: (c["step"], c["path"]))
    steps = [c["step"] for c in checkpoints]
    if len(set(steps)) != len(steps):
        dup = next(s for s in steps if steps.count(s) > 1)
        raise ConfigError("two checkpoints share a step", expected="one checkpoint per training step",
                          found=f"step {dup} twice", fix="name files by step or store a 'step' in each")
    config = typed(cfg)
    return SweepSpec(config=config, identity=identity_of(cfg), examples=grid.examples, pairs=grid.pairs,
                     checkpoints=checkpoints, param_spec=ParamSpec.from_tensors(grid.params).to_records(),
                     attribute_names=grid.attribute_names, store_path=str(cfg.storage.path),
                     storage_options=dict(config.storage.options), kept_names=grid.kept_names,
                     eval_examples=grid.eval_examples, output_names=grid.output_names,
                     epsilon=epsilon_of(cfg), checkpoint_base=str(base))


def _check_local_fit(cfg: DictConfig, grid: Grid) -> None:
    """Refuse, before anything is trained, a sweep whose task cannot fit a local worker (see :mod:`jobs.sizing`)."""
    from .sizing import check_fit
    from .worker import DTYPES, resolve_device

    spec = ParamSpec.from_tensors(grid.params)
    stored = spec.size if grid.kept_names is None else spec.subset(grid.kept_names)[0].size
    check_fit(cfg, grid, spec.size, stored, resolve_device(cfg.cluster.device), DTYPES[cfg.precision])


def epsilon_of(cfg: DictConfig) -> float:
    """ε of the logit deltas: ``derived.epsilon``, else the training learning rate ``checkpoints.lr``."""
    return float(cfg.derived.epsilon if cfg.derived.epsilon is not None else cfg.checkpoints.lr)
