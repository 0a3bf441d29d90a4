"""Ordered Hessian-vector products of update fields, batched two ways, by one of several modes.

An ordered HVP is M[e, t] = J_{u_e}(θ) v_t: example e's field differentiated along tangent v_t (the
kernel uses v_t = u_t). :func:`hvp_batches` returns the two vmapped evaluations the kernel's call
plan needs (see :class:`lie_sweep.kernel.HVPCall`):

* ``block(x, y, V)``: examples (E,) × shared tangents (T,) → (E, T, …);
* ``flat(x, y, V)``: combinations c of example x[c] along V[c] → (C, …).

Modes (same values up to floating-point reassociation):

* ``forward``: forward-over-reverse, ``jvp`` of u_e(θ) = direction(θ, ∇L_e(θ)); works for any field.
* ``reverse``: reverse-over-reverse, ``vjp`` of ∇L_e at θ (one forward and backward per example,
  shared by its tangents), pulled back along each tangent: H_e v, since the Hessian is symmetric;
  then J_{u_e} v = direction(θ, H_e v). Needs a field whose direction is linear in the gradient and
  independent of θ (:attr:`UpdateField.linear`: SGD, a fixed preconditioner).
* ``compile``: ``reverse``'s batches through ``torch.compile`` (same field requirement). The forward
  mode is not compiled: with torch 2.13, dynamo fails to trace ``jvp`` of ``grad`` (an internal assert
  on ``_fw_primal``). Each new batch shape compiles once (tens of seconds on a CPU), so the mode pays
  off on long sweeps only, and it is never chosen by ``hvp=auto``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from storage.registry import Registry

from .errors import ConfigError

if TYPE_CHECKING:  # the registry (names, help: the schema, `lie-sweep run --help`) loads without torch
    import torch

    from .fields import FunctionalModel, Params, UpdateField

__all__ = ["HVPMode", "HVP_MODES", "HVP_CHOICES", "HVPBatches", "hvp_batches", "check_hvp_mode"]

Batched = Callable[..., Any]  # (x, y, tangents) -> HVPs: see the module docstring


@dataclass(frozen=True)
class HVPBatches:
    """The kernel's two batched evaluations of ordered HVPs (see the module's docstring)."""

    mode: str
    block: Batched
    flat: Batched


@dataclass(frozen=True)
class HVPMode:
    """An HVP mode (``hvp=``): ``batches(fmodel, params, field)`` builds its :class:`HVPBatches`; ``linear_only``
    when it differentiates only fields linear in the gradient (:attr:`UpdateField.linear`)."""

    name: str
    help: str
    batches: Callable[["FunctionalModel", "Params", "UpdateField"], HVPBatches]
    linear_only: bool = False


def check_hvp_mode(mode: str, field: UpdateField) -> None:
    """One error line when ``mode`` is unknown or cannot differentiate ``field``."""
    if HVP_MODES[mode].linear_only and not field.linear:
        raise ConfigError(f"hvp={mode} needs a field linear in the gradient",
                          expected="a field whose direction(θ, g) is linear in g and independent of θ (sgd, adam)",
                          found=f"field {field.name!r}", fix="use hvp=forward")


def _forward(fmodel: FunctionalModel, params: Params, field: UpdateField) -> HVPBatches:
    from torch.func import jvp, vmap

    def ordered(x: torch.Tensor, y: torch.Tensor, tangent: Params) -> Params:
        return jvp(lambda p: field.value(fmodel, p, x, y), (params,), (tangent,))[1]

    return HVPBatches("forward", block=vmap(vmap(ordered, in_dims=(None, None, 0)), in_dims=(0, 0, None)),
                      flat=vmap(ordered))


def _reverse(fmodel: FunctionalModel, params: Params, field: UpdateField, mode: str = "reverse") -> HVPBatches:
    from torch.func import grad, vjp, vmap

    def along(x: torch.Tensor, y: torch.Tensor) -> Callable[[Params], Params]:
        # one forward + backward of example x; its pullback H_x v for any v
        _, pull = vjp(lambda p: grad(fmodel.example_loss)(p, x, y), params)
        return lambda v: field.direction(params, pull(v)[0])

    def one(x: torch.Tensor, y: torch.Tensor, tangents: Params) -> Params:
        return vmap(along(x, y))(tangents)

    return HVPBatches(mode, block=vmap(one, in_dims=(0, 0, None)), flat=vmap(lambda x, y, v: along(x, y)(v)))


def _compiled(fmodel: FunctionalModel, params: Params, field: UpdateField) -> HVPBatches:
    import torch

    rev = _reverse(fmodel, params, field, "compile")
    return HVPBatches("compile", block=torch.compile(rev.block), flat=torch.compile(rev.flat))


HVP_MODES: Registry[HVPMode] = Registry("hvp", (
    HVPMode("forward", "forward-over-reverse: jvp of the field u_e(θ) (any field)", _forward),
    HVPMode("reverse", "reverse-over-reverse: one vjp of the gradient per example, shared by its tangents "
                       "(fields linear in the gradient)", _reverse, linear_only=True),
    HVPMode("compile", "reverse through torch.compile (compiles once per batch shape)", _compiled, linear_only=True),
), what="HVP mode", error=ConfigError)

# what ``hvp=`` accepts: a mode, or ``auto`` (the fastest that agrees with forward, timed when a store is created)
HVP_CHOICES = ("auto", *HVP_MODES)


def hvp_batches(fmodel: FunctionalModel, params: Params, field: UpdateField, mode: str = "forward") -> HVPBatches:
    """The block and flat evaluations of J_{u_e}(θ) v at ``params`` by ``mode`` (module docstring).

    Inputs ``x``/``y`` carry one example per row; tangents are dicts shaped like ``params`` with the
    batch dimensions described above. Call under ``torch.no_grad()`` and the module's eval mode.
    """
    check_hvp_mode(mode, field)
    return HVP_MODES[mode].batches(fmodel, params, field)
