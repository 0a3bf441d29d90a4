"""Labelled, lazy xarray views of a store's arrays.

Nothing is read when a view is made; indexing a view (``.sel``, ``.isel``) stays lazy, and
``.values`` / ``.load()`` reads only the inner chunks holding the selection. Each view reads
through an xarray backend array that looks the Zarr array up in the store's group at read time.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

__all__ = ["ZarrBackendArray", "FlatTensorArray", "pair_coords", "lazy_variable"]


class ZarrBackendArray(BackendArray):
    """A whole Zarr array, read lazily with basic (int and slice) indexing."""

    def __init__(self, get_array: Callable[[], Any]) -> None:
        self.get_array = get_array
        arr = get_array()
        self.shape = tuple(arr.shape)
        self.dtype = np.dtype(str(arr.dtype))

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key: tuple) -> np.ndarray:
        return np.asarray(self.get_array()[key])


class FlatTensorArray(ZarrBackendArray):
    """One parameter tensor of a flat-axis array (C, N, D), or (C, K, N, D), seen as (C, [K,] N, *tensor shape).

    A read fetches, for the selected rows only, the tensor's range [offset, offset + numel) of the
    flat axis (its inner chunks), then applies the selection within the tensor in memory.
    """

    def __init__(self, get_array: Callable[[], Any], offset: int, shape: Sequence[int]) -> None:
        super().__init__(get_array)
        self.offset = int(offset)
        self.tensor_shape = tuple(int(s) for s in shape)
        self.stop = self.offset + int(np.prod(self.tensor_shape, dtype=np.int64))
        self.rows = len(self.shape) - 1          # the dimensions before the flat axis
        self.shape = (*self.shape[:self.rows], *self.tensor_shape)

    def _raw(self, key: tuple) -> np.ndarray:
        n = self.rows
        rows = tuple(slice(k, k + 1) if isinstance(k, (int, np.integer)) else k for k in key[:n])
        block = np.asarray(self.get_array()[(*rows, slice(self.offset, self.stop))])
        block = block.reshape(*block.shape[:n], *self.tensor_shape)
        lead = tuple(0 if isinstance(k, (int, np.integer)) else slice(None) for k in key[:n])
        return block[lead + tuple(key[n:])]


def lazy_variable(dims: Sequence[str], backend: BackendArray, attrs: dict | None = None) -> xr.Variable:
    """An xarray Variable over ``backend`` that reads nothing until indexed (lazily indexed, no cache)."""
    return xr.Variable(tuple(dims), indexing.LazilyIndexedArray(backend), attrs=attrs or {})


def pair_coords(pairs: np.ndarray) -> xr.Coordinates:
    """The ``pair`` dimension's coordinates: a MultiIndex of dataset indices (i, j), so
    ``view.sel(i=3, j=7)`` picks one pair."""
    index = pd.MultiIndex.from_arrays([pairs[:, 0], pairs[:, 1]], names=("i", "j"))
    return xr.Coordinates.from_pandas_multiindex(index, "pair")
