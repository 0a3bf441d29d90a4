"""``lie-sweep verify``: the stored prediction against real two-step swaps."""

from __future__ import annotations

import argparse

from .run import emit
from .table import STORE, TRUST_STORE, Arg, Command

__all__ = ["COMMAND"]

DESCRIPTION = ("For K sampled completed pairs per checkpoint, take the real swap (two steps along the sweep's field, "
               "both orders) at epsilon = lr x {1, 1/4, 1/16, 1/64, 1/256} and compare theta_ij - theta_ji and "
               "f(theta_ij) - f(theta_ji) with the stored leading order; writes the store's verify table and prints, "
               "per checkpoint, the error at lr and the largest epsilon within 10%. A store with exact swaps (effect "
               "swap) has them checked against swaps taken by torch.optim itself (float64), at each of its step "
               "sizes.")


def _verify(args: argparse.Namespace) -> int:
    from jobs.results.verify import verify_store
    from jobs.results.verify_text import format_swap_check, format_verify_summary

    sweep = verify_store(args.store, pairs=args.pairs, seed=args.seed, log=emit, trust_store=args.trust_store)
    layout, lines = sweep.store.layout, []
    if layout.keeps_brackets or layout.keeps_order:
        lines += ["", "the stored expansion against real swaps (relative error of theta_ij - theta_ji)",
                  *format_verify_summary(sweep), f"rows: {sweep.store.verify_path} (sweep.verify_table())"]
    if layout.keeps_swaps:
        lines += ["", "the stored exact swaps against a float64 reference (relative errors)", *format_swap_check(sweep),
                  f"rows: {sweep.store.verify_file('swaps')} (sweep.verify_swaps())"]
    print("\n".join(lines))
    return 0


COMMAND = Command(
    "verify", "measure the stored prediction against real two-step swaps", _verify, computes=True,
    description=DESCRIPTION,
    arguments=(STORE,
               Arg(("--pairs",), dict(type=int, default=8, metavar="K", help="pairs per checkpoint (default: "
                                                                             "%(default)s)")),
               Arg(("--seed",), dict(type=int, default=0, help="seed of the pair sample (default: %(default)s)")),
               TRUST_STORE))
