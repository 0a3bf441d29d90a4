"""From a validated config to everything a sweep needs: data, examples, pairs, checkpoints, store.

``prepare_sweep`` runs on the driver: it instantiates the dataset and model, resolves examples and
pairs, trains or finds the checkpoints (checking each fits the model), and returns a
:class:`SweepSpec`, a picklable description that every worker rebuilds its state from.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import lie_sweep
from lie_sweep import ParamSpec, apply_checkpoint, find_checkpoints, load_checkpoint, train
from lie_sweep.checkpoints import file_sha256
from lie_sweep.errors import CheckpointError, CheckpointNotFoundError, ConfigError, LieSweepError, first_line
from storage.identity import identity_hash
from storage.layout import StoreLayout

from .config import identity_of
from .plan import canonical_pairs, example_indices

__all__ = ["SweepSpec", "prepare_sweep", "build_model", "build_dataset", "verify_checkpoint"]


@dataclass
class SweepSpec:
    """Everything that defines a sweep's work, in plain Python types (sent to every worker)."""

    config: dict[str, Any]
    identity: dict[str, Any]
    examples: list[int]
    pairs: list[tuple[int, int]]
    checkpoints: list[dict[str, Any]]        # provenance: path, step, size, sha256
    param_spec: list[dict[str, Any]]
    attribute_names: list[str]
    store_path: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def identity_hash(self) -> str:
        return identity_hash(self.identity)

    @property
    def pair_positions(self) -> list[tuple[int, int]]:
        """Pairs as positions into ``examples`` (what the kernel indexes)."""
        pos = {e: k for k, e in enumerate(self.examples)}
        return [(pos[i], pos[j]) for i, j in self.pairs]

    @property
    def n_params(self) -> int:
        return ParamSpec.from_records(self.param_spec).size

    def layout(self) -> StoreLayout:
        st = self.config["storage"]
        return StoreLayout(n_checkpoints=len(self.checkpoints), n_pairs=len(self.pairs),
                           n_examples=len(self.examples), n_params=self.n_params,
                           pairs_per_task=self.config["pairs"]["per_task"], inner_chunk=st["inner_chunk"])

    def store_meta(self, n_tasks: int) -> dict[str, Any]:
        config = {**self.config, "storage": {**self.config["storage"], "options": {}}}  # may hold credentials
        return {"package_version": lie_sweep.__version__, "config": config, "identity": self.identity,
                "identity_hash": self.identity_hash, "param_spec": self.param_spec,
                "checkpoints": self.checkpoints, "attribute_names": self.attribute_names, "n_tasks": n_tasks,
                "python": sys.version.split()[0], "torch": torch.__version__}


def verify_checkpoint(prov: dict[str, Any], sha256: str | None = None) -> None:
    """The checkpoint a sweep recorded (path, size, sha256) is still there, unchanged; else one error line.

    ``sha256``: the file's hash when the caller already has it (e.g. from ``load_checkpoint``).
    """
    path = Path(prov["path"])
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path} of this sweep is missing",
                                      expected=f"the file swept at step {prov['step']}", found="no such file",
                                      fix="restore it, or start a new sweep (resume --restart)")
    size = path.stat().st_size
    if size != prov["size"] or (sha256 or file_sha256(path)) != prov["sha256"]:
        raise CheckpointError(f"checkpoint {path} changed since the sweep started",
                              expected=f"sha256 {prov['sha256'][:16]}… ({prov['size']} bytes)",
                              found=f"different contents ({size} bytes)",
                              fix="restore the original file, or start a new sweep (resume --restart)")


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


def _checkpoint_paths(cfg: DictConfig, model: torch.nn.Module, data: Any, log: Callable[[str], None]) -> list[Path]:
    ck = cfg.checkpoints
    if ck.source == "train":
        out = Path(ck.dir)
        log(f"training {type(model).__name__} for {ck.steps} steps (Adam lr={ck.lr}), "
            f"a checkpoint every {ck.save_every} -> {out}/")
        torch.manual_seed(cfg.seed)
        # exactly the files this training wrote: other files in the directory are not swept
        return train(model, data, steps=ck.steps, save_every=ck.save_every, out_dir=out, lr=ck.lr,
                     betas=tuple(ck.betas), batch_size=ck.batch_size, seed=cfg.seed)
    return find_checkpoints(ck.glob if ck.source == "glob" else list(ck.paths))


def prepare_sweep(cfg: DictConfig, log: Callable[[str], None] = print) -> SweepSpec:
    """Resolve a validated config into a :class:`SweepSpec` (trains the model if checkpoints=train)."""
    data = build_dataset(cfg.data)
    examples = example_indices(cfg.examples.mode, count=cfg.examples.count, start=cfg.examples.start,
                               indices=list(cfg.examples.indices), dataset_length=len(data))
    pairs = canonical_pairs(examples, cfg.pairs.mode, [list(p) for p in cfg.pairs.list])
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    paths = _checkpoint_paths(cfg, model, data, log)
    checkpoints = []
    for k, path in enumerate(paths):
        ckpt = load_checkpoint(path, position=k)
        apply_checkpoint(model, ckpt)  # fails early, with one line, if it does not fit
        if cfg.field.name == "adam" and ckpt.optimizer_state is None:
            raise ConfigError("field=adam needs optimizer state", expected=f"Adam state in {path}",
                              found="a checkpoint without optimizer state", fix="use field=sgd or checkpoints with state")
        checkpoints.append(ckpt.provenance())
    checkpoints.sort(key=lambda c: (c["step"], c["path"]))
    steps = [c["step"] for c in checkpoints]
    if len(set(steps)) != len(steps):
        dup = next(s for s in steps if steps.count(s) > 1)
        raise ConfigError("two checkpoints share a step", expected="one checkpoint per training step",
                          found=f"step {dup} twice", fix="name files by step or store a 'step' in each")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    config = OmegaConf.to_container(cfg, resolve=True)
    return SweepSpec(config=config, identity=identity_of(cfg), examples=examples, pairs=pairs,
                     checkpoints=checkpoints, param_spec=ParamSpec.from_tensors(params).to_records(),
                     attribute_names=list(getattr(data, "attribute_names", []) or []),
                     store_path=str(cfg.storage.path), storage_options=dict(config["storage"]["options"]))

