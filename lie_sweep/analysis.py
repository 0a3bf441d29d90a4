"""What brackets reveal, computed while they are in memory: output deltas, per-tensor RMS, fits, ranks.

* Logit deltas. Training on i then j instead of j then i with learning rate ε moves θ by
  ε²[u_i, u_j] + O(ε³), so a model's outputs on an evaluation batch move by

      Δf = f(θ_ij) − f(θ_ji) = ε² · J_f(θ) [u_i, u_j] + O(ε³)

  ("order i then j minus order j then i"), one jvp of the outputs along the bracket.
* Per-tensor RMS: RMS_t(v) = sqrt(mean of v² over tensor t's entries) for each parameter tensor t.
* Slope-1 fit per pair: across tensors t, log RMS_t([u_i, u_j]) = log c + log RMS_t(g), with
  RMS_t(g) = sqrt(RMS_t(g_i) · RMS_t(g_j)) (the geometric mean of the two examples' gradient RMS).
  log c = mean_t(y_t − x_t), R² = 1 − Σ_t (y_t − x_t − log c)² / Σ_t (y_t − ȳ)²: the share of the
  spread of log bracket RMS across tensors that the slope-1 line explains (negative when a constant
  explains it better). Tensors whose bracket or gradient RMS is zero are left out.
* Gradient Gram matrix G = g gᵀ (examples × examples) and its effective rank
  exp(−Σ_k p_k log p_k), p_k = σ_k / Σ σ (σ: singular values of g, √eigenvalues of G; Roy &
  Vetterli 2007): 1 when all gradients are parallel, n when they are orthogonal and equally long.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import jacrev, jvp, vmap

from .budget import memory_budget
from .fields import FunctionalModel, Params, eval_mode, like_params
from .params import ParamSpec
from .spectra import effective_rank_of_gram
from .tasks import EvalBatch, eval_batch

__all__ = ["logit_deltas", "output_jacobian", "jacobian_fits", "tensor_rms", "norms_from_rms", "PairFits",
           "slope_one_fit", "pair_fits", "gram_matrix", "effective_rank"]


def output_jacobian(fmodel: FunctionalModel, params: Params, eval_inputs: EvalBatch | torch.Tensor) -> torch.Tensor:
    """J_f(θ) on the evaluation batch, flattened: (B·O, D), row b·O + o = ∇θ f_o(x_b) on θ's flat axis, f the
    task's measurement (:meth:`FunctionalModel.measure`; ``eval_inputs``: an :class:`EvalBatch` or the inputs).

    B·O reverse passes once per checkpoint; afterwards each pair's logit deltas are one row of a
    matrix product instead of B forward-mode passes. Holds B·O·D numbers: see :func:`jacobian_fits`.
    """
    spec = ParamSpec.from_tensors(params)
    batch = eval_batch(eval_inputs)
    x, y = like_params(batch.inputs, params), None if batch.targets is None else like_params(batch.targets, params)

    def outputs_of_one(p: Params, xb: torch.Tensor, yb: torch.Tensor | None) -> torch.Tensor:
        return fmodel.measure(p, xb.unsqueeze(0), None if yb is None else yb.unsqueeze(0)).reshape(-1)

    with eval_mode(fmodel.module), torch.no_grad():
        jac = vmap(jacrev(outputs_of_one), in_dims=(None, 0, None if y is None else 0))(params, x, y)
        flat = spec.flatten(jac, batch_dims=2)
    return flat.reshape(-1, spec.size)


def jacobian_fits(n_eval: int, n_outputs: int, n_params: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether :func:`output_jacobian` fits a memory budget: a quarter of the free memory on a CUDA
    device, 2 GiB on a CPU (about twice the Jacobian is live while it is computed)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return 2 * n_eval * n_outputs * n_params * itemsize <= memory_budget(device, 2 << 30)


def logit_deltas(fmodel: FunctionalModel, params: Params, eval_inputs: EvalBatch | torch.Tensor,
                 brackets: torch.Tensor, *, epsilon: float, chunk_size: int = 16,
                 jacobian: torch.Tensor | None = None) -> torch.Tensor:
    """ε² · J_f(θ)[b_p] for each bracket b_p (rows of ``brackets``, P × D on θ's flat axis), f the task's
    measurement on the evaluation batch (an :class:`EvalBatch`, or its inputs alone).

    Returns (P, B, O): the leading-order change of the model's outputs on the B evaluation inputs
    when the pair's order is i then j rather than j then i. With ``jacobian`` (from
    :func:`output_jacobian` on the same θ and inputs) it is one matrix product; without, one
    vmapped forward-mode pass per ``chunk_size`` brackets. The module runs in eval mode.
    """
    batch = eval_batch(eval_inputs)
    n_eval = len(batch)
    if jacobian is not None:
        b = brackets.to(device=jacobian.device, dtype=jacobian.dtype)
        return (b @ jacobian.T).reshape(b.shape[0], n_eval, -1).mul_(epsilon ** 2)
    spec = ParamSpec.from_tensors(params)
    x, y = like_params(batch.inputs, params), None if batch.targets is None else like_params(batch.targets, params)

    def along(tangent_flat: torch.Tensor) -> torch.Tensor:
        return jvp(lambda p: fmodel.measure(p, x, y), (params,), (spec.unflatten(tangent_flat),))[1]

    out = []
    with eval_mode(fmodel.module), torch.no_grad():
        step = max(1, chunk_size)
        for start in range(0, brackets.shape[0], step):
            block = like_params(brackets[start:start + step], params)
            out.append(vmap(along)(block).reshape(block.shape[0], n_eval, -1))
    if not out:
        return like_params(brackets.new_zeros(0, n_eval, 0), params)
    return torch.cat(out).mul_(epsilon ** 2)


def tensor_rms(flat: torch.Tensor, spec: ParamSpec) -> torch.Tensor:
    """RMS of each parameter tensor of each row: (N, D) on ``spec``'s axis → (N, T), float64.

    Computed as ‖slice‖₂ / √numel in the rows' dtype (no float64 copy of the rows), returned in
    float64. The rows' L2 norms follow as sqrt(Σ_t numel_t · RMS_t²) (:func:`norms_from_rms`).
    """
    return torch.stack([torch.linalg.vector_norm(flat[:, e.offset:e.stop], dim=1).double() / e.numel ** 0.5
                        for e in spec.entries], dim=1)


def norms_from_rms(rms: torch.Tensor, spec: ParamSpec) -> torch.Tensor:
    """‖row‖₂ from per-tensor RMS values (N, T): sqrt(Σ_t numel_t · RMS_t²)."""
    sizes = torch.tensor([e.numel for e in spec.entries], dtype=rms.dtype, device=rms.device)
    return (rms.pow(2) * sizes).sum(dim=1).sqrt()


@dataclass
class PairFits:
    """Per pair: ``log_c`` (natural log of the constant), ``r2``, ``n_tensors`` (tensors in the fit)."""

    log_c: torch.Tensor
    r2: torch.Tensor
    n_tensors: torch.Tensor

    @property
    def c(self) -> torch.Tensor:
        """The fit constant c = exp(log c)."""
        return self.log_c.exp()


def slope_one_fit(log_y: torch.Tensor, log_x: torch.Tensor) -> PairFits:
    """Fit log_y = log c + log_x (slope fixed at 1) per row over the finite columns; see the module docstring.

    Rows with no usable column get NaN; R² is NaN when fewer than two columns are usable or the
    rows' log_y do not vary.
    """
    ok = torch.isfinite(log_y) & torch.isfinite(log_x)
    n = ok.sum(dim=1)
    resid0 = torch.where(ok, log_y - log_x, torch.zeros_like(log_y))
    nf = n.to(log_y.dtype)
    log_c = resid0.sum(dim=1) / nf  # NaN where n == 0
    resid = torch.where(ok, log_y - log_x - log_c.unsqueeze(1), torch.zeros_like(log_y))
    y_mean = torch.where(ok, log_y, torch.zeros_like(log_y)).sum(dim=1) / nf
    ss_tot = torch.where(ok, log_y - y_mean.unsqueeze(1), torch.zeros_like(log_y)).pow(2).sum(dim=1)
    ss_res = resid.pow(2).sum(dim=1)
    r2 = torch.where((n >= 2) & (ss_tot > 0), 1 - ss_res / ss_tot, torch.full_like(ss_tot, float("nan")))
    return PairFits(log_c=log_c, r2=r2, n_tensors=n)


def pair_fits(bracket_rms: torch.Tensor, grad_rms_i: torch.Tensor, grad_rms_j: torch.Tensor) -> PairFits:
    """Slope-1 fits of per-tensor bracket RMS against the geometric mean of the pair's gradient RMS.

    All inputs (P, T); zeros are left out of the fit (their log is −inf).
    """
    log_y = bracket_rms.double().log()
    log_x = 0.5 * (grad_rms_i.double().log() + grad_rms_j.double().log())
    return slope_one_fit(log_y, log_x)


def gram_matrix(gradients: torch.Tensor, columns: int = 1 << 18) -> torch.Tensor:
    """G[a, b] = g_a · g_b for the rows of ``gradients`` (n × D), in float64, accumulated over ``columns``
    columns at a time (never a float64 copy of all rows: that would double a worker's task memory)."""
    n = gradients.shape[0]
    gram = torch.zeros(n, n, dtype=torch.float64, device=gradients.device)
    for start in range(0, gradients.shape[1], columns):
        block = gradients[:, start:start + columns].double()
        gram += block @ block.T
    return gram


def effective_rank(gram: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values of g), from G = g gᵀ (see the module docstring;
    :func:`lie_sweep.spectra.effective_rank_of_gram` on the tensor's values)."""
    return effective_rank_of_gram(gram.detach().double().cpu().numpy())
