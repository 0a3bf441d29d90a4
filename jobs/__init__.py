"""Execution: plans, Ray workers, the driver and the ``lie-sweep`` command line.

Composes :mod:`lie_sweep` (the math) and :mod:`storage` (the store).
"""

__lie_sweep_package__ = "jobs"  # tells this package from another distribution's `jobs` (lie_sweep._origin)
