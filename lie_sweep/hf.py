"""Hugging Face models, built locally and never downloaded (``model=hf``; ``pip install 'lie-sweep[hf]'``).

:class:`PretrainedModel` builds a ``transformers`` model from a local ``save_pretrained`` (or Trainer
checkpoint) directory, its weights loaded, or from a config (a directory holding only ``config.json``, or the
config's keys inline, ``config: {model_type: gpt2, n_layer: 2, …}``) with random weights drawn from the
torch seed. Attention runs through the eager implementation: the bracket kernel differentiates the model in
forward mode (``torch.func.jvp``) under ``vmap``, and PyTorch's fused SDPA kernels have no forward-mode
derivative on the CPU (``NotImplementedError: Trying to use forward AD with
_scaled_dot_product_flash_attention_for_cpu``); any other implementation is refused in one line. The key-value
cache is off (``use_cache=False``): a sweep's forward passes are single, whole sequences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import ConfigError, first_line

__all__ = ["PretrainedModel", "require_transformers", "HEADS"]

HEADS = {"causal_lm": "AutoModelForCausalLM", "sequence_classification": "AutoModelForSequenceClassification",
         "base": "AutoModel"}


def require_transformers() -> Any:
    """The ``transformers`` module, or one error line naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("model=hf needs Hugging Face transformers", expected="transformers installed",
                          found="no module named 'transformers'", fix="pip install 'lie-sweep[hf]'") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


class PretrainedModel(torch.nn.Module):
    """A ``transformers`` model (the object returned *is* that model: its parameter names are the checkpoint's).

    ``path``: a local directory (``save_pretrained``, a Trainer ``checkpoint-N``, or one holding only
    ``config.json``: random weights); ``config``: the model's config as keys (``model_type`` and the rest), random
    weights; ``head``: ``causal_lm`` (default), ``sequence_classification`` or ``base``;
    ``attn_implementation``: ``eager`` (see the module docstring)."""

    def __new__(cls, path: str | None = None, config: Mapping[str, Any] | None = None, head: str = "causal_lm",
                attn_implementation: str = "eager") -> torch.nn.Module:  # type: ignore[misc]
        """The ``transformers`` model itself (so ``__init__`` is not run: nothing of this class is built)."""
        transformers = require_transformers()
        if attn_implementation != "eager":
            raise ConfigError("attention lie-sweep cannot differentiate", expected="model.attn_implementation=eager",
                              found=f"{attn_implementation!r} (torch.func's forward mode has no rule for the fused "
                              "attention kernels on the CPU)", fix="drop model.attn_implementation (eager is used)")
        if head not in HEADS:
            raise ConfigError("unknown model.head", expected=" | ".join(HEADS), found=repr(head),
                              fix="model.head=causal_lm")
        auto = getattr(transformers, HEADS[head])
        if (path is None) == (config is None):
            raise ConfigError("model=hf needs one of model.path and model.config", expected="a local model directory, "
                              "or the config's keys", found="both" if path else "neither",
                              fix="set model.path=DIR (save_pretrained) or model.config={model_type: gpt2, ...}")
        try:
            if path is not None:
                where = Path(path).expanduser()
                if not (where / "config.json").is_file():
                    raise ConfigError(f"model.path {where} is not a Hugging Face model directory",
                                      expected="a directory with config.json (save_pretrained writes one)",
                                      found="no config.json there" if where.is_dir() else "no such directory",
                                      fix="point model.path at a local save_pretrained or checkpoint directory")
                has_weights = any((where / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json",
                                                                   "pytorch_model.bin"))
                if has_weights:
                    model = auto.from_pretrained(str(where), local_files_only=True,
                                                 attn_implementation=attn_implementation)
                else:
                    cfg = transformers.AutoConfig.from_pretrained(str(where), local_files_only=True)
                    model = auto.from_config(cfg, attn_implementation=attn_implementation)
            else:
                keys = dict(config)
                model_type = keys.pop("model_type", None)
                if model_type is None:
                    raise ConfigError("model.config needs a model_type", expected="e.g. model_type: gpt2",
                                      found=f"keys {sorted(keys)[:5]}", fix="add model.config.model_type=gpt2")
                cfg = transformers.AutoConfig.for_model(model_type, **keys)
                model = auto.from_config(cfg, attn_implementation=attn_implementation)
        except ConfigError:
            raise
        except Exception as exc:  # transformers' own errors: one line
            raise ConfigError("cannot build the Hugging Face model", expected="a local model directory or config "
                              "that transformers can build", found=first_line(exc, 160),
                              fix="check model.path / model.config") from None
        model.config.use_cache = False
        return model
