import pytest
import torch
from torch import nn
from torch.func import grad

from lie_sweep import (KernelResult, ExampleIndexError, FunctionalModel, MXResNet, PairError, ParamSpec,
                       PreconditionedField, SmallConvNet, batch_bracket, bracket_kernel, compute_brackets)
from lie_sweep.fields import eval_mode

from .cases import batch, flat, rel_err, tiny_mlp
from .reference import dense_brackets, double_backward_brackets, sgd_in_both_orders

ALL_PAIRS_5 = [(i, j) for i in range(5) for j in range(i + 1, 5)]


def test_kernel_equals_dense_hessian_reference_float64():
    model = tiny_mlp()
    x, y = batch(5, (6,), 3)
    got, spec = flat(compute_brackets(model, x, y, ALL_PAIRS_5), model)
    want = dense_brackets(model, spec, x, y, ALL_PAIRS_5)
    assert want.norm() > 0
    assert rel_err(got, want) <= 1e-10


def test_preconditioned_field_equals_dense_reference_float64():
    model = tiny_mlp()
    x, y = batch(4, (6,), 3)
    pairs = [(0, 1), (2, 1), (0, 3)]
    torch.manual_seed(3)
    diag = {n: torch.rand_like(p) + 0.5 for n, p in model.named_parameters()}
    got, spec = flat(compute_brackets(model, x, y, pairs, field=PreconditionedField(diag)), model)
    want = dense_brackets(model, spec, x, y, pairs, precond=diag)
    assert rel_err(got, want) <= 1e-10
    # and it differs from the plain SGD bracket: the preconditioner matters
    sgd, _ = flat(compute_brackets(model, x, y, pairs), model)
    assert rel_err(sgd, want) > 1e-3


@pytest.mark.parametrize("make", [
    lambda: SmallConvNet(width=4, num_outputs=5, activation_name="mish"),
    lambda: MXResNet(num_outputs=5, widths=(8, 16), depths=(1, 1), stem_widths=(4, 4, 8), zero_init_residual=False),
], ids=["convnet", "resnet"])
def test_kernel_equals_double_backward_reference_float32_with_batchnorm(make):
    torch.manual_seed(4)
    model = make()
    # non-trivial running statistics, so eval-mode BatchNorm is really exercised
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    model.train()  # the kernel must switch to eval mode itself, and restore the flag
    x, y = batch(4, (3, 16, 16), 5, dtype=torch.float32)
    pairs = [(0, 1), (0, 2), (1, 3), (3, 2)]
    got, _ = flat(compute_brackets(model, x, y, pairs), model)
    assert model.training
    want = double_backward_brackets(model, x, y, pairs)
    assert rel_err(got, want) <= 1e-5


@pytest.mark.parametrize("act", ["mish"])
def test_swap_of_two_sgd_steps_converges_to_the_bracket(act):
    torch.manual_seed(5)
    model = SmallConvNet(width=3, num_outputs=4, activation_name=act).double()
    x, y = batch(2, (3, 8, 8), 4)
    fmodel = FunctionalModel(model)
    params = fmodel.params()
    spec = ParamSpec.from_tensors(params)
    bracket = spec.flatten(compute_brackets(model, x, y, [(0, 1)]), batch_dims=1)[0]

    errors = {}
    with eval_mode(model):
        for eps in (1e-2, 1e-3):
            ij, ji = sgd_in_both_orders(fmodel, params, x, y, 0, 1, eps)
            swap = (spec.flatten(ij) - spec.flatten(ji)) / eps**2
            errors[eps] = rel_err(swap, bracket)
    assert errors[1e-3] < 0.05
    assert errors[1e-2] >= 5 * errors[1e-3]


