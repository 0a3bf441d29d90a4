"""How well `lie-sweep query` answers "what does swapping i and j do to test item t's loss", on the demo.

Trains the README's demo (`lie-sweep run`), sweeps its checkpoints with the exact swap and a sketch of k = 256 and
k = 1,024 (`storage.sketch=k`, the k = 1,024 store also keeps the full swaps), queries each store for 16 test items
that are not among the sweep's examples (dataset indices 100–115), and compares each answer, the first-order change
⟨∇L_t(θ), θ_ij − θ_ji⟩, with the exact one, L_t(θ_ij) − L_t(θ_ji) from two real SGD steps in each order at the
swaps' ε (float64, written out here). Per checkpoint it prints, over the 16 items × 28 pairs:

* the Spearman rank correlation of the answer with the exact change (per item, median over items);
* the relative error ‖answer − exact‖ / ‖exact‖ over the 28 pairs (median over items) and the median over all rows
  of |answer − exact| / |exact|;
* the same for the first order taken at the swap's midpoint (θ_ij + θ_ji)/2 instead of θ (one gradient per pair
  and item: not what query computes, but what separates the first order's own error from the sketch's).

Then the same for the demo's net with tanh instead of ReLU (a smooth loss, trained the same way).

    python benchmarks/query_accuracy.py          # ~2 min on 2 cores
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ITEMS = list(range(100, 116))


def _lie_sweep(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"lie-sweep {args[0]} failed: {proc.stderr.strip()[-2000:]}")


def exact_changes(store: str) -> tuple[np.ndarray, np.ndarray]:
    """(L_t(θ_ij) − L_t(θ_ji), ⟨∇L_t(m_ij), θ_ij − θ_ji⟩ at the midpoint m_ij), (checkpoints, items, pairs),
    from real SGD steps in float64 (eval mode, as the sweep's field is taken)."""
    from jobs.planning.build import build_dataset, build_model
    from jobs.planning.config import config_from_stored
    from jobs.planning.loader import load_into
    from lie_sweep import open_sweep, stack_examples
    from lie_sweep.fields import eval_mode

    sweep = open_sweep(store)
    cfg = config_from_stored(sweep.config)
    model, data = build_model(cfg.model).to(torch.float64), build_dataset(cfg.data)
    eps = sweep.swap_epsilons[0]
    xt, yt = (t.to(torch.float64) for t in stack_examples(data, ITEMS))
    exact = np.zeros((len(sweep.steps), len(ITEMS), len(sweep.pairs)))
    midpoint = np.zeros_like(exact)
    for c in range(len(sweep.steps)):
        loaded = load_into(model, sweep.meta.checkpoints[c], cfg.field)
        fm, theta = loaded.fmodel, loaded.params

        def grad(p, x, y):
            return torch.func.grad(lambda q: fm.example_loss(q, x, y))(p)

        def two_steps(a, b):
            p = dict(theta)
            for k in (a, b):
                x, y = (t.to(torch.float64) for t in stack_examples(data, [k]))
                p = {n: p[n] - eps * g for n, g in grad(p, x[0], y[0]).items()}
            return p

        with eval_mode(fm.module):
            for p, (i, j) in enumerate(sweep.pairs.tolist()):
                ij, ji = two_steps(i, j), two_steps(j, i)
                mid = {n: (ij[n] + ji[n]) / 2 for n in theta}
                delta = {n: ij[n] - ji[n] for n in theta}
                for t in range(len(ITEMS)):
                    exact[c, t, p] = float(fm.example_loss(ij, xt[t], yt[t]) - fm.example_loss(ji, xt[t], yt[t]))
                    g = grad(mid, xt[t], yt[t])
                    midpoint[c, t, p] = float(sum((g[n] * delta[n]).sum() for n in theta))
    return exact, midpoint


def scores(answer: np.ndarray, exact: np.ndarray) -> tuple[float, float, float]:
    """(median Spearman over items, median ‖a − e‖/‖e‖ over items, median |a − e|/|e| over rows) for one
    checkpoint's (items, pairs) arrays."""
    rho = [pd.Series(a).rank().corr(pd.Series(e).rank()) for a, e in zip(answer, exact)]
    rel = [np.linalg.norm(a - e) / np.linalg.norm(e) for a, e in zip(answer, exact)]
    return float(np.median(rho)), float(np.median(rel)), float(np.median(np.abs(answer - exact) / np.abs(exact)))


def measure(activation: str) -> None:
    """The table for the demo with ``model.activation_name=activation`` (relu: the demo itself)."""
    from jobs.results.query import query_store
    from lie_sweep import open_sweep

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _lie_sweep("run", f"storage.path={out / 'sweep'}", f"checkpoints.dir={out / 'ck'}",
                   f"model.activation_name={activation}")
        for k in (256, 1024):
            _lie_sweep("run", "effects=[bracket,swap]", f"storage.sketch={k}", "checkpoints=glob",
                       f"checkpoints.glob={out / 'ck'}", f"storage.path={out / f'k{k}'}",
                       *(["storage.keep=summary"] if k == 256 else []))
        exact, midpoint = exact_changes(str(out / "k1024"))
        answers = {}
        for name, store, use in (("sketch k=256", "k256", "sketch"), ("sketch k=1024", "k1024", "sketch"),
                                 ("full vectors", "k1024", "full")):
            table = query_store(str(out / store), ITEMS, use=use, log=lambda m: None)
            answers[name] = table.sort_values(["step", "test", "pair"])["change"].to_numpy().reshape(exact.shape)
        steps = open_sweep(str(out / "k1024")).steps
        dim = sum(int(np.prod(e["shape"])) for e in open_sweep(str(out / "k1024")).param_spec)
    print(f"\ndemo, model.activation_name={activation}: {len(steps)} checkpoints x 28 pairs, {len(ITEMS)} test items "
          f"(dataset indices {ITEMS[0]}-{ITEMS[-1]}), D = {dim:,};\n"
          "against L_t(theta_ij) - L_t(theta_ji) from real SGD swaps (float64)")
    print("| answer | step | Spearman (median over items) | rel. error over pairs (median) | |a-e|/|e| (median "
          "row) |\n|---|---|---|---|---|")
    for name, answer in (*answers.items(), ("first order at the midpoint (diagnostic)", midpoint)):
        for c, step in enumerate(steps):
            rho, rel, row = scores(answer[c], exact[c])
            print(f"| {name} | {step} | {rho:.3f} | {rel:.3f} | {row:.3f} |")
        rho, rel, row = scores(answer.reshape(-1, exact.shape[-1]), exact.reshape(-1, exact.shape[-1]))
        print(f"| {name} | all | {rho:.3f} | {rel:.3f} | {row:.3f} |")


def main() -> None:
    for activation in ("relu", "tanh"):   # the demo itself, then a smooth net on the same data and schedule
        measure(activation)


if __name__ == "__main__":
    main()
