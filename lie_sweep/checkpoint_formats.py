"""The checkpoint layouts people save, each read without unpickling code: → (model state, optimizer state or
None, step or None).

* ``.pt`` / ``.pth`` / ``.ckpt`` (``torch.load(weights_only=True)``): a plain state dict; a dict holding the
  model under ``model``, ``state_dict``, ``model_state_dict`` or ``module``, the optimizer under ``optimizer``,
  ``optimizer_state_dict`` or ``optim`` (or Lightning's ``optimizer_states``, a list: its first), the step under
  ``step`` or ``global_step`` (Lightning). A module prefix (Lightning's ``model.``, DDP's ``module.``) is
  removed where the model is loaded (:func:`lie_sweep.checkpoints.align_state`).
* ``.safetensors``: a plain state dict, or lie-sweep's nested layout (see :mod:`lie_sweep.checkpoints`).
* a directory, as the Hugging Face Trainer (``checkpoint-N/``) and ``save_pretrained`` write it:
  ``model.safetensors``, or its sharded index ``model.safetensors.index.json``, or ``pytorch_model.bin``; the
  Trainer's ``optimizer.pt``; the step from ``trainer_state.json``'s ``global_step`` (else from the name).
  Tied weights a save leaves out (GPT-2's ``lm_head.weight``) are restored from the tensor they share.

:func:`defining_files` lists what a checkpoint's provenance hashes: the file itself, or a directory's weight,
optimizer and trainer-state files.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import CheckpointError, first_line

__all__ = ["FILE_SUFFIXES", "is_checkpoint_dir", "checkpoint_dir_of", "defining_files", "read_torch",
           "read_safetensors", "read_directory", "MODEL_KEYS"]

FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
MODEL_KEYS = ("model", "state_dict", "model_state_dict", "module")
OPTIMIZER_KEYS = ("optimizer", "optimizer_state_dict", "optim", "optimizer_states")
STEP_KEYS = ("step", "global_step")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_DIR_EXTRAS = ("optimizer.pt", "trainer_state.json")


def is_checkpoint_dir(path: Path) -> bool:
    """Whether ``path`` is a directory holding a Hugging Face model's weights."""
    return path.is_dir() and any((path / name).is_file() for name in _WEIGHTS)


def checkpoint_dir_of(path: Path) -> Path | None:
    """The Hugging Face checkpoint directory a weights file belongs to (``checkpoint-N/model.safetensors`` →
    ``checkpoint-N``, so that its optimizer and step come along), or None."""
    if path.name in _WEIGHTS and ((path.parent / "trainer_state.json").is_file()
                                  or (path.parent / "config.json").is_file()):
        return path.parent
    return None


def defining_files(path: Path) -> list[Path]:
    """The files that define a checkpoint: itself, or a directory's weights (every shard), optimizer state and
    trainer state, sorted by name."""
    if not path.is_dir():
        return [path]
    files = [path / n for n in (*_WEIGHTS, *_DIR_EXTRAS) if (path / n).is_file()]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        files += [path / shard for shard in sorted(set(_index(index).values()))]
    return sorted(set(files))


def _index(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        assert isinstance(weight_map, dict)
        return {str(k): str(v) for k, v in weight_map.items()}
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise CheckpointError(f"checkpoint index {index} is malformed", expected="a safetensors index with a "
                              "weight_map", found=first_line(exc, 100), fix="save the model again") from None


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    size = path.stat().st_size if path.exists() else 0
    # torch's own first sentence names what is broken ("failed finding central directory"); an OSError's
    # errno text ("Invalid argument", from reading past a cut-off end) says nothing more than "truncated"
    detail = "" if isinstance(exc, OSError) else f" ({first_line(exc, 80).split('. ')[0]})"
    return CheckpointError(f"checkpoint {path} is truncated or corrupt", expected="a complete checkpoint file",
                           found=f"{size} bytes that do not load{detail}",
                           fix="copy or save the checkpoint again (an interrupted copy or save leaves such a file)")


def torch_load(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``, with one error line for pickled code or a damaged file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
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


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _optimizer_of(obj: Mapping) -> Any:
    for key in OPTIMIZER_KEYS:
        value = obj.get(key)
        if key == "optimizer_states" and isinstance(value, (list, tuple)):
            value = value[0] if len(value) == 1 else (list(value) or None)
        if value is not None:
            return value
    return None


def read_torch(path: Path) -> tuple[dict, Any, Any]:
    """(model state, optimizer state, raw step) of a ``.pt`` / ``.pth`` / ``.ckpt`` file."""
    obj = torch_load(path)
    if _is_state_dict(obj):
        return dict(obj), None, None
    if isinstance(obj, Mapping):
        for key in MODEL_KEYS:
            if _is_state_dict(obj.get(key)):
                step = next((obj[k] for k in STEP_KEYS if obj.get(k) is not None), None)
                return dict(obj[key]), _optimizer_of(obj), step
    keys = list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(f"cannot read checkpoint {path}",
                          expected="a state dict, or a dict with one under 'model', 'state_dict' or "
                                   "'model_state_dict' (and 'optimizer', 'step')",
                          found=f"{keys}", fix="save model.state_dict() (optionally nested under 'model')")


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; one error line for a damaged one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt", expected="a valid safetensors file",
                              found=first_line(exc, 120),
                              fix="copy it again, or re-save it with safetensors.torch.save_file") from None
    return tensors, meta


def read_directory(path: Path) -> tuple[dict, Any, Any]:
    """(model state, optimizer state, raw step) of a Hugging Face checkpoint or ``save_pretrained`` directory."""
    if (path / "model.safetensors").is_file():
        model, _ = read_safetensors(path / "model.safetensors")
    elif (path / "model.safetensors.index.json").is_file():
        model = {}
        for shard in sorted(set(_index(path / "model.safetensors.index.json").values())):
            model.update(read_safetensors(path / shard)[0])
    else:
        model = torch_load(path / "pytorch_model.bin")
    optimizer = torch_load(path / "optimizer.pt") if (path / "optimizer.pt").is_file() else None
    step = None
    if (path / "trainer_state.json").is_file():
        try:
            step = json.loads((path / "trainer_state.json").read_text()).get("global_step")
        except (OSError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"checkpoint {path} has a malformed trainer_state.json", expected="the JSON the "
                                  "Hugging Face Trainer writes", found=first_line(exc, 100),
                                  fix="restore the file, or remove it (the step then comes from the name)") from None
    return dict(model), optimizer, step
