"""The batched Lie bracket kernel.

For examples i, j with update fields u_i, u_j:

    [u_i, u_j](θ) = J_{u_j}(θ) u_i(θ) − J_{u_i}(θ) u_j(θ)        (SGD: H_j g_i − H_i g_j)

Each term is one Hessian-vector product of a field (an "ordered HVP" (b along a) = J_{u_b} u_a,
evaluated by one of the modes of :mod:`lie_sweep.hvp`: forward-over-reverse ``jvp``, reverse-over-reverse
``vjp``, or compiled). A pair (i, j) needs exactly two, (j along i) and (i along j); the kernel builds the
list of ordered HVPs that the requested pairs need, never one twice, and :func:`plan_hvp_calls` groups
them into few large vmapped calls: "block" calls (a block of examples × a block of tangents, tangents
shared by every example; inside one block the diagonal M[e, e] is evaluated too and discarded, since a
shared-tangent square is faster than each example's own partners) and "flat" calls over the (example,
tangent) combinations left, each at most ``chunk_size`` pairs' worth.

Swapping the order of two SGD steps of size ε moves the end point by
θ_ij − θ_ji = ε² [u_i, u_j] + O(ε³).

How much memory a call may take (the default ``chunk_size``) is policy, not math: :mod:`lie_sweep.budget`.

The module is over 300 lines on purpose: the call planner, the vmapped calls and the public
wrappers share one batch layout (blocks, flat combinations) and change together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch.func import jvp, vmap

from .errors import ConfigError, ExampleIndexError, PairError
from .fields import FunctionalModel, LossFn, Params, SGDField, UpdateField, eval_mode, like_params
from .allocator import kernel_allocator
from .budget import default_chunk_size
from .hvp import HVPBatches, hvp_batches
from .params import ParamSpec
from .tasks import Task

__all__ = [
    "KernelResult",
    "HVPCall",
    "plan_hvp_calls",
    "bracket_kernel",
    "compute_brackets",
    "example_gradients",
    "ExampleFields",
    "compute_example_fields",
    "batch_bracket",
    "tile_groups",
    "as_pair_tensor",
    "kernel_workspace",
]

@dataclass
class KernelResult:
    """Brackets of ``pairs`` at one θ, over the flat axis of ``spec``.

    ``pairs[p] = (i, j)`` index the batch given to the kernel; ``brackets[p] = [u_i, u_j]``
    (shape pairs × D). ``examples`` lists the batch indices involved in any pair (sorted);
    ``gradients[e] = ∇θ L_{examples[e]}`` (examples × D, the loss gradient, not the field) and
    ``losses[e]`` its loss.
    """

    spec: ParamSpec
    pairs: torch.Tensor
    examples: torch.Tensor
    brackets: torch.Tensor
    gradients: torch.Tensor
    losses: torch.Tensor

    def named_brackets(self) -> dict[str, torch.Tensor]:
        """``{name: (pairs, *shape)}`` views of :attr:`brackets`."""
        return self.spec.unflatten(self.brackets)


def as_pair_tensor(pairs: Sequence[Sequence[int]] | torch.Tensor, n_examples: int) -> torch.Tensor:
    """Validate a pair list against a batch of ``n_examples``; returns a (P, 2) int64 CPU tensor.

    Pairs are ordered as given ((i, j) asks for [u_i, u_j]); i == j and a pair asked twice (in
    either order) are refused, since they would compute a zero or repeat ordered HVPs.
    """
    t = torch.as_tensor(pairs, dtype=torch.long).cpu() if len(pairs) else torch.empty(0, 2, dtype=torch.long)
    if t.ndim != 2 or t.shape[1] != 2:
        raise PairError("pairs have the wrong shape", expected="a list of (i, j) pairs",
                        found=f"shape {tuple(t.shape)}", fix="pass e.g. [(0, 1), (0, 2)]")
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n_examples:
            bad = lo if lo < 0 else hi
            raise ExampleIndexError("example index out of range",
                                    expected=f"indices in [0, {n_examples - 1}] for a batch of {n_examples}",
                                    found=str(bad), fix="index the examples passed in, not the dataset")
        diag = (t[:, 0] == t[:, 1]).nonzero()
        if diag.numel():
            k = int(t[diag[0, 0], 0])
            raise PairError("a pair has i == j", expected="i != j (the diagonal bracket is zero)",
                            found=f"({k}, {k})", fix="drop the diagonal pairs")
        key = torch.sort(t, dim=1).values
        uniq = torch.unique(key, dim=0)
        if uniq.shape[0] != t.shape[0]:
            seen: set[tuple[int, int]] = set()
            for a, b in key.tolist():
                if (a, b) in seen:
                    raise PairError("a pair is asked for twice", expected="each unordered pair once",
                                    found=f"({a}, {b}) more than once",
                                    fix="deduplicate; [u_j, u_i] = -[u_i, u_j]")
                seen.add((a, b))
    return t


def _prepare(fmodel: FunctionalModel, inputs: torch.Tensor, targets: torch.Tensor,
             params: Params) -> tuple[torch.Tensor, torch.Tensor]:
    if inputs.shape[0] != targets.shape[0]:
        raise ExampleIndexError("inputs and targets differ in length",
                                expected=f"{inputs.shape[0]} targets", found=str(targets.shape[0]),
                                fix="pass one target row per input")
    return like_params(inputs, params), like_params(targets, params)


def example_gradients(fmodel: FunctionalModel, params: Params, inputs: torch.Tensor,
                      targets: torch.Tensor, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example (∇θ L_x flattened (n, D), L_x (n,)) for a batch, ``chunk_size`` examples per vmap."""
    spec = ParamSpec.from_tensors(params)
    grad_fn = vmap(fmodel.example_grad_and_loss, in_dims=(None, 0, 0))
    grads, losses = [], []
    for start in range(0, inputs.shape[0], chunk_size):
        g, loss = grad_fn(params, inputs[start:start + chunk_size], targets[start:start + chunk_size])
        grads.append(spec.flatten(g, batch_dims=1))
        losses.append(loss)
    return torch.cat(grads), torch.cat(losses)


