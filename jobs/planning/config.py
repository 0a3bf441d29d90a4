"""Sweep configuration: Hydra composition of ``conf/`` validated against a structured schema.

``load_config(overrides)`` composes ``config.yaml`` with command-line overrides (``key=value``,
``group=option``), merges it into :class:`SweepConfig` (types checked, unknown keys refused) and
checks ranges. Every problem is one :class:`~lie_sweep.errors.ConfigError` line naming the key.
``+key=value`` additions are refused: the schema is fixed. Model and dataset nodes are free-form
keyword arguments of their ``_target_`` (so users plug in their own), checked against its signature.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import re
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from lie_sweep.errors import ConfigError, first_line
from lie_sweep.field_kinds import FIELDS
from lie_sweep.task_kinds import TASKS
from storage.location import normalise_store_path

from .checks import check_target, validate
from .grids import GRIDS
from .identity import CHECKPOINT_LOCATION_KEYS, EXECUTION_KEYS, IDENTITY_KEYS, identity_of
from .schema import GROUP_CLASSES, SweepConfig, schema_fields
from .targets import TargetTrust, literal_strings, vet_config
from .user_code import add_code_dirs, code_dirs

__all__ = ["SweepConfig", "config_dir", "load_config", "compose_config", "config_from_stored", "finalize",
           "identity_of", "storage_options_of", "group_options", "REGISTRY_GROUPS", "IDENTITY_KEYS", "EXECUTION_KEYS",
           "CHECKPOINT_LOCATION_KEYS", "typed", "as_dict"]


def config_dir() -> Path:
    """The ``conf/`` directory: packaged as ``jobs.conf`` in a wheel, or beside ``jobs/`` in a checkout."""
    try:
        packaged = importlib.resources.files("jobs.conf")
        if packaged.joinpath("config.yaml").is_file():
            return Path(str(packaged))
    except ModuleNotFoundError:
        pass
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if (checkout / "config.yaml").is_file():
        return checkout
    raise ConfigError("lie-sweep's configs are missing", expected="conf/config.yaml beside the package",
                      found="none", fix="reinstall lie-sweep")


def _one_line(exc: BaseException) -> str:
    return first_line(exc, 300)


FREE_FORM = ("model", "data")  # nodes that are a _target_'s keyword arguments: any key may be set or deleted


def _parse(overrides: Sequence[str]) -> list:
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError("cannot parse override", expected="key=value or group=option", found=_one_line(exc),
                          fix="see `lie-sweep run --help`") from None


def _free_form(o: Any) -> bool:
    """Whether override ``o`` sets or deletes a key of a model's or dataset's keyword arguments."""
    return o.key_or_group.split(".", 1)[0] in FREE_FORM and "." in o.key_or_group


def _check_overrides(overrides: Sequence[str]) -> None:
    for o in _parse(overrides):
        if o.key_or_group in FREE_FORM and o.value() is None and not o.is_delete():
            raise ConfigError(f"{o.key_or_group}=null leaves the sweep without a {o.key_or_group}",
                              expected=f"a {o.key_or_group} group option, or {o.key_or_group}._target_=CLASS",
                              found=o.input_line, fix=f"pick one: {' | '.join(group_options(o.key_or_group))}, or "
                              f"{o.key_or_group}._target_=mypkg.Class with its keyword arguments")
        if _free_form(o):
            continue
        if o.is_add() or o.is_force_add():
            raise ConfigError(f"unknown key {o.key_or_group!r} (additions are refused)",
                              expected="an existing key, set with key=value", found=o.input_line,
                              fix="drop the '+'; see `lie-sweep run --help` for the keys")
        if o.is_delete():
            raise ConfigError(f"cannot delete key {o.key_or_group!r}", expected="key=value", found=o.input_line,
                              fix="set the key to a value instead")


# config groups whose options are a registry's names (no YAML file each): group -> (registry, key it sets)
REGISTRY_GROUPS = {"pairs": (GRIDS, "mode"), "field": (FIELDS, "name"), "task": (TASKS, "name")}


GROUPS = ("model", "data", "task", "checkpoints", "examples", "pairs", "field", "storage", "derived", "cluster",
          "experiment")


def known_keys() -> list[str]:
    """Every key a user may set: the schema's, and the model's and data's from their group options' files."""
    keys = [key for key, _, _ in schema_fields()]
    for group in ("model", "data"):
        for path in (config_dir() / group).glob("*.yaml"):
            node = OmegaConf.load(path)
            keys += [f"{group}.{k}" for k in node if isinstance(k, str)]
    return sorted(set(keys))


def did_you_mean(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to a mistyped ``word`` (difflib ratio ≥ 0.75), or None."""
    near = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return near[0] if near else None


