"""Tasks: the per-item loss whose gradient is the field, how an item reaches the model, how the model's
output is read, and what an evaluation batch measures (registry: :mod:`lie_sweep.task_kinds`).

A task owns everything that depends on what the data and the model are; brackets and swaps need nothing
else from it. For an item x with target y and the model's read output f = read(model(x)):

* ``loss(f, y)``, per item, shape (batch,): the field is u_x = −P ∇θ loss;
* ``measure(f, y)``, per item, shape (batch, O): what the logit deltas hold (leading order
  ε² J_measure[u_i, u_j], exact: measure(θ_ij) − measure(θ_ji));
* ``item(raw)``: a dataset item, ``(input, target)`` or a dict (``input_ids``, ``attention_mask``,
  ``labels``), as two tensors; ``stack(items)``: a batch, targets in the task's dtype (class ids and token
  ids stay integers; only floating tensors later take the sweep's dtype: :func:`lie_sweep.fields.like_params`);
* ``read(out)``: a tensor, a tuple's first element, or a ``ModelOutput``'s ``logits``;
* ``check(f, y, where)``: one error line where model, data and task do not fit (before any store exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from .errors import ConfigError, first_line

__all__ = ["Task", "MultiLabel", "Classification", "Regression", "CausalLM", "EvalBatch", "eval_batch",
           "read_output", "bce_per_example", "IGNORE_INDEX"]

IGNORE_INDEX = -100  # Hugging Face's label for a position that is not a target (padding, a prompt)
_INPUT_KEYS = ("input_ids", "input", "inputs", "x", "pixel_values", "image", "features")
_TARGET_KEYS = ("labels", "label", "target", "targets", "y")


def read_output(out: Any) -> torch.Tensor:
    """The tensor a model's output holds: itself, a ``ModelOutput``'s (or dict's) ``logits``, or a tuple's
    first element; one error line otherwise."""
    if isinstance(out, torch.Tensor):
        return out
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ConfigError("cannot read the model's output", expected="a tensor, a tuple whose first element is one, or "
                      "an output with .logits", found=type(out).__name__,
                      fix="return the logits from forward(), or wrap the model")


def bce_per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_x = mean over attributes k of BCE-with-logits(f_k(x), y_k); shape ``(batch,)``."""
    losses = F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype), reduction="none")
    return losses.reshape(losses.shape[0], -1).mean(dim=1)


@dataclass(frozen=True)
class EvalBatch:
    """The evaluation batch a measurement is taken on: inputs, and their targets (a language model measures
    the log-probability of each true next token, so it needs them; the other tasks ignore them)."""

    inputs: torch.Tensor
    targets: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "EvalBatch":
        """On ``device``; floating tensors in ``dtype`` (ids and class labels stay integers)."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype if t.is_floating_point() else None)
        return EvalBatch(move(self.inputs), move(self.targets))


def eval_batch(value: "EvalBatch | torch.Tensor | tuple | None") -> EvalBatch | None:
    """An :class:`EvalBatch` of ``value``: itself, ``(inputs, targets)``, or inputs alone (None stays None)."""
    if value is None or isinstance(value, EvalBatch):
        return value
    if isinstance(value, (tuple, list)):
        return EvalBatch(*value)
    return EvalBatch(value)


def _names(value: Any) -> list[str]:
    """A dataset's labels of its outputs (a list or tuple of names), else []."""
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


