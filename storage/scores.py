"""Ranking scores: the one vocabulary for what ranks pairs and examples, in the CLI, the config
(``pairs.top.by``), the reader, ``show``, the page and the tables.

Each score names the ``pairs`` table column it reads for a pair, and the column of the per-example
statistics (:mod:`storage.ranking`) that ranks examples by it (with its standard error where one exists).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import StoreKeyError
from .registry import Registry

__all__ = ["Score", "SCORES"]


@dataclass(frozen=True)
class Score:
    """A ranking score: the pairs-table column of a pair's value, and the per-example statistic that ranks
    examples by it with that statistic's standard error column (None where it has none)."""

    name: str
    help: str
    pair_column: str
    example_column: str
    example_se: str | None

    def require(self, columns, column: str | None = None) -> None:
        """One error line where a table with ``columns`` lacks this score's ``column`` (default: its ``pairs``
        table column), i.e. the store was run without its effect."""
        if (column or self.pair_column) not in columns:
            raise StoreKeyError(f"this store has no {self.name} scores",
                                expected=f"a store with {self.pair_column} in its pairs table",
                                found="none (a sweep without effect swap)",
                                fix="rank by norm, or re-run with effects=[bracket,swap]")


SCORES: Registry[Score] = Registry("score", (
    Score("norm", "bracket norm |[u_i,u_j]| (examples: its mean over partners)", "norm", "mean_norm", "se_norm"),
    Score("rms", "bracket RMS over parameters (examples: root mean square of the norm over partners)", "rms",
          "rms_norm", None),
    Score("c", "the slope-1 fit constant c of log RMS[u_i,u_j] = log c + log RMS g", "c", "mean_c", "se_c"),
    Score("logit_rms", "RMS of the pair's logit deltas on the evaluation batch", "logit_rms", "mean_logit_rms",
          "se_logit_rms"),
    Score("swap", "exact swap norm |theta_ij - theta_ji| at the first swap step size (stores with effect swap)",
          "swap_norm", "mean_swap_norm", "se_swap_norm"),
), what="score", error=StoreKeyError)