def test_antisymmetry_and_no_diagonal():
    model = tiny_mlp()
    x, y = batch(4, (6,), 3)
    a, _ = flat(compute_brackets(model, x, y, [(0, 1), (2, 3)]), model)
    b, _ = flat(compute_brackets(model, x, y, [(1, 0), (3, 2)]), model)
    torch.testing.assert_close(a, -b, rtol=0, atol=1e-14)
    with pytest.raises(PairError, match=r"i == j"):
        compute_brackets(model, x, y, [(0, 1), (2, 2)])
    with pytest.raises(PairError, match="asked for twice"):
        compute_brackets(model, x, y, [(0, 1), (1, 0)])


def test_bilinearity_batch_bracket_is_mean_of_pairwise_brackets():
    model = tiny_mlp()
    x, y = batch(5, (6,), 3)
    group_a, group_b = [0, 1], [2, 3, 4]
    pairs = [(a, b) for a in group_a for b in group_b]
    pairwise, spec = flat(compute_brackets(model, x, y, pairs), model)
    mean_bracket = spec.flatten(batch_bracket(model, x[group_a], y[group_a], x[group_b], y[group_b]))
    assert rel_err(mean_bracket, pairwise.mean(0)) <= 1e-10


def test_result_does_not_depend_on_chunk_size_float32():
    torch.manual_seed(6)
    model = SmallConvNet(width=4, num_outputs=5)
    x, y = batch(6, (3, 12, 12), 5, dtype=torch.float32)
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    ref, _ = flat(compute_brackets(model, x, y, pairs, chunk_size=len(pairs)), model)
    for chunk in (1, 4, 7):
        got, _ = flat(compute_brackets(model, x, y, pairs, chunk_size=chunk), model)
        assert (got - ref).abs().max().item() <= 1e-6 * max(1.0, ref.abs().max().item())


def test_kernel_returns_gradients_and_losses_of_involved_examples():
    model = tiny_mlp()
    x, y = batch(6, (6,), 3)
    fm = FunctionalModel(model)
    out = bracket_kernel(fm, fm.params(), x, y, [(4, 1), (1, 3)], chunk_size=1)
    assert isinstance(out, KernelResult)
    assert out.examples.tolist() == [1, 3, 4]
    assert out.brackets.shape == (2, out.spec.size)
    for row, k in enumerate(out.examples.tolist()):
        loss = fm.example_loss(fm.params(), x[k], y[k])
        g = out.spec.flatten(grad(fm.example_loss)(fm.params(), x[k], y[k]))
        torch.testing.assert_close(out.losses[row], loss)
        torch.testing.assert_close(out.gradients[row], g)


def test_example_index_out_of_range_is_one_line():
    model = tiny_mlp()
    x, y = batch(3, (6,), 3)
    with pytest.raises(ExampleIndexError) as info:
        compute_brackets(model, x, y, [(0, 3)])
    msg = str(info.value)
    assert "\n" not in msg and "expected indices in [0, 2]" in msg and "found 3" in msg


def test_adam_preconditioner_matches_torch_adam_step():
    """With β1 = 0, Adam's step on gradient g is lr · P g for P from the state after the step."""
    model = tiny_mlp()
    x, y = batch(3, (6,), 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.0, 0.99), eps=1e-6)
    names = [n for n, _ in model.named_parameters()]
    for k in range(3):  # a few steps so v holds history
        opt.zero_grad()
        FunctionalModel(model).loss_fn(model(x[k:k + 1]), y[k:k + 1]).sum().backward()
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        opt.step()
    field = PreconditionedField.from_adam_state(opt.state_dict(), names)
    step = field.direction(None, grads)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach() - before[n], 1e-2 * step[n], rtol=1e-9, atol=1e-12)


@pytest.mark.gpu
def test_cuda_equals_cpu():
    model = tiny_mlp()
    x, y = batch(5, (6,), 3)
    cpu, _ = flat(compute_brackets(model, x, y, ALL_PAIRS_5), model)
    gpu = compute_brackets(model.cuda(), x.cuda(), y.cuda(), ALL_PAIRS_5)
    got, _ = flat({k: v.cpu() for k, v in gpu.items()}, model)
    assert rel_err(got, cpu) <= 1e-10


