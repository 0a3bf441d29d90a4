"""Help texts shared by several verbs: what lie-sweep computes, the config groups and common overrides."""

from __future__ import annotations

__all__ = ["DESCRIPTION", "COMMON", "groups_help", "run_epilog", "plan_epilog"]

DESCRIPTION = """\
lie-sweep computes Lie brackets of training examples, [u_i, u_j] = J_{u_j} u_i - J_{u_i} u_j,
the leading-order difference between training on example i then j and on j then i
(theta_ij - theta_ji = lr^2 [u_i, u_j] + O(lr^3)), over grids of checkpoints x example pairs."""

COMMON = """\
common overrides:
  experiment=celeba_mxresnet data.root=/data/celeba   the reference experiment (local CelebA copy)
  model=mxresnet model.widths=[16,32,64,128]          another model, or its settings
  checkpoints=glob checkpoints.glob='runs/*.pt'       sweep existing checkpoints
  examples.count=16 | examples=list examples.indices=[3,8,21]
  pairs=list pairs.list=[[3,8],[8,21]]                explicit pairs (dataset indices)
  pairs.per_task=16                                   pairs per task (= per store shard)
  field=adam                                          Adam-preconditioned field from each checkpoint's state
  precision=float64  chunk_size=8                     dtype; pairs per vmapped call
  storage.path=out/sweep storage.overwrite=true       where the store goes
  storage.codec=bitround storage.keepbits=10          lossy codec, |error| <= 2^-11 |x|
  storage.keep=summary | storage.keep='[fc.*]'        store tables only, or only these tensors
  derived.eval_count=32 derived.epsilon=0.01          logit deltas' evaluation batch and epsilon
  cluster.workers=2 cluster.address=ray://head:10001  workers; an existing Ray cluster"""


def groups_help() -> str:
    """Every config group with its options, the default first (groups from conf/config.yaml's defaults list)."""
    from omegaconf import OmegaConf

    from jobs.planning.config import config_dir, group_options

    root = config_dir()
    lines = ["config groups (group=option; the default first):"]
    defaults = {k: v for entry in OmegaConf.load(root / "config.yaml").defaults if not isinstance(entry, str)
                for k, v in entry.items()}  # conf/config.yaml's defaults list: the one place they are chosen
    for group, default in defaults.items():
        options = sorted(group_options(group), key=lambda o: o != default)
        lines.append(f"  {group:<12} {', '.join(options)}")
    return "\n".join(lines)


def run_epilog() -> str:
    """``run --help``'s epilog: groups, common overrides and every key of the schema."""
    from jobs.planning.schema import help_text

    return groups_help() + "\n\n" + COMMON + "\n\n" + help_text()


def plan_epilog() -> str:
    """``plan --help``'s epilog: groups and common overrides."""
    return groups_help() + "\n\n" + COMMON
