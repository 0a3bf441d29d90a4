"""Checkpoints: model state dicts (plus optimizer state and step) from ``.pt`` or ``.safetensors``.

Accepted files:

* ``.pt``/``.pth``: a plain state dict, or a nested dict ``{"model": state, "optimizer": state,
  "step": int}`` (``"state_dict"``/``"model_state_dict"`` are accepted for ``"model"``). Read with
  ``torch.load(weights_only=True)``: no pickled code is ever executed.
* ``.safetensors``: a plain state dict, or lie-sweep's nested layout (metadata
  ``lie_sweep_layout=nested``) with tensors ``model/<name>`` and ``optimizer/<param>/<key>``, the
  optimizer's ``param_groups`` and non-tensor state as JSON metadata, and ``step`` in metadata.

The training step comes from the file (``step``) or else from the last number in the file name
(``step_000100.pt`` → 100); files with neither are numbered by their position in the list.

Just over 300 lines: reading both formats, checking a file (finite, complete, not a pickle of
code) and saving it are one concern, the checkpoint file.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

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
]

_SUFFIXES = (".pt", ".pth", ".safetensors")
_MODEL_KEYS = ("model", "state_dict", "model_state_dict")
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


def find_checkpoints(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Checkpoint files named by a glob, a directory (its .pt/.pth/.safetensors files), or a list of paths.

    A list keeps its order; a glob or directory is sorted by file name. Nothing matched is an error.
    """
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
            where = f"directory {path}"
        elif globlib.has_magic(text):
            found = sorted(Path(p) for p in globlib.glob(os.path.expanduser(text), recursive=True) if Path(p).is_file())
            where = f"glob {text!r}"
        else:
            found = [path] if path.is_file() else []
            where = f"path {path}"
        if not found:
            raise CheckpointNotFoundError("no checkpoint found", expected="a .pt, .pth or .safetensors file",
                                          found=f"nothing at {where}", fix="check the checkpoint path or glob")
        return found
    paths = [Path(p).expanduser() for p in spec]
    if not paths:
        raise CheckpointNotFoundError("no checkpoint given", expected="at least one checkpoint path",
                                      found="an empty list", fix="list checkpoint files or give a glob")
    for p in paths:
        if not p.is_file():
            raise CheckpointNotFoundError("checkpoint missing", expected=f"a file at {p}", found="no such file",
                                          fix="check the path, or re-create the checkpoint")
    return paths


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
    numbers = re.findall(r"\d+", path.stem)
    return checked_step(int(numbers[-1]), path, "the last number in its name") if numbers else None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _load_pt(path: Path) -> tuple[dict, dict | None, int | None]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's text is a long paragraph about weights_only
        refused = re.findall(r"GLOBAL\s+([\w.]+)", str(exc))
        if refused or "weights_only" in str(exc) and "Unsupported" in str(exc):
            raise CheckpointError(f"checkpoint {path} is not a plain weights file: refused (weights_only=True)",
                                  expected="tensors and plain containers (torch.save of a state dict)",
                                  found=f"pickled {refused[0]}" if refused else "a pickle stream whose opcodes "
                                        "weights_only refuses (objects saved by an old torch.save, or damage)",
                                  fix="save model.state_dict() (and optimizer.state_dict()) only; lie-sweep never "
                                      "unpickles code") from None
        raise _corrupt(path, exc) from None
    except Exception as exc:  # truncated zip archives, empty files, I/O errors
        raise _corrupt(path, exc) from None
    if _is_state_dict(obj):
        return dict(obj), None, None
    if isinstance(obj, Mapping):
        for key in _MODEL_KEYS:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key]), obj.get("optimizer"), checked_step(obj.get("step"), path)
    keys = list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(f"cannot read checkpoint {path}",
                          expected="a state dict or {'model': state dict, 'optimizer': ..., 'step': ...}",
                          found=f"{keys}", fix="save model.state_dict() (optionally nested under 'model')")


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    size = path.stat().st_size if path.exists() else 0
    # torch's own first sentence names what is broken ("failed finding central directory"); an OSError's
    # errno text ("Invalid argument", from reading past a cut-off end) says nothing more than "truncated"
    detail = "" if isinstance(exc, OSError) else f" ({first_line(exc, 80).split('. ')[0]})"
    return CheckpointError(f"checkpoint {path} is truncated or corrupt", expected="a complete checkpoint file",
                           found=f"{size} bytes that do not load{detail}",
                           fix="copy or save the checkpoint again (an interrupted copy or save leaves such a file)")


def _load_safetensors(path: Path) -> tuple[dict, dict | None, int | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt", expected="a valid safetensors file",
                              found=first_line(exc, 120),
                              fix="copy it again, or re-save it with safetensors.torch.save_file") from None
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
    if not path.is_file():
        raise CheckpointNotFoundError("checkpoint missing", expected=f"a file at {path}", found="no such file",
                                      fix="check the path, or re-create the checkpoint")
    if path.suffix not in _SUFFIXES:
        raise CheckpointError(f"unknown checkpoint format {path.name}", expected="a .pt, .pth or .safetensors file",
                              found=f"suffix {path.suffix!r}", fix="rename or convert the checkpoint")
    loader = _load_safetensors if path.suffix == ".safetensors" else _load_pt
    model, optimizer, step = loader(path)
    source = "file"
    if step is None:
        step, source = _step_from_name(path), "name"
    if step is None:
        step, source = position, "order"
    return Checkpoint(path=path, step=step, model_state=model, optimizer_state=optimizer,
                      step_source=source, size=path.stat().st_size, sha256=file_sha256(path))


def load_checkpoints(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Checkpoint]:
    """All checkpoints named by ``spec`` (see :func:`find_checkpoints`), sorted by (step, path)."""
    ckpts = [load_checkpoint(p, position=k) for k, p in enumerate(find_checkpoints(spec))]
    return sorted(ckpts, key=lambda c: (c.step, str(c.path)))


def apply_checkpoint(model: torch.nn.Module, checkpoint: Checkpoint | Mapping[str, torch.Tensor]) -> None:
    """Load a checkpoint's state into ``model`` strictly; a misfit is one :class:`CheckpointMismatchError` line."""
    state = checkpoint.model_state if isinstance(checkpoint, Checkpoint) else dict(checkpoint)
    where = f" {checkpoint.path}" if isinstance(checkpoint, Checkpoint) else ""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
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
