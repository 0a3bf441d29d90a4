"""From a validated config to the immutable description of a sweep's work, :class:`SweepSpec`.

``prepare_sweep`` runs on the driver: it builds the grid (:mod:`jobs.planning.build`), trains or finds the
checkpoints (each loaded once through :mod:`jobs.planning.loader`, so one that does not fit the model, its
field or its optimizer is refused before any store exists), decides the HVP mode, and returns the spec that
every worker rebuilds its state from.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

import lie_sweep
from lie_sweep import ParamSpec, find_checkpoints, train
from lie_sweep.checkpoints import checkpoint_base
from lie_sweep.effects import EFFECTS, Effect, resolve_effects
from lie_sweep.errors import ConfigError
from lie_sweep.field_kinds import FIELDS, FieldKind
from lie_sweep.task_kinds import TASKS, TaskKind
from lie_sweep.tasks import Task
from lie_sweep.training import save_steps
from storage.identity import identity_hash
from storage.layout import StoreLayout, packed_rows
from storage.location import check_creatable
from storage.meta import StoreMeta
from storage.sketch import SketchSpec

from .build import epsilon_of, resolve_grid
from .checks import swap_epsilons, sweep_effects
from .config import as_dict, identity_of, typed
from .loader import load_into, verify_checkpoint
from .schema import SweepConfig
from .sizing import check_local_fit, resolve_task_size
from .user_code import code_dirs

__all__ = ["SweepSpec", "prepare_sweep", "relocate_checkpoints", "checkpoint_location"]


@dataclass(frozen=True)
class SweepSpec:
    """Everything that defines a sweep's work, in plain Python types (sent to every worker). Immutable: every
    choice is resolved when it is built (:func:`prepare_sweep`, or :meth:`from_store_meta` on resume), the
    HVP mode included, so ``config.hvp`` may say ``auto`` while ``hvp_mode`` holds what was chosen."""

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
    # the update field's registry entry, resolved on the driver and sent along: a worker builds the field from
    # it even where the registering module was never imported (a plug-in or a test's own field)
    field_kind: FieldKind | None = None
    # the task's registry entry, resolved on the driver and sent along like the field's
    task_kind: TaskKind | None = None
    swap_epsilons: tuple[float, ...] = ()     # effect swap: its step sizes (the first is the tables')
    batches: list[list[int]] | None = None    # pairs.unit=batch: each item's dataset indices (examples are items)
    code_dirs: tuple[str, ...] = ()           # folders of the user's own modules, appended to a worker's sys.path
    # the sweep's effects, resolved once on the driver (registry entries carried along, like the field's)
    effect_kinds: tuple[Effect, ...] = ()

    def __post_init__(self) -> None:
        if self.field_kind is None:
            object.__setattr__(self, "field_kind", FIELDS[self.config.field.name])
        if self.task_kind is None:
            object.__setattr__(self, "task_kind", TASKS[self.config.task.name])
        if not self.effect_kinds:
            names = resolve_effects(self.config.effects, self.field_kind.steps_optimizer)
            object.__setattr__(self, "effect_kinds", tuple(EFFECTS[name] for name in names))

    @property
    def task(self) -> Task:
        """The sweep's task (:mod:`lie_sweep.tasks`): its loss, how items and outputs are read, its measurement."""
        return self.task_kind.make()

    @property
    def effects(self) -> tuple[str, ...]:
        """What is computed per pair (:func:`lie_sweep.effects.resolve_effects` of ``config.effects``, once)."""
        return tuple(e.name for e in self.effect_kinds)

    def swap_attrs(self) -> dict[str, Any]:
        """What the swap arrays record of how they were computed: enough to redo a swap."""
        if not self.swap_epsilons:
            return {}
        rule = "optimizer" if self.field_kind.steps_optimizer else f"field {self.field_kind.name}"
        return {"epsilon": list(self.swap_epsilons), "rule": rule,
                "follow_steps": int(self.config.field.follow_steps) if self.field_kind.steps_optimizer else 0,
                "definition": "theta_ij - theta_ji: two steps of the rule from the checkpoint, i then j minus j then i "
                              "(lie_sweep.swap)"}

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
                           keeps_order="order" in self.effects, swap_epsilons=self.swap_epsilons,
                           keeps_brackets="bracket" in self.effects,
                           effect_arrays=tuple(a for e in self.effect_kinds for a in e.arrays),
                           sketch_k=int(st.sketch or 0), sketch_s=int(st.sketch_nonzeros),
                           sketch_seed=int(st.sketch_seed),
                           inner_rows=packed_rows(self.stored_spec()[0].size, st.inner_chunk))

    def sketch_spec(self) -> SketchSpec | None:
        """The sketch S of every parameter-sized result (storage.sketch; None: off), over all D parameters."""
        st = self.config.storage
        return None if not st.sketch else SketchSpec(int(st.sketch), d=self.n_params, s=int(st.sketch_nonzeros),
                                                     seed=int(st.sketch_seed))

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
                "hvp_mode": self.hvp_mode, **({"batches": self.batches} if self.batches is not None else {})}

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
                   hvp_mode=meta.hvp_mode if config.hvp == "auto" else config.hvp,
                   swap_epsilons=tuple(meta.layout.get("swap_epsilons", ())), batches=meta.batches,
                   code_dirs=tuple(code_dirs(config.cluster.code_dirs)))


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


