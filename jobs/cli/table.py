"""The command table's vocabulary: a verb is a :class:`Command` (name, help texts, arguments, handler).

``jobs.cli.build_parser`` builds argparse from the table in :mod:`jobs.cli`; arguments several verbs
share (the store, overrides, ``--top``, ``--address``) are defined once here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Arg", "Command", "STORE", "OVERRIDES", "DASHBOARD", "TRUST_STORE", "top_arg", "add_command",
           "LazyHelpParser"]


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call: its flags (or positional name) and keyword arguments."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def _arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    """A verb of ``lie-sweep``: ``handler(args)`` returns the exit status; texts may be callables (built
    only when its help is shown, e.g. the config groups' list); ``computes`` when it computes in this process
    (training, calibration, a swap), not only in Ray workers."""

    name: str
    help: str
    handler: Callable[[argparse.Namespace], int]
    arguments: tuple[Arg, ...] = ()
    description: str | Callable[[], str] | None = None
    epilog: str | Callable[[], str] | None = None
    computes: bool = False


STORE = _arg("store", help="the store's path or fsspec URL")
OVERRIDES = _arg("overrides", nargs="*", metavar="OVERRIDE", help="key=value or group=option")
DASHBOARD = _arg("--address", required=True, help="the Ray dashboard's address, e.g. http://HEAD:8265")
TRUST_STORE = _arg("--trust-store", action="store_true",
                   help="build the model and dataset classes the store's config names even where they are not "
                        "lie-sweep's own nor named on this command line (each is listed before it is imported); "
                        "a store's config is otherwise data, never code")


def top_arg(default: int, what: str = "pairs to list in the summary") -> Arg:
    """``--top K`` with its default in the help."""
    return _arg("--top", type=int, default=default, help=f"{what} (default: %(default)s)")


class LazyHelpParser(argparse.ArgumentParser):
    """A parser whose description and epilog may be callables, called only when its help is shown (the
    config groups and keys load the registries, which the other commands need not import)."""

    def format_help(self) -> str:
        """The help text, with callable texts called now."""
        self.description, self.epilog = (t() if callable(t) else t for t in (self.description, self.epilog))
        return super().format_help()


def add_command(sub: "argparse._SubParsersAction", command: Command) -> argparse.ArgumentParser:
    """Add ``command``'s parser to ``sub`` (made with ``parser_class=LazyHelpParser``), its handler as the
    ``handler`` default."""
    parser = sub.add_parser(command.name, help=command.help, description=command.description,
                            epilog=command.epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    for arg in command.arguments:
        parser.add_argument(*arg.flags, **arg.options)
    parser.set_defaults(handler=command.handler, computes=command.computes)
    return parser
