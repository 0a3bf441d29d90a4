"""What defines a sweep's results (its identity), and what may change when a store is resumed."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["IDENTITY_KEYS", "EXECUTION_KEYS", "CHECKPOINT_LOCATION_KEYS", "identity_of"]

# What may change when a store is resumed: how the work runs, not what it computes. The checkpoints'
# location may change too (a moved directory): the files are found there by their relative paths
# and accepted only when every one's sha256 matches the store's provenance.
CHECKPOINT_LOCATION_KEYS = ("checkpoints.dir", "checkpoints.glob", "checkpoints.paths")
EXECUTION_KEYS = ("cluster", "chunk_size", "hvp", "storage.options", *CHECKPOINT_LOCATION_KEYS)

# What defines a sweep's results (its identity); everything else is an execution setting.
IDENTITY_KEYS = ("model", "data", "task", "checkpoints", "examples", "pairs", "field", "precision", "seed",
                 "storage.codec", "storage.level", "storage.keepbits", "storage.keep", "storage.inner_chunk", "derived",
                 "effects", "swap_epsilon", "storage.sketch", "storage.sketch_nonzeros", "storage.sketch_seed")
# identity keys added after stores existed: recorded only when set, so that an older store keeps its identity
LATER_IDENTITY_KEYS = ("effects", "swap_epsilon", "storage.sketch")
LATER_PAIR_KEYS = ("unit", "batch_size")  # the same for keys of the pairs group
LATER_TRAINING_KEYS = {"optimizer": "adam", "weight_decay": 0.0}  # and of checkpoints=train, at these defaults


def identity_of(cfg: DictConfig) -> dict[str, Any]:
    """The parts of the resolved config that define a sweep's results (see :data:`IDENTITY_KEYS`)."""
    out: dict[str, Any] = {}
    for key in IDENTITY_KEYS:
        value = OmegaConf.select(cfg, key)
        out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) or \
            OmegaConf.is_list(value) else value
    ck = dict(out["checkpoints"])
    for key in CHECKPOINT_LOCATION_KEYS:  # where checkpoints are does not define results: their sha256 does
        ck.pop(key.split(".", 1)[1], None)
    if ck.get("source") != "train":  # training settings don't define results of given checkpoints
        for k in ("steps", "save_every", "lr", "betas", "batch_size", *LATER_TRAINING_KEYS):
            ck.pop(k, None)
    for key, default in LATER_TRAINING_KEYS.items():  # recorded only where they differ from what older stores did
        if ck.get(key) == default:
            ck.pop(key, None)
    out["checkpoints"] = ck
    if out["task"] == {"name": "multilabel"}:  # the task stores had before there was a choice: the same identity
        del out["task"]
    for key in LATER_IDENTITY_KEYS:
        if out[key] is None:
            del out[key]
    if "storage.sketch" not in out:  # the sketch's own settings define nothing without a sketch
        del out["storage.sketch_nonzeros"], out["storage.sketch_seed"]
    out["pairs"] = {k: v for k, v in out["pairs"].items() if not (k in LATER_PAIR_KEYS and v is None)}
    return out
