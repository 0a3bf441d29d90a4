"""What a command may import when it builds a model or a dataset from a config its user did not write.

A store's config (``arrays.zarr/zarr.json``) and a multirun index (``multirun.json``) are data: stores are
shared through object storage and archives, and opening one must be as safe as loading a checkpoint with
``weights_only=True``. Their ``model`` and ``data`` nodes name classes by ``_target_``, so before anything
named there is imported or called, :func:`vet_config` (a config) or :func:`vet_overrides` (an index's
``key=value`` overrides) holds it to these rules:

* lie-sweep's own classes are built: a ``_target_`` ``lie_sweep.MODULE.CLASS`` naming a class defined in
  the ``lie_sweep`` package (importing this package runs no code a store chose);
* a class the user's *current* command line names is built: ``model._target_=mypkg.Net`` given to
  ``resume`` (the same key set to the same value; the identity check then sees no change);
* ``--trust-store`` builds the store's top-level targets too, each listed (printed) before it is imported;
* a nested ``_target_`` inside a node's arguments, and Hydra's other special keys (``_args_``,
  ``_partial_``, ``_recursive_``, ``_convert_``), are never followed from stored metadata, ``--trust-store``
  or not, unless the command line sets that same key;
* whatever is built must be a class of the expected kind (a model: a ``torch.nn.Module`` subclass; a
  dataset: a map-style class with ``__getitem__`` and ``__len__``); a function or any other object is
  refused, after its module was imported only where the rules above allowed it.

Anything else is one :class:`~lie_sweep.errors.ConfigError` line naming the key, the target and the fix.
:func:`literal_strings` keeps OmegaConf interpolations (``${oc.env:…}``) in stored strings literal: a
stored config was resolved when it was written, so an interpolation in one was planted.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from lie_sweep.errors import ConfigError, first_line

__all__ = ["TargetTrust", "vet_config", "vet_overrides", "literal_strings", "is_own_target", "NODES",
           "HYDRA_KEYS"]

NODES = ("model", "data")  # the config nodes built by _target_
HYDRA_KEYS = frozenset({"_target_", "_args_", "_partial_", "_recursive_", "_convert_"})
_KIND_TEXT = {"model": "a torch.nn.Module subclass", "data": "a map-style dataset class (__getitem__, __len__)"}


@dataclass(frozen=True)
class TargetTrust:
    """What the user of this command vouches for: ``named``, the dotted keys their command line sets (with
    the values it sets them to); ``trust_store``, whether they passed ``--trust-store``; ``log``, where the
    list of what ``--trust-store`` imports is printed; ``source``, what the vetted config came from, as
    error lines name it; ``takes_overrides``, whether the command accepts ``key=value`` (its fixes say so)."""

    named: Mapping[str, Any] = field(default_factory=dict)
    trust_store: bool = False
    log: Callable[[str], None] | None = None
    source: str = "the store's config"
    takes_overrides: bool = False

    @classmethod
    def from_overrides(cls, overrides: Sequence[str] = (), **kwargs: Any) -> "TargetTrust":
        """The trust a command line's ``key=value`` overrides give (group options such as ``model=mlp``
        select lie-sweep's own files and need none)."""
        return cls(named=_named(overrides), takes_overrides=True, **kwargs)

    def fix(self, key: str) -> str:
        """How the user vouches for ``key``: naming it on the command line (where the command takes
        overrides), or ``--trust-store`` (top-level targets only)."""
        named = f"set {key}=... on the command line if you mean it" if self.takes_overrides else ""
        if not key.endswith("._target_") or key.count(".") > 1:
            return named or "lie-sweep never follows it from a store; rebuild the store with a plain config"
        return (named + ", or " if named else "") + "pass --trust-store to import what the store names (listed first)"


