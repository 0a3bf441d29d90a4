"""lie-sweep: Lie brackets of training examples, [u_i, u_j] = J_{u_j} u_i − J_{u_i} u_j.

With learning rate ε, training on example i then j instead of j then i moves the parameters by
ε² [u_i, u_j] + O(ε³). This package holds the math (fields, the batched bracket kernel), models,
data and checkpoints; it uses torch only.
"""

from ._origin import require_own_package

require_own_package("storage")  # a same-named package of another distribution is one error line, not a puzzle

from .errors import (CheckpointError, CheckpointMismatchError, CheckpointNotFoundError, ConfigError,
                     ExampleIndexError, LieSweepError, PairError)

__version__ = "0.1.0"

# the public names by the module that defines them: imported on first use (PEP 562), so that importing
# lie_sweep, or its errors, does not load torch (the command line's reading commands start without it)
_EXPORTS = {
    "kernel": ("KernelResult", "ExampleFields", "batch_bracket", "bracket_kernel", "compute_brackets",
               "compute_example_fields", "example_gradients"),
    "checkpoints": ("Checkpoint", "apply_checkpoint", "find_checkpoints", "load_checkpoint", "load_checkpoints",
                    "save_checkpoint"),
    "data": ("SHAPE_ATTRIBUTES", "SyntheticShapes", "stack_examples"),
    "fields": ("FunctionalModel", "PreconditionedField", "SGDField", "UpdateField", "bce_per_example"),
    "models": ("MLP", "MXResNet", "SmallConvNet"),
    "params": ("ParamEntry", "ParamSpec"),
    "training": ("train",),
    "swap": ("FieldRule", "OptimizerRule", "SwapResult", "swap_kernel"),
    "torch_swap": ("torch_optim_swap",),
    "reader": ("open_sweep", "Sweep"),  # the store's lazy reader (zarr only when used)
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value  # once imported, an ordinary attribute
        return value
    raise AttributeError(f"module 'lie_sweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "__version__",
    # brackets
    "compute_brackets", "bracket_kernel", "batch_bracket", "example_gradients", "KernelResult",
    "ExampleFields", "compute_example_fields",
    # exact swaps
    "swap_kernel", "FieldRule", "OptimizerRule", "SwapResult", "torch_optim_swap",
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
