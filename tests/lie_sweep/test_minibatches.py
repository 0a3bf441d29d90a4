"""Minibatches as units (pairs.unit=batch): an item is a minibatch, its loss the mean of its examples', so its
field is the mean field and a step on it a mean-gradient step (float64)."""

import copy
import itertools

import pytest
import torch

from lie_sweep import SGDField, compute_brackets
from lie_sweep.data import Minibatches, SyntheticShapes, seeded_minibatches
from lie_sweep.fields import FunctionalModel, PreconditionedField
from lie_sweep.kernel import bracket_kernel
from lie_sweep.optim import from_state_dict
from lie_sweep.swap import OptimizerRule, swap_kernel
from lie_sweep.torch_swap import torch_optim_swap

from .test_order import mse, trained


def batches(n_batches=3, size=4, seed=5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_batches, size, 4, generator=g, dtype=torch.float64),
            torch.randn(n_batches, size, 3, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("field", ["sgd", "adam"])
def test_the_bracket_of_two_minibatches_is_the_mean_of_their_pairwise_brackets(field):
    net, optimizers, _ = trained("adam")
    names = [n for n, _ in net.named_parameters()]
    u = SGDField() if field == "sgd" else PreconditionedField.from_adam_state(optimizers[0].state_dict(), names)
    xb, yb = batches()
    fm = FunctionalModel(net, mse, batched_items=True)
    got = bracket_kernel(fm, fm.params(), xb, yb, [(0, 1), (2, 0)], field=u).brackets
    flat_x, flat_y = xb.reshape(-1, 4), yb.reshape(-1, 3)
    for p, (a, b) in enumerate([(0, 1), (2, 0)]):
        pairs = [(4 * a + r, 4 * b + s) for r, s in itertools.product(range(4), range(4))]
        each = compute_brackets(net, flat_x, flat_y, pairs, loss_fn=mse, field=u)
        want = torch.cat([each[n].mean(dim=0).flatten() for n in names])
        assert float((got[p] - want).norm() / want.norm()) <= 1e-10


@pytest.mark.parametrize("case", ["momentum", "adam"])
def test_a_minibatch_swap_is_torch_optims_mean_loss_steps(case):
    net, optimizers, _ = trained(case)
    names = [n for n, _ in net.named_parameters()]
    step, state = from_state_dict(optimizers[0].state_dict(), names)
    xb, yb = batches()
    fm = FunctionalModel(net, mse, batched_items=True)
    lr = step.learning_rate()
    got = swap_kernel(fm, fm.params(), xb, yb, [(0, 1)], OptimizerRule(step, lr), state=state).deltas[0]
    ends = []
    for order in ((0, 1), (1, 0)):       # torch.optim by hand: one step on A's mean loss, then one on B's
        model = copy.deepcopy(net)
        opt = type(optimizers[0])(model.parameters())
        opt.load_state_dict(copy.deepcopy(optimizers[0].state_dict()))
        for k in order:
            opt.zero_grad()
            mse(model(xb[k]), yb[k]).mean().backward()
            opt.step()
        ends.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    want = ends[0] - ends[1]
    assert float((got - want).norm() / want.norm()) <= 1e-10
    reference = torch_optim_swap(net, optimizers[0].state_dict(), (xb[0], yb[0]), (xb[1], yb[1]), lr, loss_fn=mse,
                                 batched_items=True)
    assert float((reference - want).norm() / want.norm()) <= 1e-12  # lr·(lr/lr) may differ from lr in its last bit


def test_minibatches_are_disjoint_seeded_and_stack_their_examples():
    data = SyntheticShapes(length=32, image_size=8)
    cut = seeded_minibatches(list(range(4, 16)), 4, seed=3)
    assert cut == seeded_minibatches(list(range(4, 16)), 4, seed=3) != seeded_minibatches(list(range(4, 16)), 4, 4)
    assert sorted(k for b in cut for k in b) == list(range(4, 16)) and all(len(b) == 4 for b in cut)
    items = Minibatches(data, cut)
    x, y = items[1]
    assert len(items) == 3 and x.shape == (4, 3, 8, 8) and torch.equal(x[0], data[cut[1][0]][0])
    with pytest.raises(ValueError, match="do not make minibatches"):
        seeded_minibatches(list(range(10)), 4, seed=0)
