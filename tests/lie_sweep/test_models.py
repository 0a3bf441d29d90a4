import re

import pytest
import torch

from lie_sweep import MLP, ConfigError, MXResNet, SmallConvNet
from lie_sweep.models import Mish


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_reference_resnet_layout_has_resnet18_size():
    model = MXResNet(num_outputs=40)
    assert 11.1e6 < n_params(model) < 11.3e6
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 10


@pytest.mark.parametrize("size", [16, 32, 40])
def test_models_accept_configurable_input_sizes_and_outputs(size):
    x = torch.randn(2, 3, size, size)
    assert SmallConvNet(num_outputs=7)(x).shape == (2, 7)
    assert MXResNet(num_outputs=9, widths=(8, 16, 32), depths=(1, 2, 1), stem_widths=(4, 4, 8))(x).shape == (2, 9)
    assert MLP(input_shape=(3, size, size), num_outputs=5)(x).shape == (2, 5)


def test_mish_formula_matches_torch():
    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    torch.testing.assert_close(Mish()(x), torch.nn.functional.mish(x))


def test_bad_model_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match=re.escape("expected mish | relu | tanh | gelu | silu; found 'swish'")):
        SmallConvNet(activation_name="swish")
    with pytest.raises(ConfigError, match="as many widths as depths") as info:
        MXResNet(widths=(8, 16), depths=(1,))
    assert "\n" not in str(info.value)


def test_zero_init_residual_zeroes_last_batchnorm_of_each_block():
    model = MXResNet(widths=(8, 16), depths=(1, 1), stem_widths=(4, 4, 8))
    for block in (model.stages[0][0], model.stages[1][0]):
        assert torch.count_nonzero(block.convs[1][1].weight) == 0
