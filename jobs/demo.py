"""The demo job: train the small convnet on synthetic shapes, then bracket all pairs of a few examples.

Runs on one process (CPU or one GPU); the distributed sweep builds on the same pieces.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lie_sweep import (FunctionalModel, SmallConvNet, SyntheticShapes, apply_checkpoint, bracket_kernel,
                       load_checkpoints, stack_examples, train)
from lie_sweep.errors import ConfigError


@dataclass
class DemoSettings:
    out: Path = Path("lie-sweep-demo")
    examples: tuple[int, ...] = tuple(range(8))
    steps: int = 60
    save_every: int = 20
    seed: int = 0
    chunk_size: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    top: int = 10


@dataclass
class CheckpointRow:
    step: int
    mean_loss: float
    mean_bracket_norm: float
    max_bracket_norm: float
    seconds: float
    pairs: int


@dataclass
class PairRow:
    i: int
    j: int
    bracket_norm: float
    grad_norm_product: float


def _resolve(settings: DemoSettings) -> tuple[torch.device, torch.dtype]:
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if settings.dtype not in dtypes:
        raise ConfigError("unknown precision", expected="float32 or float64", found=repr(settings.dtype),
                          fix="pass --dtype float32 or --dtype float64")
    if settings.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(settings.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("no CUDA device", expected="a visible GPU for --device cuda", found="none",
                              fix="use --device cpu or auto")
    if len(set(settings.examples)) != len(settings.examples) or len(settings.examples) < 2:
        raise ConfigError("examples must be distinct", expected="at least two distinct dataset indices",
                          found=str(list(settings.examples)), fix="e.g. --examples 0,1,2,3")
    return device, dtypes[settings.dtype]


def run_demo(settings: DemoSettings, log=print) -> tuple[list[CheckpointRow], list[PairRow]]:
    """Train, then compute [u_i, u_j] for all i < j among ``settings.examples`` at every checkpoint.

    Returns one row per checkpoint and, for the last checkpoint, one row per pair sorted by ‖[u_i, u_j]‖.
    """
    device, dtype = _resolve(settings)
    data = SyntheticShapes(length=512, image_size=32, seed=settings.seed)
    inputs, targets = stack_examples(data, settings.examples)  # validates the indices first
    torch.manual_seed(settings.seed)
    model = SmallConvNet(num_outputs=len(data.attribute_names), width=16)
    ckpt_dir = settings.out / "checkpoints"
    log(f"training SmallConvNet on synthetic shapes for {settings.steps} steps -> {ckpt_dir}/")
    train(model, data, steps=settings.steps, save_every=settings.save_every, out_dir=ckpt_dir, seed=settings.seed)
    model = model.to(device=device, dtype=dtype)
    fmodel = FunctionalModel(model)
    pairs = list(itertools.combinations(range(len(settings.examples)), 2))
    rows: list[CheckpointRow] = []
    last = None
    for ckpt in load_checkpoints(ckpt_dir):
        apply_checkpoint(model, ckpt)
        start = time.perf_counter()
        out = bracket_kernel(fmodel, fmodel.params(), inputs, targets, pairs, chunk_size=settings.chunk_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        norms = out.brackets.norm(dim=1)
        rows.append(CheckpointRow(ckpt.step, out.losses.mean().item(), norms.mean().item(), norms.max().item(),
                                  seconds, len(pairs)))
        last = out
    assert last is not None
    gnorm = last.gradients.norm(dim=1)
    slot = {int(e): k for k, e in enumerate(last.examples)}
    pair_rows = [PairRow(settings.examples[i], settings.examples[j], float(n), float(gnorm[slot[i]] * gnorm[slot[j]]))
                 for (i, j), n in zip(pairs, last.brackets.norm(dim=1).tolist())]
    pair_rows.sort(key=lambda r: -r.bracket_norm)
    return rows, pair_rows


def format_report(rows: list[CheckpointRow], pair_rows: list[PairRow], attribute_names, data, top: int) -> str:
    """Two plain-text tables: per checkpoint, then the most order-sensitive pairs at the last one."""
    lines = ["", "per checkpoint (BatchNorm in eval mode; SGD field u = -grad L)",
             f"{'step':>6} {'mean loss':>10} {'mean |[u_i,u_j]|':>17} {'max |[u_i,u_j]|':>16} {'pairs/s':>9}"]
    for r in rows:
        lines.append(f"{r.step:>6} {r.mean_loss:>10.4f} {r.mean_bracket_norm:>17.4e} {r.max_bracket_norm:>16.4e} "
                     f"{r.pairs / max(r.seconds, 1e-9):>9.1f}")
    lines += ["", f"most order-sensitive pairs at step {rows[-1].step}: theta_ij - theta_ji ~ lr^2 [u_i,u_j]",
              f"{'i':>4} {'j':>4} {'|[u_i,u_j]|':>12} {'|g_i||g_j|':>12} {'ratio':>8}  attributes (i | j)"]

    def attrs(k: int) -> str:
        y = data[k][1]
        return ",".join(attribute_names[a] for a in range(len(y)) if y[a] > 0.5 and a < 6)

    for r in pair_rows[:top]:
        ratio = r.bracket_norm / r.grad_norm_product if r.grad_norm_product > 0 else float("nan")
        lines.append(f"{r.i:>4} {r.j:>4} {r.bracket_norm:>12.4e} {r.grad_norm_product:>12.4e} {ratio:>8.3f}  "
                     f"{attrs(r.i)} | {attrs(r.j)}")
    return "\n".join(lines)
