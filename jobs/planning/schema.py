"""The sweep config's schema: the one place for each key's default, help text and check.

One dataclass per config group (kronfluence's ``arguments.py`` style: ``field(default=…,
metadata={"help": …})``). A field's metadata may also say ``choices`` (allowed values), ``min`` /
``max`` (inclusive bounds) or ``gt`` (an exclusive lower bound); :func:`check_fields` checks them
all, and ``lie-sweep run --help`` prints every key from the same metadata. The YAML option files
in ``conf/`` hold only what differs from these defaults (the option's name, ``_target_`` and
keyword arguments for models and data), and experiment presets only override. Checks that relate
several keys live in :func:`jobs.planning.config.finalize`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union, get_args, get_origin, get_type_hints

from omegaconf import MISSING, DictConfig, OmegaConf

from lie_sweep.effects import EFFECTS
from lie_sweep.errors import ConfigError
from lie_sweep.field_kinds import FIELDS
from lie_sweep.hvp import HVP_CHOICES
from lie_sweep.task_kinds import TASKS
from storage.codecs import CODEC_PRESETS, DEFAULT_KEEPBITS
from storage.registry import Registry
from storage.scores import SCORES

from .grids import GRIDS
from .task_size import AUTO, TASK_SIZE_HELP

__all__ = ["SweepConfig", "CheckpointsConfig", "ExamplesConfig", "PairsConfig", "PoolConfig", "TopConfig",
           "TaskConfig", "FieldConfig", "StorageConfig", "DerivedConfig", "ClusterConfig", "GROUP_CLASSES",
           "schema_fields", "check_fields", "help_text"]


def opt(default: Any = MISSING, help: str = "", *, factory: Any = None, **check: Any) -> Any:
    """A schema field: its default (or ``factory``), help text and checks (choices, min, max, gt)."""
    metadata = {"help": help, **check}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class CheckpointsConfig:
    """Which checkpoints a sweep brackets: trained by ``run``, found by a glob, or listed."""

    source: str = opt("train", "train the model first, or use existing files", choices=("train", "glob", "list"))
    dir: str = opt("lie-sweep-out/checkpoints", "train: where checkpoints are written")
    steps: int = opt(100, "train: Adam steps", min=1)
    save_every: int = opt(20, "train: a checkpoint every this many steps (and the last)", min=1)
    lr: float = opt(5e-3, "train: Adam's learning rate; also the default ε of the logit deltas", gt=0)
    betas: list[float] = opt(help="train: Adam's betas", factory=lambda: [0.8, 0.999])
    batch_size: int = opt(32, "train: minibatch size", min=1)
    optimizer: str = opt("adam", "train: the optimizer (adamw: decoupled weight decay)", choices=("adam", "adamw"))
    weight_decay: float = opt(0.0, "train: weight decay (adamw: decoupled)", min=0)
    glob: Optional[str] = opt(None, "glob: a glob or a directory of checkpoints (.pt/.pth/.ckpt/.safetensors files, "
                                    "Hugging Face checkpoint-N/ directories), ordered by step")
    paths: list[str] = opt(help="list: checkpoint files", factory=list)


@dataclass
class ExamplesConfig:
    """The sweep's examples (dataset indices)."""

    mode: str = opt("first", "the first `count` from `start`, or `indices`", choices=("first", "list"))
    count: int = opt(8, "first: how many examples", min=1)
    start: int = opt(0, "first: the first dataset index", min=0)
    indices: list[int] = opt(help="list: dataset indices", factory=list)


@dataclass
class PoolConfig(ExamplesConfig):
    """cross: the second example set (the pool) each probe is paired with; chosen like the examples."""

    count: int = opt(64, "first: pool size", min=1)


@dataclass
class TopConfig:
    """top: refine another store's most order-sensitive pairs."""

    store: Optional[str] = opt(None, "the store whose pairs are ranked (e.g. a storage.keep=summary sweep)")
    k: int = opt(64, "how many pairs", min=1)
    by: str = opt("norm", "the score ranking the pairs, each by its largest value over that store's checkpoints",
                  choices=SCORES)


@dataclass
class PairsConfig:
    """Which pairs of examples (the grid), and how they are cut into tasks (jobs/README.md: sizing a large sweep)."""

    mode: str = opt("all", "the pair grid (jobs/README.md: sizing a large sweep)", choices=GRIDS)
    list: list[list[int]] = opt(help="list: [i, j] pairs of dataset indices", factory=list)
    per_task: Any = opt(AUTO, TASK_SIZE_HELP)
    block: int = opt(8, "examples per block: tiles are block x block; gradients are stored per block", min=1)
    rounds: int = opt(2, "tournament: seeded permutations of the examples", min=1)
    group: int = opt(16, "tournament: group size (all pairs inside each group of each round)", min=2)
    seed: Optional[int] = opt(None, "tournament: permutation seed (null: the sweep's seed); unit=batch: the "
                                    "minibatches' seed too", min=0)
    unit: Optional[str] = opt(None, "the grid's items: example (null) or batch: disjoint seeded minibatches of "
                              "batch_size examples, a step on one its mean-gradient step",
                              choices=("example", "batch"))
    batch_size: Optional[int] = opt(None, "unit=batch: examples per minibatch (a divisor of the examples' count)",
                                    min=2)
    pool: PoolConfig = opt(factory=PoolConfig)
    top: TopConfig = opt(factory=TopConfig)


