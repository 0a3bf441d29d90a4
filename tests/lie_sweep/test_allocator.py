"""The kernels' documented process-wide allocator setting (lie_sweep.allocator): made on the first kernel call,
once, and not at all with LIE_SWEEP_MALLOC=system."""

import platform

import torch

import lie_sweep
from lie_sweep import allocator


def _first_kernel_call(monkeypatch, **env):
    """Whether a process's first kernel call (here: this process, its record reset) takes the setting."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(allocator, "_applied", None)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    lie_sweep.compute_brackets(net, torch.randn(3, 3), torch.rand(3, 2), [(0, 1)])
    return allocator._applied


def test_the_first_kernel_call_keeps_freed_memory_unless_opted_out(monkeypatch):
    monkeypatch.delenv("LIE_SWEEP_MALLOC", raising=False)
    assert _first_kernel_call(monkeypatch) is (platform.libc_ver()[0] == "glibc")
    assert _first_kernel_call(monkeypatch, LIE_SWEEP_MALLOC="system") is False
