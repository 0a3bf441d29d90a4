import subprocess
import sys

import pytest

from jobs.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_demo_run_prints_tables_and_writes_checkpoints(tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "demo"), "--examples", "0,3,5,9", "--steps", "6",
                 "--save-every", "3", "--top", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "demo" / "checkpoints").iterdir()) == ["step_000003.pt", "step_000006.pt"]
    lines = out.splitlines()
    start = lines.index(next(l for l in lines if l.startswith("most order-sensitive")))
    pair_lines = lines[start + 2:start + 5]
    assert len(pair_lines) == 3
    norms = [float(l.split()[2]) for l in pair_lines]
    assert norms == sorted(norms, reverse=True) and norms[0] > 0
    assert {tuple(int(t) for t in l.split()[:2]) for l in pair_lines} <= {(a, b) for a in (0, 3, 5, 9) for b in (0, 3, 5, 9) if a < b}
    assert any(l.split()[:1] == ["6"] for l in lines)  # a row for step 6


@pytest.mark.parametrize("args, needle", [
    (["run", "--examples", "0,600", "--steps", "1", "--save-every", "1"], "found 600"),
    (["run", "--examples", "1,1", "--steps", "1"], "at least two distinct"),
    (["run", "--steps", "0"], "steps, save_every and batch_size >= 1"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, needle):
    proc = run_cli(*args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    assert needle in err and err.startswith("lie-sweep: error:")


def test_help_explains_the_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "run" in proc.stdout and "[u_i, u_j]" in proc.stdout
    proc = run_cli("run", "--help")
    assert proc.returncode == 0 and "--examples" in proc.stdout
