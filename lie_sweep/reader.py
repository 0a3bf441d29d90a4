"""Re-export of the store's lazy reader, so ``lie_sweep.open_sweep`` is at hand."""

from storage.reader import Sweep, open_sweep

__all__ = ["Sweep", "open_sweep"]
