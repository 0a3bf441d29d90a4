"""A user's own module, as a researcher would keep beside their data (imported by its name, `mymod`, from the
folder lie-sweep runs in): a classifier, a regression, token sequences, and a Lightning module."""

import math

import torch
from torch import nn
from torch.utils.data import Dataset


class Net(nn.Module):
    """A small CNN classifier with BatchNorm over 1×8×8 images."""

    def __init__(self, num_classes=10, width=4):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width * 16, num_classes)

    def forward(self, x):
        h = torch.tanh(self.bn(self.conv(x)))
        return self.head(nn.functional.avg_pool2d(h, 2).flatten(1))


class Blobs(Dataset):
    """(1×8×8 image, integer class): a bright blob whose position is the class (seeded per item)."""

    def __init__(self, length=64, classes=10):
        self.length, self.classes = length, classes

    def __len__(self):
        return self.length

    def __getitem__(self, k):
        g = torch.Generator().manual_seed(1000 + k)
        label = k % self.classes
        img = 0.1 * torch.randn(1, 8, 8, generator=g)
        img[0, label % 8, (label * 3) % 8] += 1.0
        return img, label


class Sine(Dataset):
    """(x in R^4, sin(x·w)) regression targets."""

    def __init__(self, length=64):
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, k):
        x = torch.randn(4, generator=torch.Generator().manual_seed(k))
        return x, torch.tensor([math.sin(float(x @ torch.tensor([1.0, -2.0, 0.5, 0.3])))])


class Sequences(Dataset):
    """Token sequences as Hugging Face datasets give them: dicts of input_ids and labels (the last one right
    padded: its final positions are masked)."""

    def __init__(self, length=32, seq_len=12, vocab=64):
        self.length, self.seq_len, self.vocab = length, seq_len, vocab

    def __len__(self):
        return self.length

    def __getitem__(self, k):
        g = torch.Generator().manual_seed(7 + k)
        ids = torch.randint(0, self.vocab, (self.seq_len,), generator=g)
        mask = torch.ones(self.seq_len, dtype=torch.long)
        if k % 4 == 3:
            mask[-3:] = 0
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.clone()}


def lightning_module(width=4):
    """A LightningModule holding a Net as ``self.model`` (so its checkpoint's keys start with ``model.``)."""
    import lightning as L

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = Net(width=width)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    return Lit()
