"""Planning: from a config to the immutable description of a sweep, before anything runs.

``schema`` and ``config`` (keys, defaults, checks, Hydra composition), ``grids`` (the pair grids'
registry), ``build`` (dataset, model, examples, pairs), ``loader`` (the one checkpoint loader),
``spec`` (the :class:`~jobs.planning.spec.SweepSpec` every worker rebuilds from), ``hvp_choice``,
``memory`` and ``sizing`` (what a task needs of a worker), ``dry_run`` and ``plan_text`` (``lie-sweep plan``).
Imports neither Ray nor the execution room.
"""
