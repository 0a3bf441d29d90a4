"""The arrays of a new store, created from its layout: shapes, chunks, shards, dimension names,
codecs and fill values. Float arrays are filled with NaN, so a cell no task has written reads as
NaN; the index arrays (pairs, examples, steps, evaluation examples) are written here, whole.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import zarr

from .codecs import array_codecs, compressors_for
from .layout import StoreLayout

__all__ = ["create_arrays", "NAN"]

NAN = float("nan")
COMPUTED_OVER_ALL = "all parameters of the model, whatever storage.keep stores"


def create_arrays(group: zarr.Group, layout: StoreLayout, *, dtype: str, codec: str, level: int, keepbits: int,
                  pairs: np.ndarray, examples: Sequence[int], steps: Sequence[int],
                  eval_examples: Sequence[int], swap_attrs: dict | None = None) -> None:
    """Create every array ``layout`` describes in ``group``. ``codec`` (with ``level``, ``keepbits``)
    applies to the parameter-sized arrays; the others are always stored losslessly (zstd + CRC32C).
    ``swap_attrs``: what redoes a swap (its step sizes, rule, drain steps), recorded on the swap arrays."""
    param_codecs = array_codecs(codec, level, keepbits, dtype)
    compressors = compressors_for(level)
    for name, array in layout.float_arrays().items():
        parameter_sized = name in ("brackets", "gradients", "order1", "order2", "swaps")
        created = group.create_array(
            name, shape=array["shape"], chunks=array["chunks"], shards=array["shards"],
            dtype="float64" if name == "gram" else dtype, fill_value=NAN, dimension_names=array["dims"],
            filters=param_codecs.filters if parameter_sized else None,
            compressors=param_codecs.compressors if parameter_sized else compressors)
        if name in ("gram", "logit_deltas", "swap_logit_deltas"):
            created.attrs["computed_over"] = COMPUTED_OVER_ALL
        if name in ("swaps", "swap_logit_deltas"):
            created.attrs.update(swap_attrs or {})
    index_arrays = {
        "eval_examples": (np.asarray(eval_examples, dtype=np.int64).reshape(-1), ("eval_example",)),
        "pairs": (np.asarray(pairs, dtype=np.int64).reshape(-1, 2), ("pair", "side")),
        "examples": (np.asarray(examples, dtype=np.int64).reshape(-1), ("example",)),
        "steps": (np.asarray(steps, dtype=np.int64).reshape(-1), ("checkpoint",)),
    }
    for name, (values, dims) in index_arrays.items():
        chunks = (max(1, min(len(values), 1 << 16)), *values.shape[1:])
        created = group.create_array(name, shape=values.shape, chunks=chunks, dtype="int64",
                                     compressors=compressors, fill_value=-1, dimension_names=dims)
        if values.size:
            created[...] = values
