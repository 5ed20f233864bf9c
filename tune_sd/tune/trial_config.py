"""A trial's config as Tune hands it (nested, or with a searcher's dotted keys; labels beside the
engine's keys) read back into the engine's config tree. No Ray: planning reads trial configs too."""

from __future__ import annotations

from tune_sd.engine.config import flatten, unflatten
from tune_sd.spaces.blocks import choice_value as decode_value  # Optuna's pairs travel as "[2, 4]"
from tune_sd.store import LABELS  # keys a trial config may carry beside the engine's


def split_trial_config(config: dict) -> tuple[dict, dict]:
    """A trial's config (nested, or with dotted keys from a searcher) -> (engine tree, labels)."""
    flat = {}
    labels = {}
    for key, value in flatten(dict(config)).items():
        if key in LABELS:
            labels[key] = value
        else:
            flat[key] = decode_value(key, value)
    return unflatten(flat), labels
