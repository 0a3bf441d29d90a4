"""`lie-sweep verify`: real two-step swaps against the stored leading order, on the demo store."""

import numpy as np
import pytest

from jobs.cli import main
from jobs.report import write_report
from lie_sweep import open_sweep

from .reports import page_data


def test_verify_on_the_demo_writes_its_table_and_the_error_falls_with_eps(demo, capsys, tmp_path):
    store, _ = demo
    assert main(["verify", str(store), "--pairs", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    sweep = open_sweep(str(store))
    rows = sweep.verify_table()
    assert len(rows) == len(sweep.steps) * 3 * 5
    assert sorted(rows["epsilon"].unique()) == sorted(sweep.epsilon * f for f in (1, 1 / 4, 1 / 16, 1 / 64, 1 / 256))
    # at the smallest step the stored bracket is the swap (float32 storage) wherever the step crosses no ReLU
    # kink that matters: on most verified pairs, and where it is not, ReLU inputs switched sign within that step
    # (which checkpoints have such a kink at ε = lr/256 depends on the trained weights, so on the machine's
    # floating point: seen at steps 60 and 80 on one CPU, at none on another)
    smallest = rows[rows.epsilon == rows.epsilon.min()]
    agrees = smallest.rel_theta < 1e-2
    assert agrees.mean() >= 0.5, smallest
    assert (smallest[~agrees].relu_switch > 0).all(), smallest[~agrees]
    # ... and where it agrees the logit prediction agrees with the real logits too, and the error grows with ε
    assert smallest[agrees].rel_logits.median() < 1e-2
    largest = rows[rows.epsilon == rows.epsilon.max()].set_index(["step", "pair"]).rel_theta
    assert (smallest[agrees].set_index(["step", "pair"]).rel_theta < largest.loc[smallest[agrees].set_index(
        ["step", "pair"]).index]).all()
    assert rows["relu_switch"].between(0, 1).all() and rows["relu_switch"].max() > 0  # the demo's convnet has ReLUs
    summary = sweep.verify_summary()
    assert list(summary["step"]) == sweep.steps and (summary["pairs"] == 3).all()
    assert np.isfinite(summary["within_10pct"]).sum() >= len(sweep.steps) / 2
    for step in sweep.steps:
        assert f"step {step:>6}: at ε = {sweep.epsilon:.3g} the leading order is off by" in out
    assert main(["show", str(store)]) == 0
    assert "the leading order against real swaps" in capsys.readouterr().out
    # the results page shows it: the summary and the median error per ε of each checkpoint
    page = write_report(str(store), str(tmp_path / "verified.html"))
    verify = page_data(page.path)["verify"]
    assert verify["steps"] == sweep.steps and [r["at_lr"] for r in verify["summary"]] == \
        pytest.approx(summary["at_lr"].tolist())
    assert verify["rel_theta"][0][0] == pytest.approx(rows[rows.step == sweep.steps[0]].groupby("epsilon")
                                                      ["rel_theta"].median().iloc[0])
    # the same seed picks the same pairs
    assert main(["verify", str(store), "--pairs", "3", "--seed", "1"]) == 0
    again = open_sweep(str(store)).verify_table()
    assert np.array_equal(again[["step", "pair", "epsilon"]].to_numpy(), rows[["step", "pair", "epsilon"]].to_numpy())
    assert np.allclose(again["rel_theta"], rows["rel_theta"], rtol=1e-9)


def test_verify_refuses_bad_input_in_one_line(demo, tmp_path, capsys):
    store, _ = demo
    assert main(["verify", str(store), "--pairs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--pairs must be positive" in err and err.count("\n") == 1
    assert main(["verify", str(tmp_path / "none")]) == 2