GROUPS = {"none": None, "two": [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]], "partial": [[3, 7, 5]]}


@pytest.mark.parametrize("groups", list(GROUPS))
@pytest.mark.parametrize("chunk", [1, 2, 5, 18, 64])
@pytest.mark.parametrize("pairs", [
    [(i, j) for i in range(10) for j in range(i + 1, 10)],             # all pairs
    [(i, j) for i in range(12) for j in range(i + 1, 12)][7:40],       # a contiguous range of them
    [(5, 1), (2, 9), (9, 4), (0, 3), (3, 7), (7, 5)],                  # scattered, either order
], ids=["all", "range", "scattered"])
def test_plan_computes_each_needed_ordered_hvp_exactly_once_and_discards_the_diagonal(pairs, chunk, groups):
    from lie_sweep.kernel import as_pair_tensor, plan_hvp_calls

    pair_t = as_pair_tensor(pairs, 12)
    calls = plan_hvp_calls(pair_t, chunk, GROUPS[groups])      # group hints change batching, never coverage
    seen = []
    for call in calls:
        assert call.n_hvps <= 2 * chunk
        if call.kind == "block":
            combos = [(e, t) for e in call.examples.tolist() for t in call.tangents.tolist()]
        else:
            combos = list(zip(call.examples.tolist(), call.tangents.tolist()))
        assert len(combos) == call.n_hvps
        for (e, t), p, sign in zip(combos, call.pair_index.tolist(), call.sign.tolist()):
            if p == -1:  # a square block's diagonal, evaluated and discarded
                assert call.kind == "block" and e == t and call.examples.tolist() == call.tangents.tolist()
                continue
            i, j = pairs[p]
            assert (e, t) == ((j, i) if sign == 1 else (i, j))  # +J_{u_j}u_i, -J_{u_i}u_j
            seen.append((e, t))
    assert all(e != t for e, t in seen)
    assert len(seen) == len(set(seen)) == 2 * len(pairs)
    if chunk >= 18 and len(pairs) > 20:
        assert any(c.kind != "flat" for c in calls)  # blocks are used when they fit


def test_group_hints_make_tournament_groups_dense_calls():
    from jobs.planning.grids import tournament_pairs
    from lie_sweep.kernel import plan_hvp_calls

    pos = torch.from_numpy(tournament_pairs(64, 1, 8, seed=3)[:56])              # two whole groups of 8
    members = [sorted({k for p in pos[:28].tolist() for k in p}), sorted({k for p in pos[28:].tolist() for k in p})]
    hinted = plan_hvp_calls(pos, 32, members)
    assert all(c.kind != "flat" for c in hinted)                               # every HVP in a dense call
    assert sum(c.n_hvps for c in plan_hvp_calls(pos, 32) if c.kind == "flat") > 0   # sorted positions mix groups


def test_precomputed_example_fields_give_the_same_brackets():
    from lie_sweep import compute_example_fields

    model = tiny_mlp()
    x, y = batch(6, (6,), 3)
    fm = FunctionalModel(model)
    diag = {n: torch.rand_like(p) + 0.5 for n, p in model.named_parameters()}
    field = PreconditionedField(diag)
    pre = compute_example_fields(fm, fm.params(), x, y, field=field)
    pairs = [(4, 1), (1, 3), (0, 5)]
    a = bracket_kernel(fm, fm.params(), x, y, pairs, field=field)
    b = bracket_kernel(fm, fm.params(), x, y, pairs, field=field, example_fields=pre)
    assert torch.equal(a.examples, b.examples)
    torch.testing.assert_close(b.brackets, a.brackets, rtol=1e-12, atol=0)
    torch.testing.assert_close(b.gradients, a.gradients, rtol=1e-12, atol=0)
    torch.testing.assert_close(b.losses, a.losses, rtol=1e-12, atol=0)
    with pytest.raises(PairError, match="do not fit the batch"):
        bracket_kernel(fm, fm.params(), x[:5], y[:5], pairs[:2], example_fields=pre)