def _train_checkpoints(cfg: DictConfig, model: torch.nn.Module, data: Any, task: Task,
                       log: Callable[[str], None]) -> list[Path]:
    ck = cfg.checkpoints
    out = Path(ck.dir)
    name = {"adam": "Adam", "adamw": "AdamW"}[ck.optimizer]
    log(f"training {type(model).__name__} for {ck.steps} steps ({name} lr={ck.lr}"
        + (f", weight decay {ck.weight_decay}" if ck.weight_decay else "")
        + f", task {task.name}), a checkpoint every {ck.save_every} -> {out}/")
    torch.manual_seed(cfg.seed)
    # exactly the files this training wrote: other files in the directory are not swept
    return train(model, data, steps=ck.steps, save_every=ck.save_every, out_dir=out, lr=ck.lr,
                 betas=tuple(ck.betas), batch_size=ck.batch_size, seed=cfg.seed, task=task, optimizer=ck.optimizer,
                 weight_decay=ck.weight_decay)


def prepare_sweep(cfg: DictConfig, log: Callable[[str], None] = print) -> SweepSpec:
    """Resolve a validated config into a :class:`SweepSpec` (trains the model if checkpoints=train).

    Refuses a store path the store would refuse (:func:`storage.location.check_creatable`: unsafe,
    holding the checkpoints, not a store, an existing store without overwrite) before anything is
    trained, and a checkpoint that does not fit the model, its field or its optimizer, or holds NaN/Inf,
    before any store is created. ``hvp=auto`` is decided here (:mod:`jobs.planning.hvp_choice`).
    """
    ck = cfg.checkpoints
    location = checkpoint_location(ck)
    found = None if ck.source == "train" else find_checkpoints(location)
    check_creatable(cfg.storage.path, overwrite=cfg.storage.overwrite, protect=[ck.dir] if found is None else found,
                    storage_options=dict(cfg.storage.options))
    grid = resolve_grid(cfg)
    n_checkpoints = len(found) if found is not None else len(save_steps(ck.steps, ck.save_every))
    cfg = resolve_task_size(cfg, grid, n_checkpoints)
    if cfg.cluster.address is None:  # a local worker's memory is known here; a cluster's workers are not
        check_local_fit(cfg, grid)
    model = grid.model
    paths = found if found is not None else _train_checkpoints(cfg, model, grid.data, grid.task, log)
    base = checkpoint_base(location)
    checkpoints, rates, sources = [], set(), []
    for k, path in enumerate(paths):  # each loaded as a worker will: a misfit fails here, in one line
        loaded = load_into(model, path, cfg.field, position=k, task=grid.task)
        sources.append((loaded.checkpoint.step_source, str(path)))
        checkpoints.append(loaded.checkpoint.provenance(base))
        if loaded.optimizer is not None:
            rates.add(loaded.optimizer[0].learning_rate())
    unnumbered = [p for source, p in sources if source == "order"]
    if len(unnumbered) > 1:
        raise ConfigError("the checkpoints' order is ambiguous", expected="a step in each checkpoint (a 'step' or "
                          "'global_step' entry, trainer_state.json) or in its name (step_000100.pt, checkpoint-100/)",
                          found=f"{len(unnumbered)} without one: "
                                f"{', '.join(os.path.basename(p) for p in unnumbered[:3])}",
                          fix="name the files by their training step, or list one checkpoint per sweep")
    checkpoints.sort(key=lambda c: (c["step"], c["path"]))
    steps = [c["step"] for c in checkpoints]
    if len(set(steps)) != len(steps):
        dup = next(s for s in steps if steps.count(s) > 1)
        raise ConfigError("two checkpoints share a step", expected="one checkpoint per training step",
                          found=f"step {dup} twice", fix="name files by step or store a 'step' in each")
    config = typed(cfg)
    spec = SweepSpec(config=config, identity=identity_of(cfg), examples=grid.examples, pairs=grid.pairs,
                     checkpoints=checkpoints, param_spec=ParamSpec.from_tensors(grid.params).to_records(),
                     attribute_names=grid.attribute_names, store_path=str(cfg.storage.path),
                     storage_options=dict(config.storage.options), kept_names=grid.kept_names,
                     eval_examples=grid.eval_examples, output_names=grid.output_names,
                     epsilon=epsilon_of(cfg), checkpoint_base=str(base), hvp_mode=str(config.hvp),
                     swap_epsilons=_swap_epsilons(cfg, rates), batches=grid.batches,
                     code_dirs=tuple(code_dirs(cfg.cluster.code_dirs)))
    if config.hvp == "auto" and "bracket" in spec.effects:  # no HVP to choose for a sweep without the bracket
        from .hvp_choice import choose_hvp_mode

        chosen = choose_hvp_mode(config, checkpoints[0]["path"], spec.examples, spec.pair_positions, log,
                                 batches=spec.batches)
        spec = dataclasses.replace(spec, hvp_mode=chosen)
    return spec


def _swap_epsilons(cfg: DictConfig, rates: set[float]) -> tuple[float, ...]:
    """The swap's step sizes: ``swap_epsilon``, or by default the checkpoints' saved optimizer learning rate
    (``field=optimizer``; one error line when they differ) or ``derived.epsilon`` (the others); () without
    the swap effect."""
    if "swap" not in sweep_effects(cfg):
        return ()
    given = swap_epsilons(cfg.swap_epsilon)
    if given:
        return tuple(given)
    if not rates:
        return (epsilon_of(cfg),)
    if len(rates) > 1:
        raise ConfigError("the checkpoints' optimizers were saved with different learning rates",
                          expected="one learning rate for the swaps' step", found=", ".join(map(str, sorted(rates))),
                          fix="set swap_epsilon=LR (or a list of step sizes)")
    return (rates.pop(),)
