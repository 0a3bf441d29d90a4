"""scikit-learn's handwritten digits (``data=digits``; ``pip install 'lie-sweep[digits]'``): 1,797 8×8 greyscale
images of the digits 0–9 that ship inside scikit-learn (no download), as ``(image (1, 8, 8) in [0, 1], class)``.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .errors import ConfigError, require_indices

__all__ = ["Digits"]


class Digits(Dataset):
    """The digits, in scikit-learn's order (``length`` of them, the first ones); ``class_names`` are "0" … "9"."""

    class_names = tuple(str(k) for k in range(10))

    def __init__(self, length: int | None = None) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ConfigError("data=digits needs scikit-learn", expected="scikit-learn installed",
                              found="no module named 'sklearn'", fix="pip install 'lie-sweep[digits]'") from None
        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float32) / 16.0
        labels = torch.as_tensor(bunch.target, dtype=torch.long)
        n = len(labels) if length is None else int(length)
        if not 1 <= n <= len(labels):
            raise ConfigError("bad value for data.length", expected=f"1..{len(labels)}", found=str(length),
                              fix="leave data.length out for all of them")
        self.images, self.labels = images[:n].unsqueeze(1), labels[:n]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(index)
        require_indices([index], len(self), fix="pick indices below the dataset length")
        return self.images[index], self.labels[index]
