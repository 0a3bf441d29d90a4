"""``lie-sweep report``: a sweep's results as one self-contained, offline HTML page (Plotly inline).

``collect`` reads what the page shows from a store, ``encode`` packs arrays compactly, ``images``
makes the example thumbnails, ``page`` assembles the HTML, ``write`` fits it into its size budget.
"""

from .write import ReportResult, default_report_path, write_report

__all__ = ["ReportResult", "default_report_path", "write_report"]
