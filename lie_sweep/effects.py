"""The order effects a sweep can compute for each pair (``effects=[...]``): one registry, name → what it is.

==========  ===============================================================  =============================
name        per pair (i, j) at each checkpoint                               arrays (parameter-sized)
==========  ===============================================================  =============================
``bracket`` [u_i, u_j], the leading order: θ_ij − θ_ji = ε²[u_i, u_j] + O(ε³)  ``brackets`` (:mod:`.kernel`)
``swap``    θ_ij − θ_ji itself, two real steps of the field's rule in each   ``swaps`` (:mod:`.swap`)
            order at each ε of ``swap_epsilon`` (exact, no expansion)
``order``   Δ₁, Δ₂ of the checkpoint's own optimizer, Δ(ε) = εΔ₁ + ε²Δ₂ +    ``order1``, ``order2``
            O(ε³) (:mod:`.order`; ``field=optimizer`` only)
==========  ===============================================================  =============================

``effects=null`` (the default) computes the bracket, and under ``field=optimizer`` the optimizer expansion
too, as sweeps did before effects were a choice.

**A new effect is one module**: an :class:`Effect` registered in :data:`EFFECTS` that says what it computes
(``compute(worker, inputs, out)``, run by the worker on each task's example rows at the loaded checkpoint), the
parameter-sized per-pair arrays it stores (``arrays``: each (C, P, D), sharded with the task's pairs like
``brackets``, written, digested, checked and read by name: ``sweep.pair_array(name, step, i, j)``), the
``pairs``-table columns it adds (``columns``) and what ``show`` prints of it (``show(sweep)``). The registry's
entries load without torch; the sweep's spec carries the resolved entries to its workers. (The three built-in
effects keep their own arrays and steps, in ``jobs/execution/effect_steps.py``, so that their stores stay as
they were.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from storage.registry import Registry

from .errors import ConfigError

__all__ = ["Effect", "EFFECTS", "resolve_effects"]


@dataclass(frozen=True)
class Effect:
    """An effect choice: ``needs_optimizer`` when it steps the checkpoint's own saved optimizer
    (``field=optimizer``); a registered effect's own parts (see the module docstring): ``compute``, ``arrays``,
    ``columns``, ``show`` and the worker's clock ``lap`` its time is counted in."""

    name: str
    help: str
    needs_optimizer: bool = False
    compute: Callable[[Any, Any, Any], None] | None = None
    arrays: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    show: Callable[[Any], list[str]] | None = None
    lap: str = "effect_s"


EFFECTS: Registry[Effect] = Registry("effects", (
    Effect("bracket", "the leading order eps^2 [u_i, u_j] (two Hessian-vector products a pair)"),
    Effect("swap", "the exact swap theta_ij - theta_ji: two real steps of the field's rule in each order, at each "
                   "eps of swap_epsilon (two per-example gradients a pair)"),
    Effect("order", "the optimizer expansion: eps*D1 + eps^2*D2 of the checkpoint's own optimizer (field=optimizer)",
           needs_optimizer=True),
), what="effect", error=ConfigError)


def resolve_effects(effects: Sequence[str] | None, field_steps_optimizer: bool) -> tuple[str, ...]:
    """The effects a sweep computes, in registry order: ``effects`` checked (known, at least one), or for None
    the bracket (and the optimizer expansion where the field steps the optimizer)."""
    if effects is None:
        return ("bracket", "order") if field_steps_optimizer else ("bracket",)
    chosen = [EFFECTS[name].name for name in effects]
    if not chosen:
        raise ConfigError("no effect chosen", expected="at least one of " + " | ".join(EFFECTS),
                          found="effects=[]", fix="e.g. effects=[swap], or leave effects out for the bracket")
    for name in chosen:
        if EFFECTS[name].needs_optimizer and not field_steps_optimizer:
            raise ConfigError(f"effect {name} needs the checkpoint's own optimizer",
                              expected="field=optimizer", found=f"effects={list(effects)} with another field",
                              fix="set field=optimizer, or drop order from effects")
    return tuple(e.name for e in EFFECTS.values() if e.name in chosen)
