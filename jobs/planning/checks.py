"""The checks of a composed config that its schema's field metadata cannot express: a model's or dataset's
keys against its ``_target_``'s signature, and the checks that relate several keys (the grids' own from
:data:`jobs.planning.grids.GRIDS`). Each problem is one :class:`~lie_sweep.errors.ConfigError` line.
"""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lie_sweep.effects import resolve_effects
from lie_sweep.errors import ConfigError, first_line
from lie_sweep.field_kinds import FIELDS
from storage.codecs import MANTISSA_BITS

from .grids import GRIDS
from .schema import check_fields
from .task_size import check_per_task

__all__ = ["check_target", "validate", "keep_globs", "sweep_effects", "swap_epsilons"]


def _one_line(exc: BaseException) -> str:
    return first_line(exc, 300)


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted, throw_on_missing=False)


def check_target(cfg: DictConfig, node: str) -> None:
    """The node's ``_target_`` is importable and every other key is one of its keyword arguments."""
    from hydra.utils import get_object

    sub = cfg[node]
    if not isinstance(sub, DictConfig) or "_target_" not in sub:
        raise ConfigError(f"{node} needs a _target_", expected=f"{node}._target_: a class path", found=str(sub),
                          fix=f"pick a {node} config group option, e.g. {node}=...")
    try:
        target = get_object(sub["_target_"])
    except Exception as exc:
        raise ConfigError(f"{node}._target_ cannot be imported", expected="an importable class or function",
                          found=repr(sub["_target_"]), fix=_one_line(exc)) from None
    params = inspect.signature(target).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    for key in sub:
        if key != "_target_" and key not in params:
            import difflib

            near = difflib.get_close_matches(str(key), [k for k in params if k != "self"], n=1, cutoff=0.75)
            raise ConfigError(f"unknown key '{node}.{key}'",
                              expected=f"one of {sorted(k for k in params if k != 'self')}",
                              found=repr(key), fix=f"did you mean {node}.{near[0]}?" if near else
                              "remove it or check the spelling")
    for key in sub:
        if OmegaConf.is_missing(sub, key):
            raise ConfigError(f"missing value for {node}.{key}", expected="a value", found="??? (required)",
                              fix=f"add {node}.{key}=... to the command")


def validate(cfg: DictConfig) -> None:
    """Each key's own check (from the schema's field metadata), then the checks that relate keys."""
    check_fields(cfg)
    mantissa = MANTISSA_BITS[cfg.precision]
    if cfg.storage.keepbits > mantissa:
        raise ConfigError("bad value for storage.keepbits", expected=f"an integer in 1..{mantissa} (mantissa bits of "
                          f"{cfg.precision})", found=repr(cfg.storage.keepbits), fix="set storage.keepbits accordingly")
    betas = list(cfg.checkpoints.betas)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError("bad value for checkpoints.betas", expected="two numbers in [0, 1)", found=repr(betas),
                          fix="e.g. checkpoints.betas=[0.8,0.999]")
    keep_globs(cfg.storage.keep)
    check_per_task(cfg.pairs.per_task)
    k, s = cfg.storage.sketch, cfg.storage.sketch_nonzeros
    if k is not None and (k % s or k < s):
        raise ConfigError("bad value for storage.sketch", expected=f"a multiple of storage.sketch_nonzeros ({s})",
                          found=str(k), fix=f"e.g. storage.sketch={max(s, k // s * s)}")
    required = {"glob": "checkpoints.glob", "list": "checkpoints.paths"}
    src = cfg.checkpoints.source
    if src in required and not _get(cfg, required[src]):
        raise ConfigError(f"missing value for {required[src]}", expected=f"a value with checkpoints={src}",
                          found="none", fix=f"add {required[src]}=... to the command")
    if cfg.examples.mode == "list":
        idx = list(cfg.examples.indices)
        if len(idx) < 2 or len(set(idx)) != len(idx) or min(idx) < 0:
            raise ConfigError("bad value for examples.indices", expected="two or more distinct indices >= 0",
                              found=str(idx), fix="e.g. examples.indices=[0,5,9]")
    elif cfg.examples.count < 2:
        raise ConfigError("bad value for examples.count", expected="2 or more", found=str(cfg.examples.count),
                          fix="set examples.count=8")
    GRIDS[cfg.pairs.mode].check(cfg.pairs)  # the grid's own checks of keys that only make sense together
    check_units(cfg)
    effects = sweep_effects(cfg)
    if swap_epsilons(cfg.swap_epsilon) and "swap" not in effects:
        raise ConfigError("swap_epsilon without the swap effect", expected="effects that include swap",
                          found=f"effects={list(effects)}", fix="add swap to effects, e.g. effects=[bracket,swap]")


