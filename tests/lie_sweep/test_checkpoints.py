import pytest
import torch

from lie_sweep import (CheckpointError, CheckpointMismatchError, CheckpointNotFoundError, PreconditionedField,
                       SmallConvNet, SyntheticShapes, apply_checkpoint, compute_brackets, load_checkpoint,
                       load_checkpoints, save_checkpoint, stack_examples, train)
from lie_sweep.checkpoints import check_finite, checkpoint_base, file_sha256
from lie_sweep.errors import NonFiniteError


def small_model(seed=0):
    torch.manual_seed(seed)
    return SmallConvNet(width=4, num_outputs=12)


def adam_stepped(model):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return opt


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_nested_round_trip_keeps_model_optimizer_and_step(tmp_path, suffix):
    model = small_model()
    opt = adam_stepped(model)
    path = save_checkpoint(tmp_path / f"ckpt{suffix}", model, opt, step=123)
    ck = load_checkpoint(path)
    assert ck.step == 123 and ck.step_source == "file"
    assert ck.size == path.stat().st_size and ck.sha256 == file_sha256(path)
    for k, v in model.state_dict().items():
        assert torch.equal(ck.model_state[k], v)
    want = opt.state_dict()
    assert ck.optimizer_state["param_groups"] == want["param_groups"]
    for idx, state in want["state"].items():
        for key, v in state.items():
            assert torch.equal(torch.as_tensor(ck.optimizer_state["state"][idx][key]), torch.as_tensor(v))
    # the loaded state is usable: Adam's preconditioner builds from it
    names = [n for n, _ in model.named_parameters()]
    PreconditionedField.from_adam_state(ck.optimizer_state, names).bind(dict(model.named_parameters()))
    # and a fresh model loaded from it computes the same brackets
    fresh = small_model(seed=99)
    apply_checkpoint(fresh, ck)
    x, y = stack_examples(SyntheticShapes(8, 8), range(3))
    a, b = compute_brackets(model, x, y, [(0, 1), (1, 2)]), compute_brackets(fresh, x, y, [(0, 1), (1, 2)])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_plain_state_dicts_and_step_from_file_name(tmp_path):
    from safetensors.torch import save_file

    model = small_model()
    torch.save(model.state_dict(), tmp_path / "run-step_000040.pt")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "epoch7_step20.safetensors"))
    cks = load_checkpoints(str(tmp_path / "*"))
    assert [c.step for c in cks] == [20, 40]
    assert all(c.step_source == "name" and c.optimizer_state is None for c in cks)
    for c in cks:
        apply_checkpoint(small_model(seed=5), c)


def test_glob_directory_and_list_are_accepted_and_sorted_by_step(tmp_path):
    model = small_model()
    for step in (30, 10, 20):
        save_checkpoint(tmp_path / f"c{step}.pt", model, step=step)
    assert [c.step for c in load_checkpoints(tmp_path)] == [10, 20, 30]
    assert [c.step for c in load_checkpoints(str(tmp_path / "c*.pt"))] == [10, 20, 30]
    assert [c.step for c in load_checkpoints([tmp_path / "c30.pt", tmp_path / "c10.pt"])] == [10, 30]


def test_missing_checkpoint_is_one_line(tmp_path):
    for spec in (tmp_path / "nope.pt", str(tmp_path / "*.pt"), [tmp_path / "gone.pt"]):
        with pytest.raises(CheckpointNotFoundError) as info:
            load_checkpoints(spec)
        assert "\n" not in str(info.value) and "found" in str(info.value)


def test_checkpoint_that_does_not_fit_the_model_is_one_line(tmp_path):
    path = save_checkpoint(tmp_path / "wide.pt", SmallConvNet(width=8, num_outputs=12), step=1)
    with pytest.raises(CheckpointMismatchError) as info:
        apply_checkpoint(small_model(), load_checkpoint(path))
    msg = str(info.value)
    assert "\n" not in msg
    assert "expected features.0.0.weight of shape (4, 3, 3, 3)" in msg and "found shape (8, 3, 3, 3)" in msg
    other = save_checkpoint(tmp_path / "mlp.pt", torch.nn.Linear(3, 2), step=1)
    with pytest.raises(CheckpointMismatchError, match="missing"):
        apply_checkpoint(small_model(), load_checkpoint(other))


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_pickled_code_is_refused_and_named(tmp_path):
    for name, extra in (("evil.pt", print), ("payload.pt", _Payload())):
        torch.save({"model": small_model().state_dict(), "fn": extra}, tmp_path / name)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        line = str(info.value)
        assert "\n" not in line and "not a plain weights file: refused (weights_only=True)" in line, line
        assert "In PyTorch 2.6" not in line and "found pickled " in line


