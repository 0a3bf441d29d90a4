import pytest
import torch

from lie_sweep import ParamSpec


def test_flatten_unflatten_round_trip_with_batch_dims():
    tensors = {"a.weight": torch.randn(3, 4, 5), "a.bias": torch.randn(3, 4), "b": torch.randn(3)}
    spec = ParamSpec((n, t.shape[1:]) for n, t in tensors.items())
    assert spec.size == 20 + 4 + 1
    assert [e.offset for e in spec.entries] == [0, 20, 24]
    flat = spec.flatten({n: t for n, t in tensors.items()}, batch_dims=1)
    assert flat.shape == (3, 25)
    back = spec.unflatten(flat)
    for n, t in tensors.items():
        torch.testing.assert_close(back[n], t.reshape(3, *spec[n].shape))


def test_records_round_trip_and_order_is_stable():
    spec = ParamSpec([("x", (2, 3)), ("y", ()), ("z", (4,))])
    again = ParamSpec.from_records(spec.to_records())
    assert again == spec
    assert again.names == ["x", "y", "z"]


def test_wrong_shapes_are_refused():
    spec = ParamSpec([("x", (2, 3))])
    with pytest.raises(ValueError, match="expected shape"):
        spec.flatten({"x": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="expected length 6"):
        spec.unflatten(torch.zeros(5))
    with pytest.raises(ValueError, match="duplicate"):
        ParamSpec([("x", (1,)), ("x", (2,))])
