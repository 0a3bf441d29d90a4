"""The sweep store: on-disk tree, Zarr v3 layout, codecs, writer, ledger, Parquet tables, lazy reader.

Imports neither torch nor ray (a test enforces it), so a store can be read where neither is installed.
"""

__lie_sweep_package__ = "storage"  # tells this package from another distribution's `storage` (lie_sweep._origin)
