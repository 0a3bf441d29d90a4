"""``lie-sweep run`` and ``lie-sweep resume``: config → spec → store → tasks → Ray execution (the account they
end with: :mod:`jobs.execution.account`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lie_sweep.checkpoints import checkpoint_base
from lie_sweep.errors import ConfigError
from storage.errors import StoreError
from storage.identity import identity_diff
from storage.layout import SCHEMA_VERSION, Task
from storage.store import SweepStore

from jobs.cluster.session import require_reachable
from jobs.planning.config import (CHECKPOINT_LOCATION_KEYS, EXECUTION_KEYS, as_dict, config_from_stored, finalize,
                                  identity_of, load_config, storage_options_of, typed)
from jobs.planning.loader import verify_checkpoint
from jobs.planning.spec import SweepSpec, checkpoint_location, prepare_sweep, relocate_checkpoints
from jobs.planning.targets import TargetTrust

from .driver import RunReport, execute

__all__ = ["run_sweep", "run_config", "resume_sweep", "RunResult", "verify_checkpoints"]

# schema 4 stores resume as they are (their tasks write the same arrays and tables; only the coordinates'
# names, the table folders' padding and consolidated metadata, all fixed at creation, differ from schema 5)
OLDEST_RESUMABLE = 4


@dataclass
class RunResult:
    """A finished run or resume: its spec, its store, the driver's account and the number of tasks planned."""
    spec: SweepSpec
    store: SweepStore
    report: RunReport
    n_tasks: int


def _execute_holding_lock(spec: SweepSpec, store: SweepStore, tasks: list[Task], log, progress_stream,
                          command: str, done: dict | None = None) -> RunResult:
    try:
        report = execute(spec, store, tasks, log=log, progress_stream=progress_stream, command=command, done=done)
    finally:
        store.ledger.release()
    return RunResult(spec=spec, store=store, report=report, n_tasks=len(tasks))


def run_config(cfg: DictConfig, *, log: Callable[[str], None] = print, progress_stream=None) -> RunResult:
    """Run a new sweep from a validated config (the store must be new unless storage.overwrite); a cluster
    address that does not answer ends it before anything is trained or written."""
    require_reachable(cfg.cluster.address, cfg.cluster.connect_timeout)
    spec = prepare_sweep(cfg, log=log)
    layout = spec.layout()
    tasks = layout.tasks()
    st = spec.config.storage
    store = SweepStore.create(spec.store_path, layout=layout, meta=spec.store_meta(len(tasks)),
                              pairs=np.asarray(spec.pairs, dtype=np.int64).reshape(-1, 2), examples=spec.examples,
                              steps=[c["step"] for c in spec.checkpoints], eval_examples=spec.eval_examples,
                              dtype=spec.config.precision, codec=st.codec, level=st.level, keepbits=st.keepbits,
                              overwrite=st.overwrite, protect=[c["path"] for c in spec.checkpoints],
                              storage_options=spec.storage_options, swap_attrs=spec.swap_attrs())
    kept = "summaries only" if not layout.keeps_params else f"{layout.n_params} of {spec.n_params} parameters kept"
    log(f"store: {spec.store_path} ({layout.n_checkpoints} checkpoints × {layout.n_pairs} pairs; {kept}; "
        f"{len(tasks)} tasks of ≤ {layout.pairs_per_task} pairs)")
    return _execute_holding_lock(spec, store, tasks, log, progress_stream, "run")


def run_sweep(overrides: Sequence[str] = (), *, log: Callable[[str], None] = print, progress_stream=None) -> RunResult:
    """Run a new sweep from config overrides (see :func:`jobs.planning.config.load_config`)."""
    return run_config(load_config(overrides), log=log, progress_stream=progress_stream)


def verify_checkpoints(provenance: list[dict]) -> None:
    """Every checkpoint of a sweep still exists with the contents it had (sha256); else one error line."""
    for prov in provenance:
        verify_checkpoint(prov)


def _resumed_config(store: SweepStore, overrides: Sequence[str], trust_store: bool,
                    log: Callable[[str], None]) -> DictConfig:
    """The store's config with ``overrides`` applied, as data: storage options, the cluster address and the folders
    of user code are this machine's, never the store's, and its classes are built only as
    :mod:`jobs.planning.targets` allows."""
    stored = dict(store.meta.config)
    stored["storage"] = {**stored["storage"], "options": {}}
    recorded = (stored.get("cluster") or {}).get("address")
    stored["cluster"] = {**(stored.get("cluster") or {}), "address": None, "code_dirs": []}
    cfg = config_from_stored(stored, overrides, trust=TargetTrust.from_overrides(overrides, trust_store=trust_store,
                                                                                  log=log))
    if recorded and cfg.cluster.address is None:
        log(f"the store was run on the cluster {recorded}; resuming on this machine (add cluster.address={recorded} to "
            "resume there)")
    return cfg


