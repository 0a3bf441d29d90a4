"""``lie-sweep verify STORE``: how far a sweep's stored prediction holds, measured against real swaps.

For K sampled completed pairs per checkpoint (seeded), the checkpoint is loaded (sha256-checked),
the model rebuilt from the store's config in float64, and the real two-step swap taken along the
sweep's field at ε = ε_store × {1, 1/4, 1/16, 1/64, 1/256} (ε_store: the logit deltas' ε, by default
the training learning rate) is compared with the stored prediction ε²[u_i, u_j] and ε² J_f[u_i, u_j]
(:mod:`lie_sweep.verify`). Brackets come from the store when it keeps every tensor, else they are
recomputed (float64). The rows replace the store's verify table (``tables/verify/verify.parquet``)
under the store's lock; ``show`` and the results page summarise it.

A store with exact swaps (effect swap) has them checked on the same sampled pairs against a float64 reference
taken by ``torch.optim`` itself (:mod:`jobs.results.verify_swaps`; table ``tables/verify/swaps.parquet``,
``sweep.verify_swaps()``). A store without the bracket and the expansion has only that check.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from lie_sweep import FunctionalModel, bracket_kernel, stack_examples
from lie_sweep.data import Minibatches
from lie_sweep.errors import ConfigError
from lie_sweep.fields import eval_mode, on_device
from lie_sweep.order import order_expansion, swap_parameters
from lie_sweep.task_kinds import task_of
from lie_sweep.tasks import EvalBatch
from lie_sweep.verify import LADDER, field_swap_errors, swap_errors
from storage.reader import Sweep, open_sweep
from storage.store import SweepStore

from jobs.planning.build import build_dataset, build_model
from jobs.planning.config import config_from_stored
from jobs.planning.loader import load_into
from jobs.planning.targets import TargetTrust

from .verify_swaps import SWAP_COLUMNS, swap_check_rows

__all__ = ["verify_store"]

COLUMNS = ("step", "pair", "i", "j", "epsilon", "rel_theta", "rel_logits", "norm_real", "norm_pred", "relu_switch")


def _keeps_every_tensor(sweep: Sweep) -> bool:
    """Whether the store holds every tensor's per-pair values (else verify recomputes them, float64)."""
    return sweep.store.layout.keeps_params and len(sweep.stored_names) == len(sweep.param_names)


def _bracket(sweep: Sweep, fm: FunctionalModel, params, field, step: int, i: int, j: int, xs, ys) -> dict:
    """[u_i, u_j] by name, float64: stored (every tensor kept) or recomputed."""
    if _keeps_every_tensor(sweep):
        return {n: torch.from_numpy(np.asarray(v, dtype=np.float64)) for n, v in sweep.bracket(step, i, j).items()}
    return bracket_kernel(fm, params, xs, ys, [(0, 1)], field=field).named_brackets()  # (1, *shape) each


def verify_store(path: str, pairs: int = 8, seed: int = 0, *, storage_options: Mapping[str, Any] | None = None,
                 log: Callable[[str], None] = print, trust_store: bool = False) -> Sweep:
    """Measure the stored prediction against real swaps (see the module docstring); returns the sweep,
    whose ``verify_table()`` / ``verify_summary()`` now hold the results. The model and the dataset are
    rebuilt from the store's config only as :mod:`jobs.planning.targets` allows (``trust_store``: the store's
    own classes too, listed first)."""
    if pairs < 1:
        raise ConfigError("--pairs must be positive", expected="1 or more pairs per checkpoint", found=str(pairs),
                          fix="--pairs 8")
    store = SweepStore.open(path, mode="r+", storage_options=storage_options)
    store.ledger.acquire_lock("verify")  # no driver writes meanwhile; verify writes the table at the end
    try:
        _verify(Sweep(store), path, pairs, seed, log, TargetTrust(trust_store=trust_store, log=log))
    finally:
        store.ledger.release()
    return open_sweep(path, storage_options=storage_options)


