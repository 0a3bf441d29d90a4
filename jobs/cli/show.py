"""``lie-sweep show``: a terminal summary of a store from its tables."""

from __future__ import annotations

import argparse

from .table import STORE, Command, top_arg

__all__ = ["COMMAND"]


def _show(args: argparse.Namespace) -> int:
    from jobs.results.show import show_store

    print(show_store(args.store, top=args.top))
    return 0


COMMAND = Command(
    "show", "what a sweep found: top pairs, per-checkpoint RMS and fits, moving logits", _show,
    arguments=(STORE, top_arg(10, "rows per ranking")),
    description="A terminal summary of a store from its tables and logit deltas (never its parameter-sized arrays): "
                "the most order-sensitive pairs, per-checkpoint loss, bracket norms and fit constants, the tensors "
                "whose brackets are largest relative to their gradients, the outputs whose logits move most, and the "
                "examples ranked by order sensitivity.")
