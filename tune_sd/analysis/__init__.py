"""Analysis of sweep results from their Parquet tables alone (never imports Ray).

``load`` reads a sweep; ``trends`` smooths the accuracy curves, computes shape features and names
the notebook's four trends; ``configs`` pools each config's seeds (trend shares, a config trend or
mixed): a config, not a seed, is the unit every claim is made on; ``characterise`` and ``importance`` say which hyperparameters mark a
trend and matter for the final accuracy, each tested against chance by ``evidence`` (shuffles of the
trends: a claim is made only where the trials can support it); ``stops`` counts the trials that ended early, per trend
and reason; ``compare`` lines up the best trials of several sweeps;
``gallery`` shows what the best critic gets wrong; ``figures`` and ``report`` draw and write;
``pipeline.analyze`` does it all for ``tune-sd analyze``. The tests' synthetic sweeps live in
``tests/synthetic_sweeps.py``.
"""

from tune_sd.store import find_sweep

from .characterise import (decision_rules, marks, mutual_information, separation, tree_verdict, trend_marks,
                           trend_profiles)
from .compare import best_trial, top_configs, top_trials
from .configs import config_table, config_units
from .gallery import Gallery, checkpoint_path, misclassified_fakes
from .importance import importance
from .load import Sweep, hyperparameters, load_sweep
from .pipeline import analyze, load_sweeps, sweep_trends
from .trends import TRENDS, curve_features, find_trends, name_of, name_trends, shape_features, smooth_curves

__all__ = [
    "analyze", "load_sweep", "load_sweeps", "find_sweep", "Sweep", "hyperparameters", "sweep_trends",
    "find_trends", "curve_features", "smooth_curves", "shape_features", "name_trends", "name_of", "TRENDS",
    "trend_profiles", "separation", "marks", "trend_marks", "decision_rules", "tree_verdict", "mutual_information", "importance",
    "top_trials", "top_configs", "best_trial", "config_table", "config_units", "misclassified_fakes", "checkpoint_path", "Gallery",
]
