"""``lie-sweep report``: read a store, fit the page into its size budget, write it atomically.

The budget (``max_mb``) is met by lowering the embedded precision first (float16 → 8-bit logit
deltas), then by showing fewer examples (the lowest-ranked first); the page says which. A page
that cannot fit even at two examples is refused in one line. The output file is replaced only
when it is an earlier lie-sweep report; it is never written inside the store.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from lie_sweep.errors import ConfigError
from storage.reader import open_sweep

from .collect import ReportData, collect_report, shrink
from .images import Thumbnails, example_thumbnails
from .page import GENERATOR, payload, render_page

__all__ = ["ReportResult", "write_report", "default_report_path", "write_comparison", "default_comparison_path"]


@dataclass
class ReportResult:
    """What was written: ``path``, its size, the examples shown of all, the logit encoding, progress."""

    path: str
    n_bytes: int
    shown: int
    of: int
    logit_encoding: str | None
    tasks_done: int
    n_tasks: int
    tried: list[tuple[int, str | None, int]]

    def summary(self) -> str:
        """One line for the terminal."""
        progress = "" if self.tasks_done == self.n_tasks else \
            f"; store in progress: {self.tasks_done} of {self.n_tasks} tasks shown"
        enc = {"f16s": "float16", "i8s": "8-bit", None: "no"}[self.logit_encoding]
        return (f"report: {self.path} ({self.n_bytes / 2**20:.1f} MiB; {self.shown} of {self.of} examples, "
                f"{enc} logit deltas{progress}); open it in a browser, or publish the file on any static host")


def default_report_path(store: str) -> str:
    """``STORE-report.html`` beside a local store; ``./NAME-report.html`` for a store at a URL."""
    if "://" in store:
        return f"{posixpath.basename(store.rstrip('/')) or 'sweep'}-report.html"
    return str(Path(store.rstrip("/\\")).with_name(Path(store.rstrip("/\\")).name + "-report.html"))


def _check_output(out: str, store: str) -> None:
    """Refuse an output that is a directory, lies inside a local store, or is a file that is not a report."""
    path = Path(out)
    if "://" not in store and path.resolve().is_relative_to(Path(store).resolve()):
        raise ConfigError("the report would be written inside the store", expected="a path outside the store",
                          found=out, fix=f"use -o {default_report_path(store)}")
    if not path.parent.is_dir():
        raise ConfigError("the report's folder does not exist", expected="-o in an existing folder",
                          found=str(path.parent), fix=f"create it first (mkdir -p {path.parent}), or pick another -o")
    if path.is_dir():
        raise ConfigError("report output is a directory", expected="a file path (e.g. report.html)", found=out,
                          fix=f"use -o {path / 'report.html'}")
    if path.exists():
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if GENERATOR.encode() not in head:
            raise ConfigError("report output exists and is not a lie-sweep report", expected="a new path or an "
                              "earlier report", found=out, fix="pick another -o; the file was left as it is")


def _thumbs_for(all_thumbs: Thumbnails, data: ReportData) -> Thumbnails:
    """The thumbnails of what a (shrunk) page shows: shown examples, top pairs' examples, evaluation batch."""
    wanted = set(data.ranked[:data.k]) | {int(x) for x in data.pairs.ravel()} | set(data.info["eval_examples"])
    return Thumbnails({i: u for i, u in all_thumbs.images.items() if i in wanted}, all_thumbs.note,
                      {i: t for i, t in all_thumbs.texts.items() if i in wanted})


def _fit(data: ReportData, thumbs: Thumbnails, budget: int, explicit: bool) -> tuple[str, ReportData, str | None,
                                                                                    list[tuple[int, str | None, int]]]:
    """The largest page within ``budget`` characters: float16 then 8-bit logit deltas, then fewer examples."""
    encodings: list[str | None] = [None] if data.logits is None and data.swap_logits is None else ["f16s", "i8s"]
    tried = []
    k = data.k
    while True:
        for enc in encodings:
            view = data if k == data.k else shrink(data, k)
            note = "" if (k, enc) == (data.k, encodings[0]) else (
                f"fitted to the size budget ({budget / 2**20:g} MiB): {k} of the {data.k} examples asked for"
                + (", logit deltas at 8 bits" if enc == "i8s" else ""))
            page = render_page(payload(view, _thumbs_for(thumbs, view), enc or "f16s", explicit, note))
            size = len(page.encode("utf-8"))
            tried.append((k, enc, size))
            if size <= budget:
                return page, view, enc, tried
        if explicit or k <= 2:
            k_min, _, smallest = tried[-1]
            raise ConfigError("the report does not fit its size budget", expected=f"at most {budget / 2**20:.1f} MiB",
                              found=f"{smallest / 2**20:.1f} MiB with {k_min} examples and the coarsest encoding",
                              fix="raise --max-mb" + (", or name fewer --examples" if explicit else ""))
        k = max(2, int(k * 0.8))