class Task:
    """The base: items are ``(input, target)``; subclasses define the loss, the measurement and the checks."""

    name = "task"
    target_dtype: torch.dtype = torch.float32

    def item(self, raw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) of a dataset item: a pair, or a dict with an input key (``input_ids``, ``input``,
        ``x``, ``pixel_values`` …) and a target key (``labels``, ``label``, ``target``, ``y``)."""
        if isinstance(raw, Mapping):
            x = next((raw[k] for k in _INPUT_KEYS if k in raw), None)
            y = next((raw[k] for k in _TARGET_KEYS if k in raw), None)
            if x is None or y is None:
                raise ConfigError("cannot read a dataset item", expected=f"a dict with one of {list(_INPUT_KEYS)} "
                                  f"and one of {list(_TARGET_KEYS)}", found=f"keys {sorted(raw)[:6]}",
                                  fix="return (input, target) or name the dict's keys so")
            return _tensor(x), _tensor(y)
        if isinstance(raw, (tuple, list)) and len(raw) >= 2:
            return _tensor(raw[0]), _tensor(raw[1])
        raise ConfigError("cannot read a dataset item", expected="(input, target) or a dict of tensors",
                          found=type(raw).__name__, fix="return (input, target) from the dataset's __getitem__")

    def target(self, y: torch.Tensor) -> torch.Tensor:
        """A target in the task's dtype."""
        return y.to(self.target_dtype)

    def stack(self, items: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch (inputs, targets) of raw dataset items; inputs keep their dtype (token ids stay integers)."""
        pairs = [self.item(raw) for raw in items]
        return torch.stack([x for x, _ in pairs]), torch.stack([self.target(y) for _, y in pairs])

    def read(self, out: Any) -> torch.Tensor:
        """The model's output as a tensor (:func:`read_output`)."""
        return read_output(out)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-item loss, (batch,)."""
        raise NotImplementedError

    def measure(self, out: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Per-item measurement, (batch, O): the outputs, flattened."""
        return out.reshape(out.shape[0], -1)

    def measurement_names(self, n: int, dataset: Any) -> list[str]:
        """Names of the O measured values: the dataset's ``attribute_names`` where they fit, else output_k."""
        names = _names(getattr(dataset, "attribute_names", None))
        return names if len(names) == n else [f"output_{k}" for k in range(n)]

    def check(self, out: torch.Tensor, y: torch.Tensor, where: str) -> None:
        """One error line where one item's read output ``out`` (1, …) and target ``y`` do not fit the task."""

    def text_of(self, x: torch.Tensor) -> list[int] | None:
        """An item's tokens, for a task whose inputs are text (None: not text)."""
        return None


def _mismatch(what: str, expected: str, found: str, fix: str) -> ConfigError:
    return ConfigError(what, expected=expected, found=found, fix=fix)


class MultiLabel(Task):
    """L_x = mean over attributes k of BCE-with-logits(f_k(x), y_k) (the original study's); y in {0, 1}^K."""

    name = "multilabel"

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean BCE with logits over attributes, (batch,)."""
        return bce_per_example(out, y)

    def check(self, out: torch.Tensor, y: torch.Tensor, where: str) -> None:
        """The model gives one logit per attribute; the targets are 0/1."""
        if out[0].numel() != y.numel():
            raise _mismatch("the model's outputs do not match the data's attributes",
                            expected=f"{y.numel()} outputs (one per attribute of {where})",
                            found=f"{out[0].numel()} outputs", fix=f"set model.num_outputs={y.numel()} (or the "
                            "model's own key), or pick another task")
        if not bool(((y == 0) | (y == 1)).all()):
            raise _mismatch("real-valued targets under task=multilabel", expected="0/1 attributes",
                            found=f"values such as {first_line(repr(y.reshape(-1)[:4].tolist()), 60)} in {where}",
                            fix="set task=regression for real-valued targets, or task=classification for classes")


class Classification(Task):
    """L_x = cross-entropy of the logits f(x) with the class y (an integer); measures the logits."""

    name = "classification"
    target_dtype = torch.long

    def target(self, y: torch.Tensor) -> torch.Tensor:
        """The class id as a 0-d long tensor (a float holding a whole number is taken as one)."""
        if y.is_floating_point() and y.numel() == 1 and float(y) == int(y):
            y = y.round()
        return y.reshape(()).to(torch.long) if y.numel() == 1 else y.to(torch.long)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over classes, (batch,)."""
        return F.cross_entropy(out.reshape(out.shape[0], -1), y.reshape(-1), reduction="none")

    def measurement_names(self, n: int, dataset: Any) -> list[str]:
        """The dataset's ``class_names`` (or ``classes``) where they fit, else class_k."""
        names = _names(getattr(dataset, "class_names", None)) or _names(getattr(dataset, "classes", None))
        return names if len(names) == n else [f"class_{k}" for k in range(n)]

    def check(self, out: torch.Tensor, y: torch.Tensor, where: str) -> None:
        """One integer class per item, below the model's number of classes."""
        classes = out[0].numel()
        if y.numel() != 1:
            raise _mismatch("targets are not class labels", expected="one integer class per item (task="
                            "classification)", found=f"a target of shape {tuple(y.shape)} in {where}",
                            fix="return the class index, not a one-hot vector (or use task=multilabel)")
        if not 0 <= int(y) < classes:
            raise _mismatch("a class label beyond the model's classes", expected=f"labels in 0..{classes - 1}",
                            found=f"label {int(y)} in {where}", fix="set the model's number of classes "
                            "(e.g. model.num_outputs) to cover every label")


class Regression(Task):
    """L_x = mean over outputs of (f(x) − y)²; measures the outputs."""

    name = "regression"

    def target(self, y: torch.Tensor) -> torch.Tensor:
        """A float target."""
        return y.to(torch.float32) if not y.is_floating_point() else y

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean squared error over outputs, (batch,)."""
        diff = out.reshape(out.shape[0], -1) - y.reshape(y.shape[0], -1).to(out.dtype)
        return (diff * diff).mean(dim=1)

    def check(self, out: torch.Tensor, y: torch.Tensor, where: str) -> None:
        """As many outputs as target values."""
        if out[0].numel() != y.numel():
            raise _mismatch("the model's outputs do not match the targets", expected=f"{y.numel()} outputs",
                            found=f"{out[0].numel()} outputs for {where}", fix=f"set model.num_outputs={y.numel()}")


class CausalLM(Task):
    """L_x = −mean over target positions t of log p(y_{t+1} | x_≤t) (labels shifted by one, as Hugging Face
    shifts them; positions labelled −100 are ignored); measures log p(true next token) at each of the T − 1
    positions (0 where the label is ignored), never the T × V logits."""

    name = "causal_lm"
    target_dtype = torch.long

    def item(self, raw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, labels): labels default to the inputs; an attention mask's zeros become ignored labels
        (right padding only: a causal model's real tokens never see pads that follow them)."""
        if isinstance(raw, Mapping) and "input_ids" in raw:
            ids = _tensor(raw["input_ids"]).to(torch.long)
            labels = _tensor(raw["labels"]).to(torch.long) if "labels" in raw else ids.clone()
            if "attention_mask" in raw:
                mask = _tensor(raw["attention_mask"]).to(torch.bool)
                if bool(mask.any()) and not bool(mask[:int(mask.sum())].all()):
                    raise ConfigError("a sequence is padded on the left", expected="right padding (or none): "
                                      "attention_mask 1…1 0…0", found=f"mask {mask.int().tolist()[:12]}…",
                                      fix="pad on the right (tokenizer.padding_side = 'right')")
                labels = torch.where(mask, labels, torch.full_like(labels, IGNORE_INDEX))
            return ids, labels
        if isinstance(raw, torch.Tensor) and not raw.is_floating_point():
            return raw.to(torch.long), raw.to(torch.long)
        x, y = super().item(raw)
        return x.to(torch.long), y

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over target positions, (batch,)."""
        logp, mask = self._token_logp(out, y)
        return -(logp * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def measure(self, out: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """log p(true next token) at each position, (batch, T − 1); 0 where the label is ignored."""
        if y is None:
            raise ConfigError("task=causal_lm measures the true next tokens", expected="the evaluation batch's "
                              "labels", found="inputs only", fix="pass the evaluation batch as (inputs, labels)")
        logp, mask = self._token_logp(out, y)
        return logp * mask

    @staticmethod
    def _token_logp(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p of each next token, its 0/1 target mask), (batch, T − 1) each."""
        logits, labels = out[:, :-1], y[:, 1:]
        mask = labels != IGNORE_INDEX
        logp = torch.log_softmax(logits, dim=-1)
        picked = torch.gather(logp, -1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return picked, mask.to(picked.dtype)

    def measurement_names(self, n: int, dataset: Any) -> list[str]:
        """``t1`` … ``t(T−1)``: the position of the predicted token."""
        return [f"t{k + 1}" for k in range(n)]

    def check(self, out: torch.Tensor, y: torch.Tensor, where: str) -> None:
        """Logits (1, T, V) over a vocabulary that holds every label."""
        if out.ndim != 3 or out.shape[1] != y.shape[-1]:
            raise _mismatch("the model does not give next-token logits", expected=f"logits (1, {y.shape[-1]}, "
                            "vocabulary) for a sequence", found=f"{tuple(out.shape)} for {where}",
                            fix="use a causal language model (e.g. model=hf), or another task")
        bad = y[(y != IGNORE_INDEX) & ((y < 0) | (y >= out.shape[-1]))]
        if bad.numel():
            raise _mismatch("a token beyond the model's vocabulary", expected=f"token ids in 0..{out.shape[-1] - 1}",
                            found=f"id {int(bad[0])} in {where}", fix="tokenize with the model's own tokenizer")

    def text_of(self, x: torch.Tensor) -> list[int] | None:
        """The sequence's token ids."""
        return [int(t) for t in x.reshape(-1).tolist()]