@dataclass
class ExampleFields:
    """Per-example quantities of a batch at one θ, over the flat parameter axis.

    ``gradients[k] = ∇θ L_k`` (n × D), ``losses[k] = L_k`` (n,), ``fields[k] = u_k`` (n × D) for the
    field they were computed with. Computing them once per checkpoint lets every task of that
    checkpoint skip its own forward/backward passes.
    """

    gradients: torch.Tensor
    losses: torch.Tensor
    fields: torch.Tensor


def compute_example_fields(fmodel: FunctionalModel, params: Params, inputs: torch.Tensor, targets: torch.Tensor,
                           *, field: UpdateField | None = None, chunk_size: int = 64) -> ExampleFields:
    """g_k, L_k and u_k = field.direction(θ, g_k) for every example of a batch (eval mode)."""
    field = (field if field is not None else SGDField()).bind(params)
    inputs, targets = _prepare(fmodel, inputs, targets, params)
    spec = ParamSpec.from_tensors(params)
    with eval_mode(fmodel.module), torch.no_grad():
        grads, losses = example_gradients(fmodel, params, inputs, targets, chunk_size)
        fields = spec.flatten(field.direction(params, spec.unflatten(grads)), batch_dims=1)
    return ExampleFields(gradients=grads, losses=losses, fields=fields)


@dataclass
class HVPCall:
    """One vmapped evaluation of ordered HVPs M[e, t] = J_{u_e} u_t (example e along tangent t).

    ``kind`` says how (example, tangent) combinations are batched:

    * ``"block"``: outer vmap over ``examples`` (E,), inner vmap over ``tangents`` (T,) shared by all
      examples: E·T results. Each example's forward/backward is evaluated once and the tangents are
      unbatched at the outer level, which keeps convolutions ungrouped.
    * ``"flat"``: one vmap over combinations ``examples[c]`` along ``tangents[c]``.

    Result row r (row-major over the call's combinations) is added to bracket ``pair_index[r]``
    with sign ``sign[r]``; ``pair_index[r] = -1`` marks a row evaluated only to keep the block
    square (the diagonal M[e, e] of a block of pairs among its own examples), which is discarded.
    """

    kind: str
    examples: torch.Tensor
    tangents: torch.Tensor
    pair_index: torch.Tensor
    sign: torch.Tensor

    @property
    def n_hvps(self) -> int:
        """Ordered HVPs this call evaluates (discarded diagonal rows included)."""
        return int(self.pair_index.numel())


