"""Ranking scores: the one vocabulary for what ranks pairs and examples, in the CLI, the config
(``pairs.top.by``), the reader, ``show``, the page and the tables.

Each score names the ``pairs`` table column it reads for a pair, and the column of the per-example
statistics (:mod:`storage.ranking`) that ranks examples by it (with its standard error where one exists).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import StoreKeyError
from .registry import Registry

__all__ = ["Score", "SCORES", "default_score"]


@dataclass(frozen=True)
class Score:
    """A ranking score: the pairs-table column of a pair's value, and the per-example statistic that ranks
    examples by it with that statistic's standard error column (None where it has none)."""

    name: str
    help: str
    pair_column: str
    example_column: str
    example_se: str | None
    effect: str = "bracket"   # the effect (lie_sweep.effects) whose results the score reads

    def require(self, columns, column: str | None = None) -> None:
        """One error line where a table with ``columns`` lacks this score's ``column`` (default: its ``pairs``
        table column), i.e. the store was run without its effect."""
        if (column or self.pair_column) not in columns:
            other = "swap" if self.effect == "bracket" else "norm"
            raise StoreKeyError(f"this store has no {self.name} scores",
                                expected=f"a store with {self.pair_column} in its pairs table",
                                found=f"none (a sweep without effect {self.effect})",
                                fix=f"rank by {other}, or re-run with {self.effect} among its effects")


SCORES: Registry[Score] = Registry("score", (
    Score("norm", "bracket norm |[u_i,u_j]| (examples: its mean over partners)", "norm", "mean_norm", "se_norm"),
    Score("rms", "bracket RMS over parameters (examples: root mean square of the norm over partners)", "rms",
          "rms_norm", None),
    Score("c", "the slope-1 fit constant c of log RMS[u_i,u_j] = log c + log RMS g", "c", "mean_c", "se_c"),
    Score("logit_rms", "RMS of the pair's logit deltas on the evaluation batch", "logit_rms", "mean_logit_rms",
          "se_logit_rms"),
    Score("swap", "exact swap norm |theta_ij - theta_ji| at the first swap step size (stores with effect swap)",
          "swap_norm", "mean_swap_norm", "se_swap_norm", effect="swap"),
    Score("swap_logit_rms", "RMS of the pair's exact logit deltas f(theta_ij) - f(theta_ji) on the evaluation batch "
          "(stores with effect swap)", "swap_logit_rms", "mean_swap_logit_rms", "se_swap_logit_rms", effect="swap"),
), what="score", error=StoreKeyError)


def default_score(columns) -> str:
    """The score that ranks a store's pairs and examples unless another is asked for: the exact swap's norm
    where the ``pairs`` table (``columns``) has it (a sweep with effect swap), else the bracket norm."""
    return "swap" if "swap_norm" in columns else "norm"
