"""benchmarks/gpu.sh, the script a lent GPU runs first, kept from rotting on the CPU: the script parses and names
files that exist, and its table (benchmarks/gpu_table.py --tiny, the run gpu.sh --cpu makes) runs through the
kernel, every effect and whole sweeps (here in this process, on the tests' Ray) and prints every section."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_gpu_script_parses_and_its_table_runs_on_the_cpu(local_ray, capsys):
    script = ROOT / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    named = re.findall(r"benchmarks/[\w.]+\.py", script.read_text())
    assert named and all((ROOT / path).is_file() for path in named)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_table

        gpu_table.main(["--device", "cpu", "--tiny"])
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    sections = {line.split("|")[1].strip() for line in table[2:]}
    assert table[0].startswith("| section") and sections == {"kernel", "effect", "sweep"}
    assert any("effects=[swap]" in line for line in table) and any("published" in line for line in table)
