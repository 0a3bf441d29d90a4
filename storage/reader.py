"""Lazy, read-only access to a sweep store, in numpy, xarray and pandas (no torch).

``open_sweep(path)`` reads only metadata; each call reads only the shards and inner chunks that
hold what it returns. Three kinds of access:

* named numpy arrays: :meth:`Sweep.bracket`, :meth:`Sweep.gradient`, :attr:`Sweep.losses`;
* labelled lazy xarray views: :meth:`Sweep.brackets_xr`, :meth:`Sweep.gradients_xr`,
  :meth:`Sweep.logit_deltas`, :meth:`Sweep.gram` (schema ≤ 3) (coordinates: ``step``, ``pair`` as (i, j),
  ``example``, ``eval_example``, ``output`` by attribute name; one variable per parameter tensor);
* the summary tables as pandas DataFrames: :meth:`Sweep.fits`, :meth:`Sweep.rms_table`,
  :meth:`Sweep.example_table`, :meth:`Sweep.checkpoint_table`, and what they rank:
  :meth:`Sweep.top_pairs`, :meth:`Sweep.example_scores`, :meth:`Sweep.example_ranking`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .errors import StoreKeyError, brief
from .ranking import example_stats, rank_examples
from .scores import SCORES, default_score
from .store import SweepStore

if TYPE_CHECKING:  # xarray and pandas are imported on first use: opening a store stays cheap
    import pandas as pd
    import xarray as xr

    from .sketch import SketchSpec

__all__ = ["Sweep", "open_sweep", "rank_pairs", "score_examples"]


class Sweep:
    """A sweep's results: checkpoints (``steps``), ``examples`` (dataset indices), ``pairs``, ``param_names``."""

    def __init__(self, store: SweepStore) -> None:
        self.store = store
        g = store.group
        self.meta = store.meta
        self.steps: list[int] = store.steps
        self.examples: list[int] = store.examples
        self.pairs: np.ndarray = np.asarray(g["pairs"][:])
        self.param_spec: list[dict[str, Any]] = list(self.meta.param_spec)
        self.param_names: list[str] = [e["name"] for e in self.param_spec]
        self.stored_spec: list[dict[str, Any]] = list(self.meta.stored_spec)
        self.stored_names: list[str] = [e["name"] for e in self.stored_spec]
        self.attribute_names: list[str] = list(self.meta.attribute_names)
        self.output_names: list[str] = list(self.meta.output_names)
        self.eval_examples: list[int] = [int(e) for e in self.meta.eval_examples]
        self.epsilon: float = float(self.meta.epsilon)
        # pairs.unit=batch: the items are minibatches, ``examples`` their ids, ``batches[k]`` item k's dataset indices
        self.batches: list[list[int]] | None = self.meta.batches
        self._pairs_by_ij: dict[tuple[int, int], int] | None = None  # built on first use (10⁶ pairs: ~1.4 s)
        self._example_index = {e: k for k, e in enumerate(self.examples)}
        self._ckpt_index = {s: k for k, s in enumerate(self.steps)}
        self._entries = {e["name"]: e for e in self.stored_spec}

    @property
    def unit(self) -> str:
        """What the grid's items are: ``example``, or ``batch`` (minibatches: see :attr:`batches`)."""
        return "example" if self.batches is None else "batch"

    def __repr__(self) -> str:
        return (f"Sweep({self.store.path!r}: {len(self.steps)} checkpoints, {len(self.examples)} "
                f"{'examples' if self.batches is None else 'minibatches'}, "
                f"{len(self.pairs)} pairs, {len(self.param_names)} tensors)")

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config the sweep was run with."""
        return dict(self.meta.config)

    @property
    def complete(self) -> bool:
        """True when every task has its completion mark."""
        return len(self.store.ledger.done_tasks()) == self.meta.n_tasks

    def _checkpoint(self, step: int) -> int:
        if step not in self._ckpt_index:
            raise StoreKeyError("checkpoint not in this sweep", expected=f"a step among {brief(self.steps)}",
                                found=str(step), fix="pick a step from sweep.steps")
        return self._ckpt_index[step]

    def _example(self, example: int) -> int:
        if example not in self._example_index:
            raise StoreKeyError("example not in this sweep", expected=f"a dataset index among {brief(self.examples)}",
                                found=str(example), fix="pick an index from sweep.examples")
        return self._example_index[example]

    def _slices(self, names: Sequence[str] | None) -> list[dict[str, Any]]:
        names = self.stored_names if names is None else list(names)
        for n in names:
            if n not in self._entries:
                if n in self.param_names:
                    raise StoreKeyError(f"tensor {n!r} was not kept in this store",
                                        expected=f"a name from sweep.stored_names (storage.keep="
                                                 f"{self.config['storage'].get('keep', 'all')})",
                                        found=repr(n), fix="its RMS values are in sweep.rms_table(); "
                                                           "re-run with storage.keep including it for the values")
                raise StoreKeyError("parameter not in this sweep", expected="a name from sweep.param_names",
                                    found=repr(n), fix="list them with sweep.param_names")
        return [self._entries[n] for n in names]

    def _array_attrs(self, name: str) -> dict[str, Any]:
        """Array ``name``'s own attributes for a view, less those that label the raw array (its CF ``coordinates``
        and ``flat_axis``: a view has coordinates and one variable per tensor instead)."""
        return {k: v for k, v in self.store.group[name].attrs.items() if k not in ("coordinates", "flat_axis")}

    def _read_flat(self, array: str, row: tuple[int, ...], names: Sequence[str] | None) -> dict[str, np.ndarray]:
        entries = self._slices(names)
        arr = self._array_getter(array)()
        out = {}
        for e in entries:
            stop = e["offset"] + int(np.prod(e["shape"], dtype=np.int64))
            out[e["name"]] = np.asarray(arr[(*row, slice(e["offset"], stop))]).reshape(e["shape"])
        return out

    def bracket(self, ckpt: int, i: int, j: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """[u_i, u_j] at checkpoint step ``ckpt`` for dataset indices i, j, as named arrays.

        Stored once per unordered pair; [u_j, u_i] = −[u_i, u_j] and [u_i, u_i] = 0.
        """
        c = self._checkpoint(ckpt)
        self._example(i), self._example(j)
        if i == j:
            return {e["name"]: np.zeros(e["shape"], dtype=self.meta.dtype) for e in self._slices(names)}
        p, sign = self._oriented_pair(i, j)
        values = self._read_flat("brackets", (c, p), names)
        return values if sign > 0 else {k: -v for k, v in values.items()}

    def _oriented_pair(self, i: int, j: int) -> tuple[int, float]:
        """(position in ``pairs``, +1 or −1): where the pair {i, j} is stored, and the sign that turns its
        stored orientation into (i, j) (every per-pair quantity here is antisymmetric)."""
        if self._pairs_by_ij is None:
            self._pairs_by_ij = {(i, j): p for p, (i, j) in enumerate(self.pairs.tolist())}
        if (i, j) in self._pairs_by_ij:
            return self._pairs_by_ij[(i, j)], 1.0
        if (j, i) in self._pairs_by_ij:
            return self._pairs_by_ij[(j, i)], -1.0
        raise StoreKeyError("pair not in this sweep", expected="a pair from sweep.pairs", found=f"({i}, {j})",
                            fix="list them with sweep.pairs")

    def order_terms(self, ckpt: int, i: int, j: int,
                    names: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(Δ₁, Δ₂) of a ``field=optimizer`` store at checkpoint step ``ckpt`` for dataset indices i, j: the
        ε and ε² coefficients of θ after i then j minus θ after j then i under the checkpoint's optimizer
        (lie_sweep.order). Swapping i and j negates both."""
        c = self._checkpoint(ckpt)
        self._example(i), self._example(j)
        for name in ("order1", "order2"):
            self.store.array(name)  # one error line for a store without them
        p, sign = self._oriented_pair(i, j)
        d1, d2 = (self._read_flat(name, (c, p), names) for name in ("order1", "order2"))
        return {k: sign * v for k, v in d1.items()}, {k: sign * v for k, v in d2.items()}

    def pair_array(self, name: str, ckpt: int, i: int, j: int, names: Sequence[str] | None = None, *,
                   antisymmetric: bool = True) -> dict[str, np.ndarray]:
        """A registered effect's per-pair array ``name`` (``layout.effect_arrays``) at checkpoint step ``ckpt`` for
        dataset indices i, j, by tensor; negated for the reversed pair where ``antisymmetric``."""
        c = self._checkpoint(ckpt)
        self._example(i), self._example(j)
        if name not in self.store.layout.effect_arrays:
            raise StoreKeyError(f"this store has no effect array {name!r}", expected=f"one of "
                                f"{list(self.store.layout.effect_arrays) or 'none'}", found=repr(name),
                                fix="name an array of the sweep's effects")
        p, sign = self._oriented_pair(i, j)
        values = self._read_flat(name, (c, p), names)
        return {k: (sign if antisymmetric else 1.0) * v for k, v in values.items()}

    @property
    def swap_epsilons(self) -> list[float]:
        """The step sizes of the exact swaps (the ``epsilon`` axis of ``swaps``; [] for a store without them)."""
        return list(self.store.layout.swap_epsilons)

    def _epsilon(self, epsilon: float | None) -> int:
        """The position of step size ``epsilon`` (None: the first) on the swaps' ``epsilon`` axis."""
        if not self.store.layout.keeps_swaps:
            self.store.array("swaps")  # one error line: a store without swaps
        if epsilon is None:
            return 0
        for k, e in enumerate(self.swap_epsilons):
            if np.isclose(e, epsilon, rtol=1e-9, atol=0.0):
                return k
        raise StoreKeyError("step size not in this sweep's swaps", expected=f"one of {self.swap_epsilons}",
                            found=repr(epsilon), fix="list them with sweep.swap_epsilons")

    def swap(self, ckpt: int, i: int, j: int, epsilon: float | None = None,
             names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """θ_ij − θ_ji at checkpoint step ``ckpt`` for dataset indices i, j, as named arrays: two real steps of the
        sweep's rule from the checkpoint, i then j minus j then i, at step size ``epsilon`` (one of
        ``swap_epsilons``; None: the first) (:mod:`lie_sweep.swap`; the array's attributes say the rule).
        Swapping i and j negates it."""
        c, k = self._checkpoint(ckpt), self._epsilon(epsilon)
        self._example(i), self._example(j)
        p, sign = self._oriented_pair(i, j)
        values = self._read_flat("swaps", (c, k, p), names)
        return values if sign > 0 else {name: -v for name, v in values.items()}

    def gradient(self, ckpt: int, i: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """∇θ L_i at checkpoint step ``ckpt`` for dataset index i, as named arrays."""
        return self._read_flat("gradients", (self._checkpoint(ckpt), self._example(i)), names)

    @property
    def losses(self) -> np.ndarray:
        """Per-example losses, (checkpoints × examples), in ``steps`` × ``examples`` order."""
        return np.asarray(self.store.group["losses"][:])


    # -- questions after the sweep (storage.questions): sketches, effects on test items, similarities ----------
    def sketch_spec(self) -> "SketchSpec | None":
        """The store's sketch S (storage.sketch; None: not sketched): ``.apply(v)`` sketches new vectors."""
        from .questions import sketch_spec

        return sketch_spec(self)

    def sketch(self, name: str = "swaps") -> np.ndarray:
        """``sketch_NAME`` as a numpy array (its full array's leading dimensions, then k): S·v of each result."""
        self._array_getter(f"sketch_{name}")
        return np.asarray(self.store.group[f"sketch_{name}"][:])

    def effect_on(self, gradients: Mapping[Any, np.ndarray], **kwargs: Any) -> "pd.DataFrame":
        """The first-order change of test items' losses caused by each stored order effect,
        ⟨∇L_t, θ_ij − θ_ji⟩ ≈ ⟨S∇L_t, S(θ_ij − θ_ji)⟩ (:func:`storage.questions.effect_on`; ``lie-sweep query``
        computes the test gradients from dataset indices)."""
        from .questions import effect_on

        return effect_on(self, gradients, **kwargs)

    def similarities(self, step: int, **kwargs: Any) -> dict[str, Any]:
        """Which way a checkpoint's order effects point (:func:`storage.questions.similarities`)."""
        from .questions import similarities

        return similarities(self, step, **kwargs)

    # -- labelled lazy views (xarray) ------------------------------------------------------------
    def _array_getter(self, name: str):
        """A function returning the Zarr array ``name``; one error line (now) when the store does not keep it."""
        self.store.array(name)
        return lambda: self.store.group[name]

    def _flat_dataset(self, array: str, row_dim: str, row_coords: dict, names: Sequence[str] | None,
                      attrs: dict) -> "xr.Dataset":
        import xarray as xr

        from .views import FlatTensorArray, lazy_variable

        get = self._array_getter(array)
        lead = ("step", "epsilon", row_dim) if array == "swaps" else ("step", row_dim)
        data = {}
        for e in self._slices(names):
            dims = (*lead, *(f"{e['name']}.d{k}" for k in range(len(e["shape"]))))
            data[e["name"]] = lazy_variable(dims, FlatTensorArray(get, e["offset"], e["shape"]))
        coords = {"step": ("step", self.steps)}
        if array == "swaps":
            coords["epsilon"] = ("epsilon", self.swap_epsilons)
        return xr.Dataset(data, coords=xr.Coordinates(coords).merge(row_coords).coords, attrs=attrs)

    def brackets_xr(self, names: Sequence[str] | None = None) -> "xr.Dataset":
        """Lazy [u_i, u_j]: one variable per kept tensor, dims (step, pair, *tensor dims).

        ``pair`` is a MultiIndex (i, j) of dataset indices, i before j in the canonical order:
        ``ds["fc.weight"].sel(step=40, i=0, j=3).values`` reads that pair's fc.weight chunks only.
        """
        from .views import pair_coords

        return self._flat_dataset("brackets", "pair", pair_coords(self.pairs), names,
                                  {"quantity": "[u_i, u_j] = J_{u_j} u_i - J_{u_i} u_j",
                                   "convention": "theta_ij - theta_ji = lr^2 [u_i, u_j] + O(lr^3); "
                                                 "BatchNorm in eval mode"})

    def swaps_xr(self, names: Sequence[str] | None = None) -> "xr.Dataset":
        """Lazy exact swaps θ_ij − θ_ji: one variable per kept tensor, dims (step, epsilon, pair, *tensor dims);
        ``ds["fc.weight"].sel(step=40, epsilon=0.005, i=0, j=3)`` reads that pair's chunks only."""
        from .views import pair_coords

        self._epsilon(None)
        return self._flat_dataset("swaps", "pair", pair_coords(self.pairs), names,
                                  {**self._array_attrs("swaps"), "quantity": "theta_ij - theta_ji",
                                   "convention": "two steps from the checkpoint, i then j minus j then i; BatchNorm "
                                                 "in eval mode"})

    def gradients_xr(self, names: Sequence[str] | None = None) -> "xr.Dataset":
        """Lazy per-example gradients ∇θ L_x: one variable per kept tensor, dims (step, example, *tensor dims)."""
        import xarray as xr

        coords = xr.Coordinates({"example": ("example", self.examples)})
        return self._flat_dataset("gradients", "example", coords, names, {"quantity": "grad_theta L_x"})

    def logit_deltas(self) -> "xr.DataArray":
        """Lazy ε²·J_f(θ)[u_i, u_j], dims (step, pair, eval_example, output).

        To leading order the model's outputs after training on i then j minus after j then i,
        on the evaluation examples (dataset indices), ε = ``sweep.epsilon``.
        """
        import xarray as xr

        from .views import ZarrBackendArray, lazy_variable, pair_coords

        var = lazy_variable(("step", "pair", "eval_example", "output"),
                            ZarrBackendArray(self._array_getter("logit_deltas")))
        coords = xr.Coordinates({"step": ("step", self.steps), "eval_example": ("eval_example", self.eval_examples),
                                 "output": ("output", self.output_names)}).merge(pair_coords(self.pairs)).coords
        return xr.DataArray(var, coords=coords, name="logit_deltas",
                            attrs={"epsilon": self.epsilon, "convention": "f(theta_ij) - f(theta_ji) ~ "
                                   "epsilon^2 J_f [u_i, u_j]: order i then j minus order j then i"})

    def swap_logit_deltas(self) -> "xr.DataArray":
        """Lazy exact f(θ_ij) − f(θ_ji) on the evaluation batch, dims (step, epsilon, pair, eval_example, output):
        the model's outputs after two real steps on i then j minus on j then i, at each swap step size."""
        import xarray as xr

        from .views import ZarrBackendArray, lazy_variable, pair_coords

        self._epsilon(None)
        var = lazy_variable(("step", "epsilon", "pair", "eval_example", "output"),
                            ZarrBackendArray(self._array_getter("swap_logit_deltas")))
        coords = xr.Coordinates({"step": ("step", self.steps), "epsilon": ("epsilon", self.swap_epsilons),
                                 "eval_example": ("eval_example", self.eval_examples),
                                 "output": ("output", self.output_names)}).merge(pair_coords(self.pairs)).coords
        return xr.DataArray(var, coords=coords, name="swap_logit_deltas",
                            attrs={**self._array_attrs("swap_logit_deltas"),
                                   "convention": "f(theta_ij) - f(theta_ji): order i then j minus order j then i"})

    def gram(self) -> "xr.DataArray":
        """Lazy gradient Gram matrices g_a · g_b, dims (step, example, example_b): stores of schema ≤ 3 only (in
        schema 4, g_i · g_j of each pair of the grid is the pairs table's ``grad_dot``)."""
        import xarray as xr

        from .views import ZarrBackendArray, lazy_variable

        var = lazy_variable(("step", "example", "example_b"), ZarrBackendArray(self._array_getter("gram")))
        return xr.DataArray(var, coords={"step": self.steps, "example": self.examples, "example_b": self.examples},
                            name="gram")

    # -- summary tables (pandas) ------------------------------------------------------------------
    def tasks_of_pairs(self, pairs: Sequence[int], ckpt: int | None = None) -> list[int]:
        """Ids of the tasks that compute the pairs at positions ``pairs`` (of ``sweep.pairs``), at checkpoint
        step ``ckpt`` or every checkpoint (:meth:`StoreLayout.task_of`)."""
        layout = self.store.layout
        checkpoints = range(len(self.steps)) if ckpt is None else [self._checkpoint(ckpt)]
        return sorted({layout.task_of(c, int(p)) for c in checkpoints for p in pairs})

    def table(self, name: str, ckpt: int | None = None, pairs: Sequence[int] | None = None,
              columns: Sequence[str] | None = None) -> "pd.DataFrame":
        """Summary table ``name`` (see :mod:`storage.tables`) of completed tasks, at one checkpoint step
        or all; reads only that checkpoint's folder. With ``pairs`` (positions in ``sweep.pairs``), a
        pair table's rows of those pairs only, reading only the parts of the tasks that hold them; with
        ``columns``, only those columns (and the ones it sorts by)."""
        import pandas as pd

        steps = None if ckpt is None else [self.steps[self._checkpoint(ckpt)]]
        tasks = None if pairs is None else self.tasks_of_pairs(pairs, ckpt)
        if columns is not None:
            columns = list(dict.fromkeys([*columns, *(["pair"] if pairs is not None else [])]))
        table = self.store.read_table(name, steps, tasks, columns)
        if table is None:
            return pd.DataFrame()
        frame = table.to_pandas()
        if pairs is not None and "pair" in frame.columns:
            frame = frame[frame["pair"].isin([int(p) for p in pairs])]
        keys = [k for k in ("step", "pair", "example") if k in frame.columns]
        return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame

    def fits(self, ckpt: int | None = None) -> "pd.DataFrame":
        """Per checkpoint × pair: ``norm`` = ‖[u_i,u_j]‖₂, ``rms``, the slope-1 fit ``c`` (log RMS of the
        bracket = log c + log RMS of the gradients, across tensors), its ``r2`` and ``n_tensors``,
        and ``logit_rms`` (RMS of the logit deltas)."""
        return self.table("pairs", ckpt)

    def rms_table(self, ckpt: int | None = None, pairs: Sequence[int] | None = None) -> "pd.DataFrame":
        """Per checkpoint × pair × tensor: RMS of the bracket, of each example's gradient, and of their
        geometric mean ``rms_grad`` (the fit's x); of the pairs at positions ``pairs`` only when given."""
        frame = self.table("pair_rms", ckpt, pairs)
        if len(frame):
            frame["rms_grad"] = np.sqrt(frame["rms_grad_i"] * frame["rms_grad_j"])
        return frame

    def example_table(self, ckpt: int | None = None) -> "pd.DataFrame":
        """Per checkpoint × example: loss and gradient norm."""
        return self.table("examples", ckpt)

    def checkpoint_table(self) -> "pd.DataFrame":
        """Per checkpoint: mean loss and mean gradient norm over the examples stored so far (``n_examples``
        of them); stores of schema ≤ 3 also hold the effective rank of the gradient Gram matrix."""
        if self.store.layout.keeps_gram:
            return self.table("checkpoints")
        frame = self.example_table()
        if frame.empty:
            return frame
        return frame.groupby("step", as_index=False).agg(mean_loss=("loss", "mean"),
                                                         mean_grad_norm=("grad_norm", "mean"),
                                                         n_examples=("example", "count"))

    def output_movement(self, ckpt: int | None = None, max_pairs: int = 4096,
                        exact: bool | None = None) -> "pd.DataFrame":
        """Per checkpoint × output: ``mean_abs`` = mean |ε²·J_f[u_i,u_j]| and ``rms`` over the completed pairs
        and the evaluation examples, with ``n_pairs``; at checkpoint step ``ckpt`` or every checkpoint. With
        ``exact`` (None: where the store has no ``logit_deltas``), of the exact swap's f(θ_ij) − f(θ_ji) at
        the first swap step size instead.

        Magnitudes: the same for (i, j) and (j, i). Reads the completed tasks' logit-delta chunks,
        at most ``max_pairs`` pairs at a time, so memory stays bounded on any grid."""
        import pandas as pd

        columns = ["step", "output", "mean_abs", "rms", "n_pairs"]
        layout = self.store.layout
        exact = not layout.keeps_lead_logits if exact is None else exact
        if not (layout.keeps_logits and (layout.keeps_swaps if exact else layout.keeps_lead_logits)):
            return pd.DataFrame(columns=columns)
        arr = self.store.array("swap_logit_deltas" if exact else "logit_deltas")
        at = (lambda c, start, stop: arr[c, 0, start:stop]) if exact else (lambda c, start, stop: arr[c, start:stop])
        done = set(self.store.ledger.done_tasks())
        rows, tasks, per = [], layout.tasks(), layout.n_tasks_per_checkpoint
        for c in (range(len(self.steps)) if ckpt is None else [self._checkpoint(ckpt)]):
            spans = [(t.start, t.stop) for t in tasks[c * per:(c + 1) * per] if t.task_id in done]
            abs_sum = np.zeros(layout.n_outputs)
            sq_sum = np.zeros(layout.n_outputs)
            n_pairs = 0
            for start, stop in _merged(spans, max_pairs):
                block = np.asarray(at(c, start, stop), dtype=np.float64)
                abs_sum += np.abs(block).sum(axis=(0, 1))
                sq_sum += (block * block).sum(axis=(0, 1))
                n_pairs += stop - start
            if n_pairs:
                count = n_pairs * layout.n_eval
                rows += [(self.steps[c], name, abs_sum[o] / count, np.sqrt(sq_sum[o] / count), n_pairs)
                         for o, name in enumerate(self.output_names)]
        return pd.DataFrame(rows, columns=columns)

    def verify_table(self) -> "pd.DataFrame":
        """``lie-sweep verify``'s rows: per checkpoint × sampled pair × ε, the relative errors of the leading
        order against a real swap (``rel_theta``, ``rel_logits``), both norms and ``relu_switch``
        (see lie_sweep.verify); empty when verify has not run."""
        import pandas as pd

        table = self.store.read_verify()
        return pd.DataFrame() if table is None else table.to_pandas()

    def verify_swaps(self) -> "pd.DataFrame":
        """``lie-sweep verify``'s check of the stored exact swaps (effect swap): per checkpoint × sampled pair ×
        swap step size, ``swap_rel_err`` (stored against a float64 torch.optim or field-step reference),
        ``norm_rel_err``, ``logit_rel_err``, ``norm_ref`` and ``reference`` (see jobs.results.verify_swaps); empty
        when verify has not run."""
        import pandas as pd

        table = self.store.read_verify("swaps")
        return pd.DataFrame() if table is None else table.to_pandas()

    def verify_summary(self) -> "pd.DataFrame":
        """Per checkpoint: ``at_lr`` = median rel_theta over the sampled pairs at the largest ε (the
        training learning rate), ``max_rel_at_lr`` its worst pair, ``within_10pct`` = the largest ε whose
        median rel_theta ≤ 0.1 (NaN: none), ``relu_switch_at_lr``, ``pairs``."""
        import pandas as pd

        rows = self.verify_table()
        columns = ["step", "lr", "at_lr", "max_rel_at_lr", "within_10pct", "relu_switch_at_lr", "pairs"]
        if rows.empty:
            return pd.DataFrame(columns=columns)
        out = []
        for step, g in rows.groupby("step"):
            med = g.groupby("epsilon")["rel_theta"].median()
            top = g[g["epsilon"] == g["epsilon"].max()]
            good = med[med <= 0.1]
            out.append((int(step), float(med.index.max()), float(med.iloc[-1]), float(top["rel_theta"].max()),
                        float(good.index.max()) if len(good) else np.nan, float(top["relu_switch"].median()),
                        int(top["pair"].nunique())))
        return pd.DataFrame(out, columns=columns)

    def example_stats(self, ckpt: int | None = None) -> "pd.DataFrame":
        """Per checkpoint × example: partners, mean and RMS of ‖[u_e, u_j]‖ over partners, mean c, mean
        logit RMS, each mean with its standard error (see :mod:`storage.ranking`)."""
        return example_stats(self.fits(ckpt), by_step=True)

    def example_ranking(self, ckpt: int | None = None, by: str | None = None,
                        top: int | None = None) -> "pd.DataFrame":
        """Examples by decreasing order sensitivity at checkpoint step ``ckpt`` (None: every checkpoint's
        pairs pooled): ``example`` (dataset indices), ``score`` (``by``: norm = mean ‖[u_e,u_j]‖ over
        partners, swap = mean ‖θ_ej − θ_je‖, or another name of :data:`storage.scores.SCORES`; None: norm,
        or swap for a store without the bracket), ``se``, ``partners`` and the other statistics; the first
        ``top``.

        To keep the least order-sensitive examples:
        ``keep = set(sweep.example_ranking().example[k:])``, then filter a dataset's indices by it."""
        return rank_examples(self.fits(ckpt), by=by, top=top)

    def top_pairs(self, k: int = 10, ckpt: int | None = None, by: str | None = None) -> "pd.DataFrame":
        """The k most order-sensitive pairs, by ``by`` (a score of :data:`storage.scores.SCORES`: "norm"
        ‖[u_i,u_j]‖, "rms", "c" the fit constant, "logit_rms" RMS of the logit deltas, "swap" ‖θ_ij − θ_ji‖;
        None: norm, or swap for a store without the bracket), at checkpoint step ``ckpt`` or averaged over
        checkpoints (see :func:`rank_pairs`)."""
        return rank_pairs(self.fits(ckpt), k, by, over_checkpoints=ckpt is None)

    def example_scores(self, ckpt: int | None = None, by: str | None = None) -> "pd.DataFrame":
        """Each example's total order sensitivity at checkpoint step ``ckpt``, or summed over checkpoints
        when None (see :func:`score_examples`). Highest first: candidates to inspect or filter."""
        return score_examples(self.fits(ckpt), self.example_table(ckpt), by)


def _merged(spans: Sequence[tuple[int, int]], longest: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) spans joined while no longer than ``longest`` (sorted input)."""
    out: list[tuple[int, int]] = []
    for start, stop in spans:
        if out and out[-1][1] == start and stop - out[-1][0] <= longest:
            out[-1] = (out[-1][0], stop)
        else:
            out.append((start, stop))
    return out


# pairs-table columns averaged over checkpoints by rank_pairs (each where the store's effects give it)
_PER_PAIR = ("norm", "rms", "log_c", "r2", "logit_rms", "swap_norm", "swap_logit_rms", "lead_rel_err")


def rank_pairs(fits: "pd.DataFrame", k: int, by: str | None = None, *,
               over_checkpoints: bool = False) -> "pd.DataFrame":
    """The k rows of a ``pairs`` table (:meth:`Sweep.fits`) with the largest ``by`` value (None:
    :func:`storage.scores.default_score`); with ``over_checkpoints``, per pair first: the mean of each of norm,
    rms, r2, logit_rms, swap_norm, swap_logit_rms, lead_rel_err the table has, the geometric mean of c (mean of
    log_c), and ``n_checkpoints`` says over how many."""
    score = SCORES[by or default_score(fits.columns)]
    if fits.empty:
        return fits
    score.require(fits.columns)
    if over_checkpoints:
        cols = [c for c in _PER_PAIR if c in fits.columns]
        fits = fits.groupby(["pair", "i", "j"], as_index=False).agg(
            **{c: (c, "mean") for c in cols}, n_checkpoints=("step", "count"))
        if "log_c" in cols:
            fits.insert(fits.columns.get_loc("log_c"), "c", np.exp(fits["log_c"]))
            fits = fits.drop(columns="log_c")
    return fits.sort_values(score.pair_column, ascending=False, kind="stable").head(k).reset_index(drop=True)


def score_examples(fits: "pd.DataFrame", examples: "pd.DataFrame", by: str | None = None) -> "pd.DataFrame":
    """score(e) = Σ over the rows of a ``pairs`` table containing e of the row's ``by`` value (see
    :func:`rank_pairs`), with ``n_pairs`` and the mean ``loss`` from an ``examples`` table; highest first."""
    import pandas as pd

    col = SCORES[by or default_score(fits.columns)].pair_column
    if fits.empty:
        return pd.DataFrame(columns=["example", "score", "n_pairs", "loss"])
    both = pd.concat([fits[["i", col]].rename(columns={"i": "example"}),
                      fits[["j", col]].rename(columns={"j": "example"})])
    scores = both.groupby("example", as_index=False).agg(score=(col, "sum"), n_pairs=(col, "count"))
    if not examples.empty:
        scores = scores.merge(examples.groupby("example", as_index=False)["loss"].mean(), on="example", how="left")
    return scores.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def open_sweep(path: str, storage_options: Mapping[str, Any] | None = None) -> Sweep:
    """Open a sweep store for lazy reading; a path that is not a sweep raises one error line."""
    return Sweep(SweepStore.open(path, mode="r", storage_options=storage_options))
