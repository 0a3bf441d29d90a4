"""The kernels' documented process-wide allocator setting (lie_sweep.allocator): made on the first kernel call,
once, and not at all with LIE_SWEEP_MALLOC=system."""

import os
import platform
import subprocess
import sys

PROBE = """
import torch, lie_sweep
from lie_sweep import allocator
assert allocator._applied is None          # importing lie_sweep changes nothing
net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
x, y = torch.randn(3, 3), torch.rand(3, 2)
lie_sweep.compute_brackets(net, x, y, [(0, 1)])
print(allocator._applied)
"""


def _probe(**env):
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_first_kernel_call_keeps_freed_memory_unless_opted_out():
    glibc = platform.libc_ver()[0] == "glibc"
    assert _probe() == str(glibc)
    assert _probe(LIE_SWEEP_MALLOC="system") == "False"