def test_truncated_and_empty_checkpoints_say_so(tmp_path):
    data = (save_checkpoint(tmp_path / "full.pt", small_model(), step=1)).read_bytes()
    for name, cut in (("half.pt", len(data) // 2), ("tail.pt", len(data) - 8), ("head.pt", 10), ("empty.pt", 0)):
        (tmp_path / name).write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        line = str(info.value)
        assert "\n" not in line and "truncated or corrupt" in line and "Errno" not in line, line


def test_non_finite_checkpoints_name_file_and_tensor(tmp_path):
    model = small_model()
    opt = adam_stepped(model)
    path = save_checkpoint(tmp_path / "ok.pt", model, opt, step=1)
    check_finite(load_checkpoint(path))
    with torch.no_grad():
        model.head.weight[0, 1] = float("nan")
    path = save_checkpoint(tmp_path / "nan.pt", model, opt, step=2)
    with pytest.raises(NonFiniteError) as info:
        check_finite(load_checkpoint(path))
    assert "nan.pt" in str(info.value) and "head.weight" in str(info.value) and "1 non-finite" in str(info.value)
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "opt.pt", small_model(), opt, step=3))
    next(iter(ckpt.optimizer_state["state"].values()))["exp_avg_sq"].view(-1)[0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"optimizer state\[\d+\]\.exp_avg_sq"):
        check_finite(ckpt)


def test_checkpoint_base_is_the_configured_location(tmp_path):
    (tmp_path / "ck" / "a").mkdir(parents=True)
    assert checkpoint_base(str(tmp_path / "ck")) == tmp_path / "ck"
    assert checkpoint_base(str(tmp_path / "ck" / "**" / "*.pt")) == tmp_path / "ck"
    assert checkpoint_base([tmp_path / "ck" / "a" / "x.pt", tmp_path / "ck" / "y.pt"]) == tmp_path / "ck"


def test_trainer_saves_every_k_steps_with_optimizer_state_and_is_deterministic(tmp_path):
    data = SyntheticShapes(64, 16)
    paths = train(small_model(), data, steps=7, save_every=3, out_dir=tmp_path / "a", batch_size=8)
    assert [p.name for p in paths] == ["step_000003.pt", "step_000006.pt", "step_000007.pt"]
    cks = load_checkpoints(tmp_path / "a")
    assert [c.step for c in cks] == [3, 6, 7]
    assert cks[-1].optimizer_state["param_groups"][0]["lr"] == 5e-3
    assert cks[-1].optimizer_state["param_groups"][0]["betas"] in ((0.8, 0.999), [0.8, 0.999])
    again = train(small_model(), data, steps=7, save_every=3, out_dir=tmp_path / "b", batch_size=8)
    assert file_sha256(paths[-1]) != "" and all(
        torch.equal(load_checkpoint(p).model_state[k], load_checkpoint(q).model_state[k])
        for p, q in zip(paths, again) for k in cks[0].model_state)
    assert not torch.equal(cks[0].model_state["head.weight"], cks[-1].model_state["head.weight"])


@pytest.mark.parametrize("step", ["abc", float("nan"), [1, 2], 10**30, -1, True, 2.5])
def test_a_malformed_step_is_one_line(tmp_path, step):
    """issue 30: a step that is not a whole number in 0..2^63-1 was a traceback (10**30 left an unfinished store)."""
    torch.save({"model": {"w": torch.zeros(2)}, "step": step}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="records a step lie-sweep cannot use") as info:
        load_checkpoint(tmp_path / "c.pt")
    assert "\n" not in str(info.value)


def test_whole_number_steps_of_any_spelling_load_and_malformed_safetensors_metadata_is_one_line(tmp_path):
    from safetensors.torch import save_file

    for step, want in ((7, 7), ("8", 8), (torch.tensor(9), 9), (10.0, 10)):
        torch.save({"model": {"w": torch.zeros(2)}, "step": step}, tmp_path / "c.pt")
        assert load_checkpoint(tmp_path / "c.pt").step == want
    save_file({"model/w": torch.zeros(2), "optimizer/x/exp_avg": torch.zeros(2)}, str(tmp_path / "n.safetensors"),
              metadata={"lie_sweep_layout": "nested", "optimizer.param_groups": "[{]"})
    with pytest.raises(CheckpointError, match="has malformed lie-sweep metadata"):
        load_checkpoint(tmp_path / "n.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "s.safetensors"), metadata={"step": "1e99"})
    with pytest.raises(CheckpointError, match="records a step lie-sweep cannot use"):
        load_checkpoint(tmp_path / "s.safetensors")