def group_options(group: str) -> list[str]:
    """The options of a config group: a registry's names, or the group's YAML files in ``conf/``."""
    if group in REGISTRY_GROUPS:
        return list(REGISTRY_GROUPS[group][0])
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def _registry_option(group: str, option: Any) -> dict[str, Any] | None:
    """The node a registry group's option stands for (``pairs=tournament`` is ``pairs.mode=tournament``)."""
    if group not in REGISTRY_GROUPS or not isinstance(option, str):
        return None
    registry, key = REGISTRY_GROUPS[group]
    return {key: option} if option in registry else None


def _as_free_form(overrides: Sequence[str]) -> list[str]:
    """``overrides`` with every ``model.*`` / ``data.*`` key settable (``++``: added or replaced) and, where
    ``model._target_`` (``data._target_``) is given without a ``model=`` option, the group's default keys left out,
    so that a class of the user's own gets exactly the keyword arguments the user gives."""
    parsed = _parse(overrides)
    chosen = {o.key_or_group for o in parsed if o.key_or_group in FREE_FORM}
    out = [f"{node}=custom" for node in FREE_FORM if node not in chosen
           and any(o.key_or_group == f"{node}._target_" and not o.is_delete() for o in parsed)]
    for o in parsed:
        if _free_form(o) and not o.is_delete() and not o.is_force_add():
            out.append("++" + o.input_line.lstrip("+"))
        else:
            out.append(o.input_line)
    return out


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """``conf/`` composed with ``overrides`` by Hydra, not yet validated (nothing is imported or built: a
    multirun index's jobs are composed so to check them, :func:`jobs.planning.multirun.check_job_store`)."""
    store = ConfigStore.instance()
    store.store(name="lie_sweep_schema", node=SweepConfig)  # the base every option merges into
    for group, (registry, key) in REGISTRY_GROUPS.items():  # registered choices are group options too
        for name in registry:
            store.store(group=group, name=name, node={key: name})
    for node in FREE_FORM:  # a class of the user's own: no keys but theirs (see _as_free_form)
        store.store(group=node, name="custom", node={})
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="lie-sweep"):
            return compose(config_name="config", overrides=_as_free_form(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        line = _one_line(exc)
        if "Key '" in line and "is not in struct" in line or "Could not override" in line:
            key = line.split("'")[1] if "'" in line else line
            near = did_you_mean(key, known_keys())
            raise ConfigError(f"unknown key {key!r}", expected="a key of lie-sweep's config", found=line,
                              fix=(f"did you mean {near}? " if near else "")
                              + "see `lie-sweep run --help` for the groups and keys") from None
        missing = re.search(r"Could not find '([\w.-]+)/([^']+)'", line)
        if missing and missing.group(1) in GROUPS:  # a group option that does not exist: name the ones that do
            group, option = missing.groups()
            options = group_options(group)
            near = did_you_mean(option, options)
            raise ConfigError(f"unknown {group} option {option!r}", expected=" | ".join(options), found=line,
                              fix=f"set {group}={near or options[0]}") from None
        if line.startswith("Error merging override "):  # a value the schema's type refuses (checked at compose)
            key = line[len("Error merging override "):].split("=", 1)[0]
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise ConfigError(f"bad value for {key}", expected="a value of the schema's type", found=_one_line(cause),
                              fix=f"check {key} in `lie-sweep run --help`") from None
        raise ConfigError("cannot compose the config", expected="existing groups and options", found=line,
                          fix="see `lie-sweep run --help`") from None
    finally:
        GlobalHydra.instance().clear()


def finalize(composed: DictConfig | dict) -> DictConfig:
    """Merge into the schema (types, unknown keys), check targets and ranges, normalise ``storage.path``
    (:func:`storage.location.normalise_store_path`); read-only result."""
    schema = OmegaConf.structured(SweepConfig)
    try:
        cfg = OmegaConf.merge(schema, composed)
        OmegaConf.set_struct(cfg, True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"bad value for {key}" if "Key" not in type(exc).__name__ else f"unknown key {key}",
                          expected="a value of the schema's type", found=_one_line(exc),
                          fix=f"check {key} in `lie-sweep run --help`") from None
    add_code_dirs(code_dirs(cfg.cluster.code_dirs))  # the user's own modules (jobs.planning.user_code)
    for node in ("model", "data"):
        check_target(cfg, node)
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        key = sorted(missing)[0]
        raise ConfigError(f"missing value for {key}", expected="a value", found="??? (required)",
                          fix=f"add {key}=... to the command")
    validate(cfg)
    cfg.storage.path = normalise_store_path(cfg.storage.path)  # every decision about the store is made on this
    OmegaConf.set_readonly(cfg, True)
    return cfg


_OPTIONS = "storage.options."


def storage_options_of(overrides: Sequence[str]) -> dict[str, Any]:
    """``storage.options.KEY=VALUE`` overrides as a dict (fsspec options: free-form keys)."""
    picked = [o for o in overrides if o.startswith(_OPTIONS)]
    return {o.key_or_group[len(_OPTIONS):]: o.value() for o in OverridesParser.create().parse_overrides(picked)}


def load_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/`` with overrides, merge into the schema and validate (see the module docstring)."""
    _check_overrides(overrides)
    composed = compose_config([o for o in overrides if not o.startswith(_OPTIONS)])
    with open_dict(composed):
        for key, value in storage_options_of(overrides).items():
            composed.storage.options[key] = value
    return finalize(composed)


def config_from_stored(stored: dict, overrides: Sequence[str] = (), *, trust: TargetTrust | None = None,
                       users_own: bool = False) -> DictConfig:
    """A store's resolved config with ``key=value`` (or ``group=option``) overrides applied, validated.

    What it names is data, never code: its strings are read literally (:func:`~jobs.planning.targets.
    literal_strings`) and, before anything is imported, its model and dataset are held to the rules of
    :mod:`jobs.planning.targets` (``trust``: what the user vouches for; by default the classes ``overrides``
    name). ``users_own``: the config is a file of the user's own (``run --config``, as ``submit`` ships it),
    vetted like a command line."""
    _check_overrides(overrides)
    cfg = OmegaConf.merge(OmegaConf.structured(SweepConfig), stored if users_own else literal_strings(stored))
    OmegaConf.set_struct(cfg, True)
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    for o in parsed:
        key, value = o.key_or_group, o.value()
        group_file = config_dir() / key / f"{value}.yaml"
        registered = _registry_option(key, value)
        try:
            if "." not in key and (registered is not None or isinstance(value, str) and group_file.is_file()):
                node = OmegaConf.create(registered) if registered is not None else (
                    OmegaConf.load(group_file) or OmegaConf.create({}))
                if "defaults" in node:
                    raise ConfigError(f"cannot apply {o.input_line} to a stored sweep",
                                      expected="a plain config group option", found=f"{key}/{value} with defaults",
                                      fix="set its keys one by one") from None
                if key in GROUP_CLASSES:  # option files hold only what differs from the schema's defaults
                    node = OmegaConf.merge(OmegaConf.structured(GROUP_CLASSES[key]), node)
                with open_dict(cfg):
                    cfg[key] = node
            elif key.startswith(_OPTIONS):
                with open_dict(cfg):
                    cfg.storage.options[key[len(_OPTIONS):]] = value
            else:
                OmegaConf.update(cfg, key, value, merge=False)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"unknown key {key!r}" if "Key" in type(exc).__name__ else f"bad value for {key}",
                              expected="a key of lie-sweep's config", found=_one_line(exc),
                              fix="see `lie-sweep run --help` for the groups and keys") from None
    if not users_own:  # before finalize imports the targets to check their keywords
        vet_config(OmegaConf.to_container(cfg, resolve=False),
                   trust if trust is not None else TargetTrust.from_overrides(overrides))
    return finalize(cfg)


def typed(cfg: DictConfig) -> SweepConfig:
    """A validated config as the schema's dataclass instance (what a sweep's spec and workers hold)."""
    return OmegaConf.to_object(cfg)


def as_dict(config: SweepConfig) -> dict[str, Any]:
    """A typed config as plain JSON-ready data (what a store records)."""
    return dataclasses.asdict(config)
