"""A store's identity: a hash of what defines its results, and the difference between two."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

__all__ = ["canonical_json", "identity_hash", "identity_diff"]


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def identity_hash(identity: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of ``identity``."""
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def identity_diff(stored: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two identities, with both values: ``key: a -> b``."""
    out: list[str] = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += identity_diff(a, b, prefix=f"{name}.")
        elif canonical_json(a) != canonical_json(b):
            out.append(f"{name}: {canonical_json(a)} -> {canonical_json(b)}")
    return out
