"""The shape of the code: no import cycle between the project's modules, no module of ``jobs/`` over 300
lines and no function there over 60 (the exceptions below say why), and no module outside the pool that
starts it imports the Ray worker module."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lie_sweep", "storage", "jobs")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60
# functions allowed to be longer, and why (the closing note of issue 22 repeats these)
LONG_FUNCTIONS = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (at any depth of its code: lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = node.module or ""
            full = (f"{base}.{module}" if module else base) if node.level else module
            targets = [full] + [f"{full}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def test_no_import_cycle():
    mods = sources()
    graph = {name: imports_of(name, path, set(mods)) for name, path in mods.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of meaning: leave packages out
    packages = {name for name, path in mods.items() if path.name == "__init__.py"}
    graph = {n: {m for m in deps if m not in packages} for n, deps in graph.items() if n not in packages}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_only_the_pool_imports_the_worker():
    mods = sources()
    importers = {name for name, path in mods.items() if "jobs.execution.worker" in imports_of(name, path, set(mods))}
    assert importers == {"jobs.execution.pool"}, importers


def test_jobs_modules_and_functions_stay_small():
    too_long = []
    for name, path in sources().items():
        if not name.startswith("jobs"):
            continue
        lines = path.read_text().splitlines()
        if len(lines) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in LONG_FUNCTIONS:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, too_long
