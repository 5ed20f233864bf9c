"""Names a person knows a config by: its variant where the space names its variants (``t2a``), else
its searched values in short (``lr=1e-4 gp=1e-5``). A config's seeds share the name: the W&B group,
the MLflow parent run and TensorBoard's HParams session group of its trials."""

from __future__ import annotations

import json
import math
from numbers import Number

from tune_sd.seeds import seed_keys
from tune_sd.spaces.blocks import choice_value

#: what differs between the seeds of one config (``--repeat``, ``--repeat-data``): never part of its name
REPEAT_KEYS = seed_keys(repeat_data=True)
#: the labels that name a config (a rung of a ladder, a named variant), in this order
NAME_LABELS = ("variant", "rung")
MISSING = object()  # what lookup() gives for a key the config does not hold


def lookup(config: dict, dotted: str):
    """The value at a dotted key: a searcher's flat dotted key (Optuna), else the nested one."""
    if dotted in config:
        return config[dotted]
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def short_value(value) -> str:
    """A value as a config's name shows it: 1e-4, 0.5, 64, [2,4], adam."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "none"
    if isinstance(value, Number):
        value = value.item() if hasattr(value, "item") else value
        if isinstance(value, int):
            return str(value)
        value = float(value)
        if value == 0 or not math.isfinite(value):
            return "0" if value == 0 else str(value)
        if abs(value) < 1e-2 or abs(value) >= 1e4:  # 1e-4, 2.5e-6: as a person writes them
            mantissa, exponent = f"{value:.3e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(short_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def short_keys(keys: list[str]) -> dict[str, str]:
    """{dotted key: its short name}: the last part, or the whole key where two keys end alike."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def group_name(config: dict, searched: list[str] | None) -> str:
    """The name of a trial's config (see the module's docstring); ``searched``: the sweep's searched
    dotted keys (None: the keys the config holds beside the labels, for a config of unknown origin)."""
    config = config or {}
    labels = [str(config[label]) for label in NAME_LABELS if config.get(label) is not None]
    if labels:
        return "/".join(labels)
    keys = [k for k in (searched or []) if k not in REPEAT_KEYS and lookup(config, k) is not MISSING]
    if not keys:
        return "config"  # every trial of the sweep runs one config: its seeds are the sweep
    names = short_keys(keys)
    return " ".join(f"{names[k]}={short_value(choice_value(k, lookup(config, k)))}" for k in keys)
