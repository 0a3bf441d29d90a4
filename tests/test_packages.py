"""lie-sweep's `storage` and `jobs` share their names with other distributions: a clash is one line."""

import subprocess
import sys

import jobs
import storage


def test_own_packages_carry_their_marker():
    assert storage.__lie_sweep_package__ == "storage" and jobs.__lie_sweep_package__ == "jobs"


def test_another_storage_first_on_the_path_is_one_line(tmp_path):
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "__init__.py").write_text('"""Somebody else\'s storage."""\n')
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    lib = subprocess.run([sys.executable, "-c", "import lie_sweep"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert lib.returncode == 1 and "PackageClashError: the package 'storage' imported from" in lib.stderr
    cli = subprocess.run([sys.executable, "-m", "jobs.cli", "status", "x"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    err = cli.stderr.strip()
    assert cli.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("lie-sweep: error: the package 'storage'") and str(tmp_path / "storage") in err
    assert "pip uninstall storage" in err
