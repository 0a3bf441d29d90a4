"""The arrays of a new store, created from its layout: shapes, chunks, shards, dimension names,
codecs and fill values. Float arrays are filled with NaN, so a cell no task has written reads as
NaN; the index arrays are written here, whole.

The index arrays are *coordinates*: each 1-D one is named after the dimension it labels, so any
Zarr-v3 reader that follows dimension names (xarray) labels the data with them: ``checkpoint`` (the
training step of each checkpoint), ``example`` (dataset indices, or minibatch ids), ``eval_example``
(dataset indices), ``output`` (attribute names) and, with swaps, ``epsilon`` (step sizes). ``pairs``
(pair × side) holds (i, j) per pair, and ``i`` and ``j`` (pair,) the same as the pair axis's coordinates
(each array along it names them in its CF ``coordinates`` attribute: ``ds.set_index(pair=["i", "j"])``
makes ``.sel(i=3, j=5)`` pick a pair). Each parameter-sized array says in its attribute ``flat_axis``
how its ``param`` axis maps to tensors (name, offset, shape: ``param`` offset … offset + ∏shape − 1 is
the tensor in C order). Stores of schema ≤ 4 named the index arrays ``steps``, ``examples`` and
``eval_examples`` (:data:`INDEX_ARRAYS`).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import zarr

from .codecs import array_codecs, compressors_for
from .layout import StoreLayout
from .sketch import SketchSpec

__all__ = ["create_arrays", "consolidate", "NAN", "PARAMETER_SIZED", "INDEX_ARRAYS", "flat_axis_attrs"]

NAN = float("nan")
COMPUTED_OVER_ALL = "all parameters of the model, whatever storage.keep stores"
PARAMETER_SIZED = ("brackets", "gradients", "order1", "order2", "swaps")
# the index arrays' names by schema: {role: (schema >= 5, schema <= 4)}
INDEX_ARRAYS = {"steps": ("checkpoint", "steps"), "examples": ("example", "examples"),
                "eval_examples": ("eval_example", "eval_examples")}


def consolidate(group: zarr.Group) -> zarr.Group:
    """Write the group's consolidated metadata (every array's metadata in the root ``zarr.json``), once the
    arrays exist: their metadata never changes afterwards, and rewriting the root's own attributes keeps it.
    (zarr-python warns that Zarr v3 has no specification for it yet; xarray and zarr-python read it.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        return zarr.consolidate_metadata(group.store_path)


def flat_axis_attrs(stored_spec: Sequence[dict]) -> dict:
    """The ``flat_axis`` attribute of a parameter-sized array: its ``param`` axis, tensor by tensor."""
    return {"flat_axis": {"dimension": "param", "order": "C", "tensors": [
        {"name": e["name"], "offset": int(e["offset"]), "shape": [int(d) for d in e["shape"]]} for e in stored_spec],
        "how": "param[offset : offset + prod(shape)] reshaped to shape is the tensor `name`"}}


def create_arrays(group: zarr.Group, layout: StoreLayout, *, dtype: str, codec: str, level: int, keepbits: int,
                  pairs: np.ndarray, examples: Sequence[int], steps: Sequence[int],
                  eval_examples: Sequence[int], swap_attrs: dict | None = None, output_names: Sequence[str] = (),
                  stored_spec: Sequence[dict] = (), full_spec: Sequence[dict] = ()) -> None:
    """Create every array ``layout`` describes in ``group``, and its coordinates. ``codec`` (with ``level``,
    ``keepbits``) applies to the parameter-sized arrays; the others are always stored losslessly (zstd +
    CRC32C). ``swap_attrs``: what redoes a swap (its step sizes ``epsilon``, rule, drain steps), recorded on
    the swap arrays; ``stored_spec``: the flat axis (name, offset, shape per tensor); ``full_spec``: every
    parameter's (what a sketch is taken over)."""
    param_codecs = array_codecs(codec, level, keepbits, dtype)
    compressors = compressors_for(level)
    for name, array in layout.float_arrays().items():
        parameter_sized = name in PARAMETER_SIZED or name in layout.effect_arrays
        sketch = name.startswith("sketch_")
        created = group.create_array(
            name, shape=array["shape"], chunks=array["chunks"], shards=array["shards"],
            dtype="float64" if name == "gram" else dtype, fill_value=NAN, dimension_names=array["dims"],
            filters=param_codecs.filters if parameter_sized or sketch else None,
            compressors=param_codecs.compressors if parameter_sized or sketch else compressors)
        if name in ("gram", "logit_deltas", "swap_logit_deltas"):
            created.attrs["computed_over"] = COMPUTED_OVER_ALL
        if name in ("swaps", "swap_logit_deltas"):
            created.attrs.update(swap_attrs or {})
        if parameter_sized:
            created.attrs.update(flat_axis_attrs(stored_spec))
        if sketch:  # enough to rebuild S with numpy alone (storage/sketch.py)
            created.attrs.update(SketchSpec(layout.sketch_k, d=sum(int(np.prod(e["shape"])) for e in full_spec),
                                            s=layout.sketch_s, seed=layout.sketch_seed).attrs())
        if sketch and name == "sketch_swaps":
            created.attrs.update(swap_attrs or {})
        if "pair" in array["dims"]:
            created.attrs["coordinates"] = "i j"  # CF: the pair axis is labelled by the arrays i and j
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    index_arrays = {
        "eval_example": (np.asarray(eval_examples, dtype=np.int64).reshape(-1), ("eval_example",)),
        "pairs": (pairs, ("pair", "side")),
        "i": (pairs[:, 0], ("pair",)),
        "j": (pairs[:, 1], ("pair",)),
        "example": (np.asarray(examples, dtype=np.int64).reshape(-1), ("example",)),
        "checkpoint": (np.asarray(steps, dtype=np.int64).reshape(-1), ("checkpoint",)),
    }
    used = {d for array in layout.float_arrays().values() for d in array["dims"]}
    if "output" in used:
        index_arrays["output"] = (np.asarray(list(output_names), dtype=str), ("output",))
    if "epsilon" in used:
        index_arrays["epsilon"] = (np.asarray((swap_attrs or {}).get("epsilon", ()), dtype=np.float64), ("epsilon",))
    for name, (values, dims) in index_arrays.items():
        chunks = (max(1, min(len(values), 1 << 16)), *values.shape[1:])
        kind = values.dtype.kind
        created = group.create_array(name, shape=values.shape, chunks=chunks,
                                     dtype=str if kind == "U" else values.dtype.name, compressors=compressors,
                                     fill_value="" if kind == "U" else NAN if kind == "f" else -1,
                                     dimension_names=dims)
        if values.size:
            created[...] = values
