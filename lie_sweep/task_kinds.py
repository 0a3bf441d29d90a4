"""The tasks a sweep can be run on (``task=NAME``): one registry, name → the loss whose gradient is the field
and the measurement an evaluation batch shows.

===================  ==================================================  ==============================  =========
name                 per-item loss L_x (the field is u_x = −∇θ L_x)       measurement on the eval batch   targets
===================  ==================================================  ==============================  =========
``multilabel``       mean BCE-with-logits over attributes (the default)   the logits                      0/1 float
``classification``   cross-entropy over classes                          the logits, one per class       class id
``regression``       mean squared error over outputs                     the outputs                     float
``causal_lm``        next-token cross-entropy, mean over a sequence's    log p(true next token) at each  token ids
                     target tokens (labels −100 ignored)                 position (never the T × V
                                                                         logits)
===================  ==================================================  ==============================  =========

The registry's names and help load without torch (the schema, ``--help``); the task itself
(:mod:`lie_sweep.tasks`) is built on first use. A new task is one :class:`TaskKind` here and one
:class:`lie_sweep.tasks.Task` subclass (anywhere: the sweep's spec carries the entry to its workers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from storage.registry import Registry

from .errors import ConfigError

if TYPE_CHECKING:
    from .tasks import Task

__all__ = ["TaskKind", "TASKS", "task_of"]


@dataclass(frozen=True)
class TaskKind:
    """A task choice: ``make()`` returns its :class:`lie_sweep.tasks.Task`; ``measures`` names what the
    measurement axis holds (for ``show`` and the page)."""

    name: str
    help: str
    make: Callable[[], "Task"]
    measures: str = "logit"


def _multilabel() -> "Task":
    from .tasks import MultiLabel

    return MultiLabel()


def _classification() -> "Task":
    from .tasks import Classification

    return Classification()


def _regression() -> "Task":
    from .tasks import Regression

    return Regression()


def _causal_lm() -> "Task":
    from .tasks import CausalLM

    return CausalLM()


TASKS: Registry[TaskKind] = Registry("task", (
    TaskKind("multilabel", "mean BCE with logits over binary attributes (the original study); measures the logits",
             _multilabel),
    TaskKind("classification", "cross-entropy over classes, integer labels; measures the logits per class",
             _classification),
    TaskKind("regression", "mean squared error over real-valued outputs; measures the outputs", _regression,
             measures="output"),
    TaskKind("causal_lm", "next-token cross-entropy, the mean over a sequence's target tokens (labels -100 "
                          "ignored); measures each position's log-probability of the true next token", _causal_lm,
             measures="log p(next token)"),
), error=ConfigError)


def task_of(name: str | None) -> "Task":
    """The task registered as ``name`` (None: ``multilabel``)."""
    return TASKS[name or "multilabel"].make()
