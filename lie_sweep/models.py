"""Models for sweeps: an MLP, a small convnet, and an MXResNet-style ResNet.

All map a batch of inputs to ``num_outputs`` logits (one per binary attribute). The ResNet follows
the reference experiment's xresnet: a stem of three 3×3 convolutions, BasicBlock stages with
BatchNorm, Mish (or ReLU) activations, average-pool shortcuts when downsampling, no attention.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["MLP", "SmallConvNet", "MXResNet", "Mish", "activation", "ACTIVATIONS"]


class Mish(nn.Module):
    """mish(x) = x · tanh(softplus(x)), written out so that every op has a vmap batching rule.

    (``nn.Mish``'s fused backward has none in torch.func, which makes vmap fall back to a slow
    per-example loop inside the bracket kernel.)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (batch, num_outputs)."""
        return x * torch.tanh(torch.nn.functional.softplus(x))


ACTIVATIONS = {"mish": Mish, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


def activation(name: str) -> nn.Module:
    """One of :data:`ACTIVATIONS`: ``"mish"``, ``"relu"``, ``"tanh"`` (smooth, so the leading order holds at
    larger steps than with ReLU kinks), ``"gelu"``, ``"silu"``."""
    if name not in ACTIVATIONS:
        raise ConfigError("unknown activation", expected=" | ".join(ACTIVATIONS), found=repr(name),
                          fix="set activation_name to one of those")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Flatten → (Linear → activation) × len(hidden) → Linear(num_outputs)."""

    def __init__(self, input_shape: Sequence[int] = (3, 16, 16), num_outputs: int = 12,
                 hidden: Sequence[int] = (64, 64), activation_name: str = "relu") -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), activation(activation_name)]
            width = h
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (batch, num_outputs)."""
        return self.net(x)


def _conv_bn_act(c_in: int, c_out: int, stride: int, act: str | None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                               nn.BatchNorm2d(c_out)]
    if act is not None:
        layers.append(activation(act))
    return nn.Sequential(*layers)


class SmallConvNet(nn.Module):
    """Two conv-BN-activation stages (the second strided), global average pool, linear head."""

    def __init__(self, in_channels: int = 3, num_outputs: int = 12, width: int = 16,
                 activation_name: str = "relu") -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_act(in_channels, width, 1, activation_name),
            _conv_bn_act(width, 2 * width, 2, activation_name),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (batch, num_outputs)."""
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """x ↦ act(conv-BN-act-conv-BN(x) + shortcut(x)); shortcut = AvgPool → 1×1 conv → BN when shapes change."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: str, zero_init: bool) -> None:
        super().__init__()
        self.convs = nn.Sequential(_conv_bn_act(c_in, c_out, stride, act), _conv_bn_act(c_out, c_out, 1, None))
        if zero_init:
            nn.init.zeros_(self.convs[1][1].weight)
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool2d(stride, ceil_mode=True))
        if c_in != c_out:
            shortcut += [nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.shortcut = nn.Sequential(*shortcut)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


class MXResNet(nn.Module):
    """xresnet-style ResNet: 3-conv stem, max pool, BasicBlock stages, average pool, linear head.

    ``widths[k]`` channels and ``depths[k]`` blocks in stage k (stages after the first downsample
    by 2). Defaults give the ResNet-18 layout of the reference experiment (11.2M parameters with
    40 outputs); any input size works (adaptive pooling). ``stem_stride=1, stem_pool=False`` keep a small
    image's resolution through the stem (8×8 digits).
    """

    def __init__(self, in_channels: int = 3, num_outputs: int = 40,
                 widths: Sequence[int] = (64, 128, 256, 512), depths: Sequence[int] = (2, 2, 2, 2),
                 stem_widths: Sequence[int] = (32, 32, 64), activation_name: str = "mish",
                 zero_init_residual: bool = True, stem_stride: int = 2, stem_pool: bool = True) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ConfigError("ResNet stages do not line up", expected="as many widths as depths (≥ 1)",
                              found=f"{len(widths)} widths and {len(depths)} depths",
                              fix="give widths and depths of equal length")
        if len(stem_widths) != 3:
            raise ConfigError("ResNet stem needs three widths", expected="3 stem widths",
                              found=str(len(stem_widths)), fix="e.g. stem_widths=[32,32,64]")
        chans = [in_channels, *stem_widths]
        stem = [_conv_bn_act(chans[k], chans[k + 1], stem_stride if k == 0 else 1, activation_name) for k in range(3)]
        self.stem = nn.Sequential(*stem, *([nn.MaxPool2d(3, stride=2, padding=1)] if stem_pool else []))
        stages = []
        c_in = stem_widths[-1]
        for k, (w, d) in enumerate(zip(widths, depths)):
            blocks = [BasicBlock(c_in if b == 0 else w, w, (1 if k == 0 else 2) if b == 0 else 1,
                                 activation_name, zero_init_residual) for b in range(d)]
            stages.append(nn.Sequential(*blocks))
            c_in = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, num_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (batch, num_outputs)."""
        return self.head(self.pool(self.stages(self.stem(x))))
