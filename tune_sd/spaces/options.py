"""The ``tune:`` block of a space (how to run it) and W&B's own ``metric`` and ``run_cap`` keys."""

from __future__ import annotations

from typing import Any

from tune_sd.engine.config import SCHEMA, Config, choice, flatten, integer, real, text, unflatten
from tune_sd.errors import ConfigError


#: The ``tune:`` options and their checks. Values are kept as a dict; the sweep reads them.
def _quick_set(key: str, value) -> dict:
    """``tune.quick_set``: engine keys that ``--quick`` fixes for this study (e.g. one seed of a grid
    over seeds), as a mapping of dotted keys; each must be a config key with a valid value."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of config keys, e.g. {{seed: 0}}")
    flat = flatten(value)
    for k in flat:
        if k not in SCHEMA:
            raise ConfigError(f"{key}.{k}: unknown config key")
    Config.from_dict(unflatten(flat), where=f"{key}.")
    return flat


def _log(key: str, value) -> list:
    """``tune.log``: where the sweep also logs, ``wandb[=PROJECT]`` and ``mlflow[=URI]`` (one or a list)."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{key}: expected wandb[=PROJECT], mlflow[=URI] or a list of them")
    for v in values:
        service = v.partition("=")[0].strip().lower() if isinstance(v, str) else None
        if service not in ("wandb", "mlflow"):
            raise ConfigError(f"{key}: {v!r}: expected wandb[=PROJECT] or mlflow[=URI]")
    return list(values)


TUNE_OPTIONS: dict[str, Any] = {
    "metric": text(),
    "mode": choice("max", "min"),
    "scheduler": text(optional=True),
    "epochs": integer(1),
    "num_samples": integer(1),
    "grace_period": integer(1),
    "reduction_factor": real(1, lo_open=True),
    "max_concurrent": integer(1, optional=True),
    "report_every": integer(1),
    "checkpoint_every": integer(1, optional=True),
    "checkpoint_minutes": real(0, lo_open=True),
    "figure_every": integer(0, optional=True),
    "figure_minutes": real(0, lo_open=True),
    "max_failures": integer(-1),
    "search": text(optional=True),
    "cpus_per_trial": real(0, lo_open=True),
    "gpus_per_trial": real(0),
    "nonlearner_grace": integer(0),
    "nonlearner_window": integer(1),
    "nonlearner_margin": real(0, 0.5, lo_open=True, hi_open=True),
    "nonlearner_confidence": real(0.5, 1, hi_open=True),
    "race_alpha": real(0, 1, lo_open=True, hi_open=True),
    "quick_set": _quick_set,
    "log": _log,
}
_LOWERCASE_OPTIONS = ("scheduler", "search")


def _tune_block(tree: dict, label: str) -> dict:
    block = tree.get("tune") or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{label}: tune: expected a mapping of options, got {type(block).__name__}")
    out = {}
    for key, value in block.items():
        if key not in TUNE_OPTIONS:
            raise ConfigError(f"{label}: tune.{key}: unknown option (allowed: {', '.join(TUNE_OPTIONS)})")
        value = TUNE_OPTIONS[key](f"{label}: tune.{key}", value)
        out[key] = value.lower() if key in _LOWERCASE_OPTIONS and isinstance(value, str) else value

    metric = tree.get("metric")  # W&B's own key: {name, goal} (a bare name is accepted too)
    if metric is not None:
        if isinstance(metric, str):
            metric = {"name": metric}
        if not isinstance(metric, dict):
            raise ConfigError(f"{label}: metric: expected {{name: ..., goal: maximize|minimize}}, "
                              f"got {type(metric).__name__}")
        for key in metric:
            if key not in ("name", "goal"):
                raise ConfigError(f"{label}: metric.{key}: unknown key (allowed: name, goal)")
        mapped = {}
        if "name" in metric:
            mapped["metric"] = TUNE_OPTIONS["metric"](f"{label}: metric.name", metric["name"])
        if "goal" in metric:
            goal = choice("maximize", "minimize")(f"{label}: metric.goal", metric["goal"])
            mapped["mode"] = "max" if goal == "maximize" else "min"
        for key, value in mapped.items():
            if key in out and out[key] != value:
                raise ConfigError(f"{label}: metric: {value!r} contradicts tune.{key}: {out[key]!r}")
            out[key] = value

    if "run_cap" in tree:  # W&B's cap on the number of runs
        cap = TUNE_OPTIONS["num_samples"](f"{label}: run_cap", tree["run_cap"])
        if "num_samples" in out and out["num_samples"] != cap:
            raise ConfigError(f"{label}: run_cap: {cap} contradicts tune.num_samples: {out['num_samples']}")
        out["num_samples"] = cap
    return out
