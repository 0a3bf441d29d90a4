"""The ``lie-sweep`` command line: one module per verb, the parser built from the table
:func:`commands` returns.

Each verb module holds its arguments, help texts and handler, and imports what it computes with only
when it runs, so ``--help`` and the reading commands start without loading torch or Ray.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import Sequence

try:
    from lie_sweep.errors import LieSweepError
    _CLASH: str | None = None
except ImportError as exc:  # lie_sweep._origin.PackageClashError: another distribution's `storage` came first
    if type(exc).__name__ != "PackageClashError":
        raise
    _CLASH = str(exc)

__all__ = ["commands", "build_parser", "main"]


def commands() -> list:
    """The command table: every verb's :class:`~jobs.cli.table.Command`, in ``--help`` order."""
    from . import check, plan, query, report, resume, run, show, status, submit, verify

    return [run.COMMAND, resume.COMMAND, submit.SUBMIT, submit.JOB, plan.COMMAND, show.COMMAND, report.COMMAND,
            verify.COMMAND, query.COMMAND, status.COMMAND, check.COMMAND]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``lie-sweep`` command, from the command table."""
    from lie_sweep import __version__

    from .table import LazyHelpParser, add_command
    from .texts import DESCRIPTION

    parser = argparse.ArgumentParser(prog="lie-sweep", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="`lie-sweep run --help` lists the config groups and common overrides.")
    parser.add_argument("--version", action="version", version=f"lie-sweep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=LazyHelpParser)
    for command in commands():
        add_command(sub, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lie-sweep`` command line; returns the exit status (2 for a user's error, printed as one line)."""
    if _CLASH is not None:
        print(f"lie-sweep: error: {_CLASH}", file=sys.stderr)
        return 2
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "overrides", None), list) and all(
            "=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra  # overrides after an option (`query STORE --examples 0:4 data.seed=7`)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    if args.computes:  # it keeps freed memory, as the workers do (jobs.execution.worker_env)
        from jobs.execution.worker_env import retain_freed_memory_here

        retain_freed_memory_here()
    from .terminal import TextOnly

    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TextOnly(streams[0]), TextOnly(streams[1])  # what a store holds prints as text
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except LieSweepError as exc:
        print(f"lie-sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lie-sweep: interrupted; completed tasks are kept in the store", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lie-sweep status STORE | head`: the reader has what it wanted
        _silence(streams[0])
        return 141
    except OSError as exc:
        from storage.space import is_no_space, no_space_error

        if not is_no_space(exc):
            raise
        print(f"lie-sweep: error: {no_space_error(str(exc.filename or '.'), fix='free space and run it again')}",
              file=sys.stderr)
        return 2
    finally:
        sys.stdout, sys.stderr = streams


def _silence(stream) -> None:
    """Point a closed pipe's descriptor at /dev/null, so that the interpreter's last flush finds nothing to
    complain about."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass

