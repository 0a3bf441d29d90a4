"""A sweep's metadata: one dataclass, written by the store's writer and parsed by its reader.

It lives in the Zarr group's attribute ``lie_sweep`` (see :mod:`storage.paths`), as JSON. Keys a
store of an older schema lacks take the defaults below when it is read, so every reader sees the
same fields; keys this version does not know are kept in :attr:`StoreMeta.extra` and written back
unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["StoreMeta"]


@dataclass
class StoreMeta:
    """What a store says about its sweep. ``checkpoints`` is ordered like the ``steps`` array."""

    schema_version: int
    layout: dict[str, Any]                      # StoreLayout.to_dict()
    dtype: str = "float32"                      # of brackets, gradients, losses, logit deltas
    codec: str = "lossless"                     # preset of the parameter-sized arrays (storage.codecs)
    level: int = 1                              # zstd level
    keepbits: int = 10                          # bitround: mantissa bits kept
    created: float = 0.0                        # time.time() at creation
    n_tasks: int = 0
    config: dict[str, Any] = field(default_factory=dict)      # resolved config, storage options removed
    identity: dict[str, Any] = field(default_factory=dict)    # the config keys that define results
    identity_hash: str = ""                     # SHA-256 of the identity's canonical JSON
    param_spec: list[dict[str, Any]] = field(default_factory=list)          # all tensors: name, offset, shape
    stored_spec: list[dict[str, Any]] | None = None           # the stored flat axis (None: = param_spec)
    kept_names: list[str] | None = None         # tensors kept by storage.keep globs (None: all)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)         # path, relpath, step, size, sha256
    checkpoint_base: str = ""                   # the configured checkpoint location's directory
    attribute_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    eval_examples: list[int] = field(default_factory=list)
    epsilon: float = 0.0                        # ε of the logit deltas ε²·J_f[u_i,u_j]
    hvp_mode: str = "forward"                   # how the tasks computed HVPs (lie_sweep.hvp; older stores: forward)
    batches: list[list[int]] | None = None      # pairs.unit=batch: each item's dataset indices (None: examples)
    package_version: str = ""
    python: str = ""
    torch: str = ""
    extra: dict[str, Any] = field(default_factory=dict)       # keys of a newer writer, kept as they are

    def __post_init__(self) -> None:
        if self.stored_spec is None:
            self.stored_spec = list(self.param_spec)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "StoreMeta":
        """Parse the attribute as any schema wrote it (absent keys take their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in record.items() if k in names and v is not None or k == "stored_spec"}
        return cls(**known, extra={k: v for k, v in record.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready attribute."""
        out = dataclasses.asdict(self)
        return {**out.pop("extra"), **out}

    def replace(self, **changes: Any) -> "StoreMeta":
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
