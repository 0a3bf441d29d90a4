"""Datasets from local folders and files, never downloaded: an image-folder tree (``data=image_folder``) and a
Hugging Face ``datasets`` dataset saved locally (``data=hf``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .errors import ConfigError, first_line, require_indices

__all__ = ["ImageFolder", "LocalHFDataset", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class ImageFolder(Dataset):
    """``root/CLASS/*.png`` (one folder per class, sorted by name): items ``(image (3, S, S) in [0, 1], class)``,
    images resized to ``image_size`` (needs Pillow: ``pip install 'lie-sweep[celeba]'``); ``class_names`` are the
    folders' names."""

    def __init__(self, root: str, image_size: int = 32) -> None:
        base = Path(root).expanduser()
        classes = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        self.files = [(f, k) for k, c in enumerate(classes) for f in sorted((base / c).iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES]
        if not self.files:
            raise ConfigError(f"no images under {base}", expected="root/CLASS/IMAGE files (png, jpg, …)",
                              found="no such folder" if not base.is_dir() else "no class folder with images",
                              fix="set data.root to an image-folder tree")
        self.class_names, self.image_size = tuple(classes), int(image_size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        index = int(index)
        require_indices([index], len(self), fix="pick indices below the dataset length")
        path, label = self.files[index]
        with Image.open(path) as img:
            img = img.convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
            pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        image = pixels.reshape(self.image_size, self.image_size, 3).permute(2, 0, 1).float() / 255.0
        return image, torch.tensor(label)


class LocalHFDataset(Dataset):
    """A Hugging Face ``datasets`` dataset on this machine: a ``save_to_disk`` folder, or local data files
    (``files``: json, csv or parquet, by their suffix); items are dicts of the ``input`` and ``label`` columns
    (``{"input_ids": …, "labels": …}`` where ``input="input_ids"``), as tensors. Needs ``datasets``
    (``pip install 'lie-sweep[hf]'``)."""

    def __init__(self, path: str | None = None, files: Any = None, split: str = "train", input: str = "input_ids",
                 label: str | None = "labels") -> None:
        try:
            import datasets
        except ImportError:
            raise ConfigError("data=hf needs Hugging Face datasets", expected="datasets installed",
                              found="no module named 'datasets'", fix="pip install 'lie-sweep[hf]'") from None
        try:
            if path is not None:
                loaded = datasets.load_from_disk(str(Path(path).expanduser()))
            else:
                names = [files] if isinstance(files, str) else list(files or [])
                kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(
                    Path(names[0]).suffix if names else "", None)
                if kind is None:
                    raise ValueError(f"files {names[:2]} are not .json, .jsonl, .csv or .parquet")
                loaded = datasets.load_dataset(kind, data_files=names)
        except (ValueError, FileNotFoundError, OSError) as exc:
            raise ConfigError("cannot load the local dataset", expected="a save_to_disk folder (data.path) or local "
                              "data files (data.files)", found=first_line(exc, 140), fix="check data.path / "
                              "data.files") from None
        self.data = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        missing = [c for c in (input, label) if c is not None and c not in self.data.column_names]
        if missing:
            raise ConfigError(f"the dataset has no column {missing[0]!r}", expected="data.input and data.label among "
                              f"{self.data.column_names}", found=repr(missing[0]), fix="set data.input= / data.label=")
        self.input, self.label = input, label
        self.data = self.data.with_format("torch")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        index = int(index)
        require_indices([index], len(self), fix="pick indices below the dataset length")
        row = self.data[index]
        if self.input == "input_ids":
            return {k: row[k] for k in ("input_ids", "attention_mask", self.label) if k and k in row}
        return row[self.input], row[self.label]
