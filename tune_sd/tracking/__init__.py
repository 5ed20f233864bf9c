"""Logging a sweep to Weights & Biases and MLflow (no Ray): where (:mod:`.targets`), how a config is
named (:mod:`.names`), the one path from trials to services (:class:`.tracker.Tracker`) and one
writer per service behind :class:`._base.Writer`."""

from ._base import Figure, TrialRun, Writer
from .names import group_name, short_value
from .targets import SERVICES, Target, default_mlflow_uri, from_dicts, parse_log, resolve, space_project
from .tracker import Tracker

__all__ = ["Figure", "SERVICES", "Target", "Tracker", "TrialRun", "Writer", "default_mlflow_uri", "from_dicts",
           "group_name", "parse_log", "resolve", "short_value", "space_project"]