def _parsed(overrides: Sequence[str]) -> dict[str, Any]:
    """{key or group: value} of ``key=value`` overrides ({} for malformed ones: they are reported where they
    are applied)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not overrides:
        return {}
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 - any parse error
        return {}
    return {o.key_or_group: o.value() for o in parsed}


def _named(overrides: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in _parsed(overrides).items() if "." in k}


def _expected_kind(obj: Any, node: str) -> bool:
    if not inspect.isclass(obj):
        return False
    if node == "model":
        import torch

        return issubclass(obj, torch.nn.Module)
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__")


def is_own_target(target: Any, node: str) -> bool:
    """Whether ``target`` names a class of lie-sweep's own, of ``node``'s kind (``lie_sweep.MODULE.CLASS``,
    defined in that package); only modules of the ``lie_sweep`` package are imported to tell."""
    if not isinstance(target, str) or not target.startswith("lie_sweep."):
        return False
    module_name, _, name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    if not module.__name__.startswith("lie_sweep"):
        return False
    obj = getattr(module, name, None)
    return (inspect.isclass(obj) and str(getattr(obj, "__module__", "")).startswith("lie_sweep.")
            and _expected_kind(obj, node))


def _import_trusted(target: str, node: str, trust: TargetTrust) -> None:
    """``--trust-store``: import ``target`` (listed first) and check that it is a class of ``node``'s kind."""
    from hydra.utils import get_object

    if trust.log is not None:
        trust.log(f"--trust-store: importing {node}._target_ {target} named by {trust.source}")
    try:
        obj = get_object(target)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the same one line
        raise ConfigError(f"{node}._target_ of {trust.source} cannot be imported", expected="an importable class",
                          found=f"{target!r} ({first_line(exc, 120)})",
                          fix=f"install the package that defines it, or pass {node}._target_=... yourself") from None
    if not _expected_kind(obj, node):
        raise ConfigError(f"{node}._target_ of {trust.source} is not {_KIND_TEXT[node]}",
                          expected=_KIND_TEXT[node], found=f"{target!r}: {type(obj).__name__}",
                          fix="lie-sweep builds only models and datasets from a store's config")


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(dotted key, last key, value) of every mapping key under ``value``, depth first."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            dotted = f"{path}.{key}"
            yield dotted, str(key), sub
            yield from _walk(sub, dotted)
    elif isinstance(value, (list, tuple)):
        for k, sub in enumerate(value):
            yield from _walk(sub, f"{path}[{k}]")


def _refuse_special(dotted: str, value: Any, trust: TargetTrust) -> ConfigError:
    return ConfigError(f"{trust.source} sets {dotted}, which lie-sweep never follows from stored metadata",
                       expected="a _target_ at the top of model or data, with plain keyword arguments",
                       found=f"{dotted}={first_line(repr(value), 80)}", fix=trust.fix(dotted))


def _vet_target(node: str, target: Any, trust: TargetTrust) -> None:
    if trust.named.get(f"{node}._target_") == target or is_own_target(target, node):
        return
    if trust.trust_store:
        _import_trusted(str(target), node, trust)
        return
    raise ConfigError(f"{trust.source} names {node}._target_ {first_line(repr(target), 80)}, which lie-sweep does "
                      "not import from a store", expected="one of lie-sweep's own classes, or a class you name on "
                      "this command line", found=f"{node}._target_={first_line(repr(target), 80)}",
                      fix=trust.fix(f"{node}._target_"))


def vet_config(config: Mapping[str, Any], trust: TargetTrust) -> None:
    """Refuse, before anything is imported, a config whose ``model`` or ``data`` names what the rules of the
    module docstring do not allow; imports only lie-sweep's own modules, and with ``--trust-store`` the
    store's top-level targets (listed first)."""
    for node in NODES:
        sub = config.get(node) if isinstance(config, Mapping) else None
        if not isinstance(sub, Mapping):
            continue
        for dotted, key, value in _walk(sub, node):
            top = dotted == f"{node}.{key}"
            if key in HYDRA_KEYS and not (top and key == "_target_") and trust.named.get(dotted) != value:
                raise _refuse_special(dotted, value, trust)
        if "_target_" in sub:
            _vet_target(node, sub["_target_"], trust)


def vet_overrides(overrides: Sequence[str], trust: TargetTrust) -> None:
    """:func:`vet_config` for ``key=value`` overrides read from metadata (a multirun index's): a key that sets
    a ``_target_`` or another of Hydra's special keys under ``model``/``data`` is held to the same rules."""
    for key, value in _parsed(overrides).items():
        node, _, rest = key.partition(".")
        if node not in NODES:
            continue
        if isinstance(value, (Mapping, list, tuple)):  # model={...} or model.x={_target_: ...}: every key inside
            vet_config({node: value if not rest and isinstance(value, Mapping) else {rest or "value": value}}, trust)
            continue
        last = rest.rsplit(".", 1)[-1]
        if last in HYDRA_KEYS and trust.named.get(key) != value:
            if rest == "_target_":
                _vet_target(node, value, trust)
            else:
                raise _refuse_special(key, value, trust)


def literal_strings(value: Any) -> Any:
    """``value`` with every ``${`` of its strings escaped (``\\${``), so OmegaConf reads them as text, never as
    an interpolation or a resolver call."""
    if isinstance(value, str):
        return value.replace("${", "\\${") if "${" in value else value
    if isinstance(value, Mapping):
        return {k: literal_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [literal_strings(v) for v in value]
    return value
