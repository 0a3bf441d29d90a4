"""The sweep store: Zarr v3 layout, codecs, writer, lazy reader, Parquet tables.

Imports neither torch nor ray (a test enforces it). Filled in by the sweep-execution work.
"""
