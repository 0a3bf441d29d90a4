"""Execution: plans, Ray workers, the driver and the ``lie-sweep`` command line.

Composes :mod:`lie_sweep` (the math) and :mod:`storage` (the store).
"""