def plan_hvp_calls(pairs: torch.Tensor, chunk_size: int,
                   groups: Sequence[Sequence[int]] | None = None) -> list[HVPCall]:
    """Cover the ordered HVPs that ``pairs`` need with vmapped calls of at most 2·``chunk_size`` HVPs.

    Pair p = (i, j) needs +M[j, i] and −M[i, j]. Involved examples are cut into blocks of at most
    s = ⌊√(2·chunk_size)⌋; a block of examples × a block of tangents whose combinations are all
    needed becomes a ``"block"`` call, all pairs inside one block a square ``"block"`` of the block with
    itself (its diagonal rows discarded: ``pair_index`` −1), and whatever remains ``"flat"`` calls
    (blocks are balanced: as few as s allows, of equal size). ``groups`` (e.g. a tile's two example
    blocks, or a tournament's groups) are cut separately, so that blocks never straddle two of them;
    by default all involved examples, sorted, are one group. Every needed ordered HVP appears in
    exactly one call; a diagonal M[i, i] only as a discarded row of a square block.
    """
    needed: dict[tuple[int, int], tuple[int, int]] = {}
    for p, (i, j) in enumerate(pairs.tolist()):
        needed[(j, i)] = (p, 1)
        needed[(i, j)] = (p, -1)
    calls: list[HVPCall] = []

    def emit(kind: str, examples, tangents, keys: list[tuple[int, int]]) -> None:
        targets = [needed.pop(k) if k[0] != k[1] else (-1, 0) for k in keys]
        calls.append(HVPCall(kind, torch.tensor(examples, dtype=torch.long), torch.tensor(tangents, dtype=torch.long),
                             torch.tensor([t[0] for t in targets], dtype=torch.long),
                             torch.tensor([t[1] for t in targets], dtype=torch.long)))

    side = int((2 * chunk_size) ** 0.5)
    if side >= 2:
        examples = sorted({k for pair in pairs.tolist() for k in pair})
        involved = set(examples)
        hinted = [[int(k) for k in g if int(k) in involved] for g in (groups or [])]
        covered = {k for g in hinted for k in g}
        blocks = []
        for group in [g for g in hinted if g] + ([[k for k in examples if k not in covered]] if len(covered) <
                                                 len(examples) else []):
            n_blocks = -(-len(group) // side)
            size = -(-len(group) // max(n_blocks, 1))  # balanced: 12 examples, side 9 -> 6 + 6
            blocks += [group[k:k + size] for k in range(0, len(group), size)]
        for b, rows in enumerate(blocks):
            keys = [(e, t) for e in rows for t in rows if e != t]
            if len(rows) >= 2 and all(k in needed for k in keys):
                emit("block", rows, rows, [(e, t) for e in rows for t in rows])
            for cols in blocks[b + 1:]:
                for ex, tan in ((rows, cols), (cols, rows)):
                    full = [e for e in ex if all((e, t) in needed for t in tan)]
                    if len(full) * len(tan) >= 4:
                        emit("block", full, tan, [(e, t) for e in full for t in tan])
    rest = sorted(needed, key=lambda k: needed[k])  # by pair, so both halves of a pair share a call
    for start in range(0, len(rest), 2 * chunk_size):
        keys = rest[start:start + 2 * chunk_size]
        emit("flat", [e for e, _ in keys], [t for _, t in keys], keys)
    return calls


def bracket_kernel(fmodel: FunctionalModel, params: Params, inputs: torch.Tensor, targets: torch.Tensor,
                   pairs: Sequence[Sequence[int]] | torch.Tensor, *, field: UpdateField | None = None,
                   chunk_size: int | None = None, example_fields: ExampleFields | None = None,
                   groups: Sequence[Sequence[int]] | None = None, hvp: str | HVPBatches = "forward",
                   workspace: torch.Tensor | None = None) -> KernelResult:
    """[u_i, u_j](θ) for each (i, j) in ``pairs``, plus the gradient and loss of each involved example.

    ``params`` is θ as a dict (see :meth:`FunctionalModel.params`); ``inputs``/``targets`` hold the
    batch that ``pairs`` index. ``chunk_size`` bounds the pairs' worth of work per vmapped call
    (at most 2·chunk_size ordered HVPs); it bounds memory and does not change the result beyond
    floating-point reassociation. The module runs in eval mode. See :func:`plan_hvp_calls`.
    ``example_fields`` (from :func:`compute_example_fields` on the same batch, θ and field) are
    reused instead of recomputing the involved examples' gradients. ``groups`` (batch indices) say
    which examples belong together (see :func:`plan_hvp_calls`). ``hvp`` is the HVP mode
    (:data:`lie_sweep.hvp.HVP_MODES`, or batches from :func:`lie_sweep.hvp.hvp_batches` for this θ and
    field). ``workspace`` (from :func:`kernel_workspace`: (P + 1) × D, the parameters' dtype and device)
    accumulates the brackets instead of a new allocation per call: the result's ``brackets`` are then a
    view of it, valid until the workspace's next use.
    """
    kernel_allocator()  # once per process; documented in lie_sweep.allocator (opt out: LIE_SWEEP_MALLOC=system)
    field = (field if field is not None else SGDField()).bind(params)
    inputs, targets = _prepare(fmodel, inputs, targets, params)
    pair_t = as_pair_tensor(pairs, inputs.shape[0])
    spec = ParamSpec.from_tensors(params)
    ref = next(iter(params.values()))
    if chunk_size is None:
        chunk_size = default_chunk_size(spec.size, ref.dtype, ref.device)
    if chunk_size < 1:
        raise ConfigError("chunk_size must be positive", expected="an integer >= 1", found=str(chunk_size),
                          fix="pass chunk_size=None for a memory-based default")

    examples = torch.unique(pair_t.flatten())  # sorted
    if example_fields is not None and example_fields.fields.shape != (inputs.shape[0], spec.size):
        raise PairError("example fields do not fit the batch", expected=f"shape {(inputs.shape[0], spec.size)}",
                        found=f"{tuple(example_fields.fields.shape)}",
                        fix="compute them with compute_example_fields on the same batch and model")
    slot = torch.full((inputs.shape[0],), -1, dtype=torch.long)
    if example_fields is None:
        slot[examples] = torch.arange(examples.numel())
    else:
        slot = torch.arange(inputs.shape[0])
    n_pairs = pair_t.shape[0]
    sums = _bracket_sums(workspace, n_pairs + 1, spec.size, ref)  # row P collects discarded diagonal rows
    batches = hvp if isinstance(hvp, HVPBatches) else hvp_batches(fmodel, params, field, hvp)

    with eval_mode(fmodel.module), torch.no_grad():
        if example_fields is None:
            ex_dev = examples.to(ref.device)
            example_fields = compute_example_fields(fmodel, params, inputs[ex_dev], targets[ex_dev], field=field,
                                                    chunk_size=2 * chunk_size)
        fields = example_fields.fields
        rows_of_examples = slot[examples].to(ref.device)
        for call in plan_hvp_calls(pair_t, chunk_size, groups):
            ex = call.examples.to(ref.device)
            tangents = spec.unflatten(fields[slot[call.tangents].to(ref.device)])
            run = batches.block if call.kind == "block" else batches.flat
            out = run(inputs[ex], targets[ex], tangents)
            target = torch.where(call.pair_index < 0, n_pairs, call.pair_index).to(ref.device)
            sign = call.sign.to(device=ref.device, dtype=ref.dtype).unsqueeze(1)
            rows = spec.flatten(out, batch_dims=out[spec.entries[0].name].ndim - len(spec.entries[0].shape))
            sums.index_add_(0, target, rows.reshape(-1, spec.size).mul_(sign))
            del out, rows, tangents
    return KernelResult(spec=spec, pairs=pair_t, examples=examples, brackets=sums[:n_pairs],
                        gradients=example_fields.gradients[rows_of_examples],
                        losses=example_fields.losses[rows_of_examples])


def _bracket_sums(workspace: torch.Tensor | None, rows: int, size: int, ref: torch.Tensor) -> torch.Tensor:
    """A zeroed (rows × size) accumulator: the first rows of ``workspace`` when one is given (checked), else new."""
    if workspace is None:
        return torch.zeros(rows, size, dtype=ref.dtype, device=ref.device)
    if (workspace.ndim != 2 or workspace.shape[0] < rows or workspace.shape[1] != size or workspace.dtype != ref.dtype
            or workspace.device != ref.device or not workspace.is_contiguous()):
        raise ConfigError("the kernel's workspace does not fit", expected=f"a contiguous ≥ {rows} × {size} "
                          f"{ref.dtype} tensor on {ref.device}", found=f"{tuple(workspace.shape)} {workspace.dtype} on "
                          f"{workspace.device}", fix="allocate it with kernel_workspace(max_pairs, spec.size, ...)")
    return workspace[:rows].zero_()


def kernel_workspace(max_pairs: int, n_params: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """A reusable ``workspace`` for :func:`bracket_kernel` calls of up to ``max_pairs`` pairs ((P + 1) × D)."""
    return torch.empty(max_pairs + 1, n_params, dtype=dtype, device=device)


def compute_brackets(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                     pairs: Sequence[Sequence[int]] | torch.Tensor, *, loss_fn: LossFn | None = None,
                     field: UpdateField | None = None, chunk_size: int | None = None,
                     task: Task | str | None = None) -> dict[str, torch.Tensor]:
    """Lie brackets [u_i, u_j] = J_{u_j} u_i − J_{u_i} u_j of example fields at the model's parameters.

    ``pairs`` index ``inputs``/``targets`` (a batch); ``task`` (a :class:`~lie_sweep.tasks.Task` or its
    registered name: ``multilabel``, the default, ``classification``, ``regression``, ``causal_lm``) gives the
    per-item loss and reads the model's output (``ModelOutput.logits``); ``loss_fn(outputs, targets)``, where
    given, replaces the task's loss (per-example losses of shape (batch,));
    ``field`` defaults to SGD, u_x = −∇L_x. BatchNorm uses running statistics (eval mode).
    Returns ``{parameter name: tensor of shape (len(pairs), *param.shape)}`` on the model's device
    and dtype. With learning rate ε, training on i then j minus j then i moves θ by
    ε² [u_i, u_j] + O(ε³).
    """
    fmodel = FunctionalModel(model, loss_fn, task=_task(task))
    result = bracket_kernel(fmodel, fmodel.params(), inputs, targets, pairs, field=field, chunk_size=chunk_size)
    return result.named_brackets()


def batch_bracket(model: torch.nn.Module, inputs_a: torch.Tensor, targets_a: torch.Tensor,
                  inputs_b: torch.Tensor, targets_b: torch.Tensor, *, loss_fn: LossFn | None = None,
                  field: UpdateField | None = None, task: Task | str | None = None) -> dict[str, torch.Tensor]:
    """[ū_A, ū_B] for the mean fields ū_A = mean_{a∈A} u_a of two example groups (``task``: as
    :func:`compute_brackets` takes it).

    By bilinearity it equals the mean over a ∈ A, b ∈ B of [u_a, u_b], at the cost of two batched
    HVPs (J_{ū_B} ū_A and J_{ū_A} ū_B) instead of |A|·|B| pairs.
    """
    fmodel = FunctionalModel(model, loss_fn, task=_task(task))
    params = fmodel.params()
    field = (field if field is not None else SGDField()).bind(params)
    xa, ya = _prepare(fmodel, inputs_a, targets_a, params)
    xb, yb = _prepare(fmodel, inputs_b, targets_b, params)

    def mean_field(p: Params, x: torch.Tensor, y: torch.Tensor) -> Params:
        per_example = vmap(lambda xe, ye: field.value(fmodel, p, xe, ye))(x, y)
        return {n: t.mean(0) for n, t in per_example.items()}

    with eval_mode(fmodel.module), torch.no_grad():
        u_a = mean_field(params, xa, ya)
        u_b = mean_field(params, xb, yb)
        jb_ua = jvp(lambda p: mean_field(p, xb, yb), (params,), (u_a,))[1]
        ja_ub = jvp(lambda p: mean_field(p, xa, ya), (params,), (u_b,))[1]
    return {n: jb_ua[n] - ja_ub[n] for n in params}


def _task(task: Task | str | None) -> Task | None:
    """A task given by its registered name, or as it is."""
    if isinstance(task, str):
        from .task_kinds import task_of

        return task_of(task)
    return task


def tile_groups(local: Sequence[Sequence[int]], positions: Sequence[int]) -> list[list[int]]:
    """The examples of some pairs (rows of ``positions``) grouped for the kernel's shared-tangent blocks
    (``bracket_kernel(groups=...)``): the connected components of the pairs (a tournament's groups; an
    all-pairs tile's A ∪ B), each sorted by position (so a tile's A comes before its B), in order of first
    appearance."""
    parent = list(range(len(positions)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, j in (local.tolist() if hasattr(local, "tolist") else local):
        parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for k in range(len(positions)):
        groups.setdefault(root(k), []).append(k)
    return [sorted(g, key=positions.__getitem__) for g in groups.values()]
