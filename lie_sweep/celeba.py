"""CelebA's 40 attributes from a local copy (no download).

Expected layout (as distributed by the CelebA authors)::

    ROOT/list_attr_celeba.txt        # line 1: count; line 2: 40 names; then "file v1 .. v40" with ±1
    ROOT/list_eval_partition.txt     # optional: "file split" with 0=train, 1=valid, 2=test
    ROOT/img_align_celeba/*.jpg

Images are centre-cropped to 178×178 and resized to ``image_size`` (Pillow decodes them:
``pip install 'lie-sweep[celeba]'``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from .errors import ConfigError, require_indices

__all__ = ["CelebA"]

_SPLITS = {"train": 0, "valid": 1, "test": 2}


class CelebA(Dataset):
    """Items ``(image float32 (3, image_size, image_size) in [0, 1], attributes float32 0/1 (40,))``."""

    def __init__(self, root: str | Path, split: str = "all", image_size: int = 64) -> None:
        self.root = Path(root).expanduser()
        attr_file = self.root / "list_attr_celeba.txt"
        if not attr_file.is_file():
            raise ConfigError("CelebA not found", expected=f"{attr_file}",
                              found="no such file" if self.root.exists() else f"no directory {self.root}",
                              fix="set data.root to a local CelebA copy holding list_attr_celeba.txt and "
                                  "img_align_celeba/")
        lines = attr_file.read_text().splitlines()
        self.attribute_names: tuple[str, ...] = tuple(lines[1].split())
        files, rows = [], []
        for line in lines[2:]:
            parts = line.split()
            if parts:
                files.append(parts[0])
                rows.append([int(v) > 0 for v in parts[1:]])
        attrs = torch.tensor(rows, dtype=torch.float32)
        if split != "all":
            if split not in _SPLITS:
                raise ConfigError("unknown CelebA split", expected="all, train, valid or test",
                                  found=repr(split), fix="set data.split to one of those")
            part_file = self.root / "list_eval_partition.txt"
            if not part_file.is_file():
                raise ConfigError("CelebA split file missing", expected=str(part_file), found="no such file",
                                  fix="add list_eval_partition.txt or use split=all")
            part = dict(line.split() for line in part_file.read_text().splitlines() if line.strip())
            keep = [k for k, f in enumerate(files) if int(part[f]) == _SPLITS[split]]
            files, attrs = [files[k] for k in keep], attrs[keep]
        self.files = files
        self.attributes = attrs
        self.image_size = int(image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(index)
        require_indices([index], len(self.files), fix="pick example indices below the dataset length")
        try:
            from PIL import Image
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("Pillow is needed to read CelebA", expected="the package pillow", found="not installed",
                              fix="pip install 'lie-sweep[celeba]'") from exc
        with Image.open(self.root / "img_align_celeba" / self.files[index]) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h, 178)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((self.image_size, self.image_size),
                                                                       Image.BILINEAR)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        image = data.reshape(self.image_size, self.image_size, 3).permute(2, 0, 1).float() / 255.0
        return image, self.attributes[index].clone()
