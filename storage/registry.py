"""Registries: the one place each choice of lie-sweep lives (name → entry, with its help text).

A registry holds entries that each have a ``name`` and a ``help`` (a grid, an update field, a ranking
score, an HVP mode, a codec preset). The config schema takes its allowed values from a registry, the
command line its choices, ``plan`` and the page their labels, so adding a choice is one entry. The
lookup of an unknown name is one error line listing the registered names.

Pure Python, in the bottom layer, so that ``storage``, ``lie_sweep`` and ``jobs`` share it.
"""

from __future__ import annotations

from typing import Generic, Iterator, Protocol, TypeVar

from .errors import LieSweepError, StoreKeyError

__all__ = ["Choice", "Registry"]


class Choice(Protocol):
    """What a registry holds: a name and a one-line help text."""

    name: str
    help: str


T = TypeVar("T", bound=Choice)


class Registry(Generic[T]):
    """Entries by name, in registration order; ``key`` is the config key (or argument) that names one, ``what``
    what an entry is (for messages).

    ``error`` is the class of the one-line error an unknown name raises (a ``ConfigError`` for config
    choices, a ``StoreKeyError`` for the reader's).
    """

    def __init__(self, key: str, entries: tuple[T, ...] = (), *, what: str | None = None,
                 error: type[LieSweepError] = StoreKeyError) -> None:
        self.key, self.what, self.error = key, what or key, error
        self._entries: dict[str, T] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: T) -> T:
        """Add ``entry`` (a name may be registered once); returns it, so it can decorate or assign."""
        if entry.name in self._entries:
            raise ValueError(f"{self.key}: {entry.name!r} is registered already")
        self._entries[entry.name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(f"unknown {self.what}", expected=" | ".join(self._entries), found=repr(name),
                             fix=f"set {self.key}={next(iter(self._entries))}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[T]:
        """The entries, in registration order."""
        return list(self._entries.values())

    def help(self) -> str:
        """``name: help`` of every entry, separated by semicolons (for help texts)."""
        return "; ".join(f"{e.name}: {e.help}" for e in self._entries.values())
