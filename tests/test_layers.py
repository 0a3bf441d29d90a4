"""The layers: storage imports neither torch nor ray (nor lie_sweep or jobs); lie_sweep imports no
ray, no jobs, and reaches storage only to re-export the lazy reader, for the error root and for the
registry type every choice is kept in; jobs composes them."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "storage": {"torch", "ray", "lie_sweep", "jobs"},
    "lie_sweep": {"ray", "jobs", "zarr", "storage"},
}
# lie_sweep reaches storage only here: the reader's re-export, and the root of the error hierarchy
ALLOWED = {"lie_sweep/reader.py": {"storage"}, "lie_sweep/errors.py": {"storage"}}
# ... and anywhere for the (pure Python) registry of choices
ALLOWED_MODULES = {"storage.registry"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names if alias.name not in ALLOWED_MODULES}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module not in ALLOWED_MODULES:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_forbidden_layer(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        forbidden = FORBIDDEN[package] - ALLOWED.get(rel, set())
        bad = imported_roots(path) & forbidden
        assert not bad, f"{rel} imports {sorted(bad)}"


def test_importing_each_layer_loads_only_what_it_may():
    code = (
        "import sys, importlib, pkgutil\n"
        "import storage\n"
        "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'storage pulled in torch/ray'\n"
        "import lie_sweep\n"
        "assert 'zarr' not in sys.modules, 'importing lie_sweep loaded zarr'\n"
        "for m in pkgutil.walk_packages(lie_sweep.__path__, 'lie_sweep.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'ray' not in sys.modules, 'lie_sweep pulled in ray'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
