"""Devices and dtypes by the names configs use (``cluster.device``, ``precision``)."""

from __future__ import annotations

import torch

__all__ = ["DTYPES", "resolve_device"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    """``auto``: the first visible CUDA device, else the CPU; otherwise the device ``name`` names."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
