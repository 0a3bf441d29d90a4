"""The layers: storage imports neither torch nor ray; lie_sweep imports no ray and no zarr
(except its re-export of the lazy reader); jobs composes them."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "storage": {"torch", "ray", "lie_sweep", "jobs"},
    "lie_sweep": {"ray", "jobs", "zarr"},
}
# lie_sweep may reach the store only through this module, which re-exports storage's reader
READER_REEXPORT = {"lie_sweep/reader.py"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_forbidden_layer(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        forbidden = FORBIDDEN[package] - ({"zarr"} if rel in READER_REEXPORT else set())
        bad = imported_roots(path) & forbidden
        assert not bad, f"{rel} imports {sorted(bad)}"


def test_importing_each_layer_loads_only_what_it_may():
    code = (
        "import sys, importlib, pkgutil\n"
        "import storage\n"
        "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'storage pulled in torch/ray'\n"
        "import lie_sweep\n"
        "for m in pkgutil.walk_packages(lie_sweep.__path__, 'lie_sweep.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'ray' not in sys.modules, 'lie_sweep pulled in ray'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
