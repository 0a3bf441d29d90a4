"""The update fields a sweep can bracket (``field=NAME``): one registry, name → how to build the field
from a checkpoint's saved optimizer state.

=============  =====================================================================  ==================
name           field u_x                                                              needs
=============  =====================================================================  ==================
``sgd``        −∇L_x                                                                  nothing
``adam``       −P∇L_x, P = 1/(√v̂ + eps) frozen from the checkpoint's Adam state        Adam state
``optimizer``  −∇L_x, plus the exact order expansion (Δ₁, Δ₂) of the checkpoint's own  any torch.optim
               saved optimizer (:mod:`lie_sweep.order`)                               state
=============  =====================================================================  ==================

A new field is one :class:`FieldKind` registered in :data:`FIELDS`; the config schema, the command
line's help and ``plan`` take its name and help from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from storage.registry import Registry

from .errors import ConfigError

if TYPE_CHECKING:  # the registry's names and help load without torch (`lie-sweep run --help`, the schema)
    from .fields import UpdateField

__all__ = ["FieldKind", "FIELDS", "build_field"]


@dataclass(frozen=True)
class FieldKind:
    """A field choice: ``build(optimizer_state, param_names, options)`` returns its :class:`UpdateField`
    (``options``: the ``field.*`` config, read by attribute); ``needs_state`` when it reads the optimizer
    state; ``steps_optimizer`` when the sweep also takes the checkpoint's own optimizer steps."""

    name: str
    help: str
    build: Callable[[Mapping | None, Sequence[str], Any], "UpdateField"]
    needs_state: bool = False
    steps_optimizer: bool = False


def _sgd(state: Mapping | None, names: Sequence[str], options: Any) -> "UpdateField":
    from .fields import SGDField

    return SGDField()


def _adam(state: Mapping | None, names: Sequence[str], options: Any) -> "UpdateField":
    from .fields import PreconditionedField

    return PreconditionedField.from_adam_state(state, list(names), eps=options.eps)


FIELDS: Registry[FieldKind] = Registry("field", (
    FieldKind("sgd", "u = -grad L", _sgd),
    FieldKind("adam", "u = -P grad L with Adam's frozen P = 1/(sqrt(v_hat)+eps) from each checkpoint's state",
              _adam, needs_state=True),
    FieldKind("optimizer", "u = -grad L, plus the exact order expansion (order1, order2) of each checkpoint's own "
                           "saved optimizer (SGD, Adam, AdamW, Muon)",
              _sgd, needs_state=True, steps_optimizer=True),
), error=ConfigError)


def build_field(options: Any, optimizer_state: Mapping | None, param_names: Sequence[str], where: str, *,
                kind: FieldKind | None = None) -> UpdateField:
    """The field ``options.name`` names (or ``kind``, its entry resolved already) at a checkpoint whose optimizer
    state is ``optimizer_state`` (None when it saved none: one error line naming ``where`` for a field that
    needs it)."""
    kind = kind if kind is not None else FIELDS[options.name]
    if kind.needs_state and optimizer_state is None:
        raise ConfigError(f"field={kind.name} needs the optimizer's state", expected=f"optimizer state in {where}",
                          found="a checkpoint without optimizer state",
                          fix="save optimizer.state_dict() with each checkpoint, or use field=sgd")
    return kind.build(optimizer_state, param_names, options)
