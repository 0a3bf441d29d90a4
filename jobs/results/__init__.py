"""Reading and checking a finished (or running) store: ``show``, ``status``, ``check`` and ``verify``."""
