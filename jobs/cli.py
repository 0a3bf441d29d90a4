"""The ``lie-sweep`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from lie_sweep.errors import LieSweepError

DESCRIPTION = """\
lie-sweep computes Lie brackets of training examples, [u_i, u_j] = J_{u_j} u_i - J_{u_i} u_j,
the leading-order difference between training on example i then j and on j then i
(theta_ij - theta_ji = lr^2 [u_i, u_j] + O(lr^3)), over checkpoints x example pairs."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2; found {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lie-sweep", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the demo: train a small convnet, bracket all pairs of 8 examples",
                         description="Train the small convnet on the synthetic shapes data (Adam, lr 5e-3), save "
                                     "checkpoints, and compute the brackets of all pairs among the chosen examples at "
                                     "every checkpoint. Prints a per-checkpoint table and the most order-sensitive pairs.")
    run.add_argument("--out", type=Path, default=Path("lie-sweep-demo"), help="output directory (default: %(default)s)")
    run.add_argument("--examples", type=_int_list, default=tuple(range(8)),
                     help="dataset indices to pair up, comma-separated (default: 0..7)")
    run.add_argument("--steps", type=int, default=60, help="training steps (default: %(default)s)")
    run.add_argument("--save-every", type=int, default=20, help="checkpoint every k steps (default: %(default)s)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--chunk-size", type=int, default=None, help="pairs per vmapped call (default: memory-based)")
    run.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--top", type=int, default=10, help="pairs to list (default: %(default)s)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, format_report, run_demo
    from lie_sweep import SyntheticShapes

    settings = DemoSettings(out=args.out, examples=args.examples, steps=args.steps, save_every=args.save_every,
                            seed=args.seed, chunk_size=args.chunk_size, dtype=args.dtype, device=args.device,
                            top=args.top)
    rows, pair_rows = run_demo(settings)
    data = SyntheticShapes(length=512, image_size=32, seed=settings.seed)
    print(format_report(rows, pair_rows, data.attribute_names, data, settings.top))
    print(f"\ncheckpoints in {settings.out / 'checkpoints'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return {"run": _run}[args.command](args)
    except LieSweepError as exc:
        print(f"lie-sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lie-sweep: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
