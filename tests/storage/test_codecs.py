"""Codec presets: each round-trips real brackets within its stated bound, through a real Zarr store."""

import numpy as np
import pytest
import torch

from lie_sweep import ParamSpec, SmallConvNet, SyntheticShapes, compute_brackets, stack_examples
from storage.codecs import CODEC_PRESETS, FLOAT16_MAX, array_codecs, encode_roundtrip, error_bound
from storage.errors import StoreError


@pytest.fixture(scope="module")
def brackets():
    """Brackets of all 15 pairs of 6 examples of a small convnet, float32 and float64."""
    out = {}
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        model = SmallConvNet(num_outputs=12, width=6).to(dtype)
        x, y = stack_examples(SyntheticShapes(length=16, image_size=16), range(6))
        pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
        named = compute_brackets(model, x.to(dtype), y.to(dtype), pairs)
        spec = ParamSpec.from_tensors(dict(model.named_parameters()))
        out[str(dtype).split(".")[1]] = spec.flatten(named, batch_dims=1).numpy()
    return out


def assert_within_bound(back, values, bound):
    err = np.abs(back.astype(np.float64) - values.astype(np.float64))
    allowed = np.maximum(bound["rel"] * np.abs(values.astype(np.float64)), bound["abs"])
    assert (err <= allowed).all(), float((err / np.maximum(allowed, 1e-300)).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("preset,keepbits", [("lossless", 10), ("lossless-fast", 10), ("bitround", 4), ("bitround", 10),
                                              ("bitround", 16),
                                              ("float16", 10)])
def test_each_preset_round_trips_real_brackets_within_its_bound(brackets, dtype, preset, keepbits):
    values = brackets[dtype]
    nbytes, back = encode_roundtrip(values, preset, keepbits=keepbits, inner=4096)
    assert back.dtype == values.dtype and back.shape == values.shape
    bound = error_bound(preset, keepbits)
    assert_within_bound(back, values, bound)
    if preset.startswith("lossless"):
        assert np.array_equal(back, values)
    else:
        assert not np.array_equal(back, values)  # lossy presets do change values
        l2 = np.linalg.norm(back - values) / np.linalg.norm(values)
        assert l2 <= bound["rel"] + (bound["abs"] * np.sqrt(values.size) / np.linalg.norm(values))
    assert nbytes < values.nbytes


def test_fewer_kept_bits_store_fewer_bytes(brackets):
    values = brackets["float32"]
    sizes = {k: encode_roundtrip(values, "bitround", keepbits=k, inner=4096)[0] for k in (4, 10, 16)}
    lossless = encode_roundtrip(values, "lossless", inner=4096)[0]
    assert sizes[4] < sizes[10] < sizes[16] < lossless < encode_roundtrip(values, "lossless-fast", inner=4096)[0]


def test_float16_refuses_values_beyond_its_range():
    values = np.array([[1.0, -2.0 * FLOAT16_MAX, 3.0]], dtype=np.float32)
    with pytest.raises(StoreError, match="float16's range"):
        encode_roundtrip(values, "float16")
    ok = np.array([[1.0, -FLOAT16_MAX, np.inf]], dtype=np.float32)
    assert np.array_equal(encode_roundtrip(ok, "float16")[1], ok)


def test_bad_preset_level_and_keepbits_are_one_line_errors():
    with pytest.raises(StoreError, match="unknown codec preset"):
        array_codecs("zfp")
    with pytest.raises(StoreError, match="level out of range"):
        array_codecs("lossless", level=12)
    with pytest.raises(StoreError, match="keepbits out of range"):
        array_codecs("bitround", keepbits=30, dtype="float32")
    assert set(CODEC_PRESETS) == {"lossless", "lossless-fast", "bitround", "float16"}
    for preset in CODEC_PRESETS:  # every preset ends with a checksum
        assert type(array_codecs(preset).compressors[-1]).__name__ == "Crc32cCodec"
