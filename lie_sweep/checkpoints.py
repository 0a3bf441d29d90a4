"""Checkpoints as people save them: model state dicts (plus optimizer state and step), never unpickling code.

Accepted (the layouts in detail: :mod:`lie_sweep.checkpoint_formats`):

* ``.pt``/``.pth``/``.ckpt``: a plain state dict, a nested dict ``{"model": state, "optimizer": state,
  "step": int}`` (and the PyTorch tutorial's ``model_state_dict``/``optimizer_state_dict``), or a Lightning
  checkpoint (``state_dict`` with its module prefix, ``optimizer_states``, ``global_step``). Read with
  ``torch.load(weights_only=True)``.
* ``.safetensors``: a plain state dict, or lie-sweep's nested layout (metadata
  ``lie_sweep_layout=nested``) with tensors ``model/<name>`` and ``optimizer/<param>/<key>``, the
  optimizer's ``param_groups`` and non-tensor state as JSON metadata, and ``step`` in metadata.
* a Hugging Face Trainer directory (``checkpoint-N/``) or a ``save_pretrained`` directory.

The training step comes from the file (``step``, ``global_step``, ``trainer_state.json``) or else from the
last number in the file's (or directory's) name (``step_000100.pt`` → 100, ``checkpoint-5/`` → 5); files with
neither are numbered by their position in the list (a sweep refuses two of them: their order is ambiguous).
A model prefix the checkpoint's keys carry and tied weights a save left out are handled where the state is
loaded into a model (:func:`align_state`); the optimizer state is matched to parameters by name or by checked
shapes (:mod:`lie_sweep.optim_names`).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .checkpoint_formats import (FILE_SUFFIXES, checkpoint_dir_of, defining_files, is_checkpoint_dir, read_directory,
                                 read_safetensors, read_torch)
from .errors import CheckpointError, CheckpointMismatchError, CheckpointNotFoundError, NonFiniteError, first_line

__all__ = [
    "Checkpoint",
    "find_checkpoints",
    "load_checkpoint",
    "load_checkpoints",
    "apply_checkpoint",
    "save_checkpoint",
    "file_sha256",
    "check_finite",
    "checkpoint_base",
    "checkpoint_digest",
    "align_state",
]

_SUFFIXES = FILE_SUFFIXES
_LAYOUT_KEY = "lie_sweep_layout"


@dataclass
class Checkpoint:
    """One checkpoint: the model's state dict, the optimizer's (or None), the step and provenance."""

    path: Path
    step: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    step_source: str = "file"          # "file", "name" or "order"
    size: int = 0
    sha256: str = ""

    def provenance(self, base: str | os.PathLike | None = None) -> dict[str, Any]:
        """JSON-ready {path, step, size, sha256}, plus ``relpath`` relative to ``base`` (the configured
        checkpoint location) when given, so that a moved checkpoint directory can still be matched."""
        record = {"path": str(self.path.resolve()), "step": self.step, "size": self.size, "sha256": self.sha256}
        if base is not None:
            record["relpath"] = os.path.relpath(self.path.resolve(), Path(base).expanduser().resolve())
        return record


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_digest(path: str | Path) -> tuple[int, str]:
    """(size, SHA-256) of what defines a checkpoint: a file's bytes; for a directory, the total size and the
    SHA-256 of ``name:sha256`` lines of its defining files (:func:`~lie_sweep.checkpoint_formats.defining_files`)."""
    path = Path(path)
    if not path.is_dir():
        return path.stat().st_size, file_sha256(path)
    files = defining_files(path)
    lines = "".join(f"{f.relative_to(path)}:{file_sha256(f)}\n" for f in files)
    return sum(f.stat().st_size for f in files), hashlib.sha256(lines.encode()).hexdigest()


def find_checkpoints(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Checkpoint files named by a glob, a directory (its .pt/.pth/.safetensors files), or a list of paths.

    A list keeps its order; a glob or directory is sorted by file name. Nothing matched is an error.
    """
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if is_checkpoint_dir(path):
            found, where = [path], f"directory {path}"
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if _is_checkpoint(p))
            where = f"directory {path}"
        elif globlib.has_magic(text):
            found = sorted(Path(p) for p in globlib.glob(os.path.expanduser(text), recursive=True)
                           if _is_checkpoint(Path(p)))
            where = f"glob {text!r}"
        else:
            found = [path] if path.is_file() else []
            where = f"path {path}"
        if not found:
            raise CheckpointNotFoundError("no checkpoint found", expected="a .pt, .pth, .ckpt or .safetensors file, "
                                          "or a Hugging Face checkpoint directory", found=f"nothing at {where}",
                                          fix="check the checkpoint path or glob")
        return _resolved(found)
    paths = [Path(p).expanduser() for p in spec]
    if not paths:
        raise CheckpointNotFoundError("no checkpoint given", expected="at least one checkpoint path",
                                      found="an empty list", fix="list checkpoint files or give a glob")
    for p in paths:
        if not (p.is_file() or is_checkpoint_dir(p)):
            raise CheckpointNotFoundError("checkpoint missing", expected=f"a file at {p}", found="no such file",
                                          fix="check the path, or re-create the checkpoint")
    return _resolved(paths)


