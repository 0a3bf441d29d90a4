"""Shared test cases of the math tests: tiny seeded models, batches, and how results are compared."""

import torch

from lie_sweep import MLP, ParamSpec


def tiny_mlp(dtype=torch.float64):
    torch.manual_seed(1)
    return MLP(input_shape=(6,), num_outputs=3, hidden=(5,), activation_name="mish").to(dtype)


def batch(n, shape, outputs, dtype=torch.float64, seed=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=dtype)
    y = (torch.rand(n, outputs, generator=g) > 0.5).to(dtype)
    return x, y


def flat(named, model):
    spec = ParamSpec.from_tensors(dict(model.named_parameters()))
    return spec.flatten(named, batch_dims=1), spec


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()
