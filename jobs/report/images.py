"""Thumbnails of a sweep's examples for its report: the dataset's images as small PNG data URIs.

The dataset is rebuilt from the store's config (``data``), so the page shows exactly the images the brackets
were computed on, but only where :mod:`jobs.planning.targets` allows building it (lie-sweep's own datasets, or
with ``--trust-store`` the store's, listed first): a store's config is data, never code, so a dataset class it
names is otherwise not imported and the page says so in place of the thumbnails. Items are ``(image, target)``
with the image a (C, H, W) tensor, C = 1 or 3 (or (H, W)); values in [0, 1] are shown as they are, others
min-max scaled per image (and the page says so). A dataset that cannot be loaded here (a CelebA copy on another
machine) or does not yield images gives no thumbnails and a one-line reason instead.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["Thumbnails", "png_bytes", "example_thumbnails"]


@dataclass
class Thumbnails:
    """``images``: dataset index → PNG data URI; ``texts``: dataset index → the item's tokens as text (a language
    model's sequences); ``note``: what the page says about them (why none, scaling)."""

    images: dict[int, str] = field(default_factory=dict)
    note: str = ""
    texts: dict[int, list[str]] = field(default_factory=dict)


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG file of uint8 ``pixels``, (H, W) grey or (H, W, 3) RGB: signature, IHDR, one zlib IDAT, IEND."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = pixels.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every scanline
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _pixels(image: Any, size: int) -> tuple[np.ndarray, bool] | None:
    """uint8 (h, w[, 3]) pixels of one dataset image, at most ``size`` on its longer side, and whether it
    was min-max scaled; None when the item is not an image."""
    import torch
    import torch.nn.functional as F

    if not isinstance(image, torch.Tensor):
        try:
            image = torch.as_tensor(np.asarray(image))
        except (TypeError, ValueError):
            return None
    x = image.detach().to("cpu", torch.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] not in (1, 3) or min(x.shape[1:]) < 2:
        return None
    scaled = bool(x.min() < 0 or x.max() > 1)
    if scaled:
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    h, w = x.shape[1:]
    factor = size / max(h, w)
    if factor < 1:
        x = F.interpolate(x[None], size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="area")[0]
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return (pixels[..., 0] if pixels.shape[2] == 1 else pixels), scaled


def _is_token_ids(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor) and x.ndim == 1 and not x.is_floating_point() and x.numel() > 1


def example_thumbnails(data_cfg: Mapping[str, Any], indices: Iterable[int], size: int = 40,
                       trust: Any = None, task_name: str = "multilabel") -> Thumbnails:
    """PNG data URIs of dataset items ``indices`` from the dataset that a store's ``data_cfg`` builds, where
    ``trust`` (a :class:`jobs.planning.targets.TargetTrust`; by default none beyond lie-sweep's own classes)
    allows building it; for a language model's sequences (``task_name`` causal_lm, or token ids), their tokens as
    text (the dataset's ``decode`` where it has one)."""
    import torch

    from lie_sweep.errors import ConfigError, first_line

    from jobs.planning.build import build_dataset
    from jobs.planning.targets import TargetTrust, literal_strings, vet_config

    indices = sorted({int(i) for i in indices})
    data_cfg = literal_strings(dict(data_cfg))
    try:
        vet_config({"data": data_cfg}, trust if trust is not None else TargetTrust())
    except ConfigError as exc:
        return Thumbnails(note=f"example images not shown: the dataset is not rebuilt from this store: {exc}")
    try:
        dataset = build_dataset(dict(data_cfg))
        items = {i: dataset[i][0] for i in indices}
    except Exception as exc:  # noqa: BLE001 - any failure to load data only costs the thumbnails
        return Thumbnails(note=f"example images not shown: the dataset could not be loaded here ({first_line(exc)})")
    if task_name == "causal_lm" or items and all(_is_token_ids(x) for x in items.values()):
        decode = getattr(dataset, "decode", None)
        return Thumbnails(texts={i: (list(decode(ids.tolist())) if decode else [str(t) for t in ids.tolist()])
                                 for i, ids in ((i, torch.as_tensor(x).reshape(-1)) for i, x in items.items())})
    out, scaled = Thumbnails(), False
    for i, image in items.items():
        got = _pixels(image, size)
        if got is None:
            return Thumbnails(note="example images not shown: the dataset's items are not (C, H, W) images")
        pixels, was_scaled = got
        scaled |= was_scaled
        out.images[i] = "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")
    if scaled:
        out.note = "example images min-max scaled per image (their values are outside [0, 1])"
    return out