@dataclass
class TaskConfig:
    """What the model is trained on: the per-item loss whose gradient is the field, and the measurement on the
    evaluation batch (lie_sweep/README.md: tasks)."""

    name: str = opt("multilabel", "the task: its loss and measurement", choices=TASKS)


@dataclass
class FieldConfig:
    """The update field u_x whose brackets are computed."""

    name: str = opt("sgd", "the update field u_x whose brackets are computed", choices=FIELDS)
    eps: Optional[float] = opt(None, "adam: eps of P = 1/(sqrt(v_hat)+eps) (null: the optimizer's own)", gt=0)
    follow_steps: int = opt(0, "optimizer: zero-gradient steps after the two, so momentum drains into theta", min=0)


@dataclass
class StorageConfig:
    """Where and how results are stored."""

    path: str = opt("lie-sweep-out/sweep", "the store: a local path or an fsspec URL")
    codec: str = opt("lossless", "codec of brackets and gradients (error bounds: storage/README.md)",
                     choices=CODEC_PRESETS)
    level: int = opt(1, "Blosc level (zstd 1: ~500 MiB/s a core, no worse a ratio than 3 on brackets)", min=1, max=9)
    keepbits: int = opt(DEFAULT_KEEPBITS, "bitround: mantissa bits kept, |error| <= 2^-(keepbits+1)|x|", min=1)
    keep: Any = opt("all", "all | summary | tensor-name globs, e.g. '[fc.*,layer4.*]'")
    inner_chunk: int = opt(1 << 18, "flat-axis elements per inner chunk (lazy-read granularity)", min=1)
    overwrite: bool = opt(False, "replace an existing lie-sweep store at path (never another directory)")
    sketch: Optional[int] = opt(None, "k: also store S·v, a seeded k-row sketch of every parameter-sized result (with "
                                      "keep=summary: only it; null: off; storage/README.md: sketches)", min=1)
    sketch_nonzeros: int = opt(1, "sketch: nonzeros per coordinate (s; k must be a multiple; 1: CountSketch, the "
                                  "same variance bound at a fraction of the cost)", min=1)
    sketch_seed: int = opt(0, "sketch: the seed of S", min=0, max=(1 << 23) - 1)
    options: dict[str, Any] = opt(help="fsspec storage options, e.g. storage.options.endpoint_url=http://host:9000",
                                  factory=dict)


@dataclass
class DerivedConfig:
    """Quantities the workers derive while a bracket is in memory (tables and logit deltas)."""

    eval_count: int = opt(16, "evaluation examples of the logit deltas (0: none)", min=0)
    eval_start: Optional[int] = opt(None, "first dataset index of the evaluation batch (null: the last ones)", min=0)
    epsilon: Optional[float] = opt(None, "ε of the logit deltas ε²·J_f[u_i,u_j] (null: checkpoints.lr)", gt=0)


@dataclass
class ClusterConfig:
    """How the work runs (execution settings: they may change on resume)."""

    address: Optional[str] = opt(None, "null: Ray on this machine (127.0.0.1); or a running cluster's address")
    connect_timeout: float = opt(30.0, "seconds to reach cluster.address before anything is trained or written",
                                 gt=0)
    workers: Optional[int] = opt(None, "null: one per GPU, or one per cpus_per_worker CPUs where there is none",
                                 min=1)
    gpus_per_worker: float = opt(1.0, "GPUs per worker where the cluster has GPUs (fractions share one)", gt=0)
    cpus_per_worker: int = opt(1, "CPUs per worker", min=1)
    threads_per_worker: Optional[int] = opt(None, "torch threads in each worker (null: cpus_per_worker)", min=1)
    max_in_flight: int = opt(2, "tasks queued per worker", min=1)
    retries: int = opt(2, "extra attempts of a failed task", min=0)
    replace_timeout: float = opt(60.0, "seconds a replacement worker may take to be placed before it is dropped",
                                 gt=0)
    device: str = opt("auto", "auto: CUDA where visible, else CPU", choices=("auto", "cpu", "cuda"))
    overlap_writes: str = opt("auto", "whether a task's compression and writes overlap the next task's "
                                      "computation (auto: on GPU workers only; jobs/README.md: cluster)",
                              choices=("auto", "always", "never"))
    warm_up: bool = opt(False, "compute each worker's first task once, unstored, before it is ready: its first "
                               "task then costs ~1.3x a steady one instead of 2.6x, at the price of a longer "
                               "start-up and no shorter sweep (benchmarks/README.md: warm-up)")
    malloc: str = opt("retain", "retain: workers keep freed memory for the next call (glibc settings, jobs/README.md: "
                                "throughput); system: the allocator's defaults", choices=("retain", "system"))
    cache_gib: Optional[float] = opt(None, "GiB of cached example gradients/fields per worker (null: a quarter "
                                           "of its memory)", gt=0)
    code_dirs: list[str] = opt(help="folders of your own modules (_target_ classes) beside the working directory, "
                                    "importable by the driver and every worker (jobs/README.md: your own code)",
                               factory=list)


