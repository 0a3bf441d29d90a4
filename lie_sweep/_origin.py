"""lie-sweep's top-level packages are named ``storage`` and ``jobs`` (fixed by the design card), names
that other distributions use too (PyPI has an unrelated ``storage``). Whichever is first on
``sys.path`` wins, silently, so each of lie-sweep's packages carries a marker and is checked when
:mod:`lie_sweep` (and so the CLI and :func:`lie_sweep.open_sweep`) is imported. Standard library only:
it must work when ``storage`` is somebody else's.
"""

from __future__ import annotations

import importlib

__all__ = ["PackageClashError", "require_own_package", "MARKER"]

MARKER = "__lie_sweep_package__"


class PackageClashError(ImportError):
    """A top-level package lie-sweep needs is another distribution's; the message is one line."""


def require_own_package(name: str) -> None:
    """Import the top-level package ``name`` and check it is lie-sweep's (its marker names it)."""
    module = importlib.import_module(name)
    if getattr(module, MARKER, None) == name:
        return
    where = getattr(module, "__file__", None) or list(getattr(module, "__path__", []) or ["?"])[0]
    raise PackageClashError(
        f"the package {name!r} imported from {where} is not lie-sweep's; expected lie-sweep's own {name} package; "
        f"found another distribution's {name} first on sys.path (fix: uninstall it, e.g. "
        f"`pip uninstall {name}` after `pip show {name}` names it, or use a fresh virtual environment)")
