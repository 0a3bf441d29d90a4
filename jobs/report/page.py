"""One self-contained HTML page from a :class:`ReportData`: Plotly's JavaScript, the page's own script
and style, and the data as JSON (arrays encoded by :mod:`jobs.report.encode`), all inline.

The page needs no network and no server: it opens from disk or from any static host. Its markers
(``<meta name="generator" content="lie-sweep report">``) let ``write_report`` recognise a page it may
replace, and let tests find the embedded data (``<script id="lie-sweep-data">``).
"""

from __future__ import annotations

import html
import json
import re
import time
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from storage.scores import SCORES

from .collect import ReportData
from .encode import PRECISION, encode
from .images import Thumbnails

__all__ = ["GENERATOR", "payload", "render_page", "script_json", "plotly_js"]

GENERATOR = '<meta name="generator" content="lie-sweep report">'


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js, minified, as the installed ``plotly`` package ships it (no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _asset(name: str) -> str:
    return resources.files("jobs.report").joinpath("assets", name).read_text(encoding="utf-8")


def _selection(data: ReportData, explicit: bool) -> dict[str, Any]:
    n_examples, n_pairs = data.info["n_examples"], data.info["n_pairs"]
    shown = set(data.shown)
    grid_pairs = int(sum(int(i) in shown and int(j) in shown for i, j in data.pairs))
    by = SCORES[data.info["by"]].help
    if explicit:
        text = f"showing the {data.k} examples given with --examples, of {n_examples}"
    elif data.k >= n_examples:
        text = f"showing all {n_examples} examples"
    else:
        text = (f"showing the top {data.k} of {n_examples} examples by {by} (pooled over checkpoints), the "
                f"{grid_pairs} grid pairs among them and each checkpoint's top pairs; left out: "
                f"{n_examples - data.k} examples and {n_pairs - len(data.pairs)} of {n_pairs} pairs, whose values "
                f"are in the store (lie-sweep show, or --examples / --top to pick others)")
    return {"k": data.k, "of": n_examples, "explicit": explicit, "grid_pairs": grid_pairs, "text": text}


def payload(data: ReportData, thumbs: Thumbnails, logit_enc: str = "f16s", explicit: bool = False,
            budget_note: str = "") -> dict[str, Any]:
    """The JSON object the page's script reads (see the module docstring of :mod:`jobs.report.collect`);
    ``budget_note`` says what fitting the size budget cost, if anything."""
    ranked = data.ranked[:data.k]
    return {
        "info": data.info,
        "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "steps": data.steps,
        "shown": data.shown,
        "ranked": ranked,
        "selection": {**_selection(data, explicit), "budget_note": budget_note},
        "pairs": encode(data.pairs, "i32"),
        "positions": encode(data.positions, "i32"),
        "done": encode(data.done.astype(np.int32), "i32"),
        "scores": {name: encode(v, "f32") for name, v in data.scores.items()},
        "logits": None if data.logits is None else encode(data.logits, logit_enc, block_dims=2),
        "swap_logits": None if data.swap_logits is None else encode(data.swap_logits, logit_enc, block_dims=2),
        "logit_precision": PRECISION.get(logit_enc, ""),
        "tensors": data.tensors,
        "rms_bracket": encode(data.rms_bracket, "f32"),
        "rms_grad": encode(data.rms_grad, "f32"),
        "loss": {"mean": encode(data.loss_mean, "f32"), "q10": encode(data.loss_q10, "f32"),
                 "q90": encode(data.loss_q90, "f32"), "examples": ranked,
                 "values": encode(np.array([data.losses[e] for e in ranked]), "f32")},
        "ckpt": {name: encode(v, "f32") for name, v in data.ckpt_stats.items()},
        "rank_scope": data.rank_scope,
        "rankings": data.rankings,
        "outputs": None if data.outputs is None else encode(data.outputs, "f32"),
        "outputs_pairs": data.outputs_pairs,
        "verify": data.verify,
        "similarity": data.similarity,
        "images": {"examples": {str(k): v for k, v in thumbs.images.items()}, "note": thumbs.note,
                   "texts": {str(k): v for k, v in thumbs.texts.items()}},
    }


# characters a JSON text keeps as they are but an HTML parser reads inside a <script>: escaped as \uXXXX, so that no
# stored string can close the script, open a comment (<!--) or a nested script, or end a line of JavaScript
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(body: Any) -> str:
    """``body`` as JSON safe to embed in a ``<script type="application/json">`` element (see _SCRIPT_UNSAFE);
    ``JSON.parse`` of the element's text gives back ``body`` exactly."""
    text = json.dumps(body, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_UNSAFE[m.group(0)], text)


def render_page(body: dict[str, Any], page: str = "report") -> str:
    """The whole HTML page for a payload (its JSON embedded by :func:`script_json`): ``page`` "report" (one
    store) or "compare" (:mod:`jobs.report.compare`), its ``.html`` and ``.js`` assets."""
    data = script_json(body)
    title = (f"lie-sweep report: {body['info']['store']}" if page == "report" else
             f"lie-sweep comparison: {', '.join(s['label'] for s in body['stores'])}")
    values = {"GENERATOR": GENERATOR, "TITLE": html.escape(title), "CSS": _asset("report.css"), "DATA": data,
              "PLOTLY": plotly_js(), "JS": _asset(f"{page}.js")}
    parts = re.split(r"\{\{([A-Z]+)\}\}", _asset(f"{page}.html"))  # text, name, text, name, ...
    return "".join(values[part] if k % 2 else part for k, part in enumerate(parts))