def _verify(sweep: Sweep, path: str, pairs: int, seed: int, log: Callable[[str], None], trust: TargetTrust) -> None:
    cfg = config_from_stored(sweep.config, trust=trust)
    fits = sweep.fits()
    if fits.empty:
        raise ConfigError("no completed pair to verify", expected="a store with completed tasks",
                          found=f"0 of {sweep.meta.n_tasks} tasks done", fix=f"lie-sweep resume {path}")
    layout = sweep.store.layout
    expansion = layout.keeps_brackets or layout.keeps_order  # a prediction to measure against real swaps
    model = build_model(cfg.model).to(torch.float64)
    data = build_dataset(cfg.data)
    task = task_of(cfg.task.name)
    eval_inputs = (EvalBatch(*stack_examples(data, sweep.eval_examples, task)).to(dtype=torch.float64)
                   if sweep.eval_examples else None)
    items = data if sweep.meta.batches is None else Minibatches(data, sweep.meta.batches, task)  # pairs.unit=batch
    rng = np.random.default_rng(seed)
    epsilons = [sweep.epsilon * f for f in LADDER]
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    swap_rows: dict[str, list] = {c: [] for c in SWAP_COLUMNS}
    start = time.perf_counter()
    for c, step in enumerate(sweep.steps):
        done = fits[fits["step"] == step]
        if done.empty:
            continue
        loaded = load_into(model, sweep.meta.checkpoints[c], cfg.field, batched_items=sweep.meta.batches is not None,
                           task=task)
        picked = done.iloc[np.sort(rng.choice(len(done), size=min(pairs, len(done)), replace=False))]
        for r in picked.itertuples():
            xs, ys = stack_examples(items, [int(r.i), int(r.j)], task)
            xs, ys = on_device(xs, None, torch.float64), on_device(ys, None, torch.float64)
            ex_i, ex_j = (xs[0], ys[0]), (xs[1], ys[1])
            if expansion:
                _add(rows, ({"step": step, "pair": int(r.pair), "i": int(r.i), "j": int(r.j), **e} for e in
                            _expansion_errors(sweep, cfg, loaded, step, r, xs, ys, eval_inputs, epsilons)))
            if layout.keeps_swaps:
                _add(swap_rows, swap_check_rows(sweep, loaded, int(cfg.field.follow_steps), step, r, ex_i, ex_j,
                                                eval_inputs))
        log(f"step {step}: {len(picked)} pairs verified ({time.perf_counter() - start:.1f} s so far)")
    meta = {"pairs_per_checkpoint": pairs, "seed": seed, "field": str(cfg.field.name),
            "seconds": round(time.perf_counter() - start, 2)}
    if expansion:
        sweep.store.write_verify(rows, metadata={**meta, "ladder": list(LADDER), "epsilon": sweep.epsilon})
    if layout.keeps_swaps:
        sweep.store.write_verify(swap_rows, metadata={**meta, "epsilons": sweep.swap_epsilons}, name="swaps")


def _add(columns: dict[str, list], rows: Iterable[Mapping[str, Any]]) -> None:
    for row in rows:
        for key, value in row.items():
            columns[key].append(value)


def _expansion_errors(sweep: Sweep, cfg: Any, loaded: Any, step: int, r: Any, xs: torch.Tensor, ys: torch.Tensor,
                      eval_inputs: torch.Tensor | None, epsilons: list[float]) -> list[dict[str, float]]:
    """The stored expansion (the bracket's ε²b, or the optimizer's εΔ₁ + ε²Δ₂) against real swaps of the pair of
    pairs-table row ``r`` along the ladder ``epsilons`` (:mod:`lie_sweep.verify`)."""
    fm, params, field, optimizer = loaded.fmodel, loaded.params, loaded.field, loaded.optimizer
    ex_i, ex_j = (xs[0], ys[0]), (xs[1], ys[1])
    if optimizer is not None and sweep.store.layout.keeps_order:  # the optimizer's expansion, where it is stored
        return _optimizer_errors(sweep, fm, params, optimizer, int(cfg.field.follow_steps), step, int(r.i), int(r.j),
                                 ex_i, ex_j, eval_inputs, epsilons)
    b = {n: t.reshape(params[n].shape) for n, t in _bracket(sweep, fm, params, field, step, int(r.i), int(r.j),
                                                             xs, ys).items()}
    logit_b = None
    if sweep.store.layout.keeps_lead_logits:
        stored = np.asarray(sweep.logit_deltas().sel(step=step, i=int(r.i), j=int(r.j)).values, dtype=np.float64)
        logit_b = torch.from_numpy(stored / sweep.epsilon**2)
    return field_swap_errors(fm, field, params, ex_i, ex_j, b, eval_inputs, logit_b, epsilons)


def _optimizer_errors(sweep: Sweep, fm: FunctionalModel, params, optimizer, follow: int, step: int, i: int, j: int,
                      ex_i, ex_j, eval_inputs, epsilons) -> list[dict[str, float]]:
    """field=optimizer: real swaps with the checkpoint's optimizer (its functional steps, equal to torch.optim)
    against εΔ₁ + ε²Δ₂ (stored, or recomputed when the store keeps only some tensors) and J_f of it."""
    opt_step, state = optimizer
    if _keeps_every_tensor(sweep):
        d1, d2 = ({n: torch.from_numpy(np.asarray(v, dtype=np.float64)) for n, v in d.items()}
                  for d in sweep.order_terms(step, i, j))
    else:
        d1, d2 = order_expansion(fm, opt_step, params, state, ex_i, ex_j, follow_steps=follow)
    flat1, flat2 = (torch.cat([d[n].reshape(-1) for n in params]) for d in (d1, d2))
    jf1 = jf2 = None
    if eval_inputs is not None:
        with eval_mode(fm.module):
            jf1, jf2 = (torch.func.jvp(lambda p: fm.measure(p, eval_inputs.inputs, eval_inputs.targets), (params,),
                                       ({n: d[n].reshape(params[n].shape) for n in params},))[1] for d in (d1, d2))

    def one_step(eps: float, k: int):
        x, y = (ex_i, ex_j)[k]
        with eval_mode(fm.module):
            return opt_step.step(params, state, torch.func.grad(fm.example_loss)(params, x, y), lr=eps)[0]

    def predict(eps: float):
        return eps * flat1 + eps * eps * flat2, None if jf1 is None else eps * jf1 + eps * eps * jf2

    return swap_errors(fm, params, lambda eps: swap_parameters(fm, opt_step, params, state, ex_i, ex_j, eps, follow),
                       one_step, predict, eval_inputs, epsilons)