def _is_checkpoint(path: Path) -> bool:
    return (path.is_file() and path.suffix in _SUFFIXES) or is_checkpoint_dir(path)


def _resolved(paths: Sequence[Path]) -> list[Path]:
    """Each path followed once, here (a symlink's target, a Trainer directory's weights file as the directory), so
    that every later reader loads the same file; duplicates dropped, order kept."""
    out: list[Path] = []
    for p in paths:
        real = p.resolve()
        real = checkpoint_dir_of(real) or real
        if real not in out:
            out.append(real)
    return out


def checkpoint_base(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> Path:
    """The directory a checkpoint location is relative to: a directory itself, a glob's longest
    directory prefix without wildcards, or the common parent of a list of files."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.path.expanduser(os.fspath(spec))
        if os.path.isdir(text):
            return Path(text).resolve()
        parts = Path(text).parts
        fixed = [p for p in parts[:next((k for k, p in enumerate(parts) if globlib.has_magic(p)), len(parts))]]
        base = Path(*fixed) if fixed else Path(".")
        return (base if globlib.has_magic(text) or base.is_dir() else base.parent).resolve()
    parents = [str(Path(p).expanduser().resolve().parent) for p in spec]
    return Path(os.path.commonpath(parents)) if parents else Path(".").resolve()


def check_finite(checkpoint: "Checkpoint") -> None:
    """Every floating tensor of the checkpoint (model and optimizer state) is finite; else one
    :class:`NonFiniteError` line naming the file and the first tensor holding NaN or Inf."""
    tensors: list[tuple[str, Any]] = list(checkpoint.model_state.items())
    for idx, values in ((checkpoint.optimizer_state or {}).get("state") or {}).items():
        tensors += [(f"optimizer state[{idx}].{key}", v) for key, v in values.items()]
    for name, value in tensors:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise NonFiniteError(f"checkpoint {checkpoint.path} holds NaN/Inf", expected="finite weights",
                                     found=f"{bad} non-finite value(s) of {value.numel()} in {name}",
                                     fix="sweep a checkpoint from before training diverged, or repair the file")


MAX_STEP = 2**63 - 1  # a store keeps steps as int64


def checked_step(value: Any, path: Path, where: str = "its 'step'") -> int | None:
    """A checkpoint's recorded training step as an int in [0, 2^63); None when it records none; one
    :class:`CheckpointError` line for anything else (a string that is not a whole number, NaN, a list, 10**30)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = int(value.item())
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    elif hasattr(value, "__index__") and not isinstance(value, (bool, torch.Tensor)):
        value = int(value.__index__())  # ints, numpy integers
    elif isinstance(value, float) and value.is_integer() and abs(value) <= MAX_STEP:
        value = int(value)  # 100.0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STEP:
        return value
    raise CheckpointError(f"checkpoint {path} records a step lie-sweep cannot use",
                          expected=f"{where}: a whole number in 0..{MAX_STEP}",
                          found=f"{first_line(repr(value), 60)} ({type(value).__name__})",
                          fix="save the training step as an int (or leave it out: the step then comes from the "
                              "file name)")


def _step_from_name(path: Path) -> int | None:
    """The last number in the file's stem, else in its directory's name (``checkpoint-5/model.safetensors``)."""
    for name in (path.stem if path.is_file() else path.name, path.parent.name if path.is_file() else ""):
        numbers = re.findall(r"\d+", name)
        if numbers:
            return checked_step(int(numbers[-1]), path, "the last number in its name")
    return None


def _load_safetensors(path: Path) -> tuple[dict, dict | None, int | None]:
    tensors, meta = read_safetensors(path)
    step = checked_step(meta.get("step"), path, "its metadata's 'step'")
    if meta.get(_LAYOUT_KEY) != "nested":
        return tensors, None, step
    try:
        model, optimizer = _nested_safetensors(tensors, meta)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} has malformed lie-sweep metadata", expected="the nested layout "
                              "save_checkpoint writes (model/NAME, optimizer/INDEX/KEY, JSON param_groups and "
                              "scalars)", found=f"{type(exc).__name__}: {first_line(exc, 100)}",
                              fix="save it again with lie_sweep.save_checkpoint, or as a plain state dict") from None
    return model, optimizer, step