def resume_sweep(path: str, overrides: Sequence[str] = (), *, restart: bool = False,
                 log: Callable[[str], None] = print, progress_stream=None, trust_store: bool = False) -> RunResult:
    """Finish the store at ``path``: re-plan from its config and run the tasks without a completion mark.

    ``overrides`` may change execution settings (``cluster.*``, ``chunk_size``); a change to anything
    in the store's identity is refused with a key-by-key diff, unless ``restart`` asks to start the
    store over with the new config (everything in it is deleted and recomputed).

    The store's config is data: its model and dataset are built only as :mod:`jobs.planning.targets` allows
    (lie-sweep's own classes, those ``overrides`` name, or with ``trust_store`` the store's own, listed
    first), and it never chooses where the work runs: the cluster address it recorded is not followed (Ray
    runs here unless ``cluster.address`` / ``--address`` is given now).
    """
    store = SweepStore.open(path, mode="r+", storage_options=storage_options_of(overrides))
    if store.meta.schema_version < OLDEST_RESUMABLE and not restart:
        raise StoreError(f"store {path} was written by an older lie-sweep", expected=f"schema {OLDEST_RESUMABLE}–"
                         f"{SCHEMA_VERSION} to resume", found=f"schema {store.meta.schema_version}",
                         fix="read it as it is (the reader takes older stores), or recompute it with resume --restart")
    cfg = _resumed_config(store, overrides, trust_store, log)
    diff = identity_diff(store.meta.identity, identity_of(cfg))
    if diff and not restart:
        allowed = ", ".join(k + ".*" if k == "cluster" else k for k in EXECUTION_KEYS)
        raise ConfigError("resume would change what defines this sweep's results",
                          expected=f"only execution settings ({allowed})",
                          found="; ".join(diff), fix="drop those overrides, or pass --restart to start the store over")
    require_reachable(cfg.cluster.address, cfg.cluster.connect_timeout)  # before the lock: nothing to clean up
    if restart:
        cfg = OmegaConf.to_container(cfg, resolve=True)
        cfg["storage"]["path"], cfg["storage"]["overwrite"] = store.path, True
        return run_config(finalize(cfg), log=log, progress_stream=progress_stream)
    store.ledger.acquire_lock("resume")
    try:
        store.ledger.fold_marks(include_existing=True)  # a killed run's loose marks join a segment
        marks = _Marks(store)  # read in the background while checkpoints are verified and the spec is built
        config = typed(cfg)
        moved = {o.split("=", 1)[0] for o in overrides} & set(CHECKPOINT_LOCATION_KEYS)
        if moved:  # a moved checkpoint directory: the same files (by sha256) at a new place
            location = checkpoint_location(config.checkpoints)
            located = relocate_checkpoints(store.meta.checkpoints, location)
            store.update_meta({"checkpoints": located, "checkpoint_base": str(checkpoint_base(location)),
                               "config": {**store.meta.config, "checkpoints": as_dict(config)["checkpoints"]}})
            log(f"checkpoints found at their new location ({', '.join(sorted(moved))}), sha256 verified")
        verify_checkpoints(store.meta.checkpoints)
        layout = store.layout
        tasks = layout.tasks()
        if len(tasks) != store.meta.n_tasks:
            raise ConfigError("the store's plan does not match its layout", expected=f"{store.meta.n_tasks} tasks",
                              found=f"{len(tasks)}", fix="the store was written by another lie-sweep version")
        spec = SweepSpec.from_store_meta(store.meta, config, examples=store.examples, pairs=store.pairs,
                                         store_path=store.path)
        done = marks.result()
        log(f"resuming {store.path}: {len(done)} of {len(tasks)} tasks done, {len(store.ledger.failures())} failed "
            "before")
    except BaseException:
        store.ledger.release()
        raise
    return _execute_holding_lock(spec, store, tasks, log, progress_stream, "resume", done=done)


class _Marks:
    """A store's completion marks, read in a background thread (JSON parsing of 100,000 marks overlaps
    the checkpoint hashing and the spec; both read files, so the GIL is mostly free)."""

    def __init__(self, store: SweepStore) -> None:
        self._out: dict = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(store,), daemon=True)
        self._thread.start()

    def _read(self, store: SweepStore) -> None:
        try:
            self._out = store.ledger.done_tasks()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by result()
            self._error = exc

    def result(self) -> dict:
        """{task id: mark}, once read."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._out
