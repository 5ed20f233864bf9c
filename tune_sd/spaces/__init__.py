"""Search spaces: the studies as YAML in the W&B-sweep schema, as plain data (no Ray).

A space file holds what the seed notebook handed to ``wandb.sweep`` (``method`` and a nested
``parameters`` tree), and optionally a one-line ``description``, fixed hyperparameters (``base``, a
run-config subtree) and how to run it (``tune``)::

    # Step 15.3: random search over the critic        <- the first comment line describes the space
    method: random                                    # random | grid | bayes
    metric: {name: avg_acc, goal: maximize}           # W&B's key; same as tune: {metric, mode}
    parameters:
      arch: {parameters: {lat_size: {values: [1, 3, 5, 10]}}}
      disc:
        parameters:
          lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}
          hid_num: {values: [[2, 2], [2, 4]]}         # a list is ONE value (the notebook's tuples)
    base: {epochs: 100000, disc: {wd: 1.0e-7}}
    tune: {scheduler: asha, num_samples: 20}

Parameter blocks follow W&B: ``values`` (categorical), ``value`` (constant), or ``distribution``
with ``min``/``max``/``q``/``mu``/``sigma``. Each maps onto a Ray Tune domain (:data:`DISTRIBUTIONS`
says which; ``tune_sd.tune.ray_space`` and ``tune_sd.tune.optuna_space`` build them); every key must be
one of the run config (:data:`tune_sd.engine.config.SCHEMA`) and every value it can take must pass that key's check. Errors name the file and the key path in it.

Two optional top-level blocks add a *named* grid axis whose trials carry a label (a column of the
Parquet tables, see :data:`AXES`)::

    variants:                                         # label `variant`: name -> what it changes in base
      v0: {}
      v1: {disc: {hid_num: 4}}
    ladder: [ladder/L1_quadratic, ladder/L2_cubic]    # label `rung` (the file's stem): library.path

Every trial config then holds ``variant: v1`` (``rung: L2_cubic``) at its top level and the values that
name stands for at their places. Method grid enumerates the names (times the other grid values), random
picks one per trial; bayes takes no named axes. The overrides are checked like everything else.

Only PyYAML's safe loader reads the files, within the bounds of ``tune_sd.engine.yaml_limits``; nothing in
them is evaluated.
"""

from .axes import AXES, BASELINE, rung_name
from .blocks import DISTRIBUTIONS
from .files import SPACES_DIR, list_spaces, load_space
from .options import TUNE_OPTIONS
from .parse import space_from_dict
from .space import METHODS, SearchSpace

__all__ = ["SPACES_DIR", "METHODS", "DISTRIBUTIONS", "TUNE_OPTIONS", "AXES", "BASELINE", "SearchSpace", "load_space",
           "list_spaces", "space_from_dict", "rung_name"]
