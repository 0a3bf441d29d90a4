"""benchmarks/gpu.sh, the script a lent GPU runs first, kept from rotting: its --cpu smoke run (the gpu tests,
which skip here, and the GPU table at tiny sizes on the CPU) ends with the table."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_runs_on_the_cpu_and_prints_its_table():
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--cpu"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    sections = {line.split("|")[1].strip() for line in table[2:]}
    assert table[0].startswith("| section") and sections == {"kernel", "effect", "sweep"}
    assert any("effects=[swap]" in line for line in table) and any("published" in line for line in table)
