"""A task's table rows (see :mod:`storage.tables`), from the quantities a worker derived.

Pure numpy: the worker computes (:mod:`lie_sweep.analysis`), this module lays out rows, the store
writes them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["pair_key_rows", "pair_rows", "pair_rms_rows", "example_rows", "example_rms_rows"]


def pair_key_rows(step: int, pair_ids: np.ndarray, pairs: np.ndarray, grad_dot: np.ndarray) -> dict:
    """The columns every ``pairs`` row has, whatever the effects: step, pair id, (i, j), g_i · g_j (float64)."""
    return {"step": np.full(len(pair_ids), step, dtype=np.int64), "pair": pair_ids.astype(np.int64),
            "i": pairs[:, 0].astype(np.int64), "j": pairs[:, 1].astype(np.int64),
            "grad_dot": grad_dot.astype(np.float64)}


def pair_rows(step: int, pair_ids: np.ndarray, pairs: np.ndarray, norms: np.ndarray, rms: np.ndarray,
              log_c: np.ndarray, r2: np.ndarray, n_tensors: np.ndarray, logit_rms: np.ndarray | None,
              grad_dot: np.ndarray) -> dict:
    """One row per pair: bracket L2 norm and RMS over all parameters, the slope-1 fit, logit-delta RMS,
    and ``grad_dot`` = g_i · g_j (the pair's entry of the gradient Gram matrix, float64)."""
    n = len(pair_ids)
    return {"step": np.full(n, step, dtype=np.int64), "pair": pair_ids.astype(np.int64),
            "i": pairs[:, 0].astype(np.int64), "j": pairs[:, 1].astype(np.int64),
            "norm": norms.astype(np.float64), "rms": rms.astype(np.float64),
            "c": np.exp(log_c).astype(np.float64), "log_c": log_c.astype(np.float64), "r2": r2.astype(np.float64),
            "n_tensors": n_tensors.astype(np.int64),
            "logit_rms": (np.full(n, np.nan) if logit_rms is None else logit_rms.astype(np.float64)),
            "grad_dot": grad_dot.astype(np.float64)}


def pair_rms_rows(step: int, pair_ids: np.ndarray, pairs: np.ndarray, tensors: Sequence[str],
                  rms_bracket: np.ndarray, rms_grad_i: np.ndarray, rms_grad_j: np.ndarray,
                  effect_column: str = "rms_bracket") -> dict:
    """One row per pair × tensor (pair-major): RMS of the bracket (``rms_swap``: of the exact swap, in a sweep
    without the bracket) and of both examples' gradients."""
    n, t = rms_bracket.shape
    return {"step": np.full(n * t, step, dtype=np.int64), "pair": np.repeat(pair_ids.astype(np.int64), t),
            "i": np.repeat(pairs[:, 0].astype(np.int64), t), "j": np.repeat(pairs[:, 1].astype(np.int64), t),
            "tensor": np.tile(np.asarray(tensors, dtype=object), n),
            effect_column: rms_bracket.reshape(-1).astype(np.float64),
            "rms_grad_i": rms_grad_i.reshape(-1).astype(np.float64),
            "rms_grad_j": rms_grad_j.reshape(-1).astype(np.float64)}


def example_rows(step: int, examples: Sequence[int], losses: np.ndarray, grad_norms: np.ndarray) -> dict:
    """Rows of the ``examples`` table at one checkpoint: loss and gradient norm per example."""
    n = len(examples)
    return {"step": np.full(n, step, dtype=np.int64), "example": np.asarray(examples, dtype=np.int64),
            "loss": losses.astype(np.float64), "grad_norm": grad_norms.astype(np.float64)}


def example_rms_rows(step: int, examples: Sequence[int], tensors: Sequence[str], rms_grad: np.ndarray) -> dict:
    """One row per example × tensor (example-major): RMS of the example's gradient in that tensor."""
    n, t = rms_grad.shape
    return {"step": np.full(n * t, step, dtype=np.int64),
            "example": np.repeat(np.asarray(examples, dtype=np.int64), t),
            "tensor": np.tile(np.asarray(tensors, dtype=object), n),
            "rms_grad": rms_grad.reshape(-1).astype(np.float64)}
