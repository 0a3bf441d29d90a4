"""Helpers for report tests: the data a page embeds, decoded as its script decodes it."""

import json
import re
from pathlib import Path

import numpy as np

from jobs.report.encode import decode

DATA = re.compile(r'<script type="application/json" id="lie-sweep-data">(.*?)</script>', re.S)


def page_data(path):
    """The JSON object embedded in a report page."""
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(DATA.search(text).group(1))


def page_pairs(data):
    """{(i, j): column} of the pairs a page embeds."""
    return {(int(i), int(j)): p for p, (i, j) in enumerate(decode(data["pairs"]).astype(int))}


def logit_tolerance(expected):
    """|page - store| allowed for a float16-scaled heatmap: 2^-11 relative, 2^-24 of the heatmap's peak."""
    peak = np.nanmax(np.abs(expected))
    return 2.0**-11 * np.abs(expected) + 2.0**-24 * peak + 1e-30
