"""The cluster client: joining Ray (``session``) and sweeps as Ray jobs through the Jobs API (``submit``)."""
