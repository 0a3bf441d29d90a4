"""The effective rank of a gradient Gram matrix, in numpy only (what the page computes from a store's tables, so
that it needs no torch): exp(−Σ_k p_k log p_k), p_k = σ_k / Σ σ, σ the singular values of g, the square roots of
the eigenvalues of G = g gᵀ (Roy & Vetterli 2007): 1 when all gradients are parallel, n when they are orthogonal
and equally long. :func:`lie_sweep.analysis.effective_rank` is this, for a torch tensor."""

from __future__ import annotations

import numpy as np

__all__ = ["effective_rank_of_gram"]


def effective_rank_of_gram(gram: np.ndarray) -> float:
    """exp(entropy of the normalised singular values of g), from G = g gᵀ (float64; 0 for G = 0)."""
    sigma = np.sqrt(np.clip(np.linalg.eigvalsh(np.asarray(gram, dtype=np.float64)), 0, None))
    total = sigma.sum()
    if total <= 0:
        return 0.0
    p = sigma[sigma > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))
