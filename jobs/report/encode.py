"""Compact, exact-to-a-stated-precision encodings of the arrays a report page embeds (pure numpy).

Every encoded array is a JSON object ``{"enc", "shape", "data"}`` with ``data`` the base64 of the
little-endian values; the page's script decodes it to a Float32Array (NaN where a value is missing):

    f32     float32 values (summary arrays: small, and their magnitudes span many decades)
    i32     int32 values
    f16s    float16 of v / s, with one float32 scale s = max |v| per block of the trailing ``block_dims``
            axes (``"scale"``: f32): relative error ≤ 2⁻¹¹ of the value, ≤ 2⁻²⁴·s near 0; float16
            alone would underflow (logit deltas at ε = 0.005 are ~10⁻⁶)
    i8s     round(127·v / s), NaN as −128, same per-block scale: absolute error ≤ s / 254

``decode`` inverts each one (tests compare a page's values with the store through it).
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

__all__ = ["encode", "decode", "encoded_bytes", "PRECISION"]

# what each lossy encoding guarantees, as the page states it
PRECISION = {"f16s": "float16 relative to each heatmap's largest |value| (relative error ≤ 2⁻¹¹ ≈ 4.9e-4)",
             "i8s": "8-bit, relative to each heatmap's largest |value| (absolute error ≤ max/254)"}
_ITEM = {"f32": 4, "i32": 4, "f16s": 2, "i8s": 1}


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _scales(values: np.ndarray, block_dims: int) -> np.ndarray:
    """max |v| over the trailing ``block_dims`` axes (NaN ignored; 1 where a block is all zero or NaN)."""
    axes = tuple(range(values.ndim - block_dims, values.ndim))
    with np.errstate(all="ignore"):
        finite = np.where(np.isfinite(values), np.abs(values), 0.0)
        peak = finite.max(axis=axes, initial=0.0)
    peak = np.where(np.isfinite(peak) & (peak > 0), peak, 1.0)
    return peak.astype(np.float32)


def encode(values: Any, enc: str = "f32", block_dims: int = 2) -> dict[str, Any]:
    """``values`` as a JSON-able object in encoding ``enc`` (see the module docstring)."""
    values = np.asarray(values)
    out: dict[str, Any] = {"enc": enc, "shape": list(values.shape)}
    if enc == "f32":
        out["data"] = _b64(values.astype("<f4"))
    elif enc == "i32":
        out["data"] = _b64(values.astype("<i4"))
    elif enc in ("f16s", "i8s"):
        v = values.astype(np.float64)
        scale = _scales(v, block_dims)
        unit = v / scale.reshape(scale.shape + (1,) * block_dims)
        if enc == "f16s":
            out["data"] = _b64(unit.astype("<f2"))
        else:
            q = np.where(np.isnan(unit), -128, np.clip(np.rint(unit * 127), -127, 127)).astype(np.int8)
            out["data"] = _b64(q)
        out["scale"] = encode(scale, "f32")
        out["block_dims"] = block_dims
    else:
        raise ValueError(f"unknown encoding {enc!r}")
    return out


def decode(obj: dict[str, Any]) -> np.ndarray:
    """The float64 array an encoded object holds (what the page's script computes)."""
    raw = base64.b64decode(obj["data"])
    shape = tuple(obj["shape"])
    enc = obj["enc"]
    if enc == "f32":
        return np.frombuffer(raw, "<f4").astype(np.float64).reshape(shape)
    if enc == "i32":
        return np.frombuffer(raw, "<i4").astype(np.float64).reshape(shape)
    scale = decode(obj["scale"]).reshape(decode(obj["scale"]).shape + (1,) * obj["block_dims"])
    if enc == "f16s":
        unit = np.frombuffer(raw, "<f2").astype(np.float64).reshape(shape)
    else:
        q = np.frombuffer(raw, np.int8).astype(np.float64).reshape(shape)
        unit = np.where(q == -128, np.nan, q / 127)
    return unit * scale


def encoded_bytes(shape: tuple[int, ...], enc: str, block_dims: int = 2) -> int:
    """Characters the encoded array takes in the page (base64 of the values, plus the scales)."""
    n = math.prod(shape)
    size = 4 * math.ceil(n * _ITEM[enc] / 3)
    if enc in ("f16s", "i8s"):
        size += encoded_bytes(tuple(shape[:len(shape) - block_dims]), "f32")
    return size + 64