def _nested_safetensors(tensors: dict[str, torch.Tensor], meta: Mapping[str, str]) -> tuple[dict, dict | None]:
    """The model and optimizer state of lie-sweep's nested safetensors layout (see the module docstring)."""
    model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    optimizer = None
    if "optimizer.param_groups" in meta:
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith("optimizer/"):
                _, idx, key = k.split("/", 2)
                state.setdefault(int(idx), {})[key] = v
        for idx, values in json.loads(meta.get("optimizer.scalars", "{}")).items():
            state.setdefault(int(idx), {}).update(values)
        groups = json.loads(meta["optimizer.param_groups"])
        for group in groups:  # JSON has no tuples; torch optimizers keep betas as one
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        optimizer = {"state": state, "param_groups": groups}
    return model, optimizer


def load_checkpoint(path: str | os.PathLike, *, position: int = 0) -> Checkpoint:
    """Read one checkpoint file (see the module docstring for the accepted layouts)."""
    path = Path(path).expanduser()
    if is_checkpoint_dir(path):
        model, optimizer, raw = read_directory(path)
        model, optimizer, step = model, optimizer, checked_step(raw, path, "its trainer_state.json's global_step")
    else:
        if not path.is_file():
            raise CheckpointNotFoundError("checkpoint missing", expected=f"a file at {path}", found="no such file",
                                          fix="check the path, or re-create the checkpoint")
        if path.suffix not in _SUFFIXES:
            raise CheckpointError(f"unknown checkpoint format {path.name}", expected="a .pt, .pth, .ckpt or "
                                  ".safetensors file, or a Hugging Face checkpoint directory",
                                  found=f"suffix {path.suffix!r}", fix="rename or convert the checkpoint")
        if path.suffix == ".safetensors":
            model, optimizer, step = _load_safetensors(path)
        else:
            model, optimizer, raw = read_torch(path)
            step = checked_step(raw, path)
    source = "file"
    if step is None:
        step, source = _step_from_name(path), "name"
    if step is None:
        step, source = position, "order"
    size, sha256 = checkpoint_digest(path)
    return Checkpoint(path=path, step=step, model_state=model, optimizer_state=optimizer,
                      step_source=source, size=size, sha256=sha256)


def load_checkpoints(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Checkpoint]:
    """All checkpoints named by ``spec`` (see :func:`find_checkpoints`), sorted by (step, path)."""
    ckpts = [load_checkpoint(p, position=k) for k, p in enumerate(find_checkpoints(spec))]
    return sorted(ckpts, key=lambda c: (c.step, str(c.path)))


def _tied_keys(model: torch.nn.Module) -> dict[str, list[str]]:
    """{state key: the other keys whose tensors share its memory} (tied weights, e.g. GPT-2's lm_head/wte)."""
    by_memory: dict[tuple, list[str]] = {}
    for key, t in model.state_dict(keep_vars=True).items():
        if t.numel():
            by_memory.setdefault((t.data_ptr(), t.dtype, tuple(t.shape), t.stride()), []).append(key)
    return {k: [o for o in keys if o != k] for keys in by_memory.values() if len(keys) > 1 for k in keys}