@dataclass
class SweepConfig:
    """A whole sweep's configuration: one field per config group, plus precision, chunk size and seed."""

    model: Any = opt(help="the model: _target_ (a class path) and exactly the keyword arguments given")
    data: Any = opt(help="the dataset: _target_ and its keyword arguments; items are (input, target) or dicts")
    task: TaskConfig = opt(factory=TaskConfig)
    checkpoints: CheckpointsConfig = opt(factory=CheckpointsConfig)
    examples: ExamplesConfig = opt(factory=ExamplesConfig)
    pairs: PairsConfig = opt(factory=PairsConfig)
    field: FieldConfig = opt(factory=FieldConfig)
    storage: StorageConfig = opt(factory=StorageConfig)
    derived: DerivedConfig = opt(factory=DerivedConfig)
    cluster: ClusterConfig = opt(factory=ClusterConfig)
    precision: str = opt("float32", "dtype brackets are computed and stored in", choices=("float32", "float64"))
    chunk_size: Optional[int] = opt(None, "pairs per vmapped call (null: memory-based)", min=1)
    hvp: str = opt("forward", "how HVPs are computed: forward, reverse, compile, or auto (the fastest that agrees "
                              "with forward, timed when the store is created and recorded in it; lie_sweep/README.md)",
                   choices=HVP_CHOICES)
    seed: int = opt(0, "seed of the model's initialisation and of training", min=0)
    effects: Optional[list[str]] = opt(None, "what is computed per pair, a list of: " + " | ".join(EFFECTS)
                                       + " (null: bracket, and order under field=optimizer; lie_sweep/README.md)")
    swap_epsilon: Any = opt(None, "swap: the step size eps of the exact swaps, or a list (a ladder; the first is the "
                                  "tables'); null: the checkpoints' optimizer lr under field=optimizer, else "
                                  "derived.epsilon (checkpoints.lr)")


# the config groups whose keys the schema fixes (model and data are free-form: their _target_'s arguments)
GROUP_CLASSES = {name: cls for name, cls in get_type_hints(SweepConfig).items() if dataclasses.is_dataclass(cls)}


def _optional(hint: Any) -> bool:
    return get_origin(hint) is Union and type(None) in get_args(hint)


def schema_fields(cls: type = SweepConfig, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted key, field, type hint) of every leaf key of the schema, in declaration order."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from schema_fields(hint, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, hint


def _expected(field_: dataclasses.Field, hint: Any) -> str:
    md = field_.metadata
    kind = "an integer" if int in (hint, *get_args(hint)) else "a number"
    if "choices" in md:
        text = " | ".join(map(str, md["choices"]))
    elif "min" in md and "max" in md:
        text = f"{kind} in {md['min']}..{md['max']}"
    elif "min" in md:
        text = f"{kind} >= {md['min']}"
    else:
        text = f"{kind} > {md['gt']}"
    return f"null or {text}" if _optional(hint) else text


def check_fields(cfg: DictConfig) -> None:
    """Check every key against its field's ``choices``, ``min``, ``max`` and ``gt``; one error line each."""
    for key, field_, hint in schema_fields():
        md = field_.metadata
        if not {"choices", "min", "max", "gt"} & set(md):
            continue
        value = OmegaConf.select(cfg, key)
        if value is None and _optional(hint):
            continue
        ok = value is not None and (
            ("choices" not in md or value in md["choices"]) and ("min" not in md or value >= md["min"])
            and ("max" not in md or value <= md["max"]) and ("gt" not in md or value > md["gt"]))
        if not ok:
            if "choices" in md:
                fix = f"set {key}={next(iter(md['choices']))}"
            elif "max" in md:
                fix = f"set {key} within range"
            else:
                fix = f"set {key} to {md.get('min', md.get('gt'))} or more"
            raise ConfigError(f"bad value for {key}", expected=_expected(field_, hint), found=repr(value), fix=fix)


def help_text() -> str:
    """Every key with its default and help, grouped, for ``lie-sweep run --help``."""
    lines = ["keys (key = default: help; set with key=value):"]
    for key, field_, _ in schema_fields():
        if field_.default is MISSING:
            default = "(from the group option)"
        elif field_.default is not dataclasses.MISSING:
            default = field_.default  # YAML spellings for None and booleans (0 == False: compare identities)
            default = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
        else:
            default = field_.default_factory()
        choices = field_.metadata.get("choices")
        note = f" [{' | '.join(map(str, choices))}]" if choices else ""
        lines.append(f"  {key} = {default}{note}: {field_.metadata.get('help', '')}")
        if isinstance(choices, Registry):  # a registry's choices say what each one is
            lines += [f"      {entry.name}: {entry.help}" for entry in choices.values()]
    return "\n".join(lines)