def write_report(store: str, out: str | None = None, *, top: int = 16, examples: Sequence[int] | None = None,
                 by: str | None = None, max_mb: float = 20.0, images: bool = True,
                 storage_options: Mapping[str, Any] | None = None, trust: Any = None) -> ReportResult:
    """Write the results page of the store at ``store`` to ``out`` (see the module docstring); ``trust``: what
    the thumbnails may build from the store's config (:func:`jobs.report.images.example_thumbnails`)."""
    if max_mb <= 0:
        raise ConfigError("--max-mb must be positive", expected="a size in MiB, e.g. 20", found=str(max_mb),
                          fix="--max-mb 20")
    out = out or default_report_path(store)
    _check_output(out, store)
    sweep = open_sweep(store, storage_options=storage_options)
    data = collect_report(sweep, top=top, examples=examples, by=by)
    wanted = set(data.ranked[:data.k]) | {int(x) for x in data.pairs.ravel()} | set(sweep.eval_examples)
    if sweep.batches is not None:  # the page's ids are minibatches: no one image stands for one
        thumbs = Thumbnails(note="no images: the sweep's items are minibatches (pairs.unit=batch)")
    else:
        task = (sweep.config.get("task") or {}).get("name", "multilabel")
        thumbs = example_thumbnails(sweep.config.get("data", {}), wanted, trust=trust, task_name=task) if images else \
            Thumbnails(note="example images left out (--no-images)")
    page, view, enc, tried = _fit(data, thumbs, int(max_mb * 2**20), explicit=examples is not None)
    target = _write_atomically(out, page)
    return ReportResult(path=str(target), n_bytes=target.stat().st_size, shown=view.k, of=len(sweep.examples),
                        logit_encoding=enc, tasks_done=view.info["tasks_done"], n_tasks=view.info["n_tasks"],
                        tried=tried)


def default_comparison_path(stores: Sequence[str], multirun: str | None = None) -> str:
    """``MULTIRUN/compare-report.html`` for a multirun directory, else ``compare-report.html`` beside the first
    local store (in the working directory for stores at URLs)."""
    if multirun is not None:
        return os.path.join(multirun, "compare-report.html")
    first = stores[0]
    return "compare-report.html" if "://" in first else str(Path(first.rstrip("/\\")).with_name("compare-report.html"))


def write_comparison(stores: Sequence[str], out: str | None = None, *, top: int = 12, by: str | None = None,
                     multirun: str | None = None, storage_options: Mapping[str, Any] | None = None) -> str:
    """Write one page comparing ``stores`` (:mod:`jobs.report.compare`) to ``out``; returns one summary line."""
    from .compare import compare_payload

    out = out or default_comparison_path(stores, multirun)
    for store in stores:
        _check_output(out, store)
    sweeps = [open_sweep(s, storage_options=storage_options) for s in stores]
    body = compare_payload(sweeps, top=top, by=by)
    target = _write_atomically(out, render_page(body, page="compare"))
    return (f"comparison: {target} ({target.stat().st_size / 2**20:.1f} MiB; {len(stores)} stores, "
            f"{body['shared']['pairs']} shared pairs, by {body['score']['name']}); open it in a browser")


def _write_atomically(out: str, page: str) -> Path:
    """Write ``page`` to ``out`` in full or not at all (one error line when the place is not writable)."""
    target = Path(out)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError("cannot write the report", expected=f"a writable place for {target}",
                          found=f"{type(exc).__name__}: {exc.strerror or exc}", fix="pick another -o") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target