def align_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """(``state`` with ``model``'s keys, the module prefix removed from its keys): where the keys carry a prefix
    the model's lack (a Lightning module's ``model.``, DDP's ``module.``, ``torch.compile``'s ``_orig_mod.``) it is
    removed and keys outside it (the wrapper's own) are dropped; a tied weight the save left out (GPT-2's
    ``lm_head.weight``) is taken from the tensor it shares."""
    expected = list(model.state_dict())
    state, prefix = dict(state), ""
    if not set(expected) <= set(state):
        candidates = {k[:i + 1] for k in state for i, ch in enumerate(k) if ch == "."}
        best = max(candidates, key=lambda p: (sum(p + k in state for k in expected), -len(p)), default="")
        if best and sum(best + k in state for k in expected) > sum(k in state for k in expected):
            prefix = best
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    for key, others in _tied_keys(model).items():
        if key not in state:
            source = next((o for o in others if o in state), None)
            if source is not None:
                state[key] = state[source]
    return state, prefix


def apply_checkpoint(model: torch.nn.Module, checkpoint: Checkpoint | Mapping[str, torch.Tensor]) -> str:
    """Load a checkpoint's state into ``model`` strictly, after :func:`align_state`; returns the module prefix
    removed ("" for none). A misfit is one :class:`CheckpointMismatchError` line naming the first keys that
    differ (and the tied weight, where one is missing with the tensor it shares)."""
    raw = checkpoint.model_state if isinstance(checkpoint, Checkpoint) else dict(checkpoint)
    where = f" {checkpoint.path}" if isinstance(checkpoint, Checkpoint) else ""
    state, prefix = align_state(model, raw)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        tied = _tied_keys(model)
        parts = []
        if missing:
            note = next((f" ({k} is tied to {tied[k][0]}, missing too)" for k in missing if k in tied), "")
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}{note}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        raise CheckpointMismatchError(f"checkpoint{where} does not fit the model",
                                      expected=f"the {len(expected)} tensors of {type(model).__name__}",
                                      found=", ".join(parts),
                                      fix="use the model config the checkpoint was trained with")
    for k, t in expected.items():
        if tuple(state[k].shape) != tuple(t.shape):
            raise CheckpointMismatchError(f"checkpoint{where} does not fit the model",
                                          expected=f"{k} of shape {tuple(t.shape)}",
                                          found=f"shape {tuple(state[k].shape)}",
                                          fix="use the model config the checkpoint was trained with")
    model.load_state_dict(state, strict=True)
    return prefix


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, step: int | None = None) -> Path:
    """Write ``{"model", "optimizer", "step"}`` as ``.pt`` or lie-sweep's nested ``.safetensors`` layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict() if optimizer is not None else None
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        tensors = {f"model/{k}": v for k, v in model_state.items()}
        meta = {_LAYOUT_KEY: "nested"}
        if step is not None:
            meta["step"] = str(int(step))
        if opt_state is not None:
            scalars: dict[str, dict[str, Any]] = {}
            for idx, values in opt_state["state"].items():
                for key, v in values.items():
                    if isinstance(v, torch.Tensor):
                        tensors[f"optimizer/{idx}/{key}"] = v.detach().cpu().contiguous()
                    else:
                        scalars.setdefault(str(idx), {})[key] = v
            meta["optimizer.param_groups"] = json.dumps(opt_state["param_groups"])
            meta["optimizer.scalars"] = json.dumps(scalars)
        save_file(tensors, str(tmp), metadata=meta)
    elif path.suffix in (".pt", ".pth"):
        torch.save({"model": model_state, "optimizer": opt_state, "step": step}, tmp)
    else:
        raise CheckpointError(f"unknown checkpoint format {path.name}", expected="a .pt, .pth or .safetensors path",
                              found=f"suffix {path.suffix!r}", fix="name the file *.pt or *.safetensors")
    os.replace(tmp, path)  # never leave a half-written checkpoint under the final name
    return path
