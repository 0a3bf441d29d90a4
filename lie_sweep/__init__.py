"""lie-sweep: Lie brackets of training examples, [u_i, u_j] = J_{u_j} u_i − J_{u_i} u_j.

With learning rate ε, training on example i then j instead of j then i moves the parameters by
ε² [u_i, u_j] + O(ε³). This package holds the math (fields, the batched bracket kernel), models,
data and checkpoints; it uses torch only.
"""

from ._origin import require_own_package

require_own_package("storage")  # a same-named package of another distribution is one error line, not a puzzle

from .kernel import (KernelResult, ExampleFields, batch_bracket, bracket_kernel, compute_brackets,
                       compute_example_fields, example_gradients)
from .checkpoints import (Checkpoint, apply_checkpoint, find_checkpoints, load_checkpoint, load_checkpoints,
                          save_checkpoint)
from .data import SHAPE_ATTRIBUTES, SyntheticShapes, stack_examples
from .errors import (CheckpointError, CheckpointMismatchError, CheckpointNotFoundError, ConfigError,
                     ExampleIndexError, LieSweepError, PairError)
from .fields import FunctionalModel, PreconditionedField, SGDField, UpdateField, bce_per_example
from .models import MLP, MXResNet, SmallConvNet
from .params import ParamEntry, ParamSpec
from .training import train

__version__ = "0.1.0"


def __getattr__(name: str):
    # the store's lazy reader is re-exported on first use, so importing lie_sweep does not load zarr
    if name in ("open_sweep", "Sweep"):
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'lie_sweep' has no attribute {name!r}")


__all__ = [
    "__version__",
    # brackets
    "compute_brackets", "bracket_kernel", "batch_bracket", "example_gradients", "KernelResult",
    "ExampleFields", "compute_example_fields",
    # fields
    "UpdateField", "SGDField", "PreconditionedField", "FunctionalModel", "bce_per_example",
    # parameters
    "ParamSpec", "ParamEntry",
    # models and data
    "MLP", "SmallConvNet", "MXResNet", "SyntheticShapes", "SHAPE_ATTRIBUTES", "stack_examples",
    # results
    "open_sweep", "Sweep",
    # checkpoints and training
    "Checkpoint", "find_checkpoints", "load_checkpoint", "load_checkpoints", "apply_checkpoint",
    "save_checkpoint", "train",
    # errors
    "LieSweepError", "ConfigError", "CheckpointError", "CheckpointNotFoundError", "CheckpointMismatchError",
    "ExampleIndexError", "PairError",
]
