"""Cost per pair of the optimizer's exact order expansion (Δ₁, Δ₂) against the SGD bracket's two HVPs.

Trains each model briefly with Adam (as the reference experiment: lr 5e-3, betas (0.8, 0.999)) so that
its checkpoint holds a real optimizer state, then times, per pair, in float32 on this machine:

* bracket: ``bracket_kernel`` on one pair (two Hessian-vector products, forward-over-reverse);
* order (adam): ``order_expansion`` from the Adam state (two orders, each carried to second order in ε);
* order (sgd): the same with a plain SGD state (for reference: Δ₂ is then the bracket).

Medians over ``--repeats`` timed calls after one warm-up. Usage:
python benchmarks/bench_order.py [--case convnet resnet] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

CASES = {
    "convnet": dict(model=("SmallConvNet", dict(num_outputs=12, width=16)), image=32),
    "resnet": dict(model=("MXResNet", dict(num_outputs=12, widths=[16, 32, 64, 128], stem_widths=[8, 8, 16])),
                   image=32),
}


def timed(fn, repeats: int) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def run(case: str, repeats: int) -> None:
    import lie_sweep as ls
    from lie_sweep.kernel import bracket_kernel
    from lie_sweep.fields import FunctionalModel
    from lie_sweep.optim import from_state_dict
    from lie_sweep.order import order_expansion

    spec = CASES[case]
    data = ls.SyntheticShapes(length=256, image_size=spec["image"])
    cls, kw = spec["model"]
    torch.manual_seed(0)
    model = getattr(ls.models, cls)(**kw)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3, betas=(0.8, 0.999))
    x, y = ls.stack_examples(data, list(range(64)))
    model.train()
    for k in range(0, 64, 16):  # four Adam steps: a real state
        opt.zero_grad()
        ls.bce_per_example(model(x[k:k + 16]), y[k:k + 16]).mean().backward()
        opt.step()
    model.eval()
    fm = FunctionalModel(model)
    params = fm.params()
    names = fm.param_names
    n_params = sum(p.numel() for p in params.values())
    xi, yi = ls.stack_examples(data, [100, 101])
    adam_step, adam_state = from_state_dict(opt.state_dict(), names)
    sgd_step, sgd_state = from_state_dict(torch.optim.SGD(model.parameters(), lr=5e-3).state_dict(), names)
    bracket = timed(lambda: bracket_kernel(fm, params, xi, yi, [(0, 1)]), repeats)
    adam = timed(lambda: order_expansion(fm, adam_step, params, adam_state, (xi[0], yi[0]), (xi[1], yi[1])), repeats)
    sgd = timed(lambda: order_expansion(fm, sgd_step, params, sgd_state, (xi[0], yi[0]), (xi[1], yi[1])), repeats)
    print(f"{case:<8} D={n_params:>9,}  bracket (2 HVPs) {bracket * 1e3:8.1f} ms/pair   "
          f"order (adam) {adam * 1e3:8.1f} ms/pair ({adam / bracket:4.1f}x)   "
          f"order (sgd) {sgd * 1e3:8.1f} ms/pair ({sgd / bracket:4.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for case in args.case:
        run(case, args.repeats)


if __name__ == "__main__":
    main()
