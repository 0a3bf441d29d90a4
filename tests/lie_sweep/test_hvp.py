"""HVP modes: every mode the kernel offers reproduces the reference (forward-over-reverse), and the
kernel's reusable workspace changes nothing."""

import pytest
import torch
from torch import nn

from lie_sweep import FunctionalModel, MXResNet, PreconditionedField, SGDField, bracket_kernel
from lie_sweep.kernel import kernel_workspace
from lie_sweep.errors import ConfigError
from lie_sweep.fields import eval_mode
from lie_sweep.hvp import hvp_batches
from lie_sweep.hvp_calibration import ModeTiming, fastest_agreeing, time_hvp_modes

from .cases import batch, rel_err, tiny_mlp
from .reference import dense_brackets

PAIRS = [(i, j) for i in range(6) for j in range(i + 1, 6)]


def _precond(model):
    torch.manual_seed(3)
    return PreconditionedField({n: torch.rand_like(p) + 0.5 for n, p in model.named_parameters()})


@pytest.mark.parametrize("field", ["sgd", "preconditioned"])
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_reverse_mode_equals_the_dense_reference_float64(field, chunk):
    model = tiny_mlp()
    x, y = batch(6, (6,), 3)
    fm = FunctionalModel(model)
    f = SGDField() if field == "sgd" else _precond(model)
    got = bracket_kernel(fm, fm.params(), x, y, PAIRS, field=f, chunk_size=chunk, hvp="reverse")
    want = dense_brackets(model, got.spec, x, y, PAIRS, precond=None if field == "sgd" else f.diagonal)
    assert want.norm() > 0
    assert rel_err(got.brackets, want) <= 1e-10


def test_reverse_mode_agrees_with_forward_to_1e6_in_float32_with_batchnorm():
    torch.manual_seed(4)
    model = MXResNet(num_outputs=5, widths=(8, 16), depths=(1, 1), stem_widths=(4, 4, 8), zero_init_residual=False)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    x, y = batch(6, (3, 16, 16), 5, dtype=torch.float32)
    fm = FunctionalModel(model)
    params = fm.params()
    fwd = bracket_kernel(fm, params, x, y, PAIRS, chunk_size=4).brackets
    rev = bracket_kernel(fm, params, x, y, PAIRS, chunk_size=4, hvp="reverse").brackets
    assert float((rev - fwd).abs().max() / fwd.abs().max()) <= 1e-6


def test_reverse_mode_refuses_a_field_that_is_not_linear_in_the_gradient():
    class Normalised(SGDField):  # u = −g/|g|: depends on the gradient non-linearly
        name, linear = "normalised", False

        def direction(self, params, grads):
            scale = torch.sqrt(sum((g * g).sum() for g in grads.values()))
            return {n: -g / scale for n, g in grads.items()}

    model = tiny_mlp()
    x, y = batch(3, (6,), 3)
    fm = FunctionalModel(model)
    with pytest.raises(ConfigError, match="needs a field linear in the gradient"):
        bracket_kernel(fm, fm.params(), x, y, [(0, 1)], field=Normalised(), hvp="reverse")
    with pytest.raises(ConfigError, match="unknown HVP mode"):
        hvp_batches(fm, fm.params(), SGDField(), "sideways")
    # forward differentiates the non-linear field too
    out = bracket_kernel(fm, fm.params(), x, y, [(0, 1)], field=Normalised())
    assert torch.isfinite(out.brackets).all() and out.brackets.norm() > 0


def test_a_reused_workspace_gives_the_same_brackets_and_a_misfit_is_refused():
    model = tiny_mlp()
    x, y = batch(6, (6,), 3)
    fm = FunctionalModel(model)
    params = fm.params()
    fresh = bracket_kernel(fm, params, x, y, PAIRS, chunk_size=3).brackets
    ws = kernel_workspace(len(PAIRS), fresh.shape[1], torch.float64, "cpu")
    ws.fill_(float("nan"))  # whatever a previous task left there must not leak into the result
    for pairs in (PAIRS, PAIRS[:4], PAIRS):
        got = bracket_kernel(fm, params, x, y, pairs, chunk_size=3, workspace=ws).brackets
        if len(pairs) == len(PAIRS):  # the same call on the same batches: the same bits
            assert torch.equal(got, fresh)
        else:  # 4 pairs alone are batched differently than inside the 15: equal to float64 round-off
            scale = fresh[:len(pairs)].abs().max()
            assert (got - fresh[:len(pairs)]).abs().max() <= 64 * torch.finfo(torch.float64).eps * scale
    with pytest.raises(ConfigError, match="workspace does not fit"):
        bracket_kernel(fm, params, x, y, PAIRS, workspace=kernel_workspace(3, fresh.shape[1], torch.float64, "cpu"))


def test_calibration_times_each_mode_and_chooses_the_fastest_that_agrees():
    model = tiny_mlp(torch.float32)
    x, y = batch(6, (6,), 3, dtype=torch.float32)
    fm = FunctionalModel(model)
    with eval_mode(model):
        timings, s_grad = time_hvp_modes(fm, fm.params(), x, y, PAIRS[:8], field=SGDField(), repeats=1)
    assert [t.mode for t in timings] == ["forward", "reverse"] and s_grad > 0
    assert timings[0].deviation == 0.0 and all(t.agrees and t.seconds > 0 for t in timings)
    assert timings[1].deviation <= 1e-6
    assert fastest_agreeing(timings) == min(timings, key=lambda t: t.seconds).mode
    slow_but_wrong = [ModeTiming("forward", 2.0, 1.0, 0.0, True), ModeTiming("reverse", 1.0, 0.5, 1e-3, False)]
    assert fastest_agreeing(slow_but_wrong) == "forward"


@pytest.mark.slow
def test_compiled_mode_agrees_with_forward():
    """torch.compile of the reverse mode (compiles once per batch shape: a few seconds for this MLP)."""
    model = tiny_mlp(torch.float32)
    x, y = batch(4, (6,), 3, dtype=torch.float32)
    fm = FunctionalModel(model)
    params = fm.params()
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3)]
    fwd = bracket_kernel(fm, params, x, y, pairs, chunk_size=64).brackets
    compiled = hvp_batches(fm, params, SGDField(), "compile")
    for _ in range(2):  # the second call runs the compiled code without compiling again
        got = bracket_kernel(fm, params, x, y, pairs, chunk_size=64, hvp=compiled).brackets
        assert float((got - fwd).abs().max() / fwd.abs().max()) <= 1e-5