UNIT_GRIDS = ("all", "tournament")  # grids over minibatches: the others name or rank dataset examples


def check_units(cfg: DictConfig) -> None:
    """``pairs.unit=batch`` needs ``pairs.batch_size`` dividing the examples' count, and a grid over items
    (all, tournament); ``batch_size`` alone is refused (it would be silently ignored)."""
    pc = cfg.pairs
    if pc.unit != "batch":
        if pc.batch_size is not None:
            raise ConfigError("pairs.batch_size without minibatches", expected="pairs.unit=batch with it",
                              found=f"pairs.batch_size={pc.batch_size}", fix="add pairs.unit=batch, or drop batch_size")
        return
    if pc.batch_size is None:
        raise ConfigError("missing value for pairs.batch_size", expected="examples per minibatch with pairs.unit=batch",
                          found="none", fix="add pairs.batch_size=8 (a divisor of the examples' count)")
    if pc.mode not in UNIT_GRIDS:
        raise ConfigError("this grid cannot pair minibatches",
                          expected=f"pairs={' or pairs='.join(UNIT_GRIDS)} with pairs.unit=batch",
                          found=f"pairs={pc.mode}", fix="pick one of those grids, or drop pairs.unit")
    count = len(cfg.examples.indices) if cfg.examples.mode == "list" else cfg.examples.count
    if count % pc.batch_size or count // pc.batch_size < 2:
        raise ConfigError("the examples do not make minibatches", expected=f"two or more whole minibatches of "
                          f"{pc.batch_size}", found=f"{count} examples", fix=f"set examples.count to a multiple of "
                          f"{pc.batch_size} (e.g. {max(2, count // pc.batch_size) * pc.batch_size}), or another "
                          "pairs.batch_size")


def sweep_effects(cfg: Any) -> tuple[str, ...]:
    """The effects a config computes (:func:`lie_sweep.effects.resolve_effects` of ``effects`` under its field):
    the one place a config's effects are resolved."""
    return resolve_effects(cfg.effects, FIELDS[cfg.field.name].steps_optimizer)


def swap_epsilons(value: Any) -> list[float]:
    """``swap_epsilon`` as a list of distinct step sizes > 0 ([] for null: the sweep's default, resolved when the
    checkpoints are read)."""
    if value is None:
        return []
    values = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else [value]
    if not values or len(set(values)) != len(values) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
        raise ConfigError("bad value for swap_epsilon", expected="a step size > 0, or a list of distinct ones",
                          found=repr(OmegaConf.to_container(value) if OmegaConf.is_list(value) else value),
                          fix="e.g. swap_epsilon=0.005 or swap_epsilon=[0.005,0.0005]")
    return [float(v) for v in values]


def keep_globs(keep: Any) -> list[str] | None:
    """``storage.keep`` as tensor-name globs: None for ``all``, [] for ``summary``, else the globs."""
    if OmegaConf.is_list(keep) or isinstance(keep, (list, tuple)):
        globs = [str(g).strip() for g in keep]
    elif isinstance(keep, str):
        if keep == "all":
            return None
        if keep == "summary":
            return []
        globs = [g.strip() for g in keep.split(",")]
    else:
        globs = [""]
    if not globs or any(not g for g in globs):
        raise ConfigError("bad value for storage.keep", expected="all | summary | tensor-name globs",
                          found=repr(keep if not OmegaConf.is_list(keep) else list(keep)),
                          fix="e.g. storage.keep=summary or storage.keep='[fc.*,layer4.*]'")
    return globs


