"""Flat parameter vectors and the map between them and named tensors.

A sweep stores every parameter-sized vector (a bracket, a gradient) over one flat axis of length
``D = sum(numel)``: all trainable tensors concatenated in a stable order (the model's
``named_parameters()`` order). :class:`ParamSpec` records name, offset and shape of each tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch

__all__ = ["ParamEntry", "ParamSpec"]


@dataclass(frozen=True)
class ParamEntry:
    """One tensor's slot on the flat axis: ``flat[offset : offset + numel]`` reshaped to ``shape``."""

    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Elements of the tensor."""
        return math.prod(self.shape)

    @property
    def stop(self) -> int:
        """End of the tensor's slice of the flat axis (offset + numel)."""
        return self.offset + self.numel


class ParamSpec:
    """An ordered list of named tensor slots on a flat parameter axis of length :attr:`size`."""

    def __init__(self, entries: Iterable[tuple[str, Sequence[int]]]) -> None:
        self.entries: tuple[ParamEntry, ...] = ()
        offset = 0
        out = []
        seen = set()
        for name, shape in entries:
            if name in seen:
                raise ValueError(f"duplicate parameter name {name!r} in ParamSpec")
            seen.add(name)
            entry = ParamEntry(str(name), offset, tuple(int(s) for s in shape))
            out.append(entry)
            offset = entry.stop
        self.entries = tuple(out)
        self.size = offset
        self._by_name = {e.name: e for e in self.entries}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> "ParamSpec":
        """The spec of a dict of tensors, in the dict's order."""
        return cls((name, tuple(t.shape)) for name, t in tensors.items())

    @property
    def names(self) -> list[str]:
        """Tensor names in flat-axis order."""
        return [e.name for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, name: str) -> ParamEntry:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamSpec) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"ParamSpec({len(self)} tensors, size={self.size})"

    def flatten(self, tensors: Mapping[str, torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
        """Concatenate named tensors onto the flat axis.

        Each tensor has shape ``(*batch, *entry.shape)`` with ``batch_dims`` leading dimensions;
        the result has shape ``(*batch, D)``.
        """
        parts = []
        for e in self.entries:
            t = tensors[e.name]
            batch = t.shape[:batch_dims]
            if tuple(t.shape[batch_dims:]) != e.shape:
                raise ValueError(f"tensor {e.name!r}: expected shape {e.shape}, found {tuple(t.shape[batch_dims:])}")
            parts.append(t.reshape(*batch, e.numel))
        return torch.cat(parts, dim=-1)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a ``(..., D)`` tensor as named tensors of shape ``(..., *entry.shape)``."""
        if flat.shape[-1] != self.size:
            raise ValueError(f"flat axis: expected length {self.size}, found {flat.shape[-1]}")
        lead = flat.shape[:-1]
        return {e.name: flat[..., e.offset:e.stop].reshape(*lead, *e.shape) for e in self.entries}

    def subset(self, names: Iterable[str]) -> tuple["ParamSpec", torch.Tensor]:
        """(spec of ``names`` in this spec's order, packed contiguously; flat positions of its axis).

        ``flat[..., index]`` of a ``(..., D)`` tensor of this spec is the same tensor on the subset's axis.
        """
        wanted = set(names)
        unknown = wanted - set(self._by_name)
        if unknown:
            raise ValueError(f"unknown parameter name(s) {sorted(unknown)}")
        kept = [e for e in self.entries if e.name in wanted]
        index = torch.cat([torch.arange(e.offset, e.stop) for e in kept]) if kept else torch.zeros(0, dtype=torch.long)
        return ParamSpec((e.name, e.shape) for e in kept), index

    def to_records(self) -> list[dict]:
        """JSON-ready ``[{"name", "offset", "shape"}, ...]``."""
        return [{"name": e.name, "offset": e.offset, "shape": list(e.shape)} for e in self.entries]

    @classmethod
    def from_records(cls, records: Iterable[Mapping]) -> "ParamSpec":
        """The spec written by :meth:`to_records` (name, offset, shape per tensor)."""
        records = list(records)
        spec = cls((r["name"], r["shape"]) for r in records)
        for r, e in zip(records, spec.entries):
            if int(r["offset"]) != e.offset:
                raise ValueError(f"ParamSpec record {r['name']!r}: offset {r['offset']} is not contiguous ({e.offset})")
        return spec
