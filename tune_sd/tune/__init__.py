"""The Ray Tune layer: search spaces, trainable, sweeps, results, logging (the only place that imports ray).

Rooms: :mod:`tune_sd.tune.stopping` (early stopping: rules and their Tune adapters) and
:mod:`tune_sd.tune.packing` (trials of one shape trained as one population). The modules beside them
drive a sweep (``plan``, ``sweep``, ``choices``, ``ray_space``, ``optuna_space``, ``cluster``,
``trust``), run a trial (``trainable``, ``cadence``, ``report_rows``, ``trial_config``,
``trial_figures``), show and log it (``progress``, ``tensorboard``, ``trial_logs``), export its
results (``results``) and run workflows on sweeps (``ladder``, ``critic_from``).
"""

from tune_sd.tune import _moved

_moved.install()
