"""Execution: running a planned sweep on Ray workers and accounting for it.

``runs`` (``run`` and ``resume``: config → spec → store → driver), ``driver`` (hand-out, retries, marks),
``dispatch`` (which task goes to which worker), ``pool`` (the worker actors, kept warm between a session's
sweeps: the only module that imports ``worker``), ``worker`` with its ``field_cache``, ``derive`` and
``rows`` (what a task computes and writes), ``worker_env`` (threads and allocator), ``phase_clock``,
``progress``, ``reaper`` (nothing outlives a killed driver) and ``account`` (the run's closing account).
"""
